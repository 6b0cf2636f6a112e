"""The wire encoding against a real ovs-vswitchd.

Flows compiled for a small topology are sent in one bundle over the bridge's
management socket; what OVS then prints (ovs-ofctl) must be what render.py
says, and what OVS reports back in a flow-desc reply must decode to the same
keys and cookies the reconciler compares.
"""

import re
import socket
import struct

import pytest

from flows import lb, ofwire, pipeline, reconcile
from flows.flow import (DVN_COOKIE, DVN_COOKIE_MASK, CT_EST, CT_INV, CT_TRK, FlowSet, PORT, conjunction, ct, ct_clear, make_flow,
                        match, output)
from flows.l2 import compile_node
from flows.model import Member, Monitor
from flows.render import render_flow, render_group
from tests.ovs1 import SingleOvs
from tests.unit.test_flows_l2 import small_topology
from tests.unit.test_flows_lb import node_flows, topology

pytestmark = pytest.mark.lab


class RawSwitch:
    """A bare OpenFlow 1.5 connection to a bridge's management socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.sock.sendall(struct.pack("!BBHI", 6, 0, 8, 1))  # HELLO
        self.xid = 100
        self.recv()  # the switch's HELLO

    def recv(self):
        head = self._exact(8)
        _v, mtype, length, xid = struct.unpack("!BBHI", head)
        return mtype, xid, head + self._exact(length - 8)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "switch closed the connection"
            buf += chunk
        return buf

    def next_xid(self):
        self.xid += 1
        return self.xid

    def until(self, xid):
        """Messages up to the reply to ``xid``: (errors, [replies])."""
        errors, replies = [], []
        while True:
            mtype, rxid, msg = self.recv()
            if mtype == 1:
                errors.append((rxid, struct.unpack_from("!HH", msg, 8)))
                if rxid == xid:
                    return errors, replies
            elif rxid == xid:
                replies.append(msg)
                if mtype != 19 or not struct.unpack_from("!H", msg, 10)[0] & 1:
                    return errors, replies

    def bundle(self, inners, commit=True):
        bid = 7
        x = self.next_xid()
        self.sock.sendall(ofwire.bundle_open(bid, x))
        assert self.until(x)[0] == []
        for inner in inners:
            self.sock.sendall(ofwire.bundle_add(bid, inner, self.next_xid()))
        x = self.next_xid()
        self.sock.sendall(ofwire.barrier_request(x))
        errors, _ = self.until(x)
        x = self.next_xid()
        self.sock.sendall((ofwire.bundle_commit if commit and not errors else ofwire.bundle_discard)(bid, x))
        more, _ = self.until(x)
        return errors + more

    def checked(self, build):
        """Send ``build(xid)`` and a barrier; the errors the switch answered with."""
        x = self.next_xid()
        self.sock.sendall(build(x) + ofwire.barrier_request(x + 1))
        self.xid = x + 1
        return self.until(x + 1)[0]

    def read_groups(self):
        x = self.next_xid()
        self.sock.sendall(ofwire.group_desc_request(x))
        errors, replies = self.until(x)
        assert not errors
        return {gid: desc for r in replies for gid, desc in ofwire.decode_group_desc_reply(r).items()}

    def read_flows(self, cookie=0, cookie_mask=0, table_id=ofwire.OFPTT_ALL):
        x = self.next_xid()
        self.sock.sendall(ofwire.flow_desc_request(x, cookie, cookie_mask, table_id))
        errors, replies = self.until(x)
        assert not errors
        return [d for r in replies for d in ofwire.decode_flow_desc_reply(r)]

    def count_flows(self, cookie=0, cookie_mask=0):
        x = self.next_xid()
        self.sock.sendall(ofwire.aggregate_request(x, cookie, cookie_mask))
        errors, replies = self.until(x)
        assert not errors
        return ofwire.decode_aggregate_reply(replies[0])


@pytest.fixture(scope="module")
def switch(tmp_path_factory):
    ovs = SingleOvs(tmp_path_factory.mktemp("ofwire"))
    ovs.start()
    try:
        ovs.run("ovs-vsctl", "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev",
                "fail_mode=secure", "protocols=OpenFlow10,OpenFlow13,OpenFlow15")
        sw = RawSwitch(ovs.dir + "/br-int.mgmt")
        map_identity(sw)  # as dvn does before any flow: flows set and read the identity option
        yield ovs, sw
    finally:
        ovs.stop()


def map_identity(sw):
    """Map fields.IDENTITY on the switch (dvn's TLV map message), as dvn does before any flow."""
    from flows import fields
    option = fields.IDENTITY
    assert sw.checked(lambda x: ofwire.tlv_table_add([(option.opt_class, option.opt_type, option.length,
                                                       option.index)], x)) == []
    return option


def dump(ovs):
    out = ovs.run("ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "--no-stats", "br-int")
    return {line.strip() for line in out.splitlines() if line.strip() and "reply" not in line}


def test_ovs_prints_what_render_says_and_reports_the_same_keys(switch):
    ovs, sw = switch
    flows = compile_node(small_topology(), "hv1")
    assert sw.bundle([ofwire.encode_flow_mod(f, ofwire.ADD) for f in flows]) == []
    assert dump(ovs) == {render_flow(f) for f in flows}
    descs = sw.read_flows()
    have = {(d.table_id, d.priority, d.match_key): d.cookie for d in descs}
    want = {ofwire.wire_key(f): f.cookie for f in flows}
    assert have == want


def test_the_mark_reads_back_alone_and_the_count_is_ovs_own(switch):
    ovs, sw = switch
    mark = reconcile.mark_flow(0x123456789ABCDEF)
    other = make_flow("l2_lookup", 77, match(metadata=97), PORT, "q", actions=(output(5),))._replace(cookie=0x42)
    assert sw.bundle([ofwire.encode_flow_mod(mark, ofwire.ADD), ofwire.encode_flow_mod(other, ofwire.ADD)]) == []
    marks = sw.read_flows(DVN_COOKIE, DVN_COOKIE_MASK, reconcile.MARK_TABLE)
    assert [(d.cookie, d.priority, d.match_key) for d in marks] == [(mark.cookie, 0, b"")]
    out = ovs.run("ovs-ofctl", "-O", "OpenFlow15", "dump-aggregate", "br-int", "cookie=0x8000000000000000/0x8000000000000000")
    assert sw.count_flows(DVN_COOKIE, DVN_COOKIE_MASK) == int(re.search(r"flow_count=(\d+)", out).group(1))
    assert sw.count_flows() == sw.count_flows(DVN_COOKIE, DVN_COOKIE_MASK) + 1   # the other app's flow
    # a change's mark overwrites the last one
    assert sw.bundle([ofwire.encode_flow_mod(reconcile.mark_flow(7), ofwire.ADD)]) == []
    assert [d.cookie for d in sw.read_flows(DVN_COOKIE, DVN_COOKIE_MASK, reconcile.MARK_TABLE)] == [
        reconcile.mark_flow(7).cookie]
    assert sw.bundle([ofwire.encode_flow_mod(f, ofwire.DELETE_STRICT) for f in (reconcile.mark_flow(7), other)]) == []


def test_delete_strict_of_a_reported_match_removes_exactly_that_flow(switch):
    ovs, sw = switch
    before = sw.read_flows()
    victim = max(before, key=lambda d: len(d.match_key))
    errors = sw.bundle([ofwire.encode_delete_strict_raw(victim.table_id, victim.priority, victim.raw_match)])
    assert errors == []
    after = sw.read_flows()
    assert len(after) == len(before) - 1
    assert (victim.table_id, victim.priority, victim.match_key) not in {
        (d.table_id, d.priority, d.match_key) for d in after}


def test_delete_strict_of_a_reported_match_leaves_another_apps_flow_there(switch):
    # dvn read a flow of its own; another app then put its own at that identity.
    ovs, sw = switch
    flow = make_flow("l2_lookup", 78, match(metadata=98), PORT, "p", actions=(output(5),))
    assert sw.bundle([ofwire.encode_flow_mod(flow, ofwire.ADD)]) == []
    desc = next(d for d in sw.read_flows() if (d.table_id, d.priority, d.match_key) == ofwire.wire_key(flow))
    assert sw.bundle([ofwire.encode_flow_mod(flow._replace(cookie=0x42), ofwire.ADD)]) == []
    assert sw.bundle([ofwire.encode_delete_strict_raw(desc.table_id, desc.priority, desc.raw_match)]) == []
    assert {d.cookie for d in sw.read_flows() if d.priority == 78} == {0x42}
    assert sw.bundle([ofwire.encode_flow_mod(flow._replace(cookie=0x42), ofwire.DELETE_STRICT)]) == []


def test_a_bundle_with_a_refused_flow_changes_nothing(switch):
    ovs, sw = switch
    before = dump(ovs)
    good = make_flow("l2_lookup", 77, match(metadata=99), PORT, "p", actions=(output(5),))
    # A goto to a table before this one is refused by OVS.
    bad = make_flow("out_deliver", 77, match(metadata=99), PORT, "p", goto="classify")
    errors = sw.bundle([ofwire.encode_flow_mod(good, ofwire.ADD), ofwire.encode_flow_mod(bad, ofwire.ADD)])
    assert errors, "OVS accepted a backwards goto"
    assert dump(ovs) == before
    with pytest.raises(pipeline.PipelineViolation):
        pipeline.check(FlowSet([bad]))


def acl_shaped_flows():
    """Flows with every field and action the firewall will use: conjunctions,
    conntrack with a zone from a register, masked ports and addresses, ARP and
    neighbour discovery fields."""
    return [
        make_flow("in_acl", 100, match(metadata=5, eth_type=0x800, ip_proto=6,
                                       ipv4_src=("10.0.0.0", "255.255.255.0"), tcp_dst=(8000, 0xFFFC)),
                  PORT, "x", actions=(conjunction(7, 1, 2),)),
        make_flow("in_acl", 100, match(reg6=3, eth_type=0x800, ip_proto=6, tcp_dst=22), PORT, "x",
                  actions=(conjunction(7, 2, 2),)),
        make_flow("in_acl", 90, match(conj_id=7, eth_type=0x800, ip_proto=6), PORT, "x",
                  actions=(ct("l2_lookup", "reg6", True, mark=0x1234),)),
        make_flow("in_acl", 80, match(ct_state=(CT_TRK | CT_EST, CT_TRK | CT_EST | CT_INV), eth_type=0x800),
                  PORT, "x", goto="vip_lb"),
        make_flow("in_acl", 70, match(ct_state=(0, CT_TRK), eth_type=0x86DD), PORT, "x",
                  actions=(ct("in_acl", "reg6"),)),
        make_flow("in_acl", 60, match(eth_type=0x86DD, ip_proto=58, icmpv6_type=135, nd_target="fd00::1",
                                      ipv6_src=("fd00::", "ffff:ffff:ffff:ffff::")), PORT, "x", goto="vip_lb"),
        make_flow("in_acl", 60, match(eth_type=0x806, arp_op=1, arp_spa="10.0.0.1", arp_sha="02:00:00:00:00:01"),
                  PORT, "x", goto="vip_lb"),
        make_flow("in_acl", 60, match(eth_type=0x800, ip_proto=1, icmpv4_type=8, icmpv4_code=0,
                                      ipv4_dst="10.0.0.9"), PORT, "x", actions=(ct_clear(),), goto="vip_lb"),
        make_flow("in_acl", 60, match(eth_type=0x800, ip_proto=17, udp_dst=53, ct_zone=5, ct_mark=(1, 1)),
                  PORT, "x", actions=(ct("vip_lb", 5),)),
    ]


def test_firewall_fields_and_actions_round_trip(switch):
    ovs, sw = switch
    before = dump(ovs)
    flows = acl_shaped_flows()
    pipeline.check(FlowSet(flows))
    assert sw.bundle([ofwire.encode_flow_mod(f, ofwire.ADD) for f in flows]) == []
    assert dump(ovs) - before == {render_flow(f) for f in flows}
    have = {(d.table_id, d.priority, d.match_key): d.cookie for d in sw.read_flows()}
    for f in flows:
        assert have[ofwire.wire_key(f)] == f.cookie


def test_compiled_firewall_is_accepted_and_reads_back(switch):
    from flows import fields
    from flows.acl import ICMP, TCP, GroupOnNode, Rule, SecuredPort, compile_acl, identity
    ovs, sw = switch
    before = dump(ovs)
    g1 = identity(("g1",))
    ports = (SecuredPort("p1", 10, "02:00:00:00:00:01", ("10.0.0.1", "fd00::1"), True, ("g1",), ()),
             SecuredPort("p2", 11, "02:00:00:00:00:02", ("10.0.0.2",), True, ("g1",), ()),
             SecuredPort("p3", 12, "02:00:00:00:00:03", ("10.0.0.3",), False, (), ()))
    rules = (Rule("r1", "ingress", protocol=TCP, port_min=80, port_max=90, remote_group="g1"),
             Rule("r2", "ingress", protocol=ICMP, remote_cidr="0.0.0.0/0"),
             Rule("r3", "egress"),
             Rule("r4", "ingress", protocol=TCP, port_min=22, remote_cidr="192.168.0.0/16", action="deny"),
             Rule("r5", "ingress", ethertype=0x86DD, protocol=TCP, port_min=443, remote_group="g1"),
             Rule("r6", "egress", protocol=TCP, port_min=5432, remote_group="g1"))
    # Identities travel in tun_metadata0: the fixture mapped it, with dvn's own message.
    option = fields.IDENTITY
    assert "0x%x   0x%x       %d  tun_metadata0" % (option.opt_class, option.opt_type, option.length) in ovs.run(
        "ovs-ofctl", "dump-tlv-map", "br-int")
    x = sw.next_xid()
    sw.sock.sendall(ofwire.tlv_table_request(x))
    errors, replies = sw.until(x)
    assert not errors and ofwire.decode_tlv_table_reply(replies[0]) == [
        (option.opt_class, option.opt_type, option.length, 0)]
    # (with the ports' classify flows, which set their identity and check their MACs)
    from flows.l2 import LocalPort, NetworkOnNode, compile_network
    local = tuple(LocalPort(p.port_id, p.mac, p.ofport, False, identity(p.groups), (p.mac,) if p.port_security else ())
                  for p in ports)
    flows = compile_acl(ports, (GroupOnNode("g1", (10, 11), rules),),
                        {"g1": ("10.0.0.1", "10.0.0.2", "fd00::1")}, {"g1": (g1,)}).union(
        compile_network(NetworkOnNode("n", 5, local, (), ())))
    assert any("reg2=0x%x,reg3=0x%x" % (g1 >> 32, g1 & 0xFFFFFFFF) in render_flow(f) for f in flows)
    assert any("set_field:0x%x->xreg1,set_field:0x%x->tun_metadata0" % (g1, g1) in render_flow(f) for f in flows)
    assert sw.bundle([ofwire.encode_flow_mod(f, ofwire.ADD) for f in flows]) == []
    assert dump(ovs) - before == {render_flow(f) for f in flows}
    have = {(d.table_id, d.priority, d.match_key): d.cookie for d in sw.read_flows()}
    assert all(have[ofwire.wire_key(f)] == f.cookie for f in flows)


def test_select_groups_with_weights_hash_fields_and_nat(switch):
    from flows.flow import Bucket, Group
    from flows.render import render_group
    ovs, sw = switch
    group = Group(7, (Bucket(0, 100, (output(5),)),
                      Bucket(1, 200, (ct("l2_lookup", 1, commit=True, nat=("dst", "10.0.0.2", 8080)),)),
                      Bucket(2, 50, (ct("l2_lookup", "reg6", commit=True, nat=("dst", "fd00::2", 443)),))),
                  fields=("ipv4_src", "tcp_src"))
    assert sw.checked(lambda x: ofwire.encode_group_mod(group, xid=x)) == []
    dumped = ovs.run("ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "br-int")
    assert render_group(group) in [line.strip() for line in dumped.splitlines()]
    assert sw.read_groups()[7] == ofwire.group_desc_of(group)
    assert sw.checked(lambda x: ofwire.encode_group_mod(group, ofwire.OFPGC_DELETE, xid=x)) == []
    assert "group_id=7" not in ovs.run("ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "br-int")


def test_real_vswitchd_takes_the_lb_flows_and_a_1000_member_group(tmp_path):
    ovs = SingleOvs(tmp_path)
    ovs.start()
    try:
        ovs.run("ovs-vsctl", "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev",
                "fail_mode=secure", "protocols=OpenFlow10,OpenFlow13,OpenFlow15")
        sw = RawSwitch(ovs.dir + "/br-int.mgmt")
        map_identity(sw)
        for meter_id in (lb.REJECT_METER, lb.PROBE_METER):
            assert sw.checked(lambda x: ofwire.meter_mod(meter_id, 100, 100, x)) == []
        members = tuple(Member("m%04d" % i, "10.0.0.%d" % (1 + i % 4), 1000 + i, 1) for i in range(1000))
        topo = topology(members, monitor=Monitor("TCP", 1, 1, 1, 1))
        flows, groups = node_flows(topo, "hv1")
        msgs = [m for g in groups.values() for m in ofwire.group_install(g)]
        msgs += [ofwire.encode_flow_mod(f, ofwire.ADD) for f in flows]
        assert sw.bundle(msgs) == []
        assert {render_flow(f) for f in flows} <= dump(ovs)
        assert sw.read_groups()[7] == ofwire.group_desc_of(groups[7])
        g = lb.compile_groups(lb.plan_lb(topology(members[:10]), "lb1", "hv1"))[7]
        assert sw.bundle(ofwire.group_change(groups[7], g)) == []
        text = ovs.run("ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "br-int")
        line = next(ln.strip() for ln in text.splitlines() if "group_id=7" in ln)
        assert line == render_group(ofwire.after_change(groups[7], g))
        x = sw.next_xid()
        sw.sock.sendall(ofwire.group_stats_request(x))
        errors, replies = sw.until(x)
        stats = {}
        for reply in replies:
            stats.update(ofwire.decode_group_stats_reply(reply))
        assert stats[7][0] == 0 and len(stats[7][2]) == len(g.buckets)
    finally:
        ovs.stop()
