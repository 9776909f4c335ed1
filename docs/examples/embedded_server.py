"""Run a Gearman server inside a Python process: python embedded_server.py."""

import gear

server = gear.Server(0, host="127.0.0.1")  # port 0: pick a free port
print("listening on port", server.port)

# Talk to it like any Gearman server.
conn = gear.Connection("127.0.0.1", server.port)
conn.connect()
request = gear.VersionAdminRequest()
conn.admin_requests.append(request)
conn.sendRaw(request.getCommand())
assert conn.readPacket() is request
print("version reply:", request.response.decode().strip())
conn.disconnect()

server.shutdown()
print("stopped:", server.wait(5))
