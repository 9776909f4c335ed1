"""Submit jobs through whichever of several servers is up.

python failover.py HOST:PORT [HOST:PORT ...]
"""

import sys

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
    try:
        job.wait(timeout=30)
    except gear.DisconnectError:
        print("job %d: its server went away before the result" % n)
        continue
    print("%s:%s %s" % (job.connection.host, job.connection.port, "".join(job.data)))

client.shutdown()
