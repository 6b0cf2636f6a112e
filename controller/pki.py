"""dvn's certificate authority for the IPsec mesh.

The CA's key and certificate live in dvn's state directory (the key readable
by dvn only). A node makes its own key, which never leaves it, and a
certificate request whose common name is its system-id (`dvn join
--ipsec-pki DIR`); dvn signs only a request that names the node it came
from. ovs-monitor-ipsec then authenticates each IPsec tunnel with the two
nodes' certificates and this CA (its `pki_ca` mode). The `openssl` command
does the cryptography.
"""

import os
import re
import secrets
import subprocess
import tempfile

CA_KEY, CA_CERT = "ca-key.pem", "ca-cert.pem"
DAYS = 825


class PkiError(Exception):
    pass


def _openssl(*args, data=None):
    res = subprocess.run(("openssl",) + args, input=data, capture_output=True, timeout=60)
    if res.returncode != 0:
        raise PkiError("openssl %s: %s" % (args[0], res.stderr.decode(errors="replace").strip()[-300:]))
    return res.stdout


class Ca:
    def __init__(self, state_dir):
        self.key = os.path.join(state_dir, CA_KEY)
        self.cert = os.path.join(state_dir, CA_CERT)

    def ensure(self):
        """Make the CA on first use (a key only dvn reads, a self-signed certificate)."""
        if not (os.path.exists(self.key) and os.path.exists(self.cert)):
            old = os.umask(0o077)
            try:
                _openssl("req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", str(DAYS * 4),
                         "-subj", "/O=dvn/CN=dvn IPsec CA", "-keyout", self.key, "-out", self.cert)
            finally:
                os.umask(old)
        return self

    def pem(self):
        with open(self.cert) as f:
            return f.read()

    def sign(self, csr_pem, system_id):
        """The certificate (PEM) of a node's request, if it names ``system_id``."""
        subject = _openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", data=csr_pem.encode()).decode()
        cn = re.search(r"CN=([^,\n]+)", subject)
        if cn is None or cn.group(1).strip() != system_id:
            raise PkiError("the request of node %s names %s" % (system_id, cn.group(1) if cn else "nobody"))
        with tempfile.NamedTemporaryFile("w", suffix=".csr") as f:
            f.write(csr_pem)
            f.flush()
            return _openssl("x509", "-req", "-in", f.name, "-CA", self.cert, "-CAkey", self.key,
                            "-set_serial", str(secrets.randbits(63)), "-days", str(DAYS), "-sha256").decode()


def node_request(cert_dir, system_id):
    """(key path, request PEM) of a node: its key made once, readable by root only."""
    os.makedirs(cert_dir, mode=0o700, exist_ok=True)
    key = os.path.join(cert_dir, "node-key.pem")
    if not os.path.exists(key):
        old = os.umask(0o077)
        try:
            _openssl("genrsa", "-out", key, "3072")
        finally:
            os.umask(old)
    # The CN must not be the only name: ovs-monitor-ipsec reads it with 'CN=(.+?),'.
    csr = _openssl("req", "-new", "-key", key, "-subj", "/O=dvn/CN=%s" % system_id).decode()
    return key, csr
