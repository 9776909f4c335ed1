"""gear 0.16.0 from PyPI over TLS, through our geard (client certificates required).

0.16 peers run in their own venv (``gear016`` fixture) and pass key, cert and
CA to ``addServer``; 0.16 only speaks TLS 1.2 (gear-api.md §a.1, §f.10) while
our Client/Worker negotiate TLS 1.3 with the same server. Every peer presents
a certificate from the ``certs`` CA; its Common Name is its ACL subject.

With an ACL (gear-api.md §e) a 0.16 client whose CN may ``invoke`` gets its job
run; one that may not is answered ERROR, which 0.16's ``handleError`` turns
into a completed task with no handle, so ``submitJob`` (its only server tried)
raises ``GearmanError("Unable to submit job to any connected servers")``
(§a.7, §f.3). The connection stays up and usable for permitted jobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import gear
from fixtures.certs import Certs
from fixtures.gear016 import WORKER
from fixtures.geard import Geard
from fixtures.peers import Harness, reaped, serve
from fixtures.tls import geard_tls
from gear.acl import ACL, ACLEntry

pytestmark = pytest.mark.interop

T = 15


def tls_args(certs: Certs, cn: str) -> list[str]:
    """argv for the 0.16 scripts below: key, cert, CA."""
    files = certs.pair(cn)
    return [files.key, files.cert, certs.ca]


@pytest.fixture
def tls_geard(geard_factory: Callable[..., Geard], certs: Certs) -> Geard:
    return geard_factory(**geard_tls(certs))


def make_acl() -> ACL:
    acl = ACL()
    acl.add(ACLEntry("ours-worker", register="acl-.*"))
    acl.add(ACLEntry("w016", register="acl-.*"))
    acl.add(ACLEntry("c016-allowed", invoke="acl-.*"))
    acl.add(ACLEntry("c016-limited", invoke="acl-public$"))
    acl.add(ACLEntry("ours-client", invoke="acl-.*"))
    return acl


@pytest.fixture
def acl_geard(geard_factory: Callable[..., Geard], certs: Certs) -> Geard:
    return geard_factory(**geard_tls(certs), acl=make_acl())


@pytest.fixture
def ours(certs: Certs, harness: Harness) -> Callable[..., Any]:
    """Make our TLS Client or Worker (class, CN, geard); shut down at teardown."""

    def make(cls: type, cn: str, geard: Geard) -> Any:
        files = certs.pair(cn)
        tls = {"ssl_key": files.key, "ssl_cert": files.cert, "ssl_ca": certs.ca}
        return harness.connect(cls, geard, client_id=cn, timeout=T, **tls)

    return make


def tls_version(peer: Any) -> str | None:
    """Our peer's negotiated TLS version. Call it only once a job has round-
    tripped: while the poll thread is reading TLS 1.3 post-handshake messages
    (session tickets) OpenSSL briefly reports the handshake as unfinished."""
    return peer.active_connections[0].conn.version()


def ready(proc: Any) -> str:
    """The first line a 0.16 worker prints (its TLS version) once connected."""
    assert proc.stdout is not None
    line = str(proc.stdout.readline()).strip()
    if not line:
        proc.wait(T)
        pytest.fail("gear 0.16 worker exited (%s):\n%s" % (proc.returncode, proc.stderr.read()))
    return line


def stop(proc: Any) -> str:
    """Wait for a 0.16 script; return its stderr. Kill it if it overruns."""
    try:
        _out, err = proc.communicate(timeout=T)
    except Exception:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    return str(err)


# A 0.16 TLS client: argv port key cert ca, then function:argument pairs.
# Submits each (foreground), records GearmanError instead of a handle, polls
# for completion and prints one JSON document with the results, its TLS
# version and the ERROR packets its handleError logged.
GEAR016_CLIENT = """
import json, logging, sys, time, gear

errors = []
class Catch(logging.Handler):
    def emit(self, record):
        if 'ERROR packet' in record.getMessage():
            errors.append(record.getMessage())
logging.getLogger('gear').addHandler(Catch())
logging.getLogger('gear').setLevel(logging.ERROR)

