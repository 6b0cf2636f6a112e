"""The load balancer's compiler: plans, groups, walks (a real vswitchd's word on them:
tests/lab/test_flows_ofwire.py)."""

import collections

import pytest

from flows import acl, l2, lb, ofwire
from flows.flow import CT_DNAT, CT_EST, CT_NEW, CT_TRK, LB, category_of, cookie_category
from flows.model import LoadBalancer, Member, Monitor
from flows.render import render_flow, render_group
from flows.walk import walk
from tests.unit.test_flows_l2 import small_topology

VIP = "10.0.0.100"


def topology(members=None, **kw):
    """small_topology (a1 on hv1 ofport 10, a2 on hv2, a3 on hv3, a4 on hv1 ofport 11)
    with a TCP VIP in net-a."""
    topo = small_topology()
    if members is None:
        members = (Member("m1", "10.0.0.2", 8080, 1), Member("m2", "10.0.0.3", 8080, 1),
                   Member("m3", "10.0.0.4", 8080, 2))
    vip = LoadBalancer("lb1", "acme", "net-a", VIP, kw.get("protocol", "tcp"), 80, 7, tuple(members),
                       kw.get("affinity", 0), kw.get("monitor"))
    return topo._replace(lbs={"lb1": vip}, net_lbs={"net-a": {"lb1"}})


def node_flows(topo, node):
    view = lb.plan_lb(topo, "lb1", node)
    acl_view = acl.plan_acl(topo, node)
    flows = l2.compile_node(topo, node).union(acl.compile_ports(acl_view.ports, tracked=True),
                                                lb.compile_lb(view))
    return flows, lb.compile_groups(view)


def test_weights_become_equal_buckets_in_proportion():
    view = lb.plan_lb(topology(), "lb1", "hv1")
    group = lb.compile_groups(view)[7]
    per_member = collections.Counter(b.actions[0][2] & 0xFFFF for b in group.buckets)
    slots = lb.slots(topology().lbs["lb1"].members)
    assert sorted(per_member[slots[m]] for m in ("m1", "m2", "m3")) == [1, 1, 2]
    assert {b.weight for b in group.buckets} == {1}
    assert lb.bucket_counts([Member("a", "x", 1, 256), Member("b", "y", 1, 128)]) == {"a": 2, "b": 1}


def test_a_member_change_leaves_the_other_buckets_alone():
    before = lb.compile_groups(lb.plan_lb(topology(), "lb1", "hv1"))[7]
    more = topology().lbs["lb1"].members + (Member("m4", "10.0.0.1", 8080, 1),)
    after = lb.compile_groups(lb.plan_lb(topology(more), "lb1", "hv1"))[7]
    assert set(before.buckets) < set(after.buckets)
    assert len(ofwire.group_change(before, after)) == 1  # one insert, nothing removed


def test_offline_disabled_and_portless_members_get_no_bucket():
    members = (Member("m1", "10.0.0.2", 8080, 1, status="OFFLINE"), Member("m2", "10.0.0.3", 8080, 1, False),
               Member("m3", "10.0.0.99", 8080, 1), Member("m4", "10.0.0.4", 8080, 0))
    view = lb.plan_lb(topology(members), "lb1", "hv1")
    assert lb.compile_groups(view) == {}
    flows, _ = node_flows(topology(members), "hv1")
    vip_flow = [f for f in flows if f.table == "vip_lb" and f.priority == lb.P_VIP]
    assert [a[0] for a in vip_flow[0].actions] == ["meter", "controller"]  # rejected, not black-holed


def test_only_nodes_of_the_network_get_the_vip():
    topo = topology()
    assert lb.plan_lb(topo, "lb1", "hv3") is not None
    topo = topo._replace(net_lbs={"net-b": {"lb1"}}, lbs={"lb1": topo.lbs["lb1"]._replace(network_id="net-b")})
    assert lb.plan_lb(topo, "lb1", "hv3") is None  # hv3 hosts no port of net-b


def test_a_client_reaches_the_member_the_group_picks():
    topo = topology()
    flows, groups = node_flows(topo, "hv1")
    pkt = {"in_port": 10, "eth_src": "02:00:00:00:00:01", "eth_dst": lb.vip_mac(5001), "eth_type": 0x0800,
           "ipv4_src": "10.0.0.1", "ipv4_dst": VIP, "ip_proto": 6, "tcp_src": 40000, "tcp_dst": 80}
    slots = lb.slots(topo.lbs["lb1"].members)

    def pick(slot):
        return lambda g: next(b for b in g.buckets if b.actions[0][2] & 0xFFFF == slot)

    # m3 (10.0.0.4) is a4, on this node (ofport 11); m1 (10.0.0.2) is a2 on hv2 (tunnel 102).
    assert walk(flows, dict(pkt), groups=groups, pick=pick(slots["m3"])) == [(11, None)]
    assert walk(flows, dict(pkt), groups=groups, pick=pick(slots["m1"])) == [(102, 5001)]


