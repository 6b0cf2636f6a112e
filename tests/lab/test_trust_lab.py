"""Trusted nodes in the lab (issue 12): node namespaces join with a join
token and the pinned hash of dvn's CA; their OpenFlow controller and lanes
and their OVSDB manager are ssl: targets and connected, with their own
certificates from dvn's CA; dvn takes them in sync. A capture of two whole
token joins, up to in sync with encrypted ports between the two nodes (so
the IPsec pre-shared keys exist and reach them), shows only TLS on the
control ports, and none of the keys. Refused joins (no token, a wrong,
unknown, expired, used-up or revoked token, a CA hash that does not match)
say why in one line, are logged by dvn with the reason, and leave nothing
behind on the node or in dvn. A host that presents hv1's certificate while
its OVSDB claims another node is refused, logged, and leaves nothing. A
revoked node's certificate is refused when its switch connects again.

hv1 and hv3 join in the fixture; hv2 is the node refused joins try, and
the impostor."""

import os
import re
import stat
import struct
import subprocess
import sys

import pytest

from ovsdb.node import tunnel_port_name
from tests.dvnproc import ROOT, dvn_lab, token_join, wait_in_sync, wait_until
from tests.lab.test_firewall_lab import Capture

pytestmark = pytest.mark.lab

TAG, OCTET, API_PORT = "trust", 67, 18087
HV1, HV2, HV3 = "192.168.%d.11" % OCTET, "192.168.%d.12" % OCTET, "192.168.%d.13" % OCTET
CONTROL_PORTS = {6640, 6653, 6654, 6655, 6656}     # OVSDB, OpenFlow and its lanes


class Env:
    pass


@pytest.fixture(scope="module")
def trust(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("dvn-trust"))
    with dvn_lab(TAG, OCTET, API_PORT, state, extra=["--tls"], api_on_underlay=True) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api = lab, dvn, dvn.client()
        env.hv1 = lab.add_hv("hv1", HV1 + "/24")
        env.hv2 = lab.add_hv("hv2", HV2 + "/24")
        env.hv3 = lab.add_hv("hv3", HV3 + "/24")
        lab.seed_neighbors()
        # Captured on the nodes' underlay links: two whole token joins, and
        # encrypted ports between the nodes, up to in sync.
        caps = {hv.name: Capture(lab.ul, hv.name, "tcp") for hv in (env.hv1, env.hv3)}
        try:
            env.token1 = env.api.post("/v1/join-tokens", {"node": "hv1", "ttl": 600})["token"]
            env.joined = token_join(env.dvn, env.hv1, HV1, env.token1, wait=60)
            token3 = env.api.post("/v1/join-tokens", {"node": "hv3", "ttl": 600})["token"]
            token_join(env.dvn, env.hv3, HV3, token3, wait=60)
            net = env.api.post("/v1/networks", {"name": "trustnet", "tenant": "acme", "cidrs": ["10.7.0.0/24"]})
            for i, hv in ((1, env.hv1), (3, env.hv3)):
                mac = "02:00:00:00:07:%02x" % i
                port = env.api.post("/v1/ports", {"name": "s%d" % i, "network": net["id"], "mac": mac,
                                                  "ips": ["10.7.0.%d" % i], "encrypt": True})
                lab.add_vm("s%d" % i, hv, "10.7.0.%d/24" % i, mac, iface_id=port["id"])
                wait_until(lambda: env.api.get("/v1/ports/%s" % port["id"])["node"], what="s%d bound" % i)
            for hv, peer in ((env.hv1, "hv3"), (env.hv3, "hv1")):
                wait_until(lambda: "psk" in ipsec_options(hv, peer), timeout=30,
                           what="an IPsec tunnel with a key on %s" % hv.name)
            wait_in_sync(env.api, ["hv1", "hv3"])
        finally:
            env.captures = {name: cap.stop() for name, cap in caps.items()}
        yield env


def ipsec_options(hv, peer):
    """The options of hv's IPsec tunnel port towards ``peer`` ({} if it has none)."""
    out = hv.vsctl("--if-exists", "get", "Interface", tunnel_port_name(peer, "ipsec"), "options")
    return dict(re.findall(r'(\w+)="?([^",}]+)"?', out))