port, key, cert, ca = sys.argv[1:5]
c = gear.Client('c016')
c.addServer('127.0.0.1', int(port), key, cert, ca)
c.waitForServer(15)
version = c.active_connections[0].conn.version()
results, jobs = [], []
for spec in sys.argv[5:]:
    name, arg = spec.split(':', 1)
    job = gear.Job(name, arg.encode())
    try:
        c.submitJob(job, timeout=15)
    except gear.GearmanError as e:
        results.append({'error': type(e).__name__ + ': ' + str(e),
                        'handle': job.handle})
        continue
    results.append(None)
    jobs.append((len(results) - 1, job))
deadline = time.time() + 15
while not all(j.complete for _, j in jobs) and time.time() < deadline:
    time.sleep(0.01)
for i, job in jobs:
    results[i] = {'complete': job.complete, 'failure': job.failure,
                  'data': [d.decode() for d in job.data]}
print(json.dumps({'version': version, 'results': results, 'errors': errors,
                  'connected': len(c.active_connections)}))
c.shutdown()
"""


def test_gear016_tls_worker_serves_our_tls_client(
    tls_geard: Geard, certs: Certs, gear016: Any, ours: Callable[..., Any]
) -> None:
    proc = gear016.start(WORKER, str(tls_geard.port), "3", "rev016", *tls_args(certs, "w016"))
    with reaped(proc):
        assert ready(proc) == "TLSv1.2"
        client = ours(gear.Client, "ours-client", tls_geard)
        for arg in (b"abc", b"x" * 100000):
            job = gear.Job("rev016", arg)
            client.submitJob(job, timeout=T)
            assert job.wait(T)
            assert not job.failure
            assert job.data == [b"chunk", arg[::-1]]
            assert job.fraction_complete == 0.5
        # Each peer's identity is its certificate CN (checked once the server
        # has certainly accepted both: TLS 1.3 clients finish first).
        assert {"w016", "ours-client"} <= tls_geard.ssl_subjects()
        assert tls_version(client) == "TLSv1.3"
        job = gear.Job("rev016", b"fail")
        client.submitJob(job, timeout=T)
        assert job.wait(T) and job.failure
        stop(proc)


def test_gear016_tls_client_submits_to_our_tls_worker(
    tls_geard: Geard, certs: Certs, gear016: Any, ours: Callable[..., Any]
) -> None:
    seen: list[bytes] = []

    def handler(job: Any) -> None:
        seen.append(job.arguments)
        job.sendWorkData(b"data-" + job.arguments)
        job.sendWorkComplete(job.arguments.upper())

    worker = ours(gear.Worker, "ours-worker", tls_geard)
    worker.registerFunction("ours")
    thread = serve(worker, 3, handler)
    args = ["ours:one", "ours:two", "ours:" + "z" * 50000]
    out = gear016.run(GEAR016_CLIENT, str(tls_geard.port), *tls_args(certs, "c016"), *args)
    thread.join(T)
    assert not thread.is_alive()
    report = json.loads(out.stdout)
    assert report["version"] == "TLSv1.2"
    assert report["errors"] == []
    assert report["results"] == [
        {"complete": True, "failure": False, "data": ["data-one", "ONE"]},
        {"complete": True, "failure": False, "data": ["data-two", "TWO"]},
        {"complete": True, "failure": False, "data": ["data-" + "z" * 50000, "Z" * 50000]},
    ]
    assert sorted(seen) == [b"one", b"two", b"z" * 50000]
    assert tls_version(worker) == "TLSv1.3"


def test_gear016_tls_client_and_worker_through_our_geard(
    tls_geard: Geard, certs: Certs, gear016: Any
) -> None:
    proc = gear016.start(WORKER, str(tls_geard.port), "2", "rev016", *tls_args(certs, "w016"))
    with reaped(proc):
        assert ready(proc) == "TLSv1.2"
        out = gear016.run(
            GEAR016_CLIENT,
            str(tls_geard.port),
            *tls_args(certs, "c016"),
            "rev016:hello",
            "rev016:fail",
        )
        report = json.loads(out.stdout)
        assert report["version"] == "TLSv1.2"
        assert report["results"] == [
            {"complete": True, "failure": False, "data": ["chunk", "olleh"]},
            {"complete": True, "failure": True, "data": ["chunk"]},
        ]
        stop(proc)


# A 0.16 TLS client with a certificate the server must refuse: it never gets
# an active connection, so waitForServer times out.
GEAR016_REFUSED = """
import sys, gear
port, key, cert, ca = sys.argv[1:5]
c = gear.Client('c016')
c.addServer('127.0.0.1', int(port), key, cert, ca)
try:
    c.waitForServer(2)
    print('connected')
