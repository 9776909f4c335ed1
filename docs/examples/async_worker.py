"""An asyncio worker that reverses strings: python async_worker.py [HOST [PORT]]."""

import asyncio
import sys

import gear
from gear.worker import current_job

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

# Payloads are JSON: handlers get decoded arguments and return plain objects.
codec = gear.JSONCodec()
worker = gear.AsyncWorker("async-reverser", servers=[(host, port)], codec=codec)


@worker.function("reverse", timeout=30)
async def reverse(text: str) -> str:
    current_job().send_status(1, 2)  # optional progress report
    await asyncio.sleep(0.1)  # stands for real asynchronous work
    return text[::-1]  # the return value is the job's result


async def main() -> None:
    async with worker:
        print("worker ready", flush=True)
        # Run up to 10 jobs at once. Ctrl-C or SIGTERM stops taking jobs and
        # lets running ones finish (30 s at most; the rest go back to the
        # server for another worker); a second Ctrl-C stops at once.
        await worker.run(concurrency=10)


try:
    asyncio.run(main())  # returns once run() has drained
except KeyboardInterrupt:  # Ctrl-C came before run() took over the signal
    pass
print("worker stopped", flush=True)
