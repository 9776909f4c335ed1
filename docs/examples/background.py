"""Queue background jobs and check on one: python background.py [HOST [PORT]]."""

import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

client = gear.Client("background-client")
client.addServer(host, port)
client.waitForServer(timeout=10)

jobs = []
for n in range(3):
    job = gear.TextJob("reverse", "fire and forget %d" % n)
    client.submitJob(job, background=True)  # returns as soon as it is queued
    jobs.append(job)
print("queued", len(jobs), "jobs")

# No result comes back for a background job, but the server can say
# whether it still knows the job and whether a worker is running it.
client.getStatus(jobs[0])
print("known:", jobs[0].known, "running:", jobs[0].running)
client.shutdown()
