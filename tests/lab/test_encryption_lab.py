"""Per-port encryption with real OVS: the IPsec mesh, the steering onto it, and
the IKE configuration ovs-monitor-ipsec makes of it.

This kernel has no ESP and the userspace datapath never hands tunnel packets to
XFRM, so nothing here is encrypted on the wire: the tests check what dvn
configures (tunnel ports and keys, the flows that choose a mesh, what the
underlay carries on which port) and what ovs-monitor-ipsec generates from it.

a1 (hv1) and a2 (hv2) are plain ports, s1 (hv1) must be encrypted.
"""

import os
import re
import signal
import subprocess

import pytest

from ovsdb.node import PLAIN_GENEVE_PORT, tunnel_port_name
from tests.dvnproc import add_joined_hv, dvn_lab, wait_in_sync, wait_until
from tests.lab.test_firewall_lab import Capture, geneve_packets

pytestmark = pytest.mark.lab

HVS = {"hv1": "192.168.64.11", "hv2": "192.168.64.12"}
IPSEC_PORT = 6081
MONITOR = "/usr/share/openvswitch/scripts/ovs-monitor-ipsec"


class Env:
    pass


def mac(i):
    return "02:00:00:00:05:%02x" % i


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    state = tmp_path_factory.mktemp("dvn-enc")
    with dvn_lab("enc", 64, 18083, str(state)) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api, env.state = lab, dvn, dvn.client(), str(state)
        env.hvs = {n: add_joined_hv(lab, dvn, n, ip) for n, ip in HVS.items()}
        net = env.api.post("/v1/networks", {"name": "encnet", "tenant": "acme", "cidrs": ["10.5.0.0/24"]})
        env.vms, env.ports = {}, {}
        for i, (name, hv, encrypt) in enumerate((("a1", "hv1", False), ("a2", "hv2", False),
                                                 ("s1", "hv1", True)), start=1):
            ip = "10.5.0.%d" % i
            port = env.api.post("/v1/ports", {"name": name, "network": net["id"], "mac": mac(i), "ips": [ip],
                                              "encrypt": encrypt})
            env.ports[name] = port
            env.vms[name] = lab.add_vm(name, env.hvs[hv], ip + "/24", mac(i), iface_id=port["id"])
        for name, port in env.ports.items():
            wait_until(lambda: env.api.get("/v1/ports/%s" % port["id"])["node"], what="%s bound" % name)
        for hv in env.hvs.values():  # both meshes up on both sides
            wait_until(lambda: len(tunnel_ports(hv)) == 2, timeout=20, what="two tunnel ports on %s" % hv.name)
        wait_in_sync(env.api, HVS)
        yield env


def tunnel_ports(hv):
    """{name: options} of the GENEVE ports on hv's br-int."""
    out = {}
    for name in hv.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve").split():
        options = hv.vsctl("get", "Interface", name, "options")
        out[name] = dict(re.findall(r'(\w+)="?([^",}]+)"?', options))
    return out


def psks(env):
    return {o["psk"] for hv in env.hvs.values() for o in tunnel_ports(hv).values() if "psk" in o}


def ports_used(env, sender, dst_ip):
    """The underlay UDP ports that carried ``sender``'s packets while it pinged ``dst_ip``."""
    cap = Capture(env.lab.ul, "hv1", "udp")
    try:
        tx, rx = env.vms[sender].ping(dst_ip, count=3, interval=0.2, timeout=1)
    finally:
        seen = geneve_packets(cap.stop())
    # IPv4 frames only: a group pair's broadcasts (ARP) may cross the plain mesh (docs/encryption.md)
    return rx, {port for _s, port, _v, _o, inner in seen
                if inner[6:12] == bytes.fromhex(mac_of(env, sender)) and inner[12:14] == b"\x08\x00"}


def mac_of(env, name):
    return env.ports[name]["mac"].replace(":", "")


def test_a_pair_that_carries_encrypted_traffic_has_a_plain_and_an_ipsec_tunnel_with_one_key(enc):
    one, two = (tunnel_ports(enc.hvs[h]) for h in ("hv1", "hv2"))
    plain, ipsec = one[tunnel_port_name("hv2")], one[tunnel_port_name("hv2", "ipsec")]
    assert plain["dst_port"] == str(PLAIN_GENEVE_PORT) and "psk" not in plain
    assert "dst_port" not in ipsec and len(ipsec["psk"]) == 64      # GENEVE's own 6081: ovs-monitor-ipsec's
    assert two[tunnel_port_name("hv1", "ipsec")]["psk"] == ipsec["psk"]   # one key for the pair


