"""Trusted nodes: join tokens, what dvn's CA admitted, and whether a certificate is still allowed.

A join token is ``<id>.<secret>`` (6 and 16 characters of [a-z0-9], as
kubeadm's bootstrap tokens): the id is public (lists, logs), the secret is
shown once when the token is made and only its SHA-256 is stored
(``JoinToken``). A token admits nodes until it expires, is used up or is
revoked; one made for a node name admits only that name. Each admission is
a certificate of dvn's CA whose common name is the node's name, recorded in
``NodeCertificate`` (serial, fingerprint) so that it can be revoked.

``check_token`` and ``certificate_verdict`` are plain functions of rows and a
time; ``Trust`` asks them about the store's rows, for the REST API and for
the node sessions ("is this certificate, or this peer, allowed?").
"""

import datetime
import hashlib
import re
import secrets
import string

from ovsdb.nb import optional
from ovsdb.pki import fingerprint

ALPHABET = string.ascii_lowercase + string.digits
TOKEN_ID_LEN, SECRET_LEN = 6, 16
TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})\Z")
DEFAULT_TTL_S = 24 * 3600          # as kubeadm's


class Refused(Exception):
    """An admission or a certificate dvn refuses; the text says why (never a secret)."""


def new_token():
    """(token id, secret): the token a user is given is ``id.secret``."""
    pick = lambda n: "".join(secrets.choice(ALPHABET) for _ in range(n))  # noqa: E731
    return pick(TOKEN_ID_LEN), pick(SECRET_LEN)


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def split(token):
    """(id, secret) of a token's text; Refused if it is not one (the text is not repeated)."""
    m = TOKEN.match(token or "")
    if m is None:
        raise Refused("a join token is <6 characters>.<16 characters> of a-z and 0-9")
    return m.group(1), m.group(2)


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_token(row, token_id, secret, now_ms):
    """Refused (saying why) unless ``row`` (the JoinToken of ``token_id``, or
    None) admits one more node now."""
    if row is None:
        raise Refused("no join token %s" % token_id)
    if not secrets.compare_digest(row.digest, digest(secret)):
        raise Refused("the secret of join token %s is wrong" % token_id)
    if row.revoked:
        raise Refused("join token %s was revoked" % token_id)
    if now_ms >= row.expires_at:
        raise Refused("join token %s expired at %s" % (token_id, iso(row.expires_at)))
    if row.used >= row.uses:
        raise Refused("join token %s is used up (%d of %d admissions)" % (token_id, row.used, row.uses))


def token_view(row, now_ms):
    """A join token as the API shows it: never its secret nor its digest."""
    return {"id": row.token_id, "node": optional(row.node), "description": row.description,
            "created_at": iso(row.created_at), "expires_at": iso(row.expires_at),
            "uses": row.uses, "used": row.used, "revoked": row.revoked,
            "usable": not row.revoked and now_ms < row.expires_at and row.used < row.uses}


def certificate_view(row):
    return {"node": row.node, "serial": row.serial, "fingerprint": row.fingerprint,
            "not_after": iso(row.not_after), "issued_at": iso(row.issued_at), "token": row.token_id,
            "revoked": row.revoked}


def common_name(cert):
    """The common name of a cryptography certificate or request, or None."""
    from cryptography.x509.oid import NameOID
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if len(names) == 1 else None


def certificate_verdict(cert, ca_cert, records, now_ms, node=None):
    """The node name a certificate (cryptography) proves, or Refused saying why:
    it must be signed by dvn's CA (``ca_cert``), within its validity, recorded
    among ``records`` (NodeCertificate rows) as issued and not revoked, and,
    when ``node`` is given, be that node's."""
    from controller.pki import _signed_by
    if ca_cert is None or not _signed_by(cert, ca_cert):
        raise Refused("the certificate is not from dvn's CA")
    if not cert.not_valid_before_utc.timestamp() * 1000 <= now_ms <= cert.not_valid_after_utc.timestamp() * 1000:
        raise Refused("the certificate is not valid now")
    fp = fingerprint(cert)
    record = next((r for r in records if r.fingerprint == fp), None)
    name = common_name(cert)
    if record is None:
        raise Refused("certificate %s of %s was not issued by an admission" % (fp[:16], name))
    if record.revoked:
        raise Refused("the certificate of node %s (serial %s) is revoked" % (record.node, record.serial))
    if name != record.node:
        raise Refused("certificate %s names %s, not the admitted %s" % (fp[:16], name, record.node))
    if node is not None and node != record.node:
        raise Refused("a certificate of node %s, presented by one that claims to be %s" % (record.node, node))
    return record.node


def revoked_nodes(records):
    """The nodes that are revoked: every certificate issued to them (``records``,
    NodeCertificate rows) is. A node with none is not (it never joined with a
    token), and a token made for a revoked node admits it again: its new
    certificate is not revoked."""
    issued = {}
    for record in records:
        issued[record.node] = issued.get(record.node, True) and bool(record.revoked)
    return {node for node, revoked in issued.items() if revoked}


class Trust:
    """Whether a node's certificate is allowed, from the store's NodeCertificate
    rows and dvn's CA (``ca``: controller.pki.Ca, or None: nothing is allowed)."""

    def __init__(self, nb, ca=None):
        self.nb, self.ca = nb, ca
        self._ca_cert = None

    def ca_certificate(self):
        if self._ca_cert is None and self.ca is not None:
            self._ca_cert = self.ca._load()[1]
        return self._ca_cert

    def allowed(self, cert, node=None, now_ms=None):
        """(node name, None) if ``cert`` (PEM text, DER bytes or a cryptography
        certificate) is a certificate dvn admitted and has not revoked, and is
        ``node``'s when ``node`` (the name a peer claims) is given; else
        (None, why). For whoever holds a peer's certificate: the node sessions
        (OpenFlow, OVSDB) and the API's /v1/enrollment."""
        import time
        from cryptography import x509
        try:
            if isinstance(cert, str):
                cert = x509.load_pem_x509_certificate(cert.encode())
            elif isinstance(cert, (bytes, bytearray)):
                cert = x509.load_der_x509_certificate(bytes(cert))
            now = int(time.time() * 1000) if now_ms is None else now_ms
            return certificate_verdict(cert, self.ca_certificate(), self.nb.rows("NodeCertificate"), now, node), None
        except Refused as exc:
            return None, str(exc)
        except ValueError as exc:
            return None, "not a certificate: %s" % str(exc)[:200]
