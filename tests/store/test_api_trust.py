"""Join tokens and admission through the REST API, against a real store.

Tokens are admin-only; the secret is in the create's answer and nowhere
else (not in a list, a show, the store or the log). An enrollment with a
usable token and a request for the node's name gives a certificate of
dvn's CA for that name; every refusal (no, malformed, unknown, wrong,
expired, used-up or revoked token, a request for another name, a request
that is not one) is a 4xx naming the field, is logged with its reason,
and changes nothing.
"""

import os
import subprocess

import pytest
from cryptography import x509

from controller.pki import fingerprint
from ovsdb.pki import ca_hash, new_key_and_request
from tests.dvnproc import Client, wait_until
from tests.store.test_api import ApiServer, acme, admin, expect_problem  # noqa: F401
# (admin, acme: test_api's client fixtures, on this module's server)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("trust"))
    srv.acme = srv.token("acme")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def public(server):
    return Client(server.port, "")


def state(admin):
    return admin.get("/v1/join-tokens"), admin.get("/v1/certificates")


def enroll(public, token, name):
    _key, csr = new_key_and_request(name)
    return public.request("POST", "/v1/enroll", {"token": token, "csr": csr})


def test_a_token_is_shown_once_and_stored_hashed(server, admin):
    made = admin.post("/v1/join-tokens", {"node": "n-once", "ttl": 600, "uses": 2, "description": "rack 4"})
    token = made["token"]
    token_id, secret = token.split(".")
    assert made["id"] == token_id and made["uses"] == 2 and made["used"] == 0 and made["usable"]
    assert made["ca_hash"].startswith("sha256:") and made["node"] == "n-once"
    listed = admin.get("/v1/join-tokens")
    shown = admin.get("/v1/join-tokens/%s" % token_id)
    assert [t for t in listed if t["id"] == token_id] == [shown]
    assert secret not in repr(listed) + repr(shown) and "token" not in shown and "digest" not in shown
    dump = subprocess.run(["ovsdb-client", "dump", server.remote, "DVN_Northbound", "JoinToken"],
                          capture_output=True, text=True, check=True).stdout
    assert token_id in dump and secret not in dump
    assert secret not in server.server_log()


@pytest.mark.parametrize("body,field", [
    ({"ttl": 0}, "ttl"), ({"ttl": "60"}, "ttl"), ({"ttl": 365 * 24 * 3600 + 1}, "ttl"),
    ({"uses": 0}, "uses"), ({"uses": 10001}, "uses"), ({"uses": True}, "uses"),
    ({"node": ""}, "node"), ({"node": "bad name"}, "node"), ({"node": "x" * 254}, "node"),
    ({"description": "x" * 256}, "description"), ({"colour": "red"}, "colour"),
])
def test_a_bad_token_request_is_400_naming_the_field_and_changes_nothing(admin, body, field):
    before = state(admin)
    expect_problem(admin, "POST", "/v1/join-tokens", body, 400, field)
    assert state(admin) == before


def test_join_tokens_are_for_admins(admin, acme, public):
    before = state(admin)
    for client, status in ((acme, 403), (public, 401)):
        for method, path, body in (("POST", "/v1/join-tokens", {}), ("GET", "/v1/join-tokens", None),
                                   ("GET", "/v1/certificates", None), ("POST", "/v1/nodes/x/revoke", None)):
            code, _ = client.request(method, path, body)
            assert code == status, (client.token, method, path, code)
    assert state(admin) == before


def test_the_ca_is_public_and_its_hash_is_kubeadms(server, public):
    ca = public.get("/v1/ca")
    # kubeadm's recipe: openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=ca["certificate"].encode(),
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=der, capture_output=True,
                            check=True).stdout.split()[0].decode()
    assert ca["ca_hash"] == ca_hash(ca["certificate"]) == "sha256:" + digest
    with open(os.path.join(server.state, "ca-cert.pem")) as f:
        assert f.read() == ca["certificate"]


def test_a_node_enrolls_with_its_token_and_gets_a_certificate_for_its_name(server, admin, public):
    made = admin.post("/v1/join-tokens", {"node": "hv-a"})
    key, csr = new_key_and_request("hv-a")
    code, got = public.request("POST", "/v1/enroll", {"token": made["token"], "csr": csr})
    assert code == 201, got
    cert = x509.load_pem_x509_certificate(got["certificate"].encode())
    ca = x509.load_pem_x509_certificate(got["ca_certificate"].encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=hv-a,O=dvn"
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["hv-a"]
    assert got["fingerprint"] == fingerprint(got["certificate"]) and got["serial"] == "%x" % cert.serial_number
    # The key stayed with the node: dvn has the request's public key only.
    assert key.split("-----")[2].strip() not in server.server_log()
    certs = [c for c in admin.get("/v1/certificates") if c["node"] == "hv-a"]
    assert [(c["serial"], c["fingerprint"], c["revoked"], c["token"]) for c in certs] == [
        (got["serial"], got["fingerprint"], False, made["id"])]
    shown = admin.get("/v1/join-tokens/%s" % made["id"])
    assert (shown["used"], shown["usable"]) == (1, False)
    log = server.server_log()
    assert "node hv-a admitted" in log and made["token"].split(".")[1] not in log


def _token(admin, **body):
    return admin.post("/v1/join-tokens", body)["token"]


REFUSALS = {
    "no token": (lambda admin: None, "n-none", 400, "token", "token is required"),
    "malformed": (lambda admin: "not-a-token", "n-bad", 400, "token", "a join token"),
    "unknown": (lambda admin: "zzzzzz.0123456789abcdef", "n-unk", 403, "token", "no join token zzzzzz"),
    "wrong secret": (lambda admin: _token(admin)[:7] + "0123456789abcdef", "n-wrong", 403, "token",
                     "is wrong"),
    "used up": (lambda admin: _used_up(admin), "n-used", 403, "token", "is used up"),
    "revoked": (lambda admin: _revoked(admin), "n-rev", 403, "token", "was revoked"),
    "expired": (lambda admin: _expired(admin), "n-exp", 403, "token", "expired at"),
    "for another node": (lambda admin: _token(admin, node="n-other"), "n-mine", 422, "csr", "admits node n-other"),
}


def _used_up(admin):
    token = _token(admin)
    code, got = enroll(Client(admin.port, ""), token, "n-first")
    assert code == 201, got
    return token


def _revoked(admin):
    token = _token(admin)
    assert admin.post("/v1/join-tokens/%s/revoke" % token.split(".")[0], None)["revoked"]
    return token


def _expired(admin):
    token = _token(admin, ttl=1)
    wait_until(lambda: not admin.get("/v1/join-tokens/%s" % token.split(".")[0])["usable"], timeout=10,
               what="the one-second token to expire")
    return token


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_enrollment_says_why_is_logged_and_changes_nothing(server, admin, public, case):
    make, name, status, field, why = REFUSALS[case]
    token = make(admin)
    before = state(admin)
    _key, csr = new_key_and_request(name)
    body = {"csr": csr} if token is None else {"token": token, "csr": csr}
    problem = expect_problem(public, "POST", "/v1/enroll", body, status, field)
    assert why in problem["detail"], problem
    assert state(admin) == before
    assert not [c for c in admin.get("/v1/certificates") if c["node"] == name]
    log = server.server_log()
    assert "join refused" in log and why in log.split("join refused")[-1]
    if token is not None and "." in token:
        assert token.split(".")[1] not in log


@pytest.mark.parametrize("csr,why", [("not a request", "is not one"),
                                     ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                      "is not one")])
