"""Authentication: a bearer token; the store keeps only its SHA-256 digest.

An admin token sees everything; a tenant token sees only its tenant's objects.
"""

import hashlib
import os
import secrets

from controller.validation import Problem


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(nb, tenant, role):
    """A new token (returned once; only its digest is stored)."""
    token = secrets.token_urlsafe(32)
    nb.transact([nb.api.db_create("Token", digest=digest(token), tenant=tenant or "", role=role,
                                  description="created by dvn")])
    return token


def ensure_admin_token(nb, path):
    """Make sure an admin token exists and is in ``path`` (mode 0600)."""
    if os.path.exists(path):
        with open(path) as f:
            token = f.read().strip()
        if any(r.digest == digest(token) and r.role == "admin" for r in nb.rows("Token")):
            return token
    token = create_token(nb, "", "admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Caller:
    def __init__(self, role, tenant):
        self.role, self.tenant = role, tenant

    @property
    def admin(self):
        return self.role == "admin"

    def sees(self, row):
        return self.admin or row.tenant == self.tenant



def authenticate(nb, req):
    """The Caller that ``req``'s bearer token names, else 401."""
    auth = req.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        raise Problem(401, "Unauthorized", "an Authorization: Bearer <token> header is required",
                      headers={"WWW-Authenticate": "Bearer"})
    d = digest(auth[7:].strip())
    for row in nb.rows("Token"):
        if secrets.compare_digest(row.digest, d):
            return Caller(row.role, row.tenant)
    raise Problem(401, "Unauthorized", "unknown token", headers={"WWW-Authenticate": "Bearer"})
