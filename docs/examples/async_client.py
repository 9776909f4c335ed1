"""Submit jobs and await their results: python async_client.py [HOST [PORT]]."""

import asyncio
import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730


async def main() -> None:
    async with gear.AsyncClient("async-client") as client:
        client.add_server(host, port)
        await client.wait_for_server(timeout=10)

        # One job: submit() returns once the server has queued it, and
        # awaiting the job gives its result (bytes).
        job = await client.submit("reverse", "Hello, asyncio!")
        print("result:", (await job.result(timeout=30)).decode())

        # Many jobs in flight at once, on one connection.
        jobs = [await client.submit("reverse", "job %d" % n) for n in range(5)]
        results = await asyncio.gather(*(job.result(timeout=30) for job in jobs))
        print("results:", [r.decode() for r in results])

        # Progress updates can be followed while the job runs.
        job = await client.submit("reverse", "with updates")
        async for update in job:
            print("update:", update.kind, update.numerator, update.denominator)
        print("final:", (await job).decode())


try:
    asyncio.run(main())
except KeyboardInterrupt:  # Ctrl-C cancels main(); leaving "async with" disconnects
    sys.exit("interrupted")
