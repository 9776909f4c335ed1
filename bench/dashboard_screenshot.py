"""Take the dashboard screenshot of docs/howto/monitoring.rst from a live workload.

Run on demand (not by the test suite)::

    hatch run python bench/dashboard_screenshot.py [--seconds 150] [--out docs/howto/dashboard.png]

It starts ``geard --metrics-port`` on 127.0.0.1, connects workers for three
functions with raw asyncio peers, submits jobs at rates that rise and fall,
leaves one function without workers so its queue grows, and after
``--seconds`` opens the page in Debian's headless Chromium and saves it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path

from _support import HOST, REPO, free_port, wait_port
from bench_server import GRAB, Peer, connect, pkt, worker_handler

from gear import constants as C

#: function -> (workers, submits a second at the peak, packet type)
FUNCTIONS = {
    b"resize": (6, 120, C.SUBMIT_JOB),
    b"thumbnail": (3, 60, C.SUBMIT_JOB_BG),
    b"email.send": (0, 4, C.SUBMIT_JOB_BG),
    b"reindex": (1, 0, C.SUBMIT_JOB_LOW_BG),
}


def ignore(peer: Peer, ptype: int, data: bytes) -> None:
    pass


async def workload(port: int, seconds: float) -> None:
    for function, (workers, _, _) in FUNCTIONS.items():
        for index in range(workers):
            peer = await connect(port, worker_handler(b"ok"))
            peer.write(pkt(C.SET_CLIENT_ID, b"%s-worker-%d" % (function, index + 1)))
            peer.write(pkt(C.CAN_DO, function) + GRAB)
    client = await connect(port, ignore)
    client.write(pkt(C.SET_CLIENT_ID, b"web-frontend"))
    batch = await connect(port, ignore)
    batch.write(pkt(C.SET_CLIENT_ID, b"nightly-batch"))
    for priority in (C.SUBMIT_JOB_HIGH_BG, C.SUBMIT_JOB_BG, C.SUBMIT_JOB_LOW_BG):
        for _ in range(40):
            batch.write(pkt(priority, b"email.send\0\0x"))
    started = time.monotonic()
    owed = dict.fromkeys(FUNCTIONS, 0.0)
    while time.monotonic() - started < seconds:
        elapsed = time.monotonic() - started
        wave = 0.6 + 0.4 * math.sin(elapsed / 20)
        for function, (_, peak, ptype) in FUNCTIONS.items():
            owed[function] += peak * wave * 0.1
            count = int(owed[function])
            owed[function] -= count
            if count:
                client.write(pkt(ptype, function + b"\0\0" + b"x" * 64) * count)
        await asyncio.sleep(0.1)


def screenshot(url: str, out: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.browser import chromium  # the test suite's launch flags

    with chromium(1280, 760, extra=("--hide-scrollbars",)) as driver:
        driver.get(url)
        WebDriverWait(driver, 20).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) >= 6
        )
        time.sleep(2.5)  # one more refresh, so the rates are not the first ones
        driver.save_screenshot(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "howto" / "dashboard.png")
    args = parser.parse_args()
    port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "gear.cmd.geard", "-d", "-p", str(port)]
    argv += ["--listen-address", HOST, "--metrics-port", str(http_port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)

        async def run() -> None:
            load = asyncio.ensure_future(workload(port, args.seconds + 15))
            await asyncio.sleep(args.seconds)
            await asyncio.get_running_loop().run_in_executor(
                None, screenshot, "http://%s:%d/" % (HOST, http_port), args.out
            )
            load.cancel()

        asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(10)
    print("saved", args.out)


if __name__ == "__main__":
    main()
