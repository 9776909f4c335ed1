"""A worker that reverses strings: python worker.py [HOST [PORT]]."""

import sys

import gear

host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730

worker = gear.TextWorker("reverser")  # the client id other tools will show
worker.addServer(host, port)
worker.registerFunction("reverse")
try:
    worker.waitForServer()
    print("worker ready", flush=True)
    while True:
        job = worker.getJob()  # blocks until the server hands us a job
        job.sendWorkComplete(job.arguments[::-1])
except KeyboardInterrupt:  # Ctrl-C; the server requeues a job left unfinished
    print("worker stopped", flush=True)
finally:
    worker.shutdown()
