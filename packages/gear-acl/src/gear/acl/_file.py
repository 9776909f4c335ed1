"""Loading ACL files: one ini section per certificate subject."""

from __future__ import annotations

import configparser
import os

from gear.acl._acl import ACL, ACLEntry, ACLError

__all__ = ["load_acl_file"]

_KEYS = ("register", "invoke", "grant", "admin")


def _where(path: str, section: str, key: str | None = None) -> str:
    where = "ACL file %s, section [%s]" % (path, section)
    if key is not None:
        where += ", key %r" % key
    return where


def _check_keys(path: str, section: str, keys: list[str]) -> None:
    for key in keys:
        if key not in _KEYS:
            raise ACLError(
                "%s: unknown key (expected register, invoke, grant or admin)"
                % _where(path, section, key)
            )


def _entry(parser: configparser.RawConfigParser, path: str, section: str) -> ACLEntry:
    entry = ACLEntry(section, grant=None)
    for key in ("register", "invoke"):
        if parser.has_option(section, key):
            try:
                setattr(entry, key, parser.get(section, key))
            except ACLError as e:
                raise ACLError("%s: %s" % (_where(path, section, key), e)) from None
    for key in ("grant", "admin"):
        if parser.has_option(section, key):
            try:
                setattr(entry, key, parser.getboolean(section, key))
            except ValueError:
                raise ACLError(
                    "%s: %r is not a boolean (use true/false, yes/no, on/off or 1/0)"
                    % (_where(path, section, key), parser.get(section, key))
                ) from None
    return entry


def load_acl_file(path: str | os.PathLike[str]) -> ACL:
    """Read an ACL file (gear 0.16's format) and return a new :class:`gear.ACL`.

    Each section is a subject (a certificate Common Name, case-sensitive)
    with the optional keys ``register`` and ``invoke`` (regular expressions),
    ``grant`` (a boolean; absent means None) and ``admin`` (a boolean: the
    admin commands that change the server). ``[DEFAULT]`` supplies
    keys to every section. Unlike gear 0.16, which treated an unreadable
    file as empty and so denied everything, any problem raises
    :class:`gear.ACLError` whose message names the file, and the section and key
    when there is one.
    """
    name = os.fsdecode(path)
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f, source=name)
    except OSError as e:
        raise ACLError("Unable to read ACL file %s: %s" % (name, e.strerror or e)) from None
    except UnicodeDecodeError as e:
        raise ACLError("ACL file %s is not valid UTF-8: %s" % (name, e)) from None
    except configparser.Error as e:
        message = str(e).replace("\n", " ").strip()
        raise ACLError("ACL file %s is not a valid ini file: %s" % (name, message)) from None
    if parser.defaults():
        _check_keys(name, parser.default_section, list(parser.defaults()))
        _entry(parser, name, parser.default_section)
    acl = ACL()
    for section in parser.sections():
        _check_keys(name, section, parser.options(section))
        acl.add(_entry(parser, name, section))
    return acl
