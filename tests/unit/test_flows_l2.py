"""The L2 compiler: plans, flows, the diff, the pipeline checks, a golden file."""

import os

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from flows import pipeline
from flows.flow import FlowError, FlowSet, diff, make_flow, match, output, PORT
from flows.l2 import (LocalPort, NetworkOnNode, RemotePort, compile_base, compile_network, compile_network_change,
                      compile_node, plan_network, plan_node)
from flows.model import Network, Port, Topology
from flows.render import render_flowset
from flows.walk import walk

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "l2_small.txt")


def small_topology():
    """3 nodes, 2 networks with the same CIDR, ports on every node."""
    networks = {"net-a": Network("net-a", "blue", "acme", 5001, ("10.0.0.0/24",)),
                "net-b": Network("net-b", "red", "umbrella", 5002, ("10.0.0.0/24",))}
    ports = {}
    bindings = {}
    specs = [("a1", "net-a", "hv1", 10), ("a2", "net-a", "hv2", 10), ("a3", "net-a", "hv3", 10),
             ("a4", "net-a", "hv1", 11), ("b1", "net-b", "hv1", 12), ("b2", "net-b", "hv2", 11)]
    for i, (name, net, node, ofport) in enumerate(specs, start=1):
        ports[name] = Port(name, name, networks[net].tenant, net, "02:00:00:00:00:%02x" % i,
                           ("10.0.0.%d" % i,), (), node)
        bindings[name] = (node, ofport)
    tunnels = {"hv1": {"hv2": 102, "hv3": 103}, "hv2": {"hv1": 101, "hv3": 103},
               "hv3": {"hv1": 101, "hv2": 102}}
    net_ports = {"net-a": {"a1", "a2", "a3", "a4"}, "net-b": {"b1", "b2"}}
    return Topology(networks, ports, bindings, tunnels, net_ports)