def test_arp_for_the_vip_is_answered_with_the_vip_mac():
    flows, groups = node_flows(topology(), "hv1")
    pkt = {"in_port": 10, "eth_src": "02:00:00:00:00:01", "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806,
           "arp_op": 1, "arp_spa": "10.0.0.1", "arp_sha": "02:00:00:00:00:01", "arp_tpa": VIP}
    probe = dict(pkt)
    assert walk(flows, probe) == [(10, None)]


def test_hairpin_is_snated_to_the_vip():
    topo = topology()
    flows, _ = node_flows(topo, "hv1")
    hairpin = [f for f in flows if f.table == "lb_nat" and f.priority == lb.P_HAIRPIN]
    assert len(hairpin) == 1  # a4 (10.0.0.4) is the only member on hv1
    text = render_flow(hairpin[0])
    assert "nw_src=10.0.0.4,nw_dst=10.0.0.4" in text
    assert "nat(src=10.0.0.100)" in text and "zone=%d" % lb.HAIRPIN_ZONE in text
    assert "ct_nw_dst=10.0.0.100" in text   # the VIP the member reached
    m = dict((f, v) for f, v, _ in hairpin[0].match)
    assert m["ct_state"] == CT_TRK | CT_DNAT
    assert all(cookie_category(f.cookie) in ("load balancer", "network") for f in lb.compile_lb(
        lb.plan_lb(topo, "lb1", "hv1")))


def test_affinity_hashes_the_client_address_only():
    view = lb.plan_lb(topology(affinity=600), "lb1", "hv1")
    assert lb.compile_groups(view)[7].fields == ("ipv4_src", "ipv4_dst")
    udp = lb.compile_groups(lb.plan_lb(topology(protocol="udp"), "lb1", "hv1"))[7]
    assert udp.fields[-2:] == ("udp_src", "udp_dst")


def test_probe_replies_go_to_dvn_only_on_the_members_node():
    mon = Monitor("TCP", 1, 1, 1, 1)
    f1, _ = node_flows(topology(monitor=mon), "hv1")
    f2, _ = node_flows(topology(monitor=mon), "hv2")
    probes1 = [f for f in f1 if f.table == "in_port_security" and f.priority == lb.P_PROBE]
    probes2 = [f for f in f2 if f.table == "in_port_security" and f.priority == lb.P_PROBE]
    assert len(probes1) == 1 and len(probes2) == 1  # m3 (a4) on hv1, m1 (a2) on hv2
    assert "nw_src=10.0.0.4" in render_flow(probes1[0]) and "nw_src=10.0.0.2" in render_flow(probes2[0])


def test_big_pools_fit_group_messages():
    members = tuple(Member("m%04d" % i, "10.0.0.%d" % (1 + i % 4), 1000 + i, 1) for i in range(1000))
    view = lb.plan_lb(topology(members), "lb1", "hv1")
    group = lb.compile_groups(view)[7]
    assert len(group.buckets) == 1000
    msgs = ofwire.group_install(group)
    assert all(len(m) <= 65535 for m in msgs)
    desc = ofwire.group_desc_of(group)
    assert 16 + sum(map(len, desc.buckets)) + len(desc.properties) <= 65535  # the switch can describe it back
    assert lb.bucket_counts([Member("m%d" % i, "x", 1, 1 + i % 256) for i in range(1000)]) and \
        sum(lb.bucket_counts([Member("m%d" % i, "x", 1, 1 + i % 256) for i in range(1000)]).values()) \
        <= lb.MAX_BUCKETS


def test_a_group_read_back_with_its_buckets_in_another_order_is_the_same_group():
    # A switch keeps inserted buckets at the end; a select group's order chooses nothing.
    members = tuple(Member("m%d" % i, "10.0.0.%d" % (1 + i % 4), 1000 + i, 1) for i in range(20))
    group = lb.compile_groups(lb.plan_lb(topology(members), "lb1", "hv1"))[7]
    reordered = ofwire.group_desc_of(group._replace(buckets=group.buckets[::-1]))
    assert reordered == ofwire.group_desc_of(group)
    # What the switch's bucket counters follow: its own order.
    assert ofwire.in_switch_order(group, reordered).buckets == group.buckets[::-1]
    assert ofwire.group_desc_of(group._replace(buckets=group.buckets[1:])) != ofwire.group_desc_of(group)
    assert ofwire.group_desc_of(group._replace(fields=("ipv4_src",))) != ofwire.group_desc_of(group)


def test_new_flag_is_what_the_vip_flow_needs():
    flows, _ = node_flows(topology(), "hv1")
    vip_flow = next(f for f in flows if f.table == "vip_lb" and f.priority == lb.P_VIP)
    m = dict((f, v) for f, v, _ in vip_flow.match)
    assert m["ct_state"] == CT_TRK | CT_NEW and cookie_category(vip_flow.cookie) == "load balancer"
    assert category_of(vip_flow.cookie) == LB


