"""Fixtures shared by every package's tests live in tests/fixtures/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests"))

pytest_plugins = [
    "fixtures.servers",
    "fixtures.certs",
    "fixtures.geard",
    "fixtures.gear016",
    "fixtures.peers",
    "fixtures.pypi",
    "fixtures.postgres",
]
