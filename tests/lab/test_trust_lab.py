"""Trusted nodes in the lab (issue 12, first part): a node namespace joins
with a join token and the pinned hash of dvn's CA; its OpenFlow controller
and lanes are ssl: targets and connected, with its own certificate from
dvn's CA; dvn takes it in sync. Refused joins (no token, a wrong, unknown,
expired, used-up or revoked token, a CA hash that does not match) say why
in one line, are logged by dvn with the reason, and leave nothing behind on
the node or in dvn. A revoked node's certificate is refused when its switch
connects again. (The OVSDB manager is still tcp:, see docs/join.md.)"""

import os
import stat
import subprocess
import sys

import pytest

from tests.dvnproc import ROOT, dvn_lab, join, wait_in_sync, wait_until

pytestmark = pytest.mark.lab

TAG, OCTET, API_PORT = "trust", 67, 18087
HV1, HV2 = "192.168.%d.11" % OCTET, "192.168.%d.12" % OCTET


class Env:
    pass


@pytest.fixture(scope="module")
def trust(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("dvn-trust"))
    with dvn_lab(TAG, OCTET, API_PORT, state, extra=["--tls"], api_on_underlay=True) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api = lab, dvn, dvn.client()
        env.ca_hash = env.api.get("/v1/ca")["ca_hash"]
        env.hv1 = lab.add_hv("hv1", HV1 + "/24")
        env.hv2 = lab.add_hv("hv2", HV2 + "/24")
        lab.seed_neighbors()
        env.token1 = env.api.post("/v1/join-tokens", {"node": "hv1", "ttl": 600})["token"]
        env.joined = token_join(env, env.hv1, HV1, env.token1, wait=60)
        yield env


def token_join(env, hv, ip, token, ca_hash=None, wait=30, check=True):
    extra = ["--api-url", env.dvn.url, "--pki-dir", os.path.join(hv.dir, "pki"), "--ca-hash", ca_hash or env.ca_hash]
    if token is not None:
        extra += ["--token", token]
    return join(hv, env.dvn.listen_ip, ip, extra=extra, wait=wait, check=check)


def test_a_node_joins_with_a_token_over_tls(trust):
    hv = trust.hv1
    assert trust.joined.startswith("joined: OpenFlow ssl:%s:6653, OVSDB manager tcp:%s:6640, certificate %s" % (
        trust.dvn.listen_ip, trust.dvn.listen_ip, os.path.join(hv.dir, "pki", "node-cert.pem"))), trust.joined
    assert sorted(hv.vsctl("get-controller", "br-int").split()) == [
        "ssl:%s:%d" % (trust.dvn.listen_ip, port) for port in (6653, 6654, 6655, 6656)]
    connected = hv.vsctl("--columns=target,is_connected", "--format=csv", "--no-headings", "list", "Controller")
    assert sorted(connected.replace('"', "").split()) == sorted("ssl:%s:%d,true" % (trust.dvn.listen_ip, p)
                                                                for p in (6653, 6654, 6655, 6656)), connected
    pki = os.path.join(hv.dir, "pki")
    ssl = hv.vsctl("get-ssl")
    for name in ("node-key.pem", "node-cert.pem", "dvn-ca.pem"):
        assert os.path.join(pki, name) in ssl
    assert stat.S_IMODE(os.stat(os.path.join(pki, "node-key.pem")).st_mode) == 0o600
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in",
                              os.path.join(pki, "node-cert.pem")], capture_output=True, text=True).stdout
    assert "CN=hv1" in subject
    # The node's key never left it.
    with open(os.path.join(pki, "node-key.pem")) as f:
        secret = f.read().split("-----")[2].strip().splitlines()[0]
    assert subprocess.run(["grep", "-rqF", secret, trust.dvn.state_dir]).returncode != 0
    wait_in_sync(trust.api, ["hv1"])
    certs = [c for c in trust.api.get("/v1/certificates") if c["node"] == "hv1"]
    assert len(certs) == 1 and not certs[0]["revoked"]
    assert trust.token1.split(".")[1] not in trust.dvn.log()


