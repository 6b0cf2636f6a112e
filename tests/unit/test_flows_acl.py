"""The firewall compiler: a walk through its flows gives the verdict that the
rules give when evaluated directly, for random rule sets and packets."""

import ipaddress

from hypothesis import given, settings, strategies as st

from flows import acl, pipeline
from flows.acl import (ICMP, IPV4, TCP, UDP, GroupOnNode, Rule, SecuredPort, compile_acl, compile_view, identity,
                       plan_acl, rule_mark, source_macs)
from flows.model import Network, Port, Topology
from flows.flow import CT_EST, CT_TRK, PORT, FlowSet, make_flow, match, output
from flows.l2 import LocalPort, NetworkOnNode, compile_network
from flows.walk import walk

DST = SecuredPort("dst", 10, "02:00:00:00:00:0a", ("10.0.0.10",), True, ("g",))
SRC = SecuredPort("src", 11, "02:00:00:00:00:0b", ("10.0.0.11",), True, ("g",))
DELIVER = [make_flow("out_deliver", 100, match(reg7=p.ofport), PORT, p.port_id, actions=(output(p.ofport),))
           for p in (DST, SRC)]
ADDRS = {"g": ("10.0.0.10", "10.0.0.11"), "other": ("10.0.1.5", "10.0.1.6", "10.0.1.7")}
# The identities of the groups' members (what their nodes put in the packets).
IDENTS = {"g": (0x1111, 0x2222), "other": (0x2222, 0x3333)}
SOURCES = ["10.0.0.11", "10.0.1.5", "10.0.1.7", "192.168.3.4", "172.16.0.1"]


def flows_for(rules):
    group = GroupOnNode("g", (10, 11), tuple(sorted(rules)))
    return FlowSet(list(compile_acl((DST, SRC), (group,), ADDRS, IDENTS)) + DELIVER)


def direct(rules, pkt):
    """The verdict of the rules themselves for a new ingress connection to DST."""
    best = None
    for r in rules:
        if r.direction != "ingress" or r.ethertype != IPV4:
            continue
        if r.protocol is not None and r.protocol != pkt["ip_proto"]:
            continue
        if r.protocol in (TCP, UDP) and r.port_min is not None:
            hi = r.port_max if r.port_max is not None else r.port_min
            if not r.port_min <= pkt["port"] <= hi:
                continue
        if r.protocol == ICMP and r.icmp_type is not None:
            if r.icmp_type != pkt["icmp_type"] or r.icmp_code not in (None, 0):
                continue  # the packets here all have ICMP code 0
        src = ipaddress.ip_address(pkt["src"])
        if r.remote_cidr is not None and src not in ipaddress.ip_network(r.remote_cidr):
            continue
        # A group rule trusts the identity the sender's node set, never the
        # address (which the packet may forge); no identity, no group.
        if r.remote_group is not None and pkt["ident"] not in IDENTS.get(r.remote_group, ()):
            continue
        key = (r.priority, r.action == "deny")
        if best is None or key > best[0]:
            best = (key, r.action)
    return best is not None and best[1] == "allow"


def to_dst(flows, pkt, state=None):
    fields = {"in_port": 1, "reg7": 10, "eth_type": IPV4, "ip_proto": pkt["ip_proto"], "ipv4_src": pkt["src"],
              "ipv4_dst": "10.0.0.10"}
    if pkt["ip_proto"] == TCP:
        fields["tcp_dst"] = pkt["port"]
    elif pkt["ip_proto"] == UDP:
        fields["udp_dst"] = pkt["port"]
    else:
        fields["icmpv4_type"] = pkt["icmp_type"]
        fields["icmpv4_code"] = 0
    if "mark" in pkt:
        fields["ct_mark"] = pkt["mark"]
    if pkt.get("ident") is not None:
        fields["xreg1"] = pkt["ident"]
    conntrack = (lambda zone, p: state) if state is not None else None
    return walk(flows, fields, start="out_acl", conntrack=conntrack)


rules_st = st.lists(st.builds(
    Rule,
    id=st.text("abcdef", min_size=1, max_size=4),
    direction=st.sampled_from(["ingress", "egress"]),
    ethertype=st.just(IPV4),
    protocol=st.sampled_from([None, TCP, UDP, ICMP]),
    port_min=st.sampled_from([None, 22, 80, 1000]),
    port_max=st.sampled_from([None, 22, 90, 2000]),
    icmp_type=st.sampled_from([None, 8, 0]),
    icmp_code=st.sampled_from([None, 0, 1]),
    remote_cidr=st.sampled_from([None, "0.0.0.0/0", "10.0.0.0/16", "192.168.0.0/16"]),
    remote_group=st.sampled_from([None, None, "g", "other"]),
    action=st.sampled_from(["allow", "allow", "deny"]),
    priority=st.sampled_from([100, 100, 200, 50]),
), max_size=6, unique_by=lambda r: r.id).map(
    lambda rs: [r._replace(port_max=None) if r.port_max is not None and r.port_min is not None
                and r.port_max < r.port_min else r for r in rs]).map(
    lambda rs: [r._replace(remote_cidr=None) if r.remote_group else r for r in rs])

