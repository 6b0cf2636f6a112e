"""Tenant networks end to end: REST -> northbound -> compiler -> br-int, real packets.

One lab for the module: dvn in the host namespace (reached by the nodes over
the underlay), three hypervisors that joined with `dvn join`, two tenant
networks with the same CIDR and VMs on every hypervisor.
"""

import hashlib
import os
import re
import signal

import pytest

from controller.serve import PROBE_BOUND_S
from flows import reconcile
from flows.acl import SecuredPort, compile_port_security
from tests.dvnproc import add_joined_hv, dvn_lab, resyncs, wait_in_sync, wait_resynced, wait_until

pytestmark = pytest.mark.lab

CIDR = "10.0.0.0/24"
HV_IPS = {"hv1": "192.168.61.11", "hv2": "192.168.61.12", "hv3": "192.168.61.13",
          "hv4": "192.168.61.14"}


def _mac(i):
    return "02:00:00:00:01:%02x" % i


class L2Lab:
    """What the tests share: the lab, dvn, the REST client and the objects made."""

    def __init__(self, lab, dvn):
        self.lab, self.dvn = lab, dvn
        self.api = dvn.client()
        self.hvs = {}
        self.vms = {}
        self.ports = {}

    def add_hv(self, name):
        hv = add_joined_hv(self.lab, self.dvn, name, HV_IPS[name])
        self.hvs[name] = hv
        return hv

    def add_vm(self, name, hv, network, ip, index):
        port = self.api.post("/v1/ports", {"name": name, "network": network["id"],
                                          "mac": _mac(index), "ips": [ip]})
        self.ports[name] = port
        vm = self.lab.add_vm(name, self.hvs[hv], "%s/24" % ip, _mac(index), iface_id=port["id"])
        self.vms[name] = vm
        return vm

    def wait_bound(self, name, hv):
        """The node has told dvn that port ``name`` is plugged into it."""
        wait_until(lambda: self.api.get("/v1/ports/%s" % self.ports[name]["id"])["node"] == hv,
                   what="port %s bound to %s" % (name, hv))

    def sync(self):
        """dvn says every node's switch holds what it wants (dvnproc.wait_in_sync)."""
        return wait_in_sync(self.api, self.hvs)

    def tunnels_to(self, ip):
        """Names of the hypervisors that have a Geneve port towards ``ip``."""
        found = []
        for name, hv in self.hvs.items():
            out = hv.vsctl("--bare", "--columns=options", "find", "Interface", "type=geneve")
            if 'remote_ip="%s"' % ip in out or "remote_ip=%s" % ip in out:
                found.append(name)
        return found

    def flows(self, hv):
        """{(table, priority, match): duration} of br-int on ``hv``."""
        return {(f["table"], f["priority"], f["match"]): f["duration"]
                for f in self.hvs[hv].dump_flows()}


@pytest.fixture(scope="module")
def l2(tmp_path_factory):
    state = tmp_path_factory.mktemp("dvn-l2")
    with dvn_lab("l2", 61, 18080, str(state)) as (lab, dvn):
        env = L2Lab(lab, dvn)
        for name in ("hv1", "hv2", "hv3"):
            env.add_hv(name)
        admin = env.api
        env.net_a = admin.post("/v1/networks", {"name": "blue", "tenant": "acme", "cidrs": [CIDR]})
        env.net_b = admin.post("/v1/networks", {"name": "red", "tenant": "umbrella", "cidrs": [CIDR]})
        env.add_vm("a1", "hv1", env.net_a, "10.0.0.1", 1)
        env.add_vm("a2", "hv2", env.net_a, "10.0.0.2", 2)
        env.add_vm("a3", "hv3", env.net_a, "10.0.0.3", 3)
        # Network B reuses the CIDR and even A's addresses: isolation is by network.
        env.add_vm("b1", "hv1", env.net_b, "10.0.0.11", 11)
        env.add_vm("b2", "hv2", env.net_b, "10.0.0.12", 12)
        env.add_vm("b3", "hv3", env.net_b, "10.0.0.2", 13)
        for name, hv in (("a1", "hv1"), ("a2", "hv2"), ("a3", "hv3"), ("b1", "hv1"), ("b2", "hv2"), ("b3", "hv3")):
            env.wait_bound(name, hv)
        env.sync()
        yield env


def test_ports_are_bound_to_the_hypervisor_that_plugged_them(l2):
    for name, hv in (("a1", "hv1"), ("a2", "hv2"), ("b3", "hv3")):
        assert l2.api.get("/v1/ports/%s" % l2.ports[name]["id"])["node"] == hv, name


