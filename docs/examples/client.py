"""Submit one job and print its result: python client.py [HOST [PORT]]."""

import sys
import time

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

client = gear.Client("tutorial-client")
client.addServer(host, port)
client.waitForServer(timeout=10)

job = gear.TextJob("reverse", "Hello, Gearman!")
client.submitJob(job)  # returns once the server has queued the job
print("submitted", job.handle)

while not job.complete:  # the client's poll thread fills the job in
    time.sleep(0.01)

if job.failure:
    print("job failed")
else:
    print("result:", "".join(job.data))
client.shutdown()
