"""geard's dashboard: ``/api/status`` over HTTP and ``/`` in a real headless Chromium.

Each test runs the ``geard`` program with ``--metrics-port`` and a scripted
workload of real peers: our threaded worker and client, and raw
connections where a peer must hold a job, queue one with a hostile name,
or just stay connected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gear
from fixtures.browser import chromium
from fixtures.geard import RawGearman
from fixtures.geard_process import running_geard
from fixtures.http_get import get
from fixtures.peers import Harness
from fixtures.servers import LOOPBACK, free_port
from fixtures.waiting import wait_until
from gear import constants as C
from gear.server._version import __version__

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOT = DOCS / "_build" / "screenshots" / "dashboard.png"
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"


def status(port: int, query: str = "") -> dict[str, Any]:
    code, headers, body = get(port, "/api/status" + query)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert b"<" not in body and b">" not in body  # escaped as \u003c, \u003e
    result: dict[str, Any] = json.loads(body)
    return result


class Workload:
    """A geard with a worker for ``resize`` that has run 20 jobs, three jobs queued
    for ``idle`` (one high), a job held running on ``slow``, and one queued
    under a hostile name."""

    def __init__(self, tmp_path: Path) -> None:
        self.http_port = free_port()
        self._geard = running_geard(tmp_path, "--metrics-port", str(self.http_port))
        self.geard = self._geard.__enter__()
        self.raw: list[RawGearman] = []

    def start(self, harness: Harness) -> None:
        server = type("Address", (), {"host": LOOPBACK, "port": self.geard.port})()
        worker = harness.worker(server, client_id="resizer", functions=("resize",))
        harness.serve(worker, lambda job: job.sendWorkComplete(job.arguments[::-1]))
        client = harness.client(server, client_id="submitter")
        jobs = [gear.Job(b"resize", b"%d" % i) for i in range(20)]
        for job in jobs:
            client.submitJob(job)
        for job in jobs:
            assert job.wait(10)
        for precedence in (C.PRECEDENCE_HIGH, C.PRECEDENCE_NORMAL, C.PRECEDENCE_NORMAL):
            client.submitJob(gear.Job(b"idle", b"x"), background=True, precedence=precedence)
        holder = self.connect(b"holder")
        hostile = self.connect(HOSTILE.encode())
        hostile.send(C.SUBMIT_JOB_BG, HOSTILE.encode() + b"\0\0x")
        hostile.expect(C.JOB_CREATED)
        hostile.send(C.SUBMIT_JOB_BG, b"slow\0\0x")
        hostile.expect(C.JOB_CREATED)
        holder.send(C.CAN_DO, b"slow")
        holder.send(C.GRAB_JOB_UNIQ)
        holder.expect(C.JOB_ASSIGN_UNIQ)

    def connect(self, client_id: bytes) -> RawGearman:
        conn = RawGearman(self.geard.port)
        conn.send(C.SET_CLIENT_ID, client_id)
        self.raw.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.raw:
            conn.close()
        self._geard.__exit__(None, None, None)


@pytest.fixture
def workload(tmp_path: Path, harness: Harness) -> Iterator[Workload]:
    w = Workload(tmp_path)
    try:
        w.start(harness)
        yield w
    finally:
        w.close()


def by_name(rows: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_api_status_reports_the_workload(workload: Workload) -> None:
    first = status(workload.http_port)
    assert first["version"] == __version__
    assert first["loop"] in ("asyncio", "uvloop") and first["healthy"] is True
    assert first["store"] == {"kind": "memory", "durable": False, "failing": False}
    assert first["cluster"] is None
    functions = by_name(first["functions"])
    assert set(functions) == {"resize", "idle", "slow", HOSTILE}
    assert functions["idle"]["queued"] == {"high": 1, "normal": 2, "low": 0}
    assert functions["idle"]["workers"] == 0
    assert functions["resize"]["workers"] == 1 and functions["resize"]["running"] == 0
    assert functions["slow"]["running"] == 1 and functions["slow"]["workers"] == 1
    assert functions[HOSTILE]["queued"]["normal"] == 1
    assert first["totals"] == {
        "jobs": 5,  # 3 idle, 1 hostile, 1 slow
        "running": 1,
        "connections": 4,  # the worker, the client, the holder, the hostile client
        "workers": 2,
        "functions": 4,
    }
    connections = by_name(first["connections"], "client_id")
    assert connections["resizer"]["role"] == "worker"
    assert connections["resizer"]["functions"] == ["resize"]
    assert connections["holder"]["running"] == 1
    assert connections[HOSTILE]["role"] == "client"
    assert first["connections"][0]["role"] == "worker"  # workers are listed first

    # The history is sampled once a second: the 20 finished jobs show up as a rate.
    def charted() -> bool:
        history = by_name(status(workload.http_port)["functions"])["resize"]["history"]
        return history is not None and max(history["finished_per_s"]) > 0

    wait_until(charted, timeout=15, interval=0.05, what="the finished jobs never reached the chart")
    history = by_name(status(workload.http_port)["functions"])["idle"]["history"]
    assert history["queued"][-1] == 3 and history["step_seconds"] == 10


def test_connections_are_paginated(workload: Workload) -> None:
    extra = [workload.connect(b"idle-%03d" % i) for i in range(250)]
    for conn in extra:
        conn.send(C.ECHO_REQ, b"x")
        conn.expect(C.ECHO_RES)
    page = status(workload.http_port)
    total = page["totals"]["connections"]
    assert total == 254 and len(page["connections"]) == page["connections_per_page"] == 100
    last = status(workload.http_port, "?cpage=3")
    assert len(last["connections"]) == total - 200 and last["connections_page"] == 3
    seen = {
        c["client_id"]
        for p in (1, 2, 3)
        for c in status(workload.http_port, "?cpage=%d" % p)["connections"]
    }
    assert {b"idle-%03d".decode() % i for i in range(250)} <= seen
    assert status(workload.http_port, "?cpage=junk")["connections_page"] == 1
    _, _, body = get(workload.http_port, "/api/status")
    assert len(body) < 64 * 1024  # 100 connections of 254, not all of them


def test_the_page_and_its_assets_are_served_read_only(workload: Workload) -> None:
    code, headers, body = get(workload.http_port, "/")
    assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert b'src="dashboard.js"' in body and b"http" not in body.split(b"<footer")[0]
    for path, kind in (("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
        code, headers, body = get(workload.http_port, path)
        assert code == 200 and headers["Content-Type"].startswith(kind) and body
    assert b"innerHTML" not in get(workload.http_port, "/dashboard.js")[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through chromedriver, with a fresh profile."""
    with chromium(1280, 900) as driver:
        yield driver


