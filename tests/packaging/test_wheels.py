"""Build the five wheels and install subsets of them into fresh venvs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from gear._version import __version__ as gear_version

ROOT = Path(__file__).resolve().parents[2]
VERSION = gear_version
DISTRIBUTIONS = ["gear-core", "gear-client", "gear-worker", "gear-server", "gear-acl"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), *(str(ROOT / "packages" / d) for d in DISTRIBUTIONS)],
        check=True,
        env={**os.environ, "GEAR_MYPYC": "0"},  # pure and quick; scripts/check builds compiled
    )  # fmt: skip
    found = {}
    for dist in DISTRIBUTIONS:
        matches = list(out.glob(dist.replace("-", "_") + "-*.whl"))
        assert len(matches) == 1, (dist, matches)
        found[dist] = matches[0]
    return found


def _files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n for n in zf.namelist() if ".dist-info/" not in n}


def test_no_file_is_in_two_wheels(wheels: dict[str, Path]) -> None:
    owners: dict[str, str] = {}
    for dist, wheel in wheels.items():
        for name in _files(wheel):
            assert name not in owners, f"{name} is in both {owners.get(name)} and {dist}"
            owners[name] = dist
    assert owners["gear/__init__.py"] == "gear-core"
    for dist in DISTRIBUTIONS:
        assert any(n.endswith("py.typed") for n in _files(wheels[dist])), dist


def test_the_dashboard_ships_in_gear_server(wheels: dict[str, Path]) -> None:
    files = _files(wheels["gear-server"])
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        assert "gear/server/_dashboard/" + name in files


def _venv_with(tmp_path: Path, wheels: dict[str, Path], dists: list[str]) -> Path:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         *(str(wheels[d]) for d in dists)],
        check=True,
    )  # fmt: skip
    return python


def _run(python: Path, code: str) -> str:
    result = subprocess.run(
        [str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_core_and_client_alone(tmp_path: Path, wheels: dict[str, Path]) -> None:
    python = _venv_with(tmp_path, wheels, ["gear-core", "gear-client"])
    out = _run(
        python,
        """
        import gear
        assert gear.Packet and gear.Connection and gear.StatusAdminRequest
        assert gear.Client.__module__ == "gear" and gear.Job and gear.TextJob and gear.BinaryJob
        assert "Client" in gear.__all__ and "Server" not in gear.__all__
        assert gear.JSONCodec().decode(gear.JSONCodec().encode({"a": [1]})) == {"a": [1]}
        try:
            gear.MsgpackCodec()
        except ImportError as e:
            print("MsgpackCodec ->", e)
        for name in ("Server", "Worker", "ACL", "acl", "testing"):
            try:
                getattr(gear, name)
            except ImportError as e:
                print(name, "->", e)
            else:
                raise SystemExit(name + " should not resolve")
        """,
    )
    assert "Server -> gear.Server is provided by gear-server: pip install gear-server" in out
    assert "Worker -> gear.Worker is provided by gear-worker: pip install gear-worker" in out
    assert "ACL -> gear.ACL is provided by gear-acl: pip install gear-acl" in out
    assert "acl -> gear.acl is provided by gear-acl: pip install gear-acl" in out
    assert "testing -> gear.testing is provided by gear-server: pip install gear-server" in out
    assert "MsgpackCodec -> gear.MsgpackCodec needs msgpack: pip install gear-core[msgpack]" in out


def test_each_distribution_installs_with_core(tmp_path: Path, wheels: dict[str, Path]) -> None:
    probes = {
        "gear-worker": "gear.Worker, gear.FunctionRecord, gear.WorkerJob",
        "gear-acl": "gear.ACL, gear.ACLEntry, gear.acl.ACLError",
        "gear-server": "gear.Server, gear.ServerJob",
    }
    for dist, names in probes.items():
        needs = ["gear-core", dist] + (["gear-acl"] if dist == "gear-server" else [])
        python = _venv_with(tmp_path / dist, wheels, needs)
        _run(python, f"import gear; {names}")


def test_everything_installed_gives_every_name(tmp_path: Path, wheels: dict[str, Path]) -> None:
    python = _venv_with(tmp_path, wheels, DISTRIBUTIONS)
    _run(
        python,
        """
        import gear, gear.cmd.geard
        from importlib.metadata import entry_points
        assert set(gear.__all__) == set(gear.PUBLIC_NAMES)
        for name in gear.PUBLIC_NAMES:
            getattr(gear, name)
        (plugin,) = entry_points(group="pytest11", name="gear")
        assert plugin.value == "gear.testing.pytest_plugin", plugin
        """,
    )


def test_plain_install_puts_the_server_on_uvloop(tmp_path: Path, wheels: dict[str, Path]) -> None:
    """``pip install gear-server`` brings uvloop (from PyPI) and the server runs on it."""
    python = _venv_with(tmp_path, wheels, ["gear-core", "gear-client", "gear-worker", "gear-acl"])
    plain = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--find-links", str(wheels["gear-core"].parent), str(wheels["gear-server"])],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert plain.returncode == 0, "pip could not install gear-server:\n" + plain.stderr
    out = _run(
        python,
        """
        import threading, gear

        server = gear.Server(0, host="127.0.0.1")
        try:
            print(type(server.loop).__module__.split(".")[0])
            opted_out = gear.Server(0, host="127.0.0.1", event_loop="asyncio")
            print(type(opted_out.loop).__module__.split(".")[0])
            opted_out.shutdown()
            worker = gear.Worker("w")
            worker.addServer("127.0.0.1", server.port)
            worker.registerFunction("reverse")
            worker.waitForServer(10)

            def work():
                job = worker.getJob()
                job.sendWorkComplete(job.arguments[::-1])

            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            client = gear.Client("c")
            client.addServer("127.0.0.1", server.port)
            client.waitForServer(10)
            job = gear.Job(b"reverse", b"uvloop")
            client.submitJob(job)
            assert job.wait(10), "no result within 10 s"
            thread.join(10)
            print(job.data[0].decode())
            client.shutdown()
            worker.shutdown()
        finally:
            server.shutdown()
        """,
    )
    assert out.split() == ["uvloop", "asyncio", "poolvu"]


def test_msgpack_extra_gives_the_msgpack_codec(tmp_path: Path, wheels: dict[str, Path]) -> None:
    """``gear-core[msgpack]`` installs msgpack (from PyPI) and ``gear.MsgpackCodec`` then works."""
    python = _venv_with(tmp_path, wheels, ["gear-core"])
    extra = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "%s[msgpack]" % wheels["gear-core"]],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert extra.returncode == 0, "pip could not install gear-core[msgpack]:\n" + extra.stderr
    out = _run(
        python,
        """
        import gear
        codec = gear.MsgpackCodec()
        print(codec.decode(codec.encode({1: b"raw", "s": ["x"]})))
        """,
    )
    assert out.strip() == "{1: b'raw', 's': ['x']}"


def _build_core(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(ROOT / "packages" / "gear-core")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )  # fmt: skip


def test_without_a_compiler_the_build_falls_back_to_pure_python(tmp_path: Path) -> None:
    built = _build_core(tmp_path, CC="false")
    assert built.returncode == 0, built.stderr
    assert [w.name for w in tmp_path.glob("*.whl")] == ["gear_core-%s-py3-none-any.whl" % VERSION]
    assert not [n for n in _files(next(tmp_path.glob("*.whl"))) if n.endswith(".so")]
    required = _build_core(tmp_path / "required", CC="false", GEAR_MYPYC="1")
    assert required.returncode != 0
    assert "mypyc failed" in required.stderr + required.stdout


def test_the_build_hooks_are_one_file() -> None:
    core, server = (ROOT / "packages" / d / "hatch_build.py" for d in ("gear-core", "gear-server"))
    assert core.read_text() == server.read_text()