def test_vms_in_one_network_reach_each_other_across_hypervisors(l2):
    assert l2.vms["a1"].ping_ok("10.0.0.2")
    assert l2.vms["a1"].ping_ok("10.0.0.3")
    assert l2.vms["a3"].ping_ok("10.0.0.2")
    assert l2.vms["b1"].ping_ok("10.0.0.12")
    # b3 has a2's address in the other network: b1 reaches b3, not a2.
    assert l2.vms["b1"].ping_ok("10.0.0.2")
    neigh = l2.vms["b1"].exec("ip", "neigh", "show", "10.0.0.2")
    assert _mac(13) in neigh and _mac(2) not in neigh


def test_one_megabyte_over_tcp_across_the_tunnel(l2, tmp_path):
    blob = os.urandom(1 << 20)
    (tmp_path / "blob.bin").write_bytes(blob)
    server = l2.vms["a3"].serve_http(8080, str(tmp_path))
    try:
        got = l2.vms["a1"].fetch("http://10.0.0.3:8080/blob.bin", timeout=30)
    finally:
        server.stop()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(blob).hexdigest()


def test_nothing_crosses_between_networks(l2):
    # a1 -> b1, b2 (other network, same CIDR): no reply, no ARP resolution.
    for src, dst in (("a1", "10.0.0.11"), ("a1", "10.0.0.12"), ("b2", "10.0.0.1"), ("b2", "10.0.0.3")):
        tx, rx = l2.vms[src].ping(dst, count=3, interval=0.2, timeout=1)
        assert tx == 3 and rx == 0, "%s reached %s across networks" % (src, dst)
    neigh = l2.vms["a1"].exec("ip", "neigh", "show", "10.0.0.11")
    assert _mac(11) not in neigh


def test_a_late_hypervisor_joins_the_mesh_and_leaves_it(l2):
    hv4 = l2.add_hv("hv4")
    wait_until(lambda: sorted(l2.tunnels_to(HV_IPS["hv4"])) == ["hv1", "hv2", "hv3"],
               what="tunnels to hv4 on hv1..hv3")
    def mesh(kind):
        return hv4.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve",
                         "external_ids:dvn-mesh=%s" % kind).split()
    wait_until(lambda: len(mesh("plain")) == 3, what="3 plain tunnels on hv4")   # one to each peer
    l2.sync()
    assert mesh("ipsec") == []   # nothing here is encrypted: no IPsec tunnel, no key (l2.secure_pairs)
    l2.add_vm("a4", "hv4", l2.net_a, "10.0.0.4", 4)
    l2.wait_bound("a4", "hv4")
    l2.sync()
    assert l2.vms["a4"].ping_ok("10.0.0.1")
    assert l2.vms["a2"].ping_ok("10.0.0.4")
    # Deleting a node that is still connected is refused; after it leaves, it is deleted everywhere.
    status, problem = l2.api.request("DELETE", "/v1/nodes/hv4")
    assert status == 409, problem
    l2.vms.pop("a4").remove()
    hv4.remove()
    del l2.hvs["hv4"]
    wait_until(lambda: l2.api.get("/v1/nodes/hv4")["state"] == "down", timeout=30, what="hv4 down")
    l2.api.delete("/v1/nodes/hv4")
    wait_until(lambda: l2.tunnels_to(HV_IPS["hv4"]) == [], what="no tunnel to hv4 anywhere")
    l2.api.delete("/v1/ports/%s" % l2.ports.pop("a4")["id"])
    l2.sync()
    assert l2.vms["a1"].ping_ok("10.0.0.2")


def test_adding_a_port_sends_only_the_flows_it_touches(l2):
    before = {hv: l2.flows(hv) for hv in ("hv1", "hv2", "hv3")}
    mark = len(l2.dvn.log())
    l2.add_vm("a5", "hv1", l2.net_a, "10.0.0.5", 5)
    l2.wait_bound("a5", "hv1")
    l2.sync()   # every flow change for a5 sent (and logged)
    assert l2.vms["a5"].ping_ok("10.0.0.2")
    assert l2.vms["a3"].ping_ok("10.0.0.5")
    sent = re.findall(r"switch of node (\w+): (\d+) flow changes", l2.dvn.log()[mark:])
    per_node = {}
    for node, n in sent:
        per_node[node] = per_node.get(node, 0) + int(n)
    # hv1: in_port from its MAC and MAC lookup of a5, and its network's two
    # flood flows now also deliver to a5, plus a5's port security (it has no
    # security group: open in both directions); hv2 and hv3: one flow each,
    # a5's MAC -> hv1. And on each, the switch's mark (flows/reconcile.py).
    security = len(compile_port_security(SecuredPort("a5", 5, _mac(5), ("10.0.0.5",)))) + 2
    assert per_node == {"hv1": 4 + security + 1, "hv2": 1 + 1, "hv3": 1 + 1}, sent
    for hv in ("hv2", "hv3"):
        after = l2.flows(hv)
        assert len(after) == len(before[hv]) + 1
        assert all(after[k] + 0.5 >= d for k, d in before[hv].items() if k[0] != reconcile.MARK_TABLE), \
            "a flow of %s was rewritten" % hv


