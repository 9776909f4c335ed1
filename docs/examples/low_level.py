"""Talk to a Gearman server with gear-core alone: python low_level.py [HOST [PORT]]."""

import sys

import gear
from gear import constants

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

conn = gear.Connection(host, port)
conn.connect()

# A binary packet: ECHO_REQ comes back as ECHO_RES with the same payload.
conn.sendPacket(gear.Packet(constants.REQ, constants.ECHO_REQ, b"ping"))
reply = conn.readPacket()
assert isinstance(reply, gear.Packet)
print(constants.types[reply.ptype], reply.data)

# An admin command on the same connection. readPacket() returns the request
# once its whole reply has arrived.
request = gear.VersionAdminRequest()
conn.admin_requests.append(request)
conn.sendRaw(request.getCommand())
assert conn.readPacket() is request
print("server version:", request.response.decode().strip())

conn.disconnect()
