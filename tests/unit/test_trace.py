"""dvn trace over compiled flows (controller.trace): the walk across two
nodes says, in dvn's terms, which rule of which group let a packet in or
where it was dropped, which member a VIP gave it, and which tunnel it took
with which identity. (Against real packets: tests/lab/test_firewall_lab.py.)"""

import pytest

from benchmarks.bench_scale_compile import compile_node, merged
from controller import trace
from flows import acl
from flows.flow import owner_hash
from flows.model import LoadBalancer, Member
from tests.unit.test_flows_l2 import small_topology

VIP = "10.0.0.100"
SSH = acl.Rule("r-ssh", "ingress", protocol=acl.TCP, port_min=22, port_max=22)
OUT = acl.Rule("r-out", "egress")
WEB = acl.Rule("r-web", "ingress", protocol=acl.TCP, port_min=8080, port_max=8080)


def fleet(topo):
    """The Fleet a controller would give for ``topo`` (its flows compiled for every node)."""
    ports = {pid: p._replace(node=topo.bindings[pid][0]) for pid, p in topo.ports.items()}
    flows, groups = {}, {}
    for node in topo.tunnels:
        units, groups[node] = compile_node(topo, node)
        flows[node] = merged(units)
    owners = {owner_hash(pid): "port " + pid for pid in ports}
    owners.update({owner_hash(nid): "network " + nid for nid in topo.networks})
    rule_index = {owner_hash("%s/%s" % (gid, r.id)): (gid, r) for gid, rules in topo.groups.items() for r in rules}
    return trace.Fleet(
        ports=ports, networks=topo.networks, port_node={p: b[0] for p, b in topo.bindings.items()},
        ofports={n: {p: b[1] for p, b in topo.bindings.items() if b[0] == n} for n in topo.tunnels},
        tunnels={n: {"plain": dict(peers), "ipsec": {}} for n, peers in topo.tunnels.items()},
        flows=flows, groups=groups, lbs=topo.lbs, owners=owners, rule_index=rule_index,
        lb_owner={owner_hash(lb_id): lb_id for lb_id in topo.lbs},
        group_names={gid: "group-" + gid for gid in topo.groups})


@pytest.fixture(scope="module")
def lab():
    """a1 (hv1, in g-client) and a2, a3 (hv2, hv3; in g-ssh); a VIP with members a2 and a3 on 8080."""
    topo = small_topology()
    ports = dict(topo.ports)
    ports["a1"] = ports["a1"]._replace(security_groups=("g-client",), named_groups=("g-client",))
    for pid in ("a2", "a3"):
        ports[pid] = ports[pid]._replace(security_groups=("g-ssh",), named_groups=("g-ssh",))
    members = (Member("m2", "10.0.0.2", 8080), Member("m3", "10.0.0.3", 8080))
    vip = LoadBalancer("lb1", "acme", "net-a", VIP, "tcp", 80, 7, members)
    topo = topo._replace(ports=ports, groups={"g-client": (OUT,), "g-ssh": (SSH, WEB)},
                         lbs={"lb1": vip}, net_lbs={"net-a": {"lb1"}})
    return fleet(topo)


def test_an_allowed_packet_names_the_rule_the_tunnel_and_the_identity(lab):
    out = trace.trace(lab, trace.Request("a1", "10.0.0.2", "tcp", 22))
    assert out["verdict"] == "delivered" and out["delivered"] == [{"node": "hv2", "port": "a2", "port_id": "a2"}]
    ingress = [d for d in out["decisions"] if d["node"] == "hv2"]
    assert [(d["table"], d["by"]["security_group"], d["by"]["rule"], d["decision"]) for d in ingress] == [
        ("out_acl", "group-g-ssh", "r-ssh", "allow")]
    egress = [d for d in out["decisions"] if d["node"] == "hv1"]
    assert [(d["table"], d["by"]["rule"]) for d in egress] == [("in_acl", "r-out")]
    hop = [s["tunnel"] for s in out["path"] if "tunnel" in s]
    assert len(hop) == 1 and hop[0]["to"] == "hv2" and hop[0]["mesh"] == "plain" and hop[0]["vni"] == 5001
    assert hop[0]["identity"] != 0     # a1's identity rides in the GENEVE option


def test_a_denied_packet_says_where_it_was_dropped(lab):
    out = trace.trace(lab, trace.Request("a1", "10.0.0.2", "tcp", 23))
    assert out["verdict"] == "dropped" and out["delivered"] == []
    assert out["dropped"]["node"] == "hv2" and out["dropped"]["table"] == "out_acl"
    assert not [d for d in out["decisions"] if d["node"] == "hv2"]   # no rule of g-ssh let it in


def test_a_load_balanced_connection_names_the_member(lab):
    for member, port, node in (("m2", "a2", "hv2"), ("m3", "a3", "hv3")):
        out = trace.trace(lab, trace.Request("a1", VIP, "tcp", 80, member=member))
        chosen = [s["member"] for s in out["path"] if "member" in s]
        assert chosen == [{"id": member, "address": "10.0.0.%s" % port[1], "port": 8080}]
        assert out["delivered"] == [{"node": node, "port": port, "port_id": port}], out
        assert [d["by"]["rule"] for d in out["decisions"] if d["node"] == node] == ["r-web"]


def test_a_reply_passes_where_a_new_connection_may_not(lab):
    # a2 -> a1: a1's groups let no new connection in (g-client has an egress rule only) ...
    assert trace.trace(lab, trace.Request("a2", "10.0.0.1", "tcp", 5555))["verdict"] == "dropped"
    # ... but the replies of a connection a1 opened to a2's port 22 pass, by what the rules committed.
    out = trace.trace(lab, trace.Request("a2", "10.0.0.1", "tcp", 22, established=True))
    assert out["verdict"] == "delivered" and out["packet"] == "10.0.0.2:22 -> 10.0.0.1:40000 tcp (a reply)"
    assert out["opened_by"]["verdict"] == "delivered"
    assert [d["by"]["rule"] for d in out["opened_by"]["decisions"]] == ["r-out", "r-ssh"]
    # A reply in a connection the firewall never let through (a1 -> a2:23) is dropped.
    assert trace.trace(lab, trace.Request("a2", "10.0.0.1", "tcp", 23, established=True))["verdict"] == "dropped"


@pytest.mark.parametrize("req, field", [
    (trace.Request("nope", "10.0.0.2"), "from_port"),
    (trace.Request("a1", "10.9.9.9"), "dest"),
    (trace.Request("a1", "not an ip"), "dest"),
    (trace.Request("a1", "10.0.0.2", "sctp", 1), "protocol"),
    (trace.Request("a1", "10.0.0.2", "tcp"), "port"),
])
def test_a_trace_that_cannot_be_made_names_the_field(lab, req, field):
    with pytest.raises(trace.TraceError) as err:
        trace.trace(lab, req)
    assert err.value.field == field
