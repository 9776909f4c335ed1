"""Submit a job over TLS: python tls_client.py HOST PORT CERT_DIR [NAME]."""

import sys

import gear

host, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
name = sys.argv[4] if len(sys.argv) > 4 else "webapp"  # the certificate's CN

client = gear.Client(name)
client.addServer(
    host,
    port,
    ssl_key="%s/%s.key" % (certs, name),  # this client's private key
    ssl_cert="%s/%s.pem" % (certs, name),  # its certificate
    ssl_ca=certs + "/ca.pem",  # the CA that signed the server's certificate
)
client.waitForServer(timeout=10)

job = gear.TextJob("reverse", "over TLS")
client.submitJob(job)
job.wait(timeout=30)
print("result:", "".join(job.data))
client.shutdown()
