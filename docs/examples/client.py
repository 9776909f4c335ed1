"""Submit one job and print its result: python client.py [HOST [PORT]]."""

import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

client = gear.Client("tutorial-client")
client.addServer(host, port)
try:
    client.waitForServer(timeout=10)
    job = gear.TextJob("reverse", "Hello, Gearman!")
    client.submitJob(job)  # returns once the server has queued the job
    print("submitted", job.handle, flush=True)
    if not job.wait(timeout=30):  # block until the worker's result arrives
        sys.exit("no result within 30 seconds")
except KeyboardInterrupt:  # Ctrl-C
    sys.exit("interrupted")
finally:
    client.shutdown()

if job.failure:
    sys.exit("the job failed")
print("result:", "".join(job.data))