packets_st = st.fixed_dictionaries({
    "ip_proto": st.sampled_from([TCP, UDP, ICMP]),
    "port": st.sampled_from([22, 80, 85, 90, 1500, 5000]),
    "icmp_type": st.sampled_from([0, 8]),
    "src": st.sampled_from(SOURCES),
    "ident": st.sampled_from([0x1111, 0x2222, 0x3333, 0x4444, None]),  # None: no option (not a dvn node)
})


@settings(max_examples=300, deadline=None)
@given(rules=rules_st, pkt=packets_st)
def test_new_connections_get_the_rules_verdict(rules, pkt):
    flows = flows_for(rules)
    pipeline.check(flows)
    delivered = to_dst(flows, pkt) == [(10, None)]
    assert delivered == direct(rules, pkt), (rules, pkt)


@settings(max_examples=100, deadline=None)
@given(rules=rules_st, pkt=packets_st)
def test_established_traffic_passes_while_the_rule_that_allowed_it_exists(rules, pkt):
    flows = flows_for(rules)
    for rule in rules:
        mark = rule_mark("g", rule.id)
        passed = to_dst(flows, dict(pkt, mark=mark), state=CT_TRK | CT_EST) == [(10, None)]
        assert passed == (rule.action == "allow"), rule
    # The connection of a rule that no longer exists (or never did) is cut.
    assert to_dst(flows, dict(pkt, mark=rule_mark("g", "gone")), state=CT_TRK | CT_EST) == []


def test_an_allowed_new_connection_is_committed_in_the_receivers_zone():
    flows = flows_for([Rule("ssh", "ingress", protocol=TCP, port_min=22, remote_cidr="192.168.0.0/16")])
    fields = {"in_port": 1, "reg7": 10, "eth_type": IPV4, "ip_proto": TCP, "ipv4_src": "192.168.1.1",
              "tcp_dst": 22}
    assert walk(flows, fields, start="out_acl") == [(10, None)]
    assert fields["commits"] == [(10, rule_mark("g", "ssh"))]


def classified(flows, *ports):
    """``flows`` with the ports' classify flows (l2.compile_network: where a
    packet came from, its identity, whether its MAC is one the port may use)
    and a way out of in_acl."""
    local = tuple(LocalPort(p.port_id, p.mac, p.ofport, False, identity(p.groups),
                            source_macs(p.mac, p.allowed_pairs) if p.port_security else ())
                  for p in ports)
    return FlowSet(list(flows) + [f for f in compile_network(NetworkOnNode("n", 1, local, (), ()))
                                  if f.table == "classify"] + [
        make_flow("in_acl", 0, (), PORT, "x", goto="vip_lb"),
        make_flow("vip_lb", 0, (), PORT, "x", actions=(output(99),))])


def test_port_security_drops_spoofed_sources():
    open_port = DST._replace(groups=())  # no security group: only port security applies
    flows = classified(compile_acl((open_port,), (), {}, {}), open_port)

    def sent(**f):
        return walk(flows, dict({"in_port": 10}, **f)) == [(99, None)]

    assert sent(eth_src=DST.mac, eth_type=IPV4, ipv4_src="10.0.0.10", ip_proto=TCP)
    assert not sent(eth_src="02:00:00:00:00:99", eth_type=IPV4, ipv4_src="10.0.0.10", ip_proto=TCP)
    assert not sent(eth_src=DST.mac, eth_type=IPV4, ipv4_src="10.0.0.99", ip_proto=TCP)
    assert sent(eth_src=DST.mac, eth_type=0x0806, arp_spa="10.0.0.10", arp_sha=DST.mac)
    assert not sent(eth_src=DST.mac, eth_type=0x0806, arp_spa="10.0.0.1", arp_sha=DST.mac)
    assert not sent(eth_src=DST.mac, eth_type=0x0806, arp_spa="10.0.0.10", arp_sha="02:00:00:00:00:99")
    # What comes from no address yet (shared flows: classify vouched for the MAC)
    dhcp = dict(eth_type=IPV4, ipv4_src="0.0.0.0", ip_proto=UDP, udp_dst=67)
    assert sent(eth_src=DST.mac, **dhcp)
    assert not sent(eth_src="02:00:00:00:00:99", **dhcp)
    assert sent(eth_src=DST.mac, eth_type=0x86DD, ipv6_src="fe80::a", ip_proto=TCP)
    assert not sent(eth_src="02:00:00:00:00:99", eth_type=0x86DD, ipv6_src="fe80::a", ip_proto=TCP)