def test_an_encrypted_ports_traffic_crosses_only_the_ipsec_mesh(enc):
    hv1 = enc.hvs["hv1"]
    rx, ports = ports_used(enc, "s1", "10.5.0.2")
    assert rx == 3 and ports == {IPSEC_PORT}, ports
    rx, ports = ports_used(enc, "a1", "10.5.0.2")
    assert rx == 3 and ports == {PLAIN_GENEVE_PORT}, ports
    # ofproto/trace of s1's packet to a2 ends on the IPsec tunnel's ofport.
    ofport = {p: hv1.vsctl("get", "Interface", p, "ofport") for p in (tunnel_port_name("hv2"),
                                                                       tunnel_port_name("hv2", "ipsec"))}
    s1 = hv1.vsctl("get", "Interface", "s1", "ofport")
    trace = hv1.appctl("ofproto/trace", "br-int", "in_port=%s,dl_src=%s,dl_dst=%s,arp,arp_spa=10.5.0.3,"
                       "arp_sha=%s,arp_tpa=10.5.0.2,arp_op=1" % (s1, mac(3), mac(2), mac(3)))
    assert "output:%s" % ofport[tunnel_port_name("hv2", "ipsec")] in trace, trace[-1500:]
    assert "output:%s" % ofport[tunnel_port_name("hv2")] not in trace


ENCRYPT_MARK = "0x10/0x10->reg0"   # in a port's classify flow: its traffic takes the IPsec mesh


def classify_actions(hv, port):
    """The actions of ``port``'s classify flows (table 0, its in_port) on ``hv``."""
    ofport = hv.vsctl("get", "Interface", port, "ofport")
    flows = [f for f in hv.dump_flows() if f["table"] == 0 and "in_port=%s" % ofport in f["match"]]
    assert flows, "no classify flow for %s" % port
    return " | ".join(f["actions"] for f in flows)


def test_toggling_the_flag_moves_a_ports_traffic(enc):
    path = "/v1/ports/%s" % enc.ports["a1"]["id"]
    hv1 = enc.hvs["hv1"]
    try:
        enc.api.call("PATCH", path, {"encrypt": True})
        wait_in_sync(enc.api, HVS)
        assert ENCRYPT_MARK in classify_actions(hv1, "a1"), "a1 not marked once dvn said in sync"
        rx, ports = ports_used(enc, "a1", "10.5.0.2")
        assert rx == 3 and ports == {IPSEC_PORT}, ports
    finally:
        enc.api.call("PATCH", path, {"encrypt": False})
        wait_in_sync(enc.api, HVS)
    assert ENCRYPT_MARK not in classify_actions(hv1, "a1"), "a1 still marked once dvn said in sync"
    rx, ports = ports_used(enc, "a1", "10.5.0.2")
    assert rx == 3 and ports == {PLAIN_GENEVE_PORT}, ports


def test_a_groups_policy_encrypts_its_members_traffic_and_follows_membership(enc):
    pci = enc.api.post("/v1/security-groups", {"name": "pci", "tenant": "acme", "encrypt": True,
                                               "criteria": {"tags_any": ["pci"]}})
    path = "/v1/ports/%s" % enc.ports["a1"]["id"]
    try:
        assert ports_used(enc, "a1", "10.5.0.2")[1] == {PLAIN_GENEVE_PORT}
        enc.api.call("PATCH", path, {"tags": ["pci"]})            # a1 joins the dynamic group
        wait_in_sync(enc.api, HVS)
        assert ports_used(enc, "a1", "10.5.0.2") == (3, {IPSEC_PORT}), "a1's traffic not on the IPsec mesh"
        enc.api.call("PATCH", path, {"tags": []})                 # and leaves it
        wait_in_sync(enc.api, HVS)
        assert ports_used(enc, "a1", "10.5.0.2") == (3, {PLAIN_GENEVE_PORT}), "a1's traffic not back on plain"
    finally:
        enc.api.call("PATCH", path, {"tags": []})
        enc.api.delete("/v1/security-groups/%s" % pci["id"])
        wait_in_sync(enc.api, HVS)


def test_traffic_between_two_groups_is_encrypted_and_theirs_with_others_is_not(enc):
    api = enc.api
    b = api.post("/v1/security-groups", {"name": "grp-b", "tenant": "acme", "criteria": {"name": "a2"}})
    a = api.post("/v1/security-groups", {"name": "grp-a", "tenant": "acme", "criteria": {"name": "a1"},
                                         "encrypt_with": [b["id"]]})
    try:
        wait_in_sync(api, HVS)
        assert ports_used(enc, "a1", "10.5.0.2") == (3, {IPSEC_PORT})   # a1 -> a2 on the IPsec mesh
        assert ports_used(enc, "a2", "10.5.0.1") == (3, {IPSEC_PORT})   # and back, a2 -> a1
        assert ports_used(enc, "a2", "10.5.0.3")[1] == {IPSEC_PORT}      # s1 is encrypted itself
        api.call("PATCH", "/v1/security-groups/%s" % a["id"], {"encrypt_with": []})
        wait_in_sync(api, HVS)
        # on the plain mesh once the policy is gone
        assert ports_used(enc, "a1", "10.5.0.2") == (3, {PLAIN_GENEVE_PORT})
    finally:
        api.delete("/v1/security-groups/%s" % a["id"])
        api.delete("/v1/security-groups/%s" % b["id"])
        wait_in_sync(api, HVS)


