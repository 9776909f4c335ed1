"""Fixtures for the Client/Worker scenarios: clients and workers (``server`` is the root one).

Only public names of ``gear`` are used, so the scenarios can be re-run
against another face of the API by swapping these fixtures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import gear

#: Connect-thread back-off in tests (seconds); gear's default is 2 s.
RETRY = 0.05


class Harness:
    """Creates clients and workers against servers and cleans them up."""

    def __init__(self) -> None:
        self.objects: list[Any] = []
        self.threads: list[threading.Thread] = []

    def client(self, *servers: Any, client_id: str = "test-client", wait: bool = True) -> Any:
        client = gear.Client(client_id)
        client.reconnect_delay = RETRY
        self.objects.append(client)
        for srv in servers:
            client.addServer(srv.host, srv.port)
        if wait and servers:
            client.waitForServer(10)
        return client

    def worker(
        self,
        *servers: Any,
        functions: tuple[str, ...] = (),
        client_id: str = "test-worker",
        cls: type[Any] = gear.Worker,
        wait: bool = True,
    ) -> Any:
        worker = cls(client_id)
        worker.reconnect_delay = RETRY
        self.objects.append(worker)
        for name in functions:
            worker.registerFunction(name)
        for srv in servers:
            worker.addServer(srv.host, srv.port)
        if wait and servers:
            worker.waitForServer(10)
        return worker

    def serve(self, worker: Any, handler: Callable[[Any], None]) -> threading.Thread:
        """Run ``handler(job)`` for every job until the worker shuts down."""

        def loop() -> None:
            while True:
                try:
                    job = worker.getJob()
                except gear.InterruptedError:
                    if not worker.running:
                        return
                    continue
                try:
                    handler(job)
                except OSError:
                    continue  # the job's server went away (failover tests)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def close(self) -> None:
        for obj in reversed(self.objects):
            obj.shutdown()
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def reverse(job: Any) -> None:
    job.sendWorkComplete(job.arguments[::-1])
