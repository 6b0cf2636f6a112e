"""Nodes beyond the controller's subnet (issue 12): one in a second subnet
behind a router, one behind a 1:1 NAT (the cloud pattern). Both join with
tokens over the routed underlay; the NAT node advertises its public address
(`dvn join --public-ip`), peers tunnel to it, and its own tunnel ports send
from its private address. VMs on them reach a VM on the main subnet, on the
plain mesh and, encrypted, on the IPsec mesh.

    hv1 192.168.69.11 ──┬── br0 192.168.69.0/24 (dvn .1) ──┬── nat .250 + .13 (hv3's public address)
                        │                                  │      └── br82 192.168.82.0/24: hv3 .13
                        └── rtr .254 ── br81 192.168.81.0/24: hv2 .12

This kernel has no ESP and the userspace datapath never hands tunnel packets
to XFRM (docs/encryption.md), so encrypted traffic is shown by the mesh it
takes (GENEVE on UDP 6081, the IPsec mesh's port), and IKE across the NAT by
a real strongSwan: its IKE_SA comes up through the NAT on UDP 4500.
"""

import os
import re
import shutil
import signal
import subprocess

import pytest

from ovsdb.node import PLAIN_GENEVE_PORT, tunnel_port_name
from tests.dvnproc import dvn_lab, token_join, wait_in_sync, wait_until
from tests.lab.test_encryption_lab import IPSEC_PORT, MONITOR, tunnel_ports
from tests.lab.test_firewall_lab import Capture, geneve_packets

pytestmark = pytest.mark.lab

TAG, OCTET, API_PORT = "route", 69, 18089
MAIN, ROUTED, PRIVATE, PUBLIC = "192.168.69.11", "192.168.81.12", "192.168.82.13", "192.168.69.13"
ROUTER_MAIN, ROUTER_ROUTED, NAT_OUT, NAT_IN = "192.168.69.254", "192.168.81.1", "192.168.69.250", "192.168.82.1"
NODES = ("hv1", "hv2", "hv3")


class Env:
    pass


def mac(i):
    return "02:00:00:00:69:%02x" % i


@pytest.fixture(scope="module")
def ul(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("dvn-route"))
    with dvn_lab(TAG, OCTET, API_PORT, state, extra=["--tls"], api_on_underlay=True) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api = lab, dvn, dvn.client()
        lab.segment("br81")
        lab.segment("br82")
        lab.add_router("rtr", {"br0": ROUTER_MAIN + "/24", "br81": ROUTER_ROUTED + "/24"})
        env.nat = lab.add_nat("nat", ("br0", NAT_OUT + "/24"), ("br82", NAT_IN + "/24"), {PUBLIC: PRIVATE},
                    gateway=ROUTER_MAIN)
        lab.host_route("192.168.81.0/24", ROUTER_MAIN)          # dvn reaches the routed subnet
        env.hvs = {"hv1": lab.add_hv("hv1", MAIN + "/24"),
                   "hv2": lab.add_hv("hv2", ROUTED + "/24", segment="br81", gateway=ROUTER_ROUTED),
                   "hv3": lab.add_hv("hv3", PRIVATE + "/24", segment="br82", gateway=NAT_IN)}
        env.hvs["hv1"].add_route("192.168.81.0/24", ROUTER_MAIN)
        env.joined = {}
        for name, ip, extra in (("hv1", MAIN, ()), ("hv2", ROUTED, ()), ("hv3", PRIVATE, ("--public-ip", PUBLIC))):
            token = env.api.post("/v1/join-tokens", {"node": name, "ttl": 600})["token"]
            env.joined[name] = token_join(dvn, env.hvs[name], ip, token, wait=60, extra=extra)
        net = env.api.post("/v1/networks", {"name": "far", "tenant": "acme", "cidrs": ["10.69.0.0/24"]})
        env.ports, env.vms = {}, {}
        for i, hv in enumerate(NODES, start=1):
            name = "v%d" % i
            env.ports[name] = env.api.post("/v1/ports", {"name": name, "network": net["id"], "mac": mac(i),
                                                          "ips": ["10.69.0.%d" % i]})
            env.vms[name] = lab.add_vm(name, env.hvs[hv], "10.69.0.%d/24" % i, mac(i), iface_id=env.ports[name]["id"])
        for name, port in env.ports.items():
            wait_until(lambda: env.api.get("/v1/ports/%s" % port["id"])["node"], what="%s bound" % name)
        wait_in_sync(env.api, NODES)
        yield env


