"""Call jobs from asyncio and await their results: python async_client.py [HOST [PORT]]."""

import asyncio
import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730


async def main() -> None:
    # Entering the block connects; if no server is up within connect_timeout
    # (10 s), it raises gear.NoConnectedServersError saying why for each.
    async with gear.AsyncClient("async-client", servers=[(host, port)]) as client:
        # call() submits a job, waits for its end and returns the result
        # (bytes); a failed job raises gear.JobFailedError, a worker's
        # exception gear.JobExceptionError, and a timeout TimeoutError.
        result = await client.call("reverse", "Hello, asyncio!", timeout=30)
        print("result:", result.decode())

        # Many jobs in flight at once, on one connection.
        calls = [client.call("reverse", "job %d" % n, timeout=30) for n in range(5)]
        results = await asyncio.gather(*calls)
        print("results:", [r.decode() for r in results])

        # submit() returns the job itself, to follow its progress as it runs.
        job = await client.submit("reverse", "with updates")
        async for update in job:
            print("update:", update.kind, update.numerator, update.denominator)
        print("final:", (await job).decode())


try:
    asyncio.run(main())
except KeyboardInterrupt:  # Ctrl-C cancels main(); leaving "async with" disconnects
    sys.exit("interrupted")
