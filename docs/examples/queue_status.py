"""Print the queue of every function: python queue_status.py [HOST [PORT]]."""

import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

client = gear.Client("monitor")
client.addServer(host, port)
client.waitForServer(timeout=10)

request = gear.StatusAdminRequest()
client.getConnection().sendAdminRequest(request, timeout=10)
client.shutdown()

print("%-30s %8s %8s %8s" % ("function", "total", "running", "workers"))
for line in request.response.decode().splitlines():
    if line == ".":
        break
    name, total, running, workers = line.split("\t")
    print("%-30s %8s %8s %8s" % (name, total, running, workers))
