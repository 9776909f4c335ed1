"""An asyncio worker that reverses strings: python async_worker.py [HOST [PORT]]."""

import asyncio
import sys

import gear
from gear.worker import AsyncWorkerJob

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730


async def reverse(job: AsyncWorkerJob) -> bytes:
    job.send_status(1, 2)  # optional progress report
    await asyncio.sleep(0.1)  # stands for real asynchronous work
    return job.arguments[::-1]  # the return value is the job's result


async def main() -> None:
    async with gear.AsyncWorker("async-reverser", servers=[(host, port)]) as worker:
        print("worker ready", flush=True)
        # Run up to 10 jobs at once until worker.stop() is called. If this is
        # cancelled (Ctrl-C), running jobs go back to the server for another
        # worker instead of failing.
        await worker.serve({"reverse": reverse}, concurrency=10)


try:
    asyncio.run(main())
except KeyboardInterrupt:  # Ctrl-C cancels main(); leaving "async with" disconnects
    print("worker stopped", flush=True)