except gear.TimeoutError:
    print('refused')
c.shutdown()
"""


def test_gear016_certificate_from_another_ca_is_refused(
    tls_geard: Geard, certs: Certs, other_ca_certs: Certs, gear016: Any
) -> None:
    # The client trusts our CA (so it would accept the server) but presents a
    # certificate our server cannot verify.
    foreign = other_ca_certs.client
    out = gear016.run(GEAR016_REFUSED, str(tls_geard.port), foreign.key, foreign.cert, certs.ca)
    assert out.stdout.strip() == "refused"
    assert "client" not in tls_geard.ssl_subjects()


def test_gear016_acl_invoke_allowed(
    acl_geard: Geard, certs: Certs, gear016: Any, ours: Callable[..., Any]
) -> None:
    worker = ours(gear.Worker, "ours-worker", acl_geard)
    worker.registerFunction("acl-echo")
    thread = serve(worker, 1, lambda job: job.sendWorkComplete(b"echo:" + job.arguments))
    out = gear016.run(
        GEAR016_CLIENT, str(acl_geard.port), *tls_args(certs, "c016-allowed"), "acl-echo:hi"
    )
    thread.join(T)
    report = json.loads(out.stdout)
    assert report["errors"] == []
    assert report["results"] == [{"complete": True, "failure": False, "data": ["echo:hi"]}]


def test_gear016_acl_invoke_denied(
    acl_geard: Geard, certs: Certs, gear016: Any, ours: Callable[..., Any]
) -> None:
    worker = ours(gear.Worker, "ours-worker", acl_geard)
    worker.registerFunction("acl-secret")
    worker.registerFunction("acl-public")
    served: list[bytes] = []

    def handler(job: Any) -> None:
        served.append(job.arguments)
        job.sendWorkComplete(job.arguments.upper())

    thread = serve(worker, 1, handler)
    out = gear016.run(
        GEAR016_CLIENT,
        str(acl_geard.port),
        *tls_args(certs, "c016-limited"),
        "acl-secret:nope",
        "acl-public:yes",
    )
    thread.join(T)
    report = json.loads(out.stdout)
    # The ERROR completes 0.16's pending task without a handle; with no other
    # server to try, submitJob gives up at once.
    assert report["results"] == [
        {
            "error": "GearmanError: Unable to submit job to any connected servers",
            "handle": None,
        },
        {"complete": True, "failure": False, "data": ["YES"]},
    ]
    assert len(report["errors"]) == 1
    assert "Permission denied by ACL: invoke acl-secret" in report["errors"][0]
    # The connection survived the denial (the permitted job ran on it).
    assert report["connected"] == 1
    assert served == [b"yes"]
    # Nothing was queued for the denied function (the permitted job is done).
    assert acl_geard.server.jobs == {}


def test_our_tls_client_with_gear016_worker_under_acl(
    acl_geard: Geard, certs: Certs, gear016: Any, ours: Callable[..., Any]
) -> None:
    proc = gear016.start(WORKER, str(acl_geard.port), "1", "acl-rev", *tls_args(certs, "w016"))
    with reaped(proc):
        assert ready(proc) == "TLSv1.2"
        client = ours(gear.Client, "ours-client", acl_geard)
        job = gear.Job("acl-rev", b"stressed")
        client.submitJob(job, timeout=T)
        assert job.wait(T)
        assert (job.failure, job.data) == (False, [b"chunk", b"desserts"])
        stop(proc)
