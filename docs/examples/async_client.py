"""Call jobs from asyncio: python async_client.py [HOST [PORT]]."""

import asyncio
import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730
codec = gear.JSONCodec()


async def main() -> None:
    # Entering the block connects; if no server is up within connect_timeout
    # (10 s), it raises gear.NoConnectedServersError saying why for each.
    client = gear.AsyncClient("async-client", servers=[(host, port)], codec=codec)
    async with client:
        # call() encodes the arguments, waits for the job's end and returns the
        # decoded result (returns=str checks its type). A failed job raises
        # gear.JobFailedError, a worker's exception gear.RemoteError, and
        # call(..., timeout=30) a TimeoutError after 30 s.
        result = await client.call("reverse", "Hello, asyncio!", returns=str)
        print("result:", result)

        # Many jobs in flight at once, on one connection.
        texts = ["job %d" % n for n in range(5)]
        calls = [client.call("reverse", text, returns=str) for text in texts]
        results = await asyncio.gather(*calls)
        print("results:", results)

        # submit() returns the job itself, to follow its progress as it runs.
        # Its payloads are bytes: here, JSON text.
        job = await client.submit("reverse", codec.encode("with updates"))
        async for update in job:
            print("update:", update.kind, update.numerator, update.denominator)
        print("final:", (await job).decode())


try:
    asyncio.run(main())
except KeyboardInterrupt:  # Ctrl-C cancels main(); leaving "async with" disconnects
    sys.exit("interrupted")