def test_remote_group_rules_grow_with_the_sum_of_the_sets():
    members = tuple(range(100, 150))                      # 50 local members
    idents = {"web": tuple(range(1, 201))}                # 200 remote identities
    rule = Rule("http", "ingress", protocol=TCP, port_min=8000, port_max=8003, remote_group="web")
    flows = compile_acl((), (GroupOnNode("db", members, (rule,)),), {}, idents)
    # Three clauses: members, identities, and the service (tcp 8000-8003 is one masked match);
    # then the conj_id flow, and the 2 flows that let the rule's established and related
    # connections pass (one per direction)
    assert len(flows) == 50 + 200 + 1 + 1 + 2
    wide = rule._replace(port_min=8000, port_max=8010)     # 3 masked matches in the service clause
    assert len(compile_acl((), (GroupOnNode("db", members, (wide,)),), {}, idents)) == 50 + 200 + 3 + 1 + 2
    # An egress rule names its remote group by address (its identity is not known at the sender).
    out = Rule("out", "egress", protocol=TCP, remote_group="web")
    addrs = {"web": tuple("10.1.%d.%d" % (i // 200, i % 200 + 1) for i in range(200))}
    assert len(compile_acl((), (GroupOnNode("db", members, (out,)),), addrs, idents)) == 50 + 200 + 1 + 1 + 2


def test_rules_share_their_clauses_across_groups():
    """A port's membership clause is one flow per direction, however many
    rules of however many groups it has; a service and a remote group's
    identities are one flow each, whichever groups' rules name them."""
    idents = {"web": (7, 8)}
    rules = lambda g: (Rule(g + "http", "ingress", protocol=TCP, port_min=80, remote_group="web"),
                       Rule(g + "https", "ingress", protocol=TCP, port_min=443, remote_group="web"),
                       Rule(g + "ssh", "ingress", protocol=TCP, port_min=22, remote_cidr="192.168.0.0/16"))
    flows = compile_acl((), (GroupOnNode("a", (10, 11), rules("a")), GroupOnNode("b", (11, 12), rules("b"))),
                        {}, idents)
    clauses = [f for f in flows if f.actions and all(a[0] == "conjunction" for a in f.actions)]
    # members 10, 11, 12; identities 7, 8; services tcp/80, tcp/443, tcp/22; the ssh cidr
    assert len(clauses) == 3 + 2 + 3 + 1
    member_11 = next(f for f in clauses if ("reg7", 11, None) in f.match)
    assert len(member_11.actions) == 6          # clause 1 of all six rules
    # and per rule: its conj_id flow and 2 state flows
    assert len(flows) == len(clauses) + 6 * 3


def _topology_with_web_tier(n):
    """50 database ports on hv1 (group db: ingress tcp/5432 from web), n web ports on hv2."""
    net = Network("n", "n", "acme", 7, ("10.0.0.0/16",))
    ports, bindings = {}, {}
    for i in range(50 + n):
        pid, node, group = ("db%d" % i, "hv1", "db") if i < 50 else ("web%d" % i, "hv2", "web")
        ports[pid] = Port(pid, pid, "acme", "n", "02:00:00:00:%02x:%02x" % (i >> 8, i & 255),
                          ("10.0.%d.%d" % (i >> 8, i & 255 or 1),), (), node, (group,), True, (group,))
        bindings[pid] = (node, 10 + i)
    rule = Rule("pg", "ingress", protocol=TCP, port_min=5432, remote_group="web")
    return Topology({"n": net}, ports, bindings, {}, {"n": set(ports)}, groups={"db": (rule,), "web": ()})


def test_a_remote_group_costs_a_flow_per_identity_not_per_address():
    # 200 remote web servers in the same groups share one identity: the
    # rule's remote side is 1 flow, where addresses would take 200; with the
    # 50 members, the service and the conj_id flow, 53 flows.
    topo = _topology_with_web_tier(200)
    view = plan_acl(topo, "hv1")
    assert dict(view.idents)["web"] == (identity(("web",)),)
    flows = compile_view(view)
    rule_flows = [f for f in flows if f.table == "out_acl" and 1000 <= f.priority < acl.P_STATE and f.match != ()]
    assert len([f for f in rule_flows if "xreg1" in {k for k, _v, _m in f.match}]) == 1
    assert len(rule_flows) == 50 + 1 + 1 + 1


def test_neighbour_discovery_spoofing_is_dropped():
    port = SecuredPort("v6", 20, "02:00:00:00:00:14", ("fd00::20",), True, ())
    flows = classified(compile_acl((port,), (), {}, {}), port)

    def sent(**f):
        base = {"in_port": 20, "eth_src": port.mac, "eth_type": 0x86DD, "ip_proto": 58, "ipv6_src": "fe80::14"}
        return walk(flows, dict(base, **f)) == [(99, None)]

    assert sent(icmpv6_type=136, nd_target="fd00::20")          # its own address
    assert sent(icmpv6_type=136, nd_target="fe80::14")          # its link-local address
    assert not sent(icmpv6_type=136, nd_target="fd00::1")       # someone else's: spoofing
    assert sent(icmpv6_type=135, nd_target="fd00::1", nd_sll=port.mac)
    assert not sent(icmpv6_type=135, nd_target="fd00::1", nd_sll="02:00:00:00:00:99")
    assert sent(icmpv6_type=135, nd_target="fd00::20", nd_sll="00:00:00:00:00:00")  # DAD
