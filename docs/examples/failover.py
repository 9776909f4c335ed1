"""Submit jobs through whichever of several servers is up.

python failover.py HOST:PORT [HOST:PORT ...]
"""

import sys
import time

import gear

servers = sys.argv[1:] or ["localhost:4730"]

client = gear.Client("failover-client")
for server in servers:
    host, _, port = server.rpartition(":")
    client.addServer(host, int(port))
client.waitForServer(timeout=10)  # at least one is connected

for n in range(4):
    job = gear.TextJob("reverse", "job %d" % n)
    try:
        client.submitJob(job, timeout=10)  # round robin over connected servers
    except gear.GearmanError as e:
        print("no server took job %d: %s" % (n, e))
        continue
    while not job.complete:
        time.sleep(0.01)
    print(job.connection.host, job.connection.port, "".join(job.data))

client.shutdown()