def test_a_request_that_is_not_one_is_422_and_uses_nothing(admin, public, csr, why):
    token = _token(admin)
    before = state(admin)
    problem = expect_problem(public, "POST", "/v1/enroll", {"token": token, "csr": csr}, 422, "csr")
    assert why in problem["detail"]
    assert state(admin) == before


def test_a_name_admitted_before_needs_a_token_for_that_name(admin, public):
    code, _ = enroll(public, _token(admin, node="hv-twice"), "hv-twice")
    assert code == 201
    before = state(admin)
    problem = expect_problem(public, "POST", "/v1/enroll",
                             {"token": _token(admin), "csr": new_key_and_request("hv-twice")[1]}, 409, "csr")
    assert "admitted before" in problem["detail"]
    after = state(admin)
    assert after[1] == before[1]
    code, _ = enroll(public, _token(admin, node="hv-twice"), "hv-twice")   # a token for it: a new certificate
    assert code == 201
    assert len([c for c in admin.get("/v1/certificates") if c["node"] == "hv-twice"]) == 2


def test_revoking_a_node_refuses_all_its_certificates(admin, public):
    for _ in range(2):
        assert enroll(public, _token(admin, node="hv-gone"), "hv-gone")[0] == 201
    revoked = admin.post("/v1/nodes/hv-gone/revoke", None)
    certs = [c for c in admin.get("/v1/certificates") if c["node"] == "hv-gone"]
    assert sorted(revoked["revoked"]) == sorted(c["serial"] for c in certs) and all(c["revoked"] for c in certs)
    assert admin.post("/v1/nodes/hv-gone/revoke", None)["node"] == "hv-gone"   # again: nothing new, no error
    expect_problem(admin, "POST", "/v1/nodes/never-admitted/revoke", None, 404, None)


def test_revoking_a_node_deletes_the_keys_of_its_pairs_and_no_others(server, admin, public):
    from ovsdb.nb import Northbound
    assert enroll(public, _token(admin, node="hv-k1"), "hv-k1")[0] == 201
    nb = Northbound(server.remote).start()
    try:
        nb.transact([nb.api.db_create("TunnelKey", nodes=pair, psk="%064x" % i, version=1)
                     for i, pair in enumerate(("hv-k1|hv-k2", "hv-k0|hv-k1", "hv-k2|hv-k3"))])
        revoked = admin.post("/v1/nodes/hv-k1/revoke", None)
        assert revoked["keys_deleted"] == 2
        assert wait_until(lambda: sorted(k.nodes for k in nb.rows("TunnelKey")) == ["hv-k2|hv-k3"], timeout=10,
                          what="the store's update")
    finally:
        nb.stop()
    log = server.server_log().split("node hv-k1 revoked")[-1].splitlines()[0]
    assert "2 pair key(s) deleted" in log and "%064x" % 0 not in server.server_log()
    assert admin.post("/v1/nodes/hv-k1/revoke", None)["keys_deleted"] == 0


def test_a_node_asks_for_its_enrollment_with_its_certificate_only(public):
    expect_problem(public, "GET", "/v1/enrollment", None, 401, None)


def test_the_cli_makes_lists_and_revokes_join_tokens(server):
    import sys
    from tests.store.test_api import ROOT
    env = dict(os.environ, DVN_URL="http://127.0.0.1:%d" % server.port, DVN_TOKEN=server.admin_token)

    def dvn(*args):
        return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    made = dvn("token", "create", "--node", "hv-cli", "--ttl", "600", "--uses", "3")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    token_id, secret = token.split(".")
    assert "--ca-hash sha256:" in made.stderr and "--system-id hv-cli" in made.stderr
    listed = dvn("token", "list")
    assert token_id in listed.stdout and secret not in listed.stdout
    assert "True" in dvn("token", "revoke", token_id).stdout
    bad = dvn("token", "create", "--uses", "0")
    assert bad.returncode == 1 and "(field: uses)" in bad.stderr
