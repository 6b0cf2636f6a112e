"""dvn's certificate authority: the IPsec mesh's, and the one that admits nodes.

The CA's key and certificate live in dvn's state directory (the key readable
by dvn only). A node makes its own key, which never leaves it, and a
certificate request whose common name is its system-id (ovsdb/pki.py, `dvn join
--ipsec-pki DIR`); dvn signs only a request that names the node it came
from. ovs-monitor-ipsec then authenticates each IPsec tunnel with the two
nodes' certificates and this CA (its `pki_ca` mode). The `openssl` command
does the cryptography.
"""

import datetime
import ipaddress
import os
import re
import secrets
import tempfile

from ovsdb.pki import PkiError, ca_hash, fingerprint, node_request, write_private
from ovsdb.pki import openssl as _openssl

__all__ = ["Ca", "PkiError", "node_request"]   # the last two from ovsdb.pki, for the CA's users

SERVER_CERT, SERVER_KEY = "tls-cert.pem", "tls-key.pem"   # dvn's own, in the state directory
RENEW_DAYS = 30    # a server certificate this close to its end is made again at start

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


    # ---- with the cryptography library: admission and dvn's own certificates ----
    def _load(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        with open(self.key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        with open(self.cert, "rb") as f:
            return key, x509.load_pem_x509_certificate(f.read())

    def hash(self):
        """``sha256:<hex>`` of the CA's public key (SubjectPublicKeyInfo): what `dvn join --ca-hash` pins."""
        return ca_hash(self.pem())

    def _issue(self, subject, public_key, sans, usages, days):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID
        ca_key, ca_cert = self._load()
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(ca_cert.subject).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([{"client": ExtendedKeyUsageOID.CLIENT_AUTH,
                                                       "server": ExtendedKeyUsageOID.SERVER_AUTH}[u]
                                                      for u in usages]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert

    def admit(self, request, name, days=DAYS):
        """The certificate of node ``name`` for ``request`` (a parsed, signature-checked
        x509.CertificateSigningRequest whose common name is ``name``): /O=dvn/CN=<name>,
        the name also as a DNS name, for TLS clients and servers. Returns the
        cryptography certificate."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dvn"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        return self._issue(subject, request.public_key(), [x509.DNSName(name)], ("client", "server"), days)

    def server_certificate(self, state_dir, names):
        """(certificate path, key path) of dvn's own TLS certificate for ``names``
        (host names and IP addresses its clients reach it by), made by this CA
        in ``state_dir``; made again when the names change or its end is near."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        cert_path, key_path = os.path.join(state_dir, SERVER_CERT), os.path.join(state_dir, SERVER_KEY)
        sans = []
        for name in sorted(set(names)):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        if os.path.exists(cert_path) and os.path.exists(key_path):
            with open(cert_path, "rb") as f:
                old = x509.load_pem_x509_certificate(f.read())
            _ca_key, ca_cert = self._load()
            have = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            left = old.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
            if (set(have) == set(sans) and left > datetime.timedelta(days=RENEW_DAYS)
                    and old.issuer == ca_cert.subject and _signed_by(old, ca_cert)):
                return cert_path, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dvn"),
                             x509.NameAttribute(NameOID.COMMON_NAME, "dvn controller")])
        cert = self._issue(subject, key.public_key(), sans, ("server", "client"), DAYS)
        write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()).decode())
        with open(cert_path + ".new", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(cert_path + ".new", cert_path)
        return cert_path, key_path


def _signed_by(cert, ca_cert):
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # (InvalidSignature, ValueError, TypeError: not this CA's, whatever the cause)
        return False
    return True


def pem(cert):
    """A cryptography certificate as PEM text."""
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM).decode()


__all__ += ["fingerprint", "pem"]
