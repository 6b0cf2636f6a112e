"""dvn's certificate authority for the IPsec mesh.

The CA's key and certificate live in dvn's state directory (the key readable
by dvn only). A node makes its own key, which never leaves it, and a
certificate request whose common name is its system-id (ovsdb/pki.py, `dvn join
--ipsec-pki DIR`); dvn signs only a request that names the node it came
from. ovs-monitor-ipsec then authenticates each IPsec tunnel with the two
nodes' certificates and this CA (its `pki_ca` mode). The `openssl` command
does the cryptography.
"""

import os
import re
import secrets
import tempfile

from ovsdb.pki import PkiError, node_request
from ovsdb.pki import openssl as _openssl

__all__ = ["Ca", "PkiError", "node_request"]   # the last two from ovsdb.pki, for the CA's users

CA_KEY, CA_CERT = "ca-key.pem", "ca-cert.pem"
DAYS = 825


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