def _ipsec_root(path):
    """A private root for ovs-monitor-ipsec, with a stub `ipsec` that records its calls."""
    for d in ("etc/strongswan.d", "etc/ipsec.d", "usr/sbin", "sbin", "run/pluto"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    stub = os.path.join(path, "usr/sbin/ipsec")
    with open(stub, "w") as f:
        f.write('#!/bin/sh\necho "ipsec $*" >> "%s/ipsec-calls.log"\nexit 0\n' % path)
    os.chmod(stub, 0o755)
    if not os.path.exists(os.path.join(path, "sbin/ip")):
        os.symlink("/usr/sbin/ip", os.path.join(path, "sbin/ip"))
    return path


def _monitor(hv, root, daemon):
    args = [MONITOR, hv.db, "--root-prefix=" + root, "--ike-daemon=" + daemon, "-vconsole:off",
            "--pidfile=%s/monitor.pid" % root, "--log-file=%s/monitor.log" % root]
    if daemon == "libreswan":
        args += ["--no-restart-ike-daemon", "--ipsec-conf=/etc/ipsec.conf", "--ipsec-secrets=/etc/ipsec.secrets",
                 "--ipsec-d=/etc/ipsec.d", "--ipsec-ctl=/run/pluto/pluto.ctl"]
    with open(root + "/monitor.err", "wb") as err:
        return subprocess.Popen(["ip", "netns", "exec", hv.ns] + args, env=hv.env,
                                stdout=subprocess.DEVNULL, stderr=err)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@pytest.mark.parametrize("daemon", ["strongswan", "libreswan"])
def test_ovs_monitor_ipsec_makes_ike_config_for_every_ipsec_tunnel_and_follows_a_rotation(enc, daemon, tmp_path):
    hv1 = enc.hvs["hv1"]
    root = _ipsec_root(str(tmp_path / daemon))
    name = tunnel_port_name("hv2", "ipsec")
    conf, secrets = root + "/etc/ipsec.conf", root + "/etc/ipsec.secrets"
    monitor = _monitor(hv1, root, daemon)
    try:
        key = tunnel_ports(hv1)[name]["psk"]
        try:
            wait_until(lambda: "conn %s-in-" % name in _read(conf), timeout=15, what="the IKE config of %s" % name)
        except AssertionError:
            raise AssertionError("no IKE config; ovs-monitor-ipsec said:\n" + _read(root + "/monitor.log")[-3000:]
                                 + _read(root + "/monitor.err")[-3000:])
        text = _read(conf)
        block = text[text.index("conn %s-in-" % name):]
        authby = {"strongswan": "psk", "libreswan": "secret"}[daemon]   # each one's word for a PSK
        assert "right=%s" % HVS["hv2"] in block and "authby=%s" % authby in block, block
        assert "leftprotoport=udp/6081" in block           # the IPsec mesh's port
        assert tunnel_port_name("hv2") not in text          # the plain mesh: no IKE at all
        if daemon == "libreswan":
            assert "ikev2=insist" in text           # (in its conn %default)
        assert '%%any %s : PSK "%s"' % (HVS["hv2"], key) in _read(secrets)
        version = int(re.search(r"conn %s-in-(\d+)" % name, text).group(1))
        # Rotation: a new key on both nodes, a new connection version.
        answer = enc.api.post("/v1/nodes/hv1/rotate-keys", {})
        assert answer["rotated"] == 1 and key not in str(answer)
        wait_in_sync(enc.api, HVS)     # dvn's pending includes the nodes' tunnel mesh
        new = tunnel_ports(hv1)[name]["psk"]
        assert new != key, "the old key on hv1 once dvn said in sync"
        assert tunnel_ports(enc.hvs["hv2"])[tunnel_port_name("hv1", "ipsec")]["psk"] == new
        wait_until(lambda: "conn %s-in-%d" % (name, version + 1) in _read(conf), timeout=15,
                   what="a new connection version")
        assert '%%any %s : PSK "%s"' % (HVS["hv2"], new) in _read(secrets) and key not in _read(secrets)
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(timeout=10)


def test_no_api_answer_and_no_log_line_contains_a_key(enc):
    keys = psks(enc)
    assert keys
    enc.api.post("/v1/nodes/hv2/rotate-keys", {})
    wait_in_sync(enc.api, HVS)
    assert psks(enc) - keys, "no rotated key on the nodes once dvn said in sync"
    keys |= psks(enc)
    answers = [enc.api.get(p) for p in ("/v1/nodes", "/v1/nodes/hv1", "/v1/nodes/hv2", "/v1/ports",
                                        "/v1/networks", "/v1/openapi.json")]
    answers += [enc.api.get("/v1/ports/%s" % p["id"]) for p in enc.ports.values()]
    answers.append(enc.api.post("/v1/nodes/hv1/rotate-keys", {}))
    wait_in_sync(enc.api, HVS)
    assert psks(enc) - keys, "no rotated key on the nodes once dvn said in sync"
    keys |= psks(enc)
    text = "\n".join(map(str, answers))
    log = enc.dvn.log()
    assert "tunnel mesh updated" in log              # the key changes were logged, as changes
    assert not [k for k in keys if k in text or k in log]