def crossing(env, leg, sender, dst_ip):
    """Ping ``dst_ip`` from VM ``sender`` (warmed up, then 3 of 3) while
    capturing the underlay leg ``leg`` (a veth in the underlay namespace):
    (answered, {(outer source, UDP port)} of the GENEVE packets carrying
    the sender's IPv4 frames there)."""
    vm = env.vms[sender]
    for _ in range(5):       # (the first packets may wait for ARP, of the VMs and of the tunnels' next hops)
        if vm.ping(dst_ip, count=1)[1] == 1:
            break
    cap = Capture(env.lab.ul, leg, "udp")
    try:
        tx, rx = vm.ping(dst_ip, count=3, interval=0.2, timeout=1)
    finally:
        seen = geneve_packets(cap.stop())
    frames = {(src, port) for src, port, _v, _o, inner in seen
              if inner[6:12] == bytes.fromhex(mac(int(sender[1:])).replace(":", "")) and inner[12:14] == b"\x08\x00"}
    return rx == 3 and tx == 3, frames


def test_the_routed_and_the_nat_node_join_with_tokens(ul):
    for name in NODES:
        assert ul.joined[name].startswith("joined: OpenFlow ssl:%s:6653" % ul.dvn.listen_ip), ul.joined[name]
    nodes = {n["system_id"]: n for n in ul.api.get("/v1/nodes")}
    assert {n: nodes[n]["encap_ip"] for n in NODES} == {"hv1": MAIN, "hv2": ROUTED, "hv3": PUBLIC}
    assert all(nodes[n]["state"] == "up" for n in NODES)
    wait_in_sync(ul.api, NODES)
    # A --public-ip that is no address is refused before the token is used.
    token = ul.api.post("/v1/join-tokens", {"node": "hv3", "ttl": 600})["token"]
    out = token_join(ul.dvn, ul.hvs["hv3"], PRIVATE, token, check=False, extra=("--public-ip", "198.51.100"))
    assert out == "dvn join: --public-ip '198.51.100' is not an IP address\n", out
    assert ul.api.get("/v1/join-tokens/%s" % token.split(".")[0])["usable"]


def test_peers_tunnel_to_the_nat_nodes_public_address_and_it_sends_from_its_private_one(ul):
    for peer in ("hv1", "hv2"):
        assert tunnel_ports(ul.hvs[peer])[tunnel_port_name("hv3")]["remote_ip"] == PUBLIC
    own = tunnel_ports(ul.hvs["hv3"])
    assert {own[tunnel_port_name(p)]["remote_ip"] for p in ("hv1", "hv2")} == {MAIN, ROUTED}
    assert not [o for o in own.values() if "local_ip" in o]     # it sends from the address its route gives
    ok, inside = crossing(ul, "nat-in", "v3", "10.69.0.1")      # on the private side of the NAT
    assert ok and inside == {(PRIVATE, PLAIN_GENEVE_PORT)}, inside
    ok, outside = crossing(ul, "hv1", "v3", "10.69.0.1")        # at hv1: from the public address
    assert ok and outside == {(PUBLIC, PLAIN_GENEVE_PORT)}, outside


@pytest.mark.parametrize("sender, dst", [("v2", "10.69.0.1"), ("v3", "10.69.0.1"), ("v3", "10.69.0.2"),
                                         ("v1", "10.69.0.3")])
def test_vms_reach_each_other_across_the_router_and_the_nat(ul, sender, dst):
    leg = {"v1": "hv1", "v2": "rtr-eth1", "v3": "nat-in"}[sender]
    ok, seen = crossing(ul, leg, sender, dst)
    assert ok and {port for _src, port in seen} == {PLAIN_GENEVE_PORT}, seen


