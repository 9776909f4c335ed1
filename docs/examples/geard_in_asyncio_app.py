"""Run geard as a task of an asyncio application: python geard_in_asyncio_app.py."""

import asyncio

from gear import constants
from gear.codec import Decoder, encode_packet
from gear.server import Server, serve


async def main() -> None:
    ready: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
    # Same arguments as gear.Server; port 0 picks a free port.
    geard = asyncio.create_task(serve(0, host="127.0.0.1", started=ready.set_result))
    server = await ready
    print("listening on port", server.port)

    # The rest of the application shares the loop with the server.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(encode_packet(constants.REQ, constants.ECHO_REQ, b"ping"))
    decoder = Decoder()
    frames = []
    while not frames:
        frames = list(decoder.receive(await reader.read(4096)))
    print("echo reply:", frames[0].data)
    writer.close()
    await writer.wait_closed()

    server.shutdown()  # or geard.cancel(): both close the listener and the queue store
    await geard
    print("stopped:", server.stopped)


asyncio.run(main())
