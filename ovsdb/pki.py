"""The node's side of dvn's certificate authority (controller/pki.py).

A node makes its own key, which never leaves it, and a certificate request
whose common name is its system-id; `dvn join --ipsec-pki DIR` hands the
request to dvn through the node's own database (ovsdb/join.py). The
`openssl` command does the cryptography.
"""

import os
import subprocess


class PkiError(Exception):
    pass


def openssl(*args, data=None):
    """The output of ``openssl args...`` (``data`` on its input); PkiError if it fails."""
    res = subprocess.run(("openssl",) + args, input=data, capture_output=True, timeout=60)
    if res.returncode != 0:
        raise PkiError("openssl %s: %s" % (args[0], res.stderr.decode(errors="replace").strip()[-300:]))
    return res.stdout


def node_request(cert_dir, system_id):
    """(key path, request PEM) of a node: its key made once, readable by root only."""
    os.makedirs(cert_dir, mode=0o700, exist_ok=True)
    key = os.path.join(cert_dir, "node-key.pem")
    if not os.path.exists(key):
        old = os.umask(0o077)
        try:
            openssl("genrsa", "-out", key, "3072")
        finally:
            os.umask(old)
    # The CN must not be the only name: ovs-monitor-ipsec reads it with 'CN=(.+?),'.
    csr = openssl("req", "-new", "-key", key, "-subj", "/O=dvn/CN=%s" % system_id).decode()
    return key, csr
