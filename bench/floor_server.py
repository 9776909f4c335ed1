"""The least a Python Gearman server can do: a floor to measure geard against.

Run on demand by ``bench_server.py --servers floor`` (or ``floor-uvloop``),
never by the test suite and never as a real server. It answers exactly the
packets the benchmark's load generator sends (CAN_DO, SUBMIT_JOB and
SUBMIT_JOB_BG, GRAB_JOB_UNIQ, PRE_SLEEP, WORK_COMPLETE, GET_STATUS) with one
FIFO queue per function, writes each reply the moment it is known and checks
nothing: no limits, priorities, unique ids, ACLs, timeouts or requeueing.
Whatever latency or rate it cannot beat on a machine is the cost of the
Python interpreter and its event loop there, not of geard's design.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import struct
from collections import deque
from typing import cast

CAN_DO = 1
PRE_SLEEP = 4
NOOP = 6
SUBMIT_JOB = 7
JOB_CREATED = 8
NO_JOB = 10
WORK_COMPLETE = 13
GET_STATUS = 15
SUBMIT_JOB_BG = 18
STATUS_RES = 20
GRAB_JOB_UNIQ = 30
JOB_ASSIGN_UNIQ = 31

HEADER = struct.Struct("!4sII")


def res(ptype: int, data: bytes = b"") -> bytes:
    return HEADER.pack(b"\0RES", ptype, len(data)) + data


class Function:
    __slots__ = ("jobs", "sleepers")

    def __init__(self) -> None:
        self.jobs: deque[tuple[bytes, bytes]] = deque()  # (handle, JOB_ASSIGN_UNIQ payload)
        self.sleepers: dict[Peer, None] = {}


class Floor:
    def __init__(self) -> None:
        self.functions: dict[bytes, Function] = {}
        self.clients: dict[bytes, Peer] = {}
        self.handles = 0

    def function(self, name: bytes) -> Function:
        fn = self.functions.get(name)
        if fn is None:
            fn = self.functions[name] = Function()
        return fn


class Peer(asyncio.Protocol):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.buffer = b""
        self.abilities: list[Function] = []
        self.write = lambda data: None  # replaced in connection_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.write = cast(asyncio.Transport, transport).write

    def connection_lost(self, exc: Exception | None) -> None:
        for fn in self.abilities:
            fn.sleepers.pop(self, None)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos, end = 0, len(buf)
        while end - pos >= 12:
            _, ptype, size = HEADER.unpack_from(buf, pos)
            if end - pos - 12 < size:
                break
            self.packet(ptype, buf[pos + 12 : pos + 12 + size])
            pos += 12 + size
        self.buffer = buf[pos:]

    def packet(self, ptype: int, payload: bytes) -> None:
        floor = self.floor
        if ptype == GRAB_JOB_UNIQ:
            for fn in self.abilities:
                if fn.jobs:
                    self.write(res(JOB_ASSIGN_UNIQ, fn.jobs.popleft()[1]))
                    return
            self.write(res(NO_JOB))
        elif ptype == WORK_COMPLETE:
            handle = payload[: payload.index(b"\0")]
            client = floor.clients.pop(handle, None)
            if client is not None:
                client.write(res(WORK_COMPLETE, payload))
        elif ptype == SUBMIT_JOB or ptype == SUBMIT_JOB_BG:
            name, unique, arguments = payload.split(b"\0", 2)
            floor.handles += 1
            handle = b"H:floor:%d" % floor.handles
            fn = floor.function(name)
            fn.jobs.append((handle, b"\0".join((handle, name, unique, arguments))))
            if ptype == SUBMIT_JOB:
                floor.clients[handle] = self
            self.write(res(JOB_CREATED, handle))
            if fn.sleepers:
                sleeper = next(iter(fn.sleepers))
                for other in sleeper.abilities:
                    other.sleepers.pop(sleeper, None)
                sleeper.write(res(NOOP))
        elif ptype == PRE_SLEEP:
            if any(fn.jobs for fn in self.abilities):
                self.write(res(NOOP))
            else:
                for fn in self.abilities:
                    fn.sleepers[self] = None
        elif ptype == CAN_DO:
            self.abilities.append(floor.function(payload))
        elif ptype == GET_STATUS:
            self.write(res(STATUS_RES, payload + b"\x000\x000\x000\x000"))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    floor = Floor()
    server = await loop.create_server(lambda: Peer(floor), host, port, backlog=8192)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