def test_encrypted_traffic_crosses_the_router_and_the_nat_on_the_ipsec_mesh(ul):
    paths = ["/v1/ports/%s" % ul.ports[v]["id"] for v in ("v2", "v3")]
    try:
        for path in paths:
            ul.api.call("PATCH", path, {"encrypt": True})
        wait_in_sync(ul.api, NODES)
        for sender, dst, leg in (("v2", "10.69.0.1", "rtr-eth1"), ("v3", "10.69.0.1", "nat-in"),
                                 ("v3", "10.69.0.2", "nat-in"), ("v1", "10.69.0.3", "hv1")):
            ok, seen = crossing(ul, leg, sender, dst)
            assert ok and {port for _src, port in seen} == {IPSEC_PORT}, (sender, dst, seen)
        # The IPsec ports to hv3 go to its public address; its own name it by that address in IKE.
        for peer in ("hv1", "hv2"):
            assert tunnel_ports(ul.hvs[peer])[tunnel_port_name("hv3", "ipsec")]["remote_ip"] == PUBLIC
        own = tunnel_ports(ul.hvs["hv3"])[tunnel_port_name("hv1", "ipsec")]
        assert own["remote_ip"] == MAIN and own["ipsec_leftid"] == PUBLIC and "psk" in own
        assert "ipsec_leftid" not in tunnel_ports(ul.hvs["hv1"])[tunnel_port_name("hv3", "ipsec")]
    finally:
        for path in paths:
            ul.api.call("PATCH", path, {"encrypt": False})
        wait_in_sync(ul.api, NODES)


def _ike_sandbox(hv, root):
    """ovs-monitor-ipsec on ``hv``, and the strongSwan it starts (`ipsec
    restart`), in the node's network namespace with their own /run and
    /etc/ipsec* files, bound over the host's in a private mount namespace
    (as /work/shared/lab/05b does): the host's IPsec files stay as they were.
    Returns a function that runs a command in that sandbox."""
    etc = os.path.join(root, "etc")
    os.makedirs(os.path.join(etc, "ipsec.d"))
    shutil.copytree("/etc/strongswan.d", os.path.join(etc, "strongswan.d"))
    for name in ("ipsec.conf", "ipsec.secrets"):
        with open(os.path.join(etc, name), "w"):
            pass
    os.chmod(os.path.join(etc, "ipsec.secrets"), 0o600)
    with open(os.path.join(etc, "strongswan.d", "zz-lab-log.conf"), "w") as f:
        f.write("charon {\n filelog {\n  lab {\n   path = %s/charon.log\n   default = 1\n  }\n }\n}\n" % root)
    binds = " && ".join("mount --bind %s/%s /etc/%s" % (etc, n, n)
                        for n in ("ipsec.conf", "ipsec.secrets", "strongswan.d", "ipsec.d"))
    hv.run("sh", "-c", "mount -t tmpfs lab-run /run && %s && exec %s %s --ike-daemon=strongswan -vconsole:off "
           "--pidfile=%s/monitor.pid --detach --no-chdir --log-file=%s/monitor.log"
           % (binds, MONITOR, hv.db, root, root))
    with open(os.path.join(root, "monitor.pid")) as f:
        pid = f.read().strip()

    def sandbox(*args, timeout=30):
        return subprocess.run(["nsenter", "-t", pid, "-m", "-n", *args], capture_output=True, text=True,
                              timeout=timeout).stdout
    sandbox.pid = int(pid)
    return sandbox


# Who starts IKE: (node, its peer, what the initiator's strongSwan says of the
# NAT, how it names the two ends: "its address[its IKE identity]").
INITIATORS = {
    "the NAT node": ("hv3", "hv1", "local host is behind NAT",
                     "%s[%s]...%s[%s]" % (PRIVATE, PUBLIC, MAIN, MAIN)),
    "its peer, through the NAT": ("hv1", "hv3", "remote host is behind NAT",
                                  "%s[%s]...%s[%s]" % (MAIN, MAIN, PUBLIC, PUBLIC)),
}