def test_the_page_in_chromium_shows_the_workload(workload: Workload, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get("http://%s:%d/" % (LOOPBACK, workload.http_port))
    wait = WebDriverWait(browser, 20)
    idle = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#functions tr[data-function="idle"]')
    )[0]
    assert idle.find_element(By.CSS_SELECTOR, "td.name").text == "idle"
    assert idle.find_element(By.CSS_SELECTOR, "td.queued").get_attribute("data-total") == "3"
    assert idle.find_element(By.CSS_SELECTOR, "td.queued").text == "3 (1 / 2 / 0)"
    names = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#functions td.name")]
    assert HOSTILE in names  # shown as text...
    assert browser.execute_script("return window.pwned === undefined")  # ...never run
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    workers = browser.find_elements(By.CSS_SELECTOR, '#connections tr[data-role="worker"]')
    assert "resizer" in [row.find_element(By.CSS_SELECTOR, "td.client-id").text for row in workers]
    assert browser.find_element(By.ID, "health").text == "ok"
    # It refreshes by itself: a job queued now appears without a reload.
    conn = workload.connect(b"late")
    conn.send(C.SUBMIT_JOB_BG, b"idle\0\0y")
    conn.expect(C.JOB_CREATED)
    wait.until(
        lambda d: (
            d.find_element(
                By.CSS_SELECTOR, '#functions tr[data-function="idle"] td.queued'
            ).get_attribute("data-total")
            == "4"
        )
    )
    # The charts have had a few samples by now; keep a picture for the docs' how-to.
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) >= 4)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_api_status_lists_the_postgresql_cluster_nodes(pg_url: str) -> None:
    """Two nodes on one real PostgreSQL: each node's page lists both, with leases."""
    nodes = []
    try:
        for name in ("alpha", "beta"):
            nodes.append(
                gear.Server(
                    0,
                    host=LOOPBACK,
                    queue_url=pg_url,
                    node_id=name,
                    node_lease=5,
                    metrics_port=free_port(),
                )
            )
        port = nodes[0].monitor.port  # type: ignore[union-attr]

        def both_listed() -> bool:
            cluster = status(port)["cluster"] or {}
            return {n["node"] for n in cluster.get("nodes", [])} == {"alpha", "beta"}

        wait_until(both_listed, timeout=15, interval=0.05, what="both nodes not on alpha's page")
        reply = status(port)
        assert reply["store"]["kind"] == "postgresql"
        rows = {n["node"]: n for n in reply["cluster"]["nodes"]}
        assert rows["alpha"]["this node"] is True and rows["beta"]["this node"] is False
        assert all(0 < n["lease left (s)"] <= 5 for n in rows.values())
    finally:
        for node in nodes:
            node.shutdown()