def _unchanged(env, hv):
    """What a refused join must leave: the node without br-int, SSL or files; dvn without a new certificate."""
    assert "br-int" not in hv.vsctl("list-br").split() and hv.vsctl("get-ssl") == "" and hv.vsctl("get-manager") == ""
    assert not os.path.exists(os.path.join(hv.dir, "pki"))
    assert not [c for c in env.api.get("/v1/certificates") if c["node"] == hv.name]


def _expired(env):
    token = env.api.post("/v1/join-tokens", {"node": "hv2", "ttl": 1})["token"]
    wait_until(lambda: not env.api.get("/v1/join-tokens/%s" % token.split(".")[0])["usable"], timeout=10,
               what="the one-second token to expire")
    return token


def _revoked(env):
    token = env.api.post("/v1/join-tokens", {"node": "hv2"})["token"]
    env.api.post("/v1/join-tokens/%s/revoke" % token.split(".")[0], None)
    return token


REFUSED = {
    "no token": (lambda env: None, None, "--token and --ca-hash go together", None),
    "wrong secret": (lambda env: env.api.post("/v1/join-tokens", {"node": "hv2"})["token"][:7] + "x" * 16, None,
                     "is wrong", "is wrong"),
    "unknown token": (lambda env: "qqqqqq.0123456789abcdef", None, "no join token qqqqqq", "no join token qqqqqq"),
    "expired": (_expired, None, "expired at", "expired at"),
    "used up": (lambda env: env.token1, None, "is used up", "is used up"),
    "revoked": (_revoked, None, "was revoked", "was revoked"),
    "for another node": (lambda env: env.api.post("/v1/join-tokens", {"node": "hv1"})["token"], None,
                         "admits node hv1, not hv2", "admits node hv1, not hv2"),
    "CA hash mismatch": (lambda env: env.api.post("/v1/join-tokens", {"node": "hv2"})["token"], "sha256:" + "0" * 64,
                         "not the pinned sha256:" + "0" * 64 + ": not trusted, nothing changed", None),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_join_says_why_and_leaves_nothing_behind(trust, case):
    make, ca_hash, why, logged = REFUSED[case]
    token = make(trust)
    before = trust.api.get("/v1/join-tokens"), trust.api.get("/v1/certificates")
    refusals = trust.dvn.log().count("join refused")
    out = token_join(trust, trust.hv2, HV2, token, ca_hash=ca_hash, check=False)
    assert out.startswith("dvn join: ") and out.count("\n") == 1 and why in out, out
    _unchanged(trust, trust.hv2)
    assert (trust.api.get("/v1/join-tokens"), trust.api.get("/v1/certificates")) == before
    if logged:
        wait_until(lambda: trust.dvn.log().count("join refused") > refusals, timeout=10, what="dvn's log line")
        assert logged in trust.dvn.log().split("join refused")[-1]
    else:   # refused on the node: dvn saw no enrollment
        assert trust.dvn.log().count("join refused") == refusals
    if token and "." in token:
        assert token.split(".")[1] not in trust.dvn.log()


def test_a_revoked_nodes_switch_is_refused_when_it_connects_again(trust):
    hv = trust.hv1
    env = dict(os.environ, DVN_URL=trust.dvn.url, DVN_TOKEN=trust.dvn.admin_token, DVN_CA_FILE=trust.dvn.ca_file,
               PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-m", "controller.cli", "node", "revoke", "hv1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("node hv1 revoked"), out.stderr
    # (the revocation ended its connections: tests/lab/test_revoke_lab.py; the switch connects again)
    refused = "the certificate of node hv1 (serial %s) is revoked" % (
        [c for c in trust.api.get("/v1/certificates") if c["node"] == "hv1"][0]["serial"])
    trust.dvn.wait_log(refused, timeout=20)
    assert "OpenFlow connection from" in next(ln for ln in trust.dvn.log().splitlines() if refused in ln)