@pytest.mark.parametrize("who", sorted(INITIATORS))
def test_ike_between_a_peer_and_the_nat_node_comes_up_through_the_nat_on_udp_4500(ul, tmp_path, who):
    """A real strongSwan on hv1 and on hv3, configured by ovs-monitor-ipsec
    from the tunnels dvn made: whichever end starts IKE, both see the NAT,
    move to UDP 4500, and authenticate with the pair's key, hv3 by its
    public address (ipsec_leftid; without it hv1 answers
    AUTHENTICATION_FAILED). The ESP SA after it cannot be made here (this
    kernel has no ESP); on a kernel that has, the GENEVE of the IPsec mesh
    crosses the NAT as ESP in UDP 4500."""
    initiator, responder, nat_seen, ends = INITIATORS[who]
    path = "/v1/ports/%s" % ul.ports["v3"]["id"]
    boxes = {}
    try:
        ul.api.call("PATCH", path, {"encrypt": True})
        wait_in_sync(ul.api, NODES)
        for node, peer in ((initiator, responder), (responder, initiator)):
            boxes[node] = _ike_sandbox(ul.hvs[node], str(tmp_path / node))
            wait_until(lambda: re.search(r"%s-in-\d+\{.*ROUTED" % tunnel_port_name(peer, "ipsec"),
                                         boxes[node]("ipsec", "statusall")),
                       timeout=30, what="strongSwan on %s to load the connections ovs-monitor-ipsec made" % node)
        ifname = tunnel_port_name(responder, "ipsec")
        conn = re.search(r"(%s-out-\d+)\{" % ifname, boxes[initiator]("ipsec", "statusall")).group(1)
        cap = Capture(ul.lab.ul, "hv1", "udp port 500 or udp port 4500", text=True)
        try:
            up = boxes[initiator]("timeout", "20", "ipsec", "up", conn, timeout=40)
        finally:
            wire = cap.stop().decode()
        # (strongSwan names the IKE_SA after either of the tunnel's two connections)
        assert re.search(r"IKE_SA %s-(in|out)-\d+\[\d+\] established between %s"
                         % (ifname, re.escape(ends)), up), up[-3000:]
        assert nat_seen in up, up[-3000:]
        # On hv1's leg: the NAT node only by its public address, and IKE on 4500 both ways.
        assert "%s.4500 > %s.4500" % (PUBLIC, MAIN) in wire and "%s.4500 > %s.4500" % (MAIN, PUBLIC) in wire, wire
        assert PRIVATE not in wire
    finally:
        for box in boxes.values():
            box("ipsec", "stop")
            os.kill(box.pid, signal.SIGTERM)
        ul.api.call("PATCH", path, {"encrypt": False})
        wait_in_sync(ul.api, NODES)


def test_behind_a_nat_that_lets_in_only_answers_the_node_is_in_sync_and_reaches_nothing(ul):
    """docs/join.md, "Behind a NAT with no way in": the NAT now drops what
    comes from outside unless it answers something hv3 sent (conntrack's
    original direction). GENEVE is one flow each way, so every peer's
    tunnel packet is such a packet: hv3's VM gets nothing from other nodes,
    while dvn still has hv3 up and in sync."""
    def nft(script):
        res = subprocess.run(["ip", "netns", "exec", ul.nat, "nft", "-f", "-"], input=script, text=True,
                             capture_output=True)
        assert res.returncode == 0, res.stderr
    assert ul.vms["v3"].ping_ok("10.69.0.1")
    nft("add table ip wall\n")
    try:
        nft("add chain ip wall gate { type filter hook forward priority filter; }\n"
            "add rule ip wall gate iifname \"out\" ct direction original drop\n")
        assert ul.vms["v1"].ping("10.69.0.3", count=3)[1] == 0
        assert ul.vms["v3"].ping("10.69.0.1", count=3)[1] == 0
        assert ul.api.get("/v1/nodes/hv3")["state"] == "up"
        wait_in_sync(ul.api, NODES)
    finally:
        nft("delete table ip wall\n")
    assert ul.vms["v3"].ping_ok("10.69.0.1")
