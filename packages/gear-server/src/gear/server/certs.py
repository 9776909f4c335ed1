"""``geard-certs``: a development CA and signed certificates for trying TLS.

geard with TLS requires a client certificate from every peer, and the
certificate's Common Name is the peer's ACL subject. This command writes a
CA and a server and client certificates signed by it into a folder, then
prints the ``geard`` command line and the ``addServer`` call that use them.
The CA key lives next to the certificates: this is for development only.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = ["CertsError", "Issued", "generate", "main", "usage_text"]

INSTALL_HINT = "geard-certs needs the cryptography package: pip install 'gear-server[certs]'"


class CertsError(Exception):
    """The certificates cannot be written (existing files, bad names)."""


@dataclass(frozen=True)
class Issued:
    """One written key and certificate, and the Common Name inside."""

    common_name: str
    key: Path
    cert: Path


def _file_stem(common_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in common_name).strip(".")


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_names(common_name: str) -> list[x509.GeneralName]:
    """localhost and loopback, plus the server's CN, for tools that check host names."""
    from cryptography import x509

    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        address = ipaddress.ip_address(common_name)
    except ValueError:
        if common_name != "localhost" and common_name.isascii() and " " not in common_name:
            names.append(x509.DNSName(common_name))
    else:
        if x509.IPAddress(address) not in names:
            names.append(x509.IPAddress(address))
    return names


class _Writer:
    def __init__(self, folder: Path, days: int) -> None:
        self.folder = folder
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.not_before = self.now - datetime.timedelta(hours=1)
        self.not_after = self.now + datetime.timedelta(days=days)

    def new_key(self) -> EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives.asymmetric import ec

        return ec.generate_private_key(ec.SECP256R1())

    def write(self, stem: str, key: EllipticCurvePrivateKey, cert: x509.Certificate) -> Issued:
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID

        key_path = self.folder / (stem + ".key")
        cert_path = self.folder / (stem + ".pem")
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_bytes)
        os.chmod(key_path, 0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return Issued(str(cn), key_path, cert_path)

    def ca(self, common_name: str) -> tuple[EllipticCurvePrivateKey, x509.Certificate]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        key = self.new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def leaf(
        self,
        common_name: str,
        ca_key: EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
        server: bool,
    ) -> tuple[EllipticCurvePrivateKey, x509.Certificate]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = self.new_key()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_alt_names(common_name)), critical=False
            )
        return key, builder.sign(ca_key, hashes.SHA256())


def _plan(server_cn: str, client_cns: Sequence[str]) -> list[tuple[str, str]]:
    """Return (common name, file stem): the CA, the server, then one per client CN."""
    plan = [("", "ca"), (server_cn, "server")]
    plan += [(cn, _file_stem(cn)) for cn in client_cns]
    seen: dict[str, str] = {}
    for index, (cn, stem) in enumerate(plan):
        if index > 0 and not cn:
            raise CertsError("a Common Name must not be empty")
        if not stem:
            raise CertsError("no usable file name for the Common Name %r" % cn)
        if stem in seen:
            raise CertsError(
                "the client Common Name %r would use the same files as %s (%s.key, %s.pem)"
                % (cn, seen[stem], stem, stem)
            )
        seen[stem] = "the CA" if index == 0 else "the server" if index == 1 else repr(cn)
    return plan