def tcp_streams(pcap):
    """{(client, server port): (bytes the client sent, bytes the server sent)} of
    the TCP connections in a pcap of Ethernet frames, each direction in
    sequence order, retransmissions once, up to a gap the capture missed."""
    endian = "<" if struct.unpack("<I", pcap[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    segments, pos = {}, 24
    while pos + 16 <= len(pcap):
        incl = struct.unpack(endian + "IIII", pcap[pos:pos + 16])[2]
        frame, pos = pcap[pos + 16:pos + 16 + incl], pos + 16 + incl
        if frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        ip = frame[14:]
        tcp = ip[(ip[0] & 0x0F) * 4:struct.unpack("!H", ip[2:4])[0]]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            src, dst = ip[12:16], ip[16:20]
            segments.setdefault((src, sport, dst, dport), {})[seq] = payload
    streams = {}
    for (src, sport, dst, dport), by_seq in segments.items():
        data, end = b"", None
        for seq in sorted(by_seq):   # (sequence numbers do not wrap in a short lab)
            end = seq if end is None else end
            if seq > end:
                break
            data += by_seq[seq][end - seq:]
            end = max(end, seq + len(by_seq[seq]))
        if dport < sport:   # the client's side
            streams.setdefault((src, sport, dport), [b"", b""])[0] = data
        else:
            streams.setdefault((dst, dport, sport), [b"", b""])[1] = data
    return {(src, sport, port): tuple(v) for (src, sport, port), v in streams.items()}


def tls_records(data):
    """The TLS record content types of a byte stream, or ValueError where it is not TLS
    (a last record cut short by the capture's end is allowed)."""
    types, at = [], 0
    while at + 5 <= len(data):
        ctype, major, length = data[at], data[at + 1], struct.unpack("!H", data[at + 3:at + 5])[0]
        if ctype not in (20, 21, 22, 23) or major != 3:
            raise ValueError("not a TLS record at byte %d: %r" % (at, data[at:at + 16]))
        types.append(ctype)
        at += 5 + length
    return types


def test_a_node_joins_with_a_token_over_tls(trust):
    hv = trust.hv1
    assert hv.vsctl("get-manager") == "ssl:%s:6640" % trust.dvn.listen_ip
    assert hv.vsctl("--bare", "--columns=is_connected", "list", "Manager") == "true"
    assert trust.joined.startswith("joined: OpenFlow ssl:%s:6653, OVSDB manager ssl:%s:6640, certificate %s" % (
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


def test_the_joins_cross_the_underlay_in_tls_only_and_carry_no_key_in_clear(trust):
    keys = {ipsec_options(trust.hv1, "hv3")["psk"], ipsec_options(trust.hv3, "hv1")["psk"]}
    assert len(keys) == 1 and len(next(iter(keys))) == 64      # one key for the pair, on both nodes
    for node, pcap in trust.captures.items():
        streams = tcp_streams(pcap)
        assert {port for _c, _p, port in streams} >= CONTROL_PORTS, (node, sorted(streams))
        for (_client, _sport, port), (sent, received) in streams.items():
            for data in (sent, received):
                assert not data or tls_records(data)[0] == 22, (node, port, data[:32])   # a TLS handshake first
        for key in keys:
            assert key.encode() not in pcap, node
        assert b'"method"' not in pcap, node     # (and OpenFlow's hello would not parse as TLS records)


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
    out = token_join(trust.dvn, trust.hv2, HV2, token, ca_hash=ca_hash, check=False)
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


@pytest.mark.parametrize("claim", ["hv9", "hv3"])
def test_a_host_with_hv1s_certificate_claiming_another_node_is_refused(trust, claim):
    """hv2's ovsdb-server dials dvn with hv1's key and certificate, its
    database naming ``claim``: a new node, or hv3, which is admitted and up."""
    hv, pki = trust.hv2, os.path.join(trust.hv1.dir, "pki")

    def refusals():
        return [ln for ln in trust.dvn.log().splitlines()
                if "OVSDB connection from %s:" % HV2 in ln and " refused: " in ln]
    before = len(refusals()), trust.dvn.log().count("node hv3 connected")
    hv.vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev")
    hv.vsctl("set", "Open_vSwitch", ".", "external_ids:system-id=%s" % claim, "external_ids:dvn-encap-ip=%s" % HV2)
    hv.vsctl("set-ssl", *(os.path.join(pki, f) for f in ("node-key.pem", "node-cert.pem", "dvn-ca.pem")))
    hv.vsctl("set-manager", "ssl:%s:6640" % trust.dvn.listen_ip)
    try:
        wait_until(lambda: len(refusals()) > before[0], timeout=30, what="dvn's refusal in its log")
        line = refusals()[-1]
        assert "refused: a certificate of node hv1, presented by one that claims to be %s" % claim in line, line
        assert claim == "hv3" or claim not in [n["system_id"] for n in trust.api.get("/v1/nodes")]
        assert trust.dvn.log().count("node hv3 connected") == before[1]     # hv3's own session stays
        wait_in_sync(trust.api, ["hv1", "hv3"])
        assert hv.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve") == ""
        for node in (trust.hv1, trust.hv3):   # no tunnel to the impostor's address
            assert HV2 not in node.vsctl("--bare", "--columns=options", "find", "Interface", "type=geneve")
    finally:
        hv.vsctl("del-manager")
        hv.vsctl("del-ssl")
        hv.vsctl("del-br", "br-int")
        hv.vsctl("set", "Open_vSwitch", ".", "external_ids:system-id=hv2")
        hv.vsctl("remove", "Open_vSwitch", ".", "external_ids", "dvn-encap-ip")


def test_a_revoked_nodes_switch_is_refused_when_it_connects_again(trust):
    env = dict(os.environ, DVN_URL=trust.dvn.url, DVN_TOKEN=trust.dvn.admin_token, DVN_CA_FILE=trust.dvn.ca_file,
               PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-m", "controller.cli", "node", "revoke", "hv1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("node hv1 revoked"), out.stderr
    # (the revocation ended its connections: tests/lab/test_revoke_lab.py; the switch connects again)
    refused = "the certificate of node hv1 (serial %s) is revoked" % (
        [c for c in trust.api.get("/v1/certificates") if c["node"] == "hv1"][0]["serial"])
    # (its OVSDB session is refused the same way: tests/lab/test_revoke_lab.py)
    wait_until(lambda: any("OpenFlow connection from" in ln and refused in ln for ln in trust.dvn.log().splitlines()),
               timeout=20, what="dvn to refuse the revoked switch's OpenFlow connection")
