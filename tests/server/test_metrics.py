"""``geard --metrics-port``: /metrics and /healthz over real HTTP, with real peers.

Each test runs the ``geard`` program, drives it with our threaded client
and worker (and raw sockets where a peer must misbehave or hold a job),
scrapes over HTTP and parses the answer with prometheus_client's own
parser, so the exposition is checked as Prometheus would read it.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

import gear
from fixtures.geard import RawGearman
from fixtures.geard_process import running_geard
from fixtures.http_get import get
from fixtures.peers import Harness
from fixtures.servers import LOOPBACK, free_port
from fixtures.waiting import wait_until
from gear import constants as C
from gear.server._version import __version__

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Address:
    port: int
    host: str = LOOPBACK


def scrape(port: int) -> Samples:
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def handle(job: Any) -> None:
    if job.arguments == b"fail":
        job.sendWorkFail()
    elif job.arguments == b"boom":
        job.sendWorkException(b"it broke")
    else:
        job.sendWorkComplete(job.arguments[::-1])


def test_a_workload_scraped_over_http_has_exact_values(tmp_path: Path, harness: Harness) -> None:
    metrics_port = free_port()
    with running_geard(tmp_path, "--metrics-port", str(metrics_port)) as geard:
        server = Address(geard.port)
        worker = harness.worker(server, client_id="resizer", functions=("resize",))
        harness.serve(worker, handle)
        client = harness.client(server)
        jobs = [gear.Job(b"resize", arguments) for arguments in (b"a", b"b", b"fail", b"boom")]
        for job in jobs:
            client.submitJob(job)
        for job in jobs:
            assert job.wait(10)
        for precedence in (C.PRECEDENCE_HIGH, C.PRECEDENCE_NORMAL, C.PRECEDENCE_NORMAL):
            client.submitJob(gear.Job(b"idle", b"x"), background=True, precedence=precedence)
        with RawGearman(geard.port) as holder, RawGearman(geard.port) as raw:
            raw.send(C.SUBMIT_JOB_EPOCH, b"later\0\0%d\0x" % (time.time() + 3600))
            raw.expect(C.JOB_CREATED)
            raw.send(C.SUBMIT_JOB_BG, b"slow\0\0x")
            raw.expect(C.JOB_CREATED)
            holder.send(C.CAN_DO, b"slow")
            holder.send(C.GRAB_JOB_UNIQ)
            holder.expect(C.JOB_ASSIGN_UNIQ)

            samples = scrape(metrics_port)

        submitted, finished = "geard_jobs_submitted_total", "geard_jobs_finished_total"
        assert value(samples, submitted, function="resize", kind="foreground") == 4
        assert value(samples, submitted, function="resize", kind="background") == 0
        assert value(samples, submitted, function="idle", kind="background") == 3
        assert value(samples, submitted, function="later", kind="scheduled") == 1
        assert value(samples, submitted, function="slow", kind="background") == 1
        assert value(samples, finished, function="resize", outcome="complete") == 2
        assert value(samples, finished, function="resize", outcome="fail") == 1
        assert value(samples, finished, function="resize", outcome="exception") == 1
        assert value(samples, finished, function="slow", outcome="complete") == 0
        count = value(samples, "geard_job_duration_seconds_count", function="resize")
        assert count == 4
        assert value(samples, "geard_job_duration_seconds_bucket", function="resize", le="+Inf")
        assert 0 < value(samples, "geard_job_duration_seconds_sum", function="resize") < 10
        assert value(samples, "geard_jobs_queued", function="idle") == 3
        assert value(samples, "geard_jobs_queued", function="later") == 0  # scheduled
        assert value(samples, "geard_jobs_queued", function="slow") == 0
        assert value(samples, "geard_jobs_running", function="slow") == 1
        assert value(samples, "geard_jobs_running", function="resize") == 0
        assert value(samples, "geard_workers", function="resize") == 1
        assert value(samples, "geard_workers", function="slow") == 1
        assert value(samples, "geard_workers", function="idle") == 0
        assert value(samples, "geard_connections") == 4  # client, worker, holder, raw
        build = [key for key in samples if key[0] == "geard_build_info"]
        assert len(build) == 1 and samples[build[0]] == 1
        labels = dict(build[0][1])
        assert labels["version"] == __version__
        assert labels["loop"] in ("asyncio", "uvloop") and labels["compiled"] in ("true", "false")
        assert not [key for key in samples if key[0].startswith("geard_store_commit")]

        # The holder went away: its job is queued again, and no worker can run it.
        wait_until(
            lambda: value(scrape(metrics_port), "geard_jobs_queued", function="slow") == 1,
            interval=0.02,
            what="the held job was not requeued",
        )
        assert value(scrape(metrics_port), "geard_workers", function="slow") == 0


def test_more_functions_than_the_limit_count_as_other(tmp_path: Path) -> None:
    metrics_port = free_port()
    args = ("--metrics-port", str(metrics_port), "--metrics-max-functions", "3")
    with running_geard(tmp_path, *args) as geard, RawGearman(geard.port) as raw:
        for name in (b"f0", b"f1", b"f2", b"f3", b"f4", b"f4", b"f5"):
            raw.send(C.SUBMIT_JOB_BG, name + b"\0\0x")
            raw.expect(C.JOB_CREATED)
        samples = scrape(metrics_port)
    queued = {
        dict(labels)["function"]: v
        for (name, labels), v in samples.items()
        if name == "geard_jobs_queued"
    }
    assert queued == {"f0": 1, "f1": 1, "f2": 1, "__other__": 4}
    submitted = {
        dict(labels)["function"]
        for (name, labels), _ in samples.items()
        if name == "geard_jobs_submitted_total"
    }
    assert submitted == {"f0", "f1", "f2", "__other__"}
    assert (
        value(samples, "geard_jobs_submitted_total", function="__other__", kind="background") == 4
    )


def test_store_commits_are_timed_with_a_queue_file(tmp_path: Path) -> None:
    metrics_port = free_port()
    args = ("--metrics-port", str(metrics_port), "--queue-file", str(tmp_path / "q.db"))
    with running_geard(tmp_path, *args) as geard, RawGearman(geard.port) as raw:
        for _ in range(3):
            raw.send(C.SUBMIT_JOB_BG, b"durable\0\0x")
            raw.expect(C.JOB_CREATED)
        samples = scrape(metrics_port)
    commits = value(samples, "geard_store_commit_seconds_count")
    assert 1 <= commits <= 3  # one commit per loop turn: the three may share one
    assert value(samples, "geard_store_commit_seconds_bucket", le="+Inf") == commits
    assert value(samples, "geard_jobs_queued", function="durable") == 3


def test_healthz_is_200_while_serving_and_503_during_a_graceful_shutdown(
    tmp_path: Path,
) -> None:
    metrics_port = free_port()
    with running_geard(tmp_path, "--metrics-port", str(metrics_port)) as geard:
        status, _, body = get(metrics_port, "/healthz")
        assert (status, body) == (200, b"ok\n")
        with RawGearman(geard.port) as client, RawGearman(geard.port) as worker:
            client.send(C.SUBMIT_JOB_BG, b"long\0\0x")
            client.expect(C.JOB_CREATED)
            worker.send(C.CAN_DO, b"long")
            worker.send(C.GRAB_JOB_UNIQ)
            handle = worker.expect(C.JOB_ASSIGN_UNIQ).split(b"\0")[0]
            geard.proc.send_signal(signal.SIGTERM)
            wait_until(
                lambda: get(metrics_port, "/healthz")[0] == 503,
                interval=0.02,
                what="/healthz never said 503",
            )
            status, _, body = get(metrics_port, "/healthz")
            assert (status, body) == (503, b"shutting down\n")
            # /metrics still answers while running jobs finish.
            assert value(scrape(metrics_port), "geard_jobs_running", function="long") == 1
            worker.send(C.WORK_COMPLETE, handle + b"\0")
            assert geard.proc.wait(10) == 0
    with socket.socket() as probe:  # the HTTP listener went with the server
        assert probe.connect_ex((LOOPBACK, metrics_port)) != 0


def test_only_get_and_bounded_requests(tmp_path: Path) -> None:
    metrics_port = free_port()
    with running_geard(tmp_path, "--metrics-port", str(metrics_port)) as geard:
        assert get(metrics_port, "/metrics", "POST")[0] == 405
        assert get(metrics_port, "/metrics", "DELETE")[1]["Allow"] == "GET, HEAD"
        status, headers, body = get(metrics_port, "/healthz", "HEAD")
        assert (status, headers["Content-Length"], body) == (200, "3", b"")
        assert get(metrics_port, "/nope")[0] == 404
        with socket.create_connection((LOOPBACK, metrics_port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000)
            reply = sock.recv(100)
            assert reply.startswith(b"HTTP/1.1 431 "), reply
        with socket.create_connection((LOOPBACK, metrics_port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01garbage\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        with socket.create_connection((LOOPBACK, metrics_port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/2.0\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 505 ")
        # DNS rebinding: a page elsewhere that names this address cannot read it.
        for host, answer in (
            (b"evil.example:80", b"403"),
            (b"localhost:%d" % metrics_port, b"200"),
        ):
            with socket.create_connection((LOOPBACK, metrics_port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 " + answer + b" ")
        # The Gearman side never noticed.
        with RawGearman(geard.port) as raw:
            raw.send(C.ECHO_REQ, b"still here")
            assert raw.expect(C.ECHO_RES) == b"still here"


def test_metrics_port_without_prometheus_client_is_one_line_on_stderr(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "prometheus_client"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed here')\n")
    port = free_port()
    code = (
        "import sys; sys.path.insert(0, %r); from gear.cmd.geard import main; sys.exit(main())"
        % str(blocker.parent)
    )
    argv = [sys.executable, "-c", code, "-d", "-p", str(port), "--listen-address", LOOPBACK]
    out = subprocess.run(
        [*argv, "--metrics-port", str(free_port())], capture_output=True, timeout=30
    )
    assert out.returncode == 2
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "--metrics-port" in lines[0] and "gear-server[metrics]" in lines[0]


def test_the_docs_examples_use_only_metrics_geard_serves(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "docs" / "examples"
    dashboard = json.loads((examples / "grafana-geard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    text = "\n".join([*exprs, (examples / "geard-alerts.yml").read_text()])
    used = set(re.findall(r"\bgeard_[a-z_]+", text))
    assert {"geard_jobs_queued", "geard_workers", "geard_job_duration_seconds_bucket"} <= used
    metrics_port = free_port()
    args = ("--metrics-port", str(metrics_port), "--queue-file", str(tmp_path / "q.db"))
    with running_geard(tmp_path, *args) as geard, RawGearman(geard.port) as raw:
        raw.send(C.SUBMIT_JOB_BG, b"f\0\0x")
        raw.expect(C.JOB_CREATED)
        served = {name for name, _ in scrape(metrics_port)}
    assert used <= served, used - served