def test_controller_sigkill_loses_no_packet_and_rewrites_no_flow(l2):
    before = {hv: l2.flows(hv) for hv in ("hv1", "hv2")}
    ping = l2.vms["a1"].start_ping("10.0.0.2", interval=0.05)
    # Traffic before, while dvn is away and after it is back, each counted
    # in requests (20 a second), not waited for on a clock.
    ping.wait_for(lambda p: p.reported() >= 20, what="20 pings before the kill")
    l2.dvn.kill(signal.SIGKILL)
    away = ping.reported()
    ping.wait_for(lambda p: p.reported() >= away + 20, what="20 pings while dvn is away")
    before_restart = {hv: resyncs(l2.dvn, hv) for hv in l2.hvs}
    l2.dvn.start()
    wait_resynced(l2.dvn, l2.api, l2.hvs, before_restart)
    back = ping.reported()
    ping.wait_for(lambda p: p.reported() >= back + 20, what="20 pings after dvn is back in sync")
    tx, rx = ping.stop()
    assert tx >= 60 and rx == tx, "lost %d of %d packets across the controller restart" % (tx - rx, tx)
    for hv in ("hv1", "hv2"):
        after = l2.flows(hv)
        assert set(after) == set(before[hv]), "flow set of %s changed" % hv
        reset = [k for k, d in after.items() if d + 0.5 < before[hv][k]]
        assert not reset, "flows re-added on %s: %s" % (hv, reset[:5])
    after_restart = l2.dvn.log().split("northbound store")[-1]
    changed = re.findall(r"in sync: \d+ flows, (\d+) changed", after_restart)
    assert len(changed) >= 3 and set(changed) == {"0"}, changed


def metrics(api):
    """GET /metrics, parsed by prometheus_client: {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families
    conn = api.connection(10)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer %s" % api.token})
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/plain"), (resp.status, body)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_vswitchd_restart_gets_its_flows_back(l2):
    hv = l2.hvs["hv2"]
    want = set(l2.flows("hv2"))
    before = metrics(l2.api)
    assert before[("dvn_switch_connected", (("node", "hv2"),))] == 1
    assert before[("dvn_switch_flows", (("node", "hv2"),))] == len(want)
    before_restart = {"hv2": resyncs(l2.dvn, "hv2")}
    hv.kill_vswitchd(signal.SIGKILL)
    # Its connections are not closed (the node's underlay goes through its
    # vswitchd, br-phy): it is seen gone by dvn's echo probes.
    wait_until(lambda: metrics(l2.api)[("dvn_switch_connected", (("node", "hv2"),))] == 0,
               timeout=PROBE_BOUND_S + 5, what="/metrics to show hv2's switch disconnected")
    assert metrics(l2.api)[("dvn_switch_connected", (("node", "hv1"),))] == 1
    hv.start_vswitchd()
    # (how fast: benchmarks/bench_policy.py)
    wait_resynced(l2.dvn, l2.api, ["hv2"], before_restart)
    assert set(l2.flows("hv2")) == want, "hv2's flows not all back once dvn said in sync"
    after = metrics(l2.api)
    assert after[("dvn_switch_connected", (("node", "hv2"),))] == 1
    assert after[("dvn_node_in_sync", (("node", "hv2"),))] == 1
    # The resync was measured, and so are the API calls (by route, not by id).
    resync = ("dvn_reconcile_seconds_count", (("kind", "resync"),))
    assert after[resync] > before[resync]
    assert after[("dvn_api_requests_total", (("method", "GET"), ("route", "/v1/nodes/{id}"), ("status", "200")))] > 0
    # A restarted vswitchd has no GENEVE TLV map: dvn put it back before the flows that use it.
    assert "0xfff1   0x1       8  tun_metadata0" in hv.ofctl("dump-tlv-map", "br-int")
    assert l2.vms["a1"].ping_ok("10.0.0.2")