def test_golden_flows_of_a_small_topology():
    topo = small_topology()
    text = "".join("# node %s\n%s" % (n, render_flowset(compile_node(topo, n))) for n in ("hv1", "hv2", "hv3"))
    if os.environ.get("DVN_UPDATE_GOLDEN"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            f.write(text)
    with open(GOLDEN) as f:
        assert text == f.read()


def test_a_network_appears_only_on_nodes_that_host_it():
    topo = small_topology()
    assert set(plan_node(topo, "hv3")[1]) == {"net-a"}
    assert set(plan_node(topo, "hv1")[1]) == {"net-a", "net-b"}
    view = plan_network(topo, "net-b", "hv1")
    assert [p.port_id for p in view.local] == ["b1"]
    assert [(p.port_id, p.tunnel_ofport) for p in view.remote] == [("b2", 102)]
    assert view.flood_tunnels == (102,)  # hv3 hosts no port of net-b
    assert plan_network(topo, "net-b", "hv3") is None


def test_networks_with_the_same_cidr_share_no_flow_match():
    topo = small_topology()
    a = compile_network(plan_network(topo, "net-a", "hv1"))
    b = compile_network(plan_network(topo, "net-b", "hv1"))
    assert not set(a.keys()) & set(b.keys())
    for flow in b:
        items = dict((f, v) for f, v, _m in flow.match)
        assert items.get("metadata", 5002) == 5002 and items.get("tun_id", 5002) == 5002


def test_compiled_flows_respect_the_pipeline():
    topo = small_topology()
    for node in ("hv1", "hv2", "hv3"):
        pipeline.check(compile_node(topo, node))


def test_pipeline_violation_is_a_real_exception():
    backwards = make_flow("l2_lookup", 1, (), PORT, "x", goto="classify")
    with pytest.raises(pipeline.PipelineViolation):
        pipeline.check(FlowSet([backwards]))
    with pytest.raises(pipeline.PipelineViolation):
        pipeline.table_id("no_such_table")


def test_flowset_refuses_two_flows_with_one_identity():
    one = make_flow("out_deliver", 100, match(reg7=5), PORT, "x", actions=(output(5),))
    two = make_flow("out_deliver", 100, match(reg7=5), PORT, "x", actions=(output(6),))
    FlowSet([one, one])
    with pytest.raises(FlowError):
        FlowSet([one, two])


def test_diff_of_equal_sets_is_empty_and_diffs_compose():
    topo = small_topology()
    old = compile_node(topo, "hv1")
    assert not diff(old, old)
    # Move a2 from hv2 to hv3: on hv1, a2's flow now leads to hv3's tunnel,
    # and floods of net-a no longer go to hv2 (it hosts no port of net-a now).
    topo.bindings["a2"] = ("hv3", 10)
    new = compile_node(topo, "hv1")
    d = diff(old, new)
    assert d.add == [] and d.delete == []
    by_match = {dict((f, v) for f, v, _m in flow.match).get("eth_dst", "flood"): flow for flow in d.modify}
    assert set(by_match) == {"02:00:00:00:00:02", "flood"}
    assert by_match["02:00:00:00:00:02"].actions[-1] == ("output", 103)
    assert ("output", 102) not in by_match["flood"].actions
    assert ("output", 103) in by_match["flood"].actions


def test_diff_add_and_delete():
    topo = small_topology()
    old = compile_node(topo, "hv3")
    del topo.bindings["a3"]  # hv3's only port leaves: only the base flows remain
    new = compile_node(topo, "hv3")
    d = diff(old, new)
    assert not d.add and not d.modify
    assert {f.key for f in d.delete} == set(old.keys()) - set(new.keys())
    assert set(new.keys()) == set(compile_base(plan_node(topo, "hv3")[0]).keys())


def test_cookies_name_the_owner():
    from flows.flow import cookie_category, cookie_owner, owner_hash
    flows = compile_node(small_topology(), "hv1")
    owners = {(cookie_category(f.cookie), cookie_owner(f.cookie)) for f in flows}
    assert ("port", owner_hash("a1")) in owners
    assert ("network", owner_hash("net-a")) in owners
    assert ("node", owner_hash("hv2")) in owners
    assert ("pipeline", owner_hash("pipeline")) in owners


def test_every_flow_is_in_dvns_cookie_space_and_other_cookies_are_not():
    # Another os-ken app on br-int keeps its flows by using cookies outside
    # this space: dvn's resync reads (and so deletes) only flows inside it.
    from flows.flow import (DVN_COOKIE, DVN_COOKIE_MASK, GROUP, category_of, cookie_category, is_dvn_cookie,
                            owner_cookie)
    flows = compile_node(small_topology(), "hv1")
    assert all(f.cookie & DVN_COOKIE_MASK == DVN_COOKIE and is_dvn_cookie(f.cookie) for f in flows)
    assert {category_of(f.cookie) for f in flows} <= {1, 2, 3, 4, 5, 6}
    for other in (0, 0x1234, 0x7FFFFFFFFFFFFFFF):
        assert not is_dvn_cookie(other) and category_of(other) is None and cookie_category(other) == "unknown"
    cookie, mask = owner_cookie(GROUP, "g/r")
    assert is_dvn_cookie(cookie) and cookie_category(cookie) == "security group"
    assert cookie & ~mask == 0 and mask & DVN_COOKIE_MASK and mask & 0xFFFFFFFF == 0


def test_pipeline_doc_is_current():
    from flows.pipeline_doc import render
    with open(os.path.join(os.path.dirname(GOLDEN), "..", "..", "..", "docs", "pipeline.md")) as f:
        assert f.read() == render(), "run: python -m flows.pipeline_doc > docs/pipeline.md"


# ---- encryption: the IPsec mesh -------------------------------------------------------

SECURE = {"hv1": {"hv2": 202, "hv3": 203}, "hv2": {"hv1": 201, "hv3": 203}, "hv3": {"hv1": 201, "hv2": 202}}


def encrypted(*names, secure=SECURE):
    """small_topology with the IPsec mesh, and ``names`` ports marked encrypt."""
    topo = small_topology()
    ports = {k: p._replace(encrypt=k in names) for k, p in topo.ports.items()}
    return topo._replace(ports=ports, secure_tunnels=secure)


def sent(topo, node, in_port, src, dst, eth_dst):
    flows = compile_node(topo, node)
    return walk(flows, {"in_port": in_port, "eth_src": src, "eth_dst": eth_dst, "eth_type": 0x0800,
                        "ipv4_src": "10.0.0.9", "ipv4_dst": dst})


def test_an_encrypted_ports_traffic_leaves_only_through_the_ipsec_mesh():
    topo = encrypted("a4")                                   # a4: hv1, ofport 11
    a2 = topo.ports["a2"].mac                                # a2: hv2 (plain 102, IPsec 202)
    assert sent(topo, "hv1", 11, topo.ports["a4"].mac, "10.0.0.2", a2) == [(202, 5001)]
    assert sent(topo, "hv1", 10, topo.ports["a1"].mac, "10.0.0.2", a2) == [(102, 5001)]   # a1 is not
    # A broadcast from a4 reaches the other nodes only through the IPsec mesh.
    out = sent(topo, "hv1", 11, topo.ports["a4"].mac, "10.0.0.255", "ff:ff:ff:ff:ff:ff")
    assert sorted(out) == [(10, None), (202, 5001), (203, 5001)]
    out = sent(topo, "hv1", 10, topo.ports["a1"].mac, "10.0.0.255", "ff:ff:ff:ff:ff:ff")
    assert sorted(out) == [(11, None), (102, 5001), (103, 5001)]


def test_traffic_to_an_encrypted_port_crosses_the_ipsec_mesh_and_not_the_plain_one():
    topo = encrypted("a2")
    a2 = topo.ports["a2"].mac
    assert sent(topo, "hv1", 10, topo.ports["a1"].mac, "10.0.0.2", a2) == [(202, 5001)]
    # Broadcasts reach a2's node through the IPsec mesh, the others' as before.
    out = sent(topo, "hv1", 10, topo.ports["a1"].mac, "10.0.0.255", "ff:ff:ff:ff:ff:ff")
    assert sorted(out) == [(11, None), (103, 5001), (202, 5001)]
    # On a2's node: from the IPsec mesh it is delivered, from the plain mesh never.
    flows = compile_node(topo, "hv2")
    pkt = {"eth_src": topo.ports["a1"].mac, "eth_dst": a2, "eth_type": 0x0800, "tun_id": 5001}
    assert walk(flows, dict(pkt, in_port=201)) == [(10, 5001)]   # (the walk shows the tun_id it came with)
    assert walk(flows, dict(pkt, in_port=101)) == []
    broadcast = dict(pkt, eth_dst="ff:ff:ff:ff:ff:ff")
    assert walk(flows, dict(broadcast, in_port=201)) == [(10, 5001)]
    assert walk(flows, dict(broadcast, in_port=101)) == []


def test_without_its_ipsec_tunnel_encrypted_traffic_is_dropped_not_sent_in_clear():
    topo = encrypted("a4", secure={"hv1": {"hv3": 203}})     # no IPsec tunnel to hv2 yet
    a2 = topo.ports["a2"].mac
    assert sent(topo, "hv1", 11, topo.ports["a4"].mac, "10.0.0.2", a2) == []
    out = sent(topo, "hv1", 11, topo.ports["a4"].mac, "10.0.0.255", "ff:ff:ff:ff:ff:ff")
    assert sorted(out) == [(10, None), (203, 5001)]          # hv2 gets nothing, hv3 through IPsec
    assert sent(topo, "hv1", 10, topo.ports["a1"].mac, "10.0.0.2", a2) == [(102, 5001)]   # others unchanged


def test_traffic_between_two_groups_crosses_the_ipsec_mesh_and_no_other():
    from flows.acl import identity
    topo = encrypted()
    ports = dict(topo.ports, a4=topo.ports["a4"]._replace(security_groups=("A",)),
                 a2=topo.ports["a2"]._replace(security_groups=("B",)))
    topo = topo._replace(ports=ports, encrypt_pairs=frozenset({("A", "B")}))
    a2 = topo.ports["a2"].mac
    assert sent(topo, "hv1", 11, topo.ports["a4"].mac, "10.0.0.2", a2) == [(202, 5001)]   # A -> B
    assert sent(topo, "hv1", 10, topo.ports["a1"].mac, "10.0.0.2", a2) == [(102, 5001)]   # a1 is in neither
    # On a2's node: an A member's packet from the plain mesh is dropped, others pass.
    flows = compile_node(topo, "hv2")
    pkt = {"eth_src": topo.ports["a4"].mac, "eth_dst": a2, "eth_type": 0x0800, "tun_id": 5001}
    assert walk(flows, dict(pkt, in_port=101, tun_metadata0=identity(("A",)))) == []
    assert walk(flows, dict(pkt, in_port=201, tun_metadata0=identity(("A",)))) == [(10, 5001)]
    assert walk(flows, dict(pkt, in_port=101, tun_metadata0=identity(()))) == [(10, 5001)]
    # And back: B -> A is encrypted too.
    a4 = topo.ports["a4"].mac
    assert sent(topo, "hv2", 10, a2, "10.0.0.4", a4) == [(201, 5001)]


# The IPsec mesh only where it is needed: every IPsec tunnel the compiler
# sends a packet into joins a pair secure_pairs names.
@settings(max_examples=80, deadline=None)
@given(encrypt=st.sets(st.sampled_from(["a1", "a2", "a3", "a4", "b1", "b2"])),
       groups=st.dictionaries(st.sampled_from(["a1", "a2", "a3", "a4", "b1", "b2"]), st.sampled_from(["A", "B", "C"])),
       paired=st.booleans())
def test_the_compiler_uses_no_ipsec_tunnel_of_a_pair_that_secure_pairs_leaves_out(encrypt, groups, paired):
    from flows.l2 import secure_pairs
    topo = encrypted(*encrypt)
    ports = {k: p._replace(security_groups=(groups[k],) if k in groups else ()) for k, p in topo.ports.items()}
    topo = topo._replace(ports=ports, encrypt_pairs=frozenset({("A", "B")}) if paired else frozenset())
    pairs = secure_pairs(topo)
    peer_of = {node: {ofport: peer for peer, ofport in peers.items()} for node, peers in SECURE.items()}
    for node in SECURE:
        for flow in compile_node(topo, node):
            for ofport in _outputs(flow.actions) & set(peer_of[node]):
                assert tuple(sorted((node, peer_of[node][ofport]))) in pairs, (node, flow)
    if not encrypt and not paired:
        assert pairs == set()


def _outputs(actions):
    out = set()
    for a in actions:
        if a[0] == "output":
            out.add(a[1])
        elif a[0] == "clone":
            out |= _outputs(a[1])
    return out


def test_no_encryption_no_ipsec_pairs_and_one_encrypted_port_pairs_its_node_with_its_networks_hosts():
    from flows.l2 import secure_pairs
    assert secure_pairs(encrypted()) == set()
    assert secure_pairs(encrypted("a2")) == {("hv1", "hv2"), ("hv2", "hv3")}   # net-a: hv1, hv2, hv3
    assert secure_pairs(encrypted("b2")) == {("hv1", "hv2")}                   # net-b: hv1, hv2


def test_no_compiled_flow_is_in_the_table_of_the_switchs_mark():
    # The mark (flows/reconcile.py) is the one flow there: a compiled flow at
    # its identity would be taken for it.
    assert all(f.table != "mark" for hv in ("hv1", "hv2", "hv3") for f in compile_node(small_topology(), hv))


# ---- a network's flows from its last ones, when only remote ports changed -------------

def _remote(i, encrypt):
    return RemotePort("r%d" % i, "02:00:00:00:01:%02x" % i, 100 + i % 3, (200 + i % 3) if i % 2 else 0, encrypt)


@st.composite
def network_views(draw):
    local = tuple(sorted(LocalPort("l%d" % i, "02:00:00:00:00:%02x" % i, i, draw(st.booleans()))
                         for i in draw(st.sets(st.integers(1, 4), min_size=1))))
    remote = tuple(sorted(_remote(i, draw(st.booleans())) for i in draw(st.sets(st.integers(1, 12)))))
    flood = tuple(sorted(draw(st.sets(st.sampled_from([100, 101, 102])))))
    return NetworkOnNode("net", 7, local, remote, flood, (), ())


@settings(max_examples=200, deadline=None)
@given(old=network_views(), new=network_views(), only_remote=st.booleans())
def test_a_change_of_remote_ports_alone_compiles_to_what_a_whole_compile_gives(old, new, only_remote):
    if only_remote:
        new = old._replace(remote=new.remote)
    got = compile_network_change(old, compile_network(old), new)
    if only_remote:
        assert got is not None
    if got is not None:
        assert got == compile_network(new)
    if old._replace(remote=()) != new._replace(remote=()):
        assert got is None
