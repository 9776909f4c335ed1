"""gear 0.16.0's own Client and Worker (from PyPI) against our geard."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.geard import Geard

pytestmark = pytest.mark.interop

JOB_ROUND_TRIP = r"""
import sys, threading, time
import gear

port = int(sys.argv[1])
worker = gear.Worker("w016")
worker.addServer("127.0.0.1", port)
worker.registerFunction("rev")
client = gear.Client("c016")
client.addServer("127.0.0.1", port)
client.waitForServer(10)
worker.waitForServer(10)

def work():
    for _ in range(3):
        job = worker.getJob()
        if job.arguments == b"fail":
            job.sendWorkFail()
        else:
            job.sendWorkData(b"partial")
            job.sendWorkComplete(job.arguments[::-1])

thread = threading.Thread(target=work, daemon=True)
thread.start()
jobs = [gear.Job("rev", b"hello"), gear.Job("rev", b"fail"), gear.Job("rev", b"bg")]
for job in jobs[:2]:
    client.submitJob(job)
client.submitJob(jobs[2], background=True)
deadline = time.monotonic() + 20
while not (jobs[0].complete and jobs[1].complete) and time.monotonic() < deadline:
    time.sleep(0.01)
thread.join(20)
print(jobs[0].data, jobs[0].failure, jobs[1].failure, jobs[2].handle is not None)

connection = client.active_connections[0]
for request in (gear.StatusAdminRequest(), gear.VersionAdminRequest(),
                gear.ShowJobsAdminRequest(), gear.WorkersAdminRequest()):
    connection.sendAdminRequest(request, timeout=10)
    print(type(request).__name__, request.response.count(b"\n"))
client.shutdown()
worker.shutdown()
"""


def test_gear016_client_and_worker(geard: Geard, gear016: Any) -> None:
    out = gear016.run(JOB_ROUND_TRIP, str(geard.port), timeout=90).stdout.splitlines()
    assert out[0] == "[b'partial', b'olleh'] False True True"
    assert out[1] == "StatusAdminRequest 2"
    assert out[2] == "VersionAdminRequest 1"
    assert out[3].startswith("ShowJobsAdminRequest ")
    assert out[4].startswith("WorkersAdminRequest ")
