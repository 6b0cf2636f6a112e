"""Trusted nodes: join tokens (admin), admission of a node by a token and its
certificate request, the nodes' certificates and their revocation.

- ``/v1/join-tokens`` (admin): tokens are made, listed and revoked here; the
  secret is in the answer of the create only.
- ``GET /v1/ca`` and ``POST /v1/enroll`` need no bearer token: the CA's
  certificate is public, and an enrollment carries its join token in its
  body. Every refusal is logged with its reason and the token's id, never
  its secret, and changes nothing.
- ``GET /v1/enrollment``: a node asks, with its certificate (TLS client
  authentication), whether dvn has admitted it and its session is up.
- ``/v1/certificates`` and ``POST /v1/nodes/{id}/revoke`` (admin).
"""

import logging
import re
import time

from controller import trust
from controller.api import schemas
from controller.pki import fingerprint, pem
from controller.validation import Problem
from ovsdb.nb import optional

LOG = logging.getLogger("dvn.trust")
NODE_NAME = re.compile(schemas.NODE_NAME["pattern"][:-1] + r"\Z")
PEER_CERT = "dvn.peer_cert"     # the WSGI environ key of the TLS client's certificate (DER), set by dvn serve


def _now_ms():
    return int(time.time() * 1000)


def _refused(peer, why, status=403, title="Forbidden", field="token"):
    LOG.warning("join refused (from %s): %s", peer, why)
    return Problem(status, title, why, field)


