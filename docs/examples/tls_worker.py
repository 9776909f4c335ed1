"""A TLS worker: python tls_worker.py HOST PORT CERT_DIR [NAME]."""

import sys

import gear

host, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
name = sys.argv[4] if len(sys.argv) > 4 else "worker"  # the certificate's CN

worker = gear.TextWorker(name)
worker.addServer(
    host,
    port,
    ssl_key="%s/%s.key" % (certs, name),
    ssl_cert="%s/%s.pem" % (certs, name),
    ssl_ca=certs + "/ca.pem",
)
worker.registerFunction("reverse")
try:
    worker.waitForServer(timeout=10)
    print("worker ready", flush=True)
    while True:
        job = worker.getJob()
        job.sendWorkComplete(job.arguments[::-1])
except KeyboardInterrupt:  # Ctrl-C
    print("worker stopped", flush=True)
finally:
    worker.shutdown()
