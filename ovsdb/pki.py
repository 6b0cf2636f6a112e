"""The node's side of dvn's certificate authority (controller/pki.py).

A node makes its own key, which never leaves it, and a certificate request
whose common name is its system-id; `dvn join --ipsec-pki DIR` hands the
request to dvn through the node's own database (ovsdb/join.py). The
`openssl` command does the cryptography.
"""

import hashlib
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


# ---- admission by join token (ovsdb/enroll.py) ------------------------------------
# The `cryptography` library, not the openssl command: the key is made in this
# process and written once, only after dvn has admitted the node.

def ca_hash(cert_pem):
    """``sha256:<hex>`` of a certificate's SubjectPublicKeyInfo (DER), as kubeadm's
    --discovery-token-ca-cert-hash: it names the CA's key, so it outlives a
    re-signed CA certificate with the same key. ValueError if ``cert_pem`` is
    not a PEM certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def fingerprint(cert):
    """The SHA-256 of a certificate's DER, in hex (``cert``: PEM text or DER bytes)."""
    from cryptography import x509
    if isinstance(cert, str):
        cert = x509.load_pem_x509_certificate(cert.encode())
    elif not hasattr(cert, "public_bytes"):
        cert = x509.load_der_x509_certificate(cert)
    from cryptography.hazmat.primitives import serialization
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_key_and_request(name):
    """(key PEM, request PEM) for node ``name``: a new P-256 key, kept in
    memory until the caller writes it, and a request for /O=dvn/CN=<name>
    (the name also as a DNS name) signed with it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dvn"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def write_private(path, text):
    """Write ``text`` to ``path``, readable by its owner only, replacing it whole."""
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
