"""Submit a job over TLS: python tls_client.py HOST PORT CERT_DIR."""

import sys
import time

import gear

host, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]

client = gear.Client("webapp")
client.addServer(
    host,
    port,
    ssl_key=certs + "/webapp.key",  # this client's private key
    ssl_cert=certs + "/webapp.pem",  # its certificate, CN=webapp
    ssl_ca=certs + "/ca.pem",  # the CA that signed the server's certificate
)
client.waitForServer(timeout=10)

job = gear.TextJob("reverse", "over TLS")
client.submitJob(job)
while not job.complete:
    time.sleep(0.01)
print("result:", "".join(job.data))
client.shutdown()
