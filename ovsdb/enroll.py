"""The node's side of admission by join token (`dvn join --token T --ca-hash sha256:H`).

1. Fetch dvn's CA certificate (GET /v1/ca, over TLS that nothing verifies
   yet) and trust it only if the sha256 of its public key
   (SubjectPublicKeyInfo, DER) is the pinned one: no trust on first use.
2. Make the node's key here (it never leaves the node) and a certificate
   request for the node's name; send the request with the token over TLS
   verified against that CA, host name included (POST /v1/enroll).
3. Write the key (mode 0600), the certificate and the CA into the node's
   directory; only then, so a refused join leaves nothing behind.

``admission`` asks later, with the certificate, whether dvn has taken the
node's session (GET /v1/enrollment). No exception but EnrollError leaves
this module; ``Unreachable``, one of them, says dvn's API did not answer
at all, so a node that boots before dvn (``fetch_ca_waiting``) waits for it.
"""

import errno
import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse

from ovsdb.pki import ca_hash, new_key_and_request, write_private

KEY, CERT, CA = "node-key.pem", "node-cert.pem", "dvn-ca.pem"


class EnrollError(Exception):
    pass


class Unreachable(EnrollError):
    """dvn's API did not answer (connection refused or reset, timed out, no
    route): dvn may not be up yet, or the node's network not. Anything that
    answered, even wrongly, is another EnrollError."""


# OSErrors that say nobody answered, as opposed to an answer dvn refused
# (EAI_AGAIN: no name server yet, as early in a cloud instance's boot).
_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN,
                       errno.EHOSTDOWN, socket.EAI_AGAIN}


def default_dir():
    return os.path.join(os.environ.get("OVS_SYSCONFDIR", "/etc/openvswitch"), "dvn")


def _connection(url, context, timeout):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise EnrollError("--api-url %s: give https://HOST:PORT (a token is never sent in clear)" % url)
    return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=context)


def _call(url, context, method, path, body=None, timeout=30):
    conn = _connection(url, context, timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except ssl.SSLCertVerificationError as exc:
        raise EnrollError("dvn at %s is not the dvn of the pinned CA: %s" % (url, exc.verify_message or exc))
    except (ConnectionError, TimeoutError) as exc:
        raise Unreachable("cannot reach dvn's API at %s: %s" % (url, exc))
    except OSError as exc:
        if exc.errno in _UNREACHABLE_ERRNOS:
            raise Unreachable("cannot reach dvn's API at %s: %s" % (url, exc))
        raise EnrollError("cannot reach dvn's API at %s: %s" % (url, exc))
    except http.client.HTTPException as exc:
        raise EnrollError("cannot reach dvn's API at %s: %s" % (url, exc))
    finally:
        conn.close()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        raise EnrollError("dvn's API at %s answered %d, not JSON" % (url, resp.status))
    return resp.status, payload


def _verified(ca_pem, cert=None):
    ctx = ssl.create_default_context(cadata=ca_pem)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def fetch_ca(url, pin, timeout=30):
    """dvn's CA certificate (PEM), once its hash is ``pin`` (sha256:<hex>)."""
    if not pin.startswith("sha256:") or len(pin) != 71 or not all(c in "0123456789abcdef" for c in pin[7:].lower()):
        raise EnrollError("--ca-hash %s: give sha256:<64 hex digits> (dvn ca-hash on the controller host)" % pin)
    blind = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    blind.check_hostname = False
    blind.verify_mode = ssl.CERT_NONE     # nothing is trusted yet: the hash decides
    status, got = _call(url, blind, "GET", "/v1/ca", timeout=timeout)
    if status != 200 or not isinstance(got, dict) or not isinstance(got.get("certificate"), str):
        raise EnrollError("dvn's API at %s gave no CA certificate (HTTP %d)" % (url, status))
    try:
        have = ca_hash(got["certificate"])
    except ValueError:
        raise EnrollError("dvn's API at %s gave a CA certificate that is not one" % url)
    if have != pin.lower():
        raise EnrollError("the CA at %s has hash %s, not the pinned %s: not trusted, nothing changed" % (url, have, pin))
    return got["certificate"]


def fetch_ca_waiting(url, pin, wait, say, interval=0.5, timeout=30):
    """fetch_ca, tried again while dvn's API is unreachable, for up to
    ``wait`` seconds: a node that boots before dvn (or before its own
    network is up) joins when dvn comes, instead of failing at once.
    ``say`` is told once, with the reason, that it waits. Any answer ends
    the wait: a CA that is not the pinned one is refused at once."""
    deadline = time.monotonic() + max(wait, 0)
    told = False
    while True:
        try:
            return fetch_ca(url, pin, timeout=max(5.0, min(timeout, deadline - time.monotonic())))
        except Unreachable as exc:
            if time.monotonic() + interval >= deadline:
                if told:
                    raise Unreachable("%s (waited %.0f s)" % (exc, wait))
                raise
            if not told:
                say("%s; waiting up to %.0f s for it" % (exc, wait))
                told = True
            time.sleep(interval)


def enroll(url, ca_pem, token, name, directory, timeout=30):
    """Admission of node ``name`` with ``token``: its key made here, its
    certificate from dvn. Returns the (key, certificate, CA) paths."""
    key_pem, csr = new_key_and_request(name)
    status, got = _call(url, _verified(ca_pem), "POST", "/v1/enroll", {"token": token, "csr": csr}, timeout)
    if status != 201:
        detail = got.get("detail") if isinstance(got, dict) else None
        raise EnrollError("dvn refused the join (HTTP %d): %s" % (status, detail or "no reason given"))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths = tuple(os.path.join(directory, f) for f in (KEY, CERT, CA))
    write_private(paths[0], key_pem)
    for path, text in ((paths[1], got["certificate"]), (paths[2], ca_pem)):
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)
    return paths


def admission(url, paths, timeout=10):
    """(admitted and its session up, what dvn says) for the node whose key,
    certificate and CA are at ``paths``."""
    key, cert, ca = paths
    with open(ca) as f:
        ctx = _verified(f.read(), (cert, key))
    try:
        status, got = _call(url, ctx, "GET", "/v1/enrollment", timeout=timeout)
    except Unreachable as exc:     # (dvn restarting under the join: the caller asks again)
        return False, str(exc)
    if status != 200:
        return False, "dvn does not admit this node (HTTP %d): %s" % (
            status, got.get("detail") if isinstance(got, dict) else "")
    if got.get("state") != "up":
        return False, "dvn admitted node %s but has no OVSDB session of it recorded up" % got.get("node")
    return True, "admitted"
