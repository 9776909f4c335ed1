"""Run the examples under docs/examples against real servers.

Every runnable example that the docs include is executed here as a user
would run it (a subprocess with host and port on the command line), so a
change that breaks an example fails the test suite.
"""

from __future__ import annotations

import configparser
import logging.config
import subprocess
import sys
from pathlib import Path

from fixtures.servers import GearmanD

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def run_example(name: str, *args: object, timeout: float = 60) -> str:
    """Run one example to completion and return its standard output."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def test_low_level(gearmand: GearmanD) -> None:
    out = run_example("low_level.py", gearmand.host, gearmand.port)
    assert "ECHO_RES b'ping'" in out
    assert "server version: OK " in out


def test_logging_conf_loads(tmp_path: Path) -> None:
    text = (EXAMPLES / "logging.conf").read_text()
    assert "/var/log/geard/" in text
    path = tmp_path / "logging.conf"
    path.write_text(text.replace("/var/log/geard/", f"{tmp_path}/"))
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    try:
        logging.config.fileConfig(path, disable_existing_loggers=False)
        logging.getLogger("gear.Server").info("hello from the docs test")
    finally:
        for logger in (logging.getLogger("gear"), root):
            for handler in logger.handlers[:]:
                if handler not in saved_handlers:
                    logger.removeHandler(handler)
                    handler.close()
        logging.getLogger("gear").setLevel(logging.NOTSET)
        root.setLevel(saved_level)
    assert "hello from the docs test" in (tmp_path / "info.log").read_text()


def test_acl_file_parses() -> None:
    parser = configparser.RawConfigParser()
    assert parser.read(EXAMPLES / "acl.ini")
    assert parser.sections() == ["thumbnailer", "webapp", "deployer"]
    assert parser.getboolean("deployer", "grant") is True