class TrustedNodes:
    """The handlers of join tokens, enrollment and node certificates (a part of Api)."""

    def _ca_or_503(self):
        if self.ca is None:
            raise Problem(503, "No CA", "this dvn has no CA to admit nodes with (dvn serve --tls makes one)")
        return self.ca

    def _token_row(self, token_id):
        return next((r for r in self.nb.rows("JoinToken") if r.token_id == token_id), None)

    # ---- join tokens (admin) ------------------------------------------------
    def create_join_token(self, req, caller):
        self._admin(caller)
        body = schemas.check("JoinTokenCreate", self.body(req))
        now = _now_ms()
        with self.lock:
            token_id, secret = trust.new_token()
            while self._token_row(token_id) is not None:
                token_id, secret = trust.new_token()
            values = dict(token_id=token_id, digest=trust.digest(secret), description=body.get("description", ""),
                          created_at=now, expires_at=now + 1000 * body.get("ttl", trust.DEFAULT_TTL_S),
                          uses=body.get("uses", 1), used=0, revoked=False)
            if "node" in body:
                values["node"] = [body["node"]]
            self._transact([self.nb.api.db_create("JoinToken", **values)], "node")
        LOG.info("join token %s made%s, %d use(s), until %s", token_id,
                 " for node %s" % body["node"] if "node" in body else "", values["uses"], trust.iso(values["expires_at"]))
        view = trust.token_view(self._token_row(token_id), now)
        view["token"] = "%s.%s" % (token_id, secret)   # shown this once
        if self.ca is not None:
            view["ca_hash"] = self.ca.hash()
        return 201, view

    def list_join_tokens(self, req, caller):
        self._admin(caller)
        self._filter(req, ())
        now = _now_ms()
        return 200, sorted((trust.token_view(r, now) for r in self.nb.rows("JoinToken")), key=lambda t: t["id"])

    def _join_token(self, id):
        row = self._token_row(id)
        if row is None:
            raise Problem(404, "Not found", "no join token %s" % id)
        return row

    def show_join_token(self, req, caller, id):
        self._admin(caller)
        return 200, trust.token_view(self._join_token(id), _now_ms())

    def revoke_join_token(self, req, caller, id):
        self._admin(caller)
        with self.lock:
            row = self._join_token(id)
            if not row.revoked:
                self._transact([self.nb.api.db_set("JoinToken", row.uuid, ("revoked", True))], "id")
                LOG.info("join token %s revoked", id)
        return 200, trust.token_view(self._join_token(id), _now_ms())

    # ---- the CA and enrollment (no bearer token) ------------------------------
    def show_ca(self, req, caller):
        ca = self._ca_or_503()
        return 200, {"certificate": ca.pem(), "ca_hash": ca.hash()}

    def enroll(self, req, caller):
        """A node's admission: its join token and its certificate request -> its certificate."""
        from cryptography import x509
        peer = req.remote_addr or "?"
        ca = self._ca_or_503()
        try:
            body = schemas.check("Enroll", self.body(req))
        except Problem as p:
            LOG.warning("join refused (from %s): %s", peer, p.detail)
            raise
        token_id, secret = trust.split(body["token"])
        with self.lock:
            row = self._token_row(token_id)
            try:
                trust.check_token(row, token_id, secret, _now_ms())
            except trust.Refused as exc:
                raise _refused(peer, str(exc)) from None
            try:
                request = x509.load_pem_x509_csr(body["csr"].encode())
                valid = request.is_signature_valid
            except (ValueError, TypeError) as exc:
                raise _refused(peer, "token %s: the certificate request is not one: %s" % (token_id, str(exc)[:200]),
                               422, "Unprocessable input", "csr") from None
            if not valid:
                raise _refused(peer, "token %s: the certificate request's signature is wrong" % token_id,
                               422, "Unprocessable input", "csr")
            name = trust.common_name(request)
            if name is None or not NODE_NAME.match(name):
                raise _refused(peer, "token %s: the request's common name is not a node name" % token_id,
                               422, "Unprocessable input", "csr")
            bound = optional(row.node)
            if bound is not None and name != bound:
                raise _refused(peer, "join token %s admits node %s, not %s" % (token_id, bound, name),
                               422, "Unprocessable input", "csr")
            if bound is None and any(c.node == name for c in self.nb.rows("NodeCertificate")):
                raise _refused(peer, "node %s was admitted before: only a token made for it (--node %s) admits it "
                                     "again" % (name, name), 409, "Conflict", "csr")
            cert = ca.admit(request, name)
            fp = fingerprint(cert)
            serial = "%x" % cert.serial_number
            now = _now_ms()
            self._transact([
                self.nb.api.db_set("JoinToken", row.uuid, ("used", row.used + 1)),
                self.nb.api.db_create("NodeCertificate", node=name, serial=serial, fingerprint=fp,
                                      not_after=int(cert.not_valid_after_utc.timestamp() * 1000), issued_at=now,
                                      token_id=token_id, revoked=False)], "csr")
        LOG.info("node %s admitted (from %s) by join token %s: certificate serial %s, sha256 %s",
                 name, peer, token_id, serial, fp)
        return 201, {"node": name, "certificate": pem(cert), "ca_certificate": ca.pem(), "serial": serial,
                     "fingerprint": fp}

    def show_enrollment(self, req, caller):
        """The calling node's admission, known by its TLS client certificate."""
        der = req.environ.get(PEER_CERT)
        if not der:
            raise Problem(401, "Unauthorized", "present this node's certificate from dvn's CA (TLS client "
                                               "authentication; `dvn join --token` got it)")
        name, why = self.trust.allowed(der)
        if name is None:
            LOG.warning("enrollment status refused (from %s): %s", req.remote_addr or "?", why)
            raise Problem(403, "Forbidden", why)
        node = next((r for r in self.nb.rows("Node") if r.system_id == name), None)
        return 200, {"node": name, "admitted": True, "state": node.state if node is not None else None}

    # ---- certificates and revocation (admin) -----------------------------------
    def list_certificates(self, req, caller):
        self._admin(caller)
        self._filter(req, ())
        return 200, sorted((trust.certificate_view(r) for r in self.nb.rows("NodeCertificate")),
                           key=lambda c: (c["node"], c["issued_at"], c["serial"]))

    def revoke_node(self, req, caller, id):
        """Refuse every certificate of node ``id`` from now on, and delete the
        pre-shared keys of its pairs in the same transaction: what the node
        knows is worthless, and if a new token admits it again its pairs
        get new keys. The node manager ends its sessions and tunnels when it
        sees the change (controller/nodes.py, _revoke)."""
        self._admin(caller)
        with self.lock:
            rows = [r for r in self.nb.rows("NodeCertificate") if r.node == id]
            if not rows:
                raise Problem(404, "Not found", "no certificate was issued to node %s" % id)
            todo = [r for r in rows if not r.revoked]
            keys = self._node_keys(id)
            commands = ([self.nb.api.db_set("NodeCertificate", r.uuid, ("revoked", True)) for r in todo]
                        + [self.nb.api.db_destroy("TunnelKey", k.uuid) for k in keys])
            if commands:
                self._transact(commands, "id")
        LOG.warning("node %s revoked: %d certificate(s) refused from now on, %d pair key(s) deleted", id, len(todo),
                    len(keys))
        return 200, {"node": id, "revoked": [r.serial for r in rows], "keys_deleted": len(keys)}