def test_each_load_balancer_is_compiled_alone_and_the_flows_vips_share_agree():
    # One unit per load balancer: a change to one VIP never recompiles the
    # others. What two VIPs of one network both need is the same flow.
    topo = topology()
    other = topo.lbs["lb1"]._replace(id="lb2", port=443, group_id=8)
    topo = topo._replace(lbs={"lb1": topo.lbs["lb1"], "lb2": other}, net_lbs={"net-a": {"lb1", "lb2"}})
    one = {f.key: f for f in lb.compile_lb(lb.plan_lb(topo, "lb1", "hv1"))}
    two = {f.key: f for f in lb.compile_lb(lb.plan_lb(topo, "lb2", "hv1"))}
    shared = set(one) & set(two)
    assert {k[0] for k in shared} >= {"vip_lb", "out_acl"}  # ARP for the VIP, member MACs, hairpin
    assert all(one[k] == two[k] for k in shared)
    assert set(lb.compile_groups(lb.plan_lb(topo, "lb2", "hv1"))) == {8}
    assert lb.plan_lb(topo, "no-such-lb", "hv1") is None


def test_vips_that_share_a_member_and_a_network_merge_without_conflict():
    # The flows both want at one identity (member MACs, hairpin on the way
    # back) agree; the hairpin itself is one flow per VIP (by the
    # connection's original destination), each SNATing to its own VIP.
    topo = topology()
    other = topo.lbs["lb1"]._replace(id="lb2", vip="10.0.0.101", group_id=8)
    topo = topo._replace(lbs={"lb1": topo.lbs["lb1"], "lb2": other}, net_lbs={"net-a": {"lb1", "lb2"}})
    contrib = collections.defaultdict(list)
    for lb_id in ("lb1", "lb2"):
        for flow in lb.compile_lb(lb.plan_lb(topo, lb_id, "hv1")):
            contrib[flow.key].append(flow)
    merged = [acl.merge_all(same) for same in contrib.values()]   # no MergeConflict
    hairpins = {acl.match_value(f.match, "ct_nw_dst"): render_flow(f)
                for f in merged if f.table == "lb_nat" and f.priority == lb.P_HAIRPIN}
    assert set(hairpins) == {"10.0.0.100", "10.0.0.101"}
    assert all("nat(src=%s)" % vip in text for vip, text in hairpins.items())


def test_a_member_whose_port_is_plugged_in_nowhere_gets_no_bucket():
    topo = topology()
    topo = topo._replace(bindings={k: v for k, v in topo.bindings.items() if k != "a3"})  # 10.0.0.3 (m2)
    group = lb.compile_groups(lb.plan_lb(topo, "lb1", "hv1"))[7]
    slots = lb.slots(topo.lbs["lb1"].members)
    assert slots["m2"] not in {b.actions[0][2] & 0xFFFF for b in group.buckets}
    assert len(group.buckets) == 3  # m1 (1) and m3 (2)


def test_a_packet_for_a_member_that_left_is_dropped_not_flooded():
    # An established connection's packet, NATed to a member that is no longer
    # in the pool, still carries the VIP MAC: no member flow takes it.
    flows, groups = node_flows(topology(members=(Member("m1", "10.0.0.2", 8080, 1),)), "hv1")
    pkt = {"in_port": 10, "eth_src": "02:00:00:00:00:01", "eth_dst": lb.vip_mac(5001), "eth_type": 0x0800,
           "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.3", "ip_proto": 6, "tcp_src": 40000, "tcp_dst": 8080}
    est = lambda zone, p: CT_TRK | CT_EST  # noqa: E731
    assert walk(flows, dict(pkt), groups=groups, conntrack=est) == []
    # The member still in the pool gets its MAC and is delivered.
    assert walk(flows, dict(pkt, ipv4_dst="10.0.0.2"), groups=groups, conntrack=est) == [(102, 5001)]


def test_bucket_counts_end_for_any_pool():
    many = [Member("m%d" % i, "x", 1, 1 + i % 7) for i in range(lb.MAX_BUCKETS + 1)]
    assert set(lb.bucket_counts(many).values()) == {1}
    counts = lb.bucket_counts(many[:900])
    assert sum(counts.values()) <= lb.MAX_BUCKETS and min(counts.values()) >= 1


def test_a_member_on_a_node_whose_session_is_not_back_yet_keeps_its_buckets():
    # After a controller restart another node's ofports come back with its
    # session: until then its ports are known by the store alone.
    topo = topology()
    before = lb.compile_groups(lb.plan_lb(topo, "lb1", "hv1"))[7]
    topo = topo._replace(bindings=dict(topo.bindings, a2=("hv2", None), a3=("hv3", None)))
    assert lb.compile_groups(lb.plan_lb(topo, "lb1", "hv1"))[7] == before


def test_dvns_group_ids_are_a_range_other_apps_stay_out_of():
    assert lb.is_dvn_group(1) and lb.is_dvn_group(lb.MAX_GROUP_ID) and lb.is_dvn_group(lb.GROUP_ID_MAX)
    assert not lb.is_dvn_group(0) and not lb.is_dvn_group(lb.GROUP_ID_MAX + 1)
    assert lb.MAX_GROUP_ID <= lb.GROUP_ID_MAX < 0xFFFFFF00  # below OFPG_MAX: real group ids