def generate(
    folder: str | os.PathLike[str],
    *,
    ca_cn: str = "gear development CA",
    server_cn: str = "server",
    client_cns: Sequence[str] = ("client",),
    days: int = 365,
    force: bool = False,
) -> tuple[Issued, Issued, list[Issued]]:
    """Write the CA, server and client keys and certificates; return (ca, server, clients).

    Files are ``ca.key``/``ca.pem``, ``server.key``/``server.pem`` and
    ``<client CN>.key``/``<client CN>.pem``. Nothing is
    written if any of them exists, unless ``force``. Keys are EC P-256,
    readable by the owner only. :class:`CertsError` explains a refusal;
    ImportError means ``cryptography`` is missing.
    """
    import cryptography  # noqa: F401  (fail before touching the folder)

    if days < 1:
        raise CertsError("--days must be at least 1")
    if not ca_cn:
        raise CertsError("the CA's Common Name must not be empty")
    path = Path(folder).absolute()
    plan = _plan(server_cn, client_cns)
    if path.exists() and not path.is_dir():
        raise CertsError("%s exists and is not a directory" % path)
    existing = [
        str(path / (stem + suffix))
        for _, stem in plan
        for suffix in (".key", ".pem")
        if (path / (stem + suffix)).exists()
    ]
    if existing and not force:
        raise CertsError(
            "refusing to overwrite %s (use --force to replace them)" % ", ".join(existing)
        )
    path.mkdir(parents=True, exist_ok=True)
    writer = _Writer(path, days)
    ca_key, ca_cert = writer.ca(ca_cn)
    ca = writer.write("ca", ca_key, ca_cert)
    issued = [
        writer.write(stem, *writer.leaf(cn, ca_key, ca_cert, server=index == 1))
        for index, (cn, stem) in enumerate(plan)
        if index > 0
    ]
    return ca, issued[0], issued[1:]


def usage_text(ca: Issued, server: Issued, clients: Sequence[Issued], port: int = 4730) -> str:
    """What to run next: the geard command line and a client's addServer call."""
    q = shlex.quote
    lines = [
        "Wrote a development CA (%s) and certificates to %s:" % (ca.common_name, ca.cert.parent),
        "  %-28s CA certificate; keep %s private" % (ca.cert.name, ca.key.name),
        "  %-28s server, Common Name %r"
        % (server.cert.name + ", " + server.key.name, server.common_name),
    ]
    for client in clients:
        lines.append(
            "  %-28s client, Common Name %r (its ACL subject)"
            % (client.cert.name + ", " + client.key.name, client.common_name)
        )
    lines += [
        "",
        "Start geard with TLS (every peer must present a certificate from this CA):",
        "  geard -d -p %d --ssl-ca %s --ssl-cert %s --ssl-key %s"
        % (port, q(str(ca.cert)), q(str(server.cert)), q(str(server.key))),
    ]
    for client in clients:
        lines += [
            "",
            "Connect a gear Client or Worker as %r:" % client.common_name,
            "  client.addServer('127.0.0.1', %d, ssl_key=%r, ssl_cert=%r, ssl_ca=%r)"
            % (port, str(client.key), str(client.cert), str(ca.cert)),
        ]
    lines += [
        "",
        "To try deny-by-default permissions, add --acl acl.ini to geard with sections",
        "named by Common Name, e.g.:",
        "  [%s]" % (clients[0].common_name if clients else "client"),
        "  register=.*",
        "  invoke=.*",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geard-certs",
        description=(
            "Create a development CA and certificates signed by it for trying geard with TLS. "
            "The Common Name of a client certificate is its ACL subject."
        ),
    )
    parser.add_argument("folder", metavar="DIR", help="folder for the keys and certificates")
    parser.add_argument(
        "--ca-cn", default="gear development CA", help="Common Name of the CA (%(default)s)"
    )
    parser.add_argument(
        "--server-cn", default="server", help="Common Name of the server (%(default)s)"
    )
    parser.add_argument(
        "--client-cn",
        dest="client_cns",
        action="append",
        metavar="CN",
        help="Common Name of a client certificate; repeat for several (default: client)",
    )
    parser.add_argument("--days", type=int, default=365, help="validity in days (%(default)s)")
    parser.add_argument(
        "-p", "--port", type=int, default=4730, help="port shown in the printed commands"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite existing keys and certificates"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``geard-certs``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        ca, server, clients = generate(
            args.folder,
            ca_cn=args.ca_cn,
            server_cn=args.server_cn,
            client_cns=args.client_cns or ["client"],
            days=args.days,
            force=args.force,
        )
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    except (CertsError, OSError) as e:
        print("geard-certs: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(usage_text(ca, server, clients, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
