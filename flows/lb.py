"""The distributed load balancer: every VIP answered on the client's own node.

A new connection to a VIP (after the client's egress firewall, tracked in the
client's zone) goes to an OpenFlow select group of the VIP; each bucket names
one member (reg4) and lb_nat commits the connection in that zone with its
NAT to the member (``ct(commit, nat(dst=member))``). The packet, now
addressed to the member, gets the member's MAC and goes on through l2_lookup
and the member's ingress firewall, which sees the client's real address.
Buckets are small (48 bytes): a group of MAX_BUCKETS goes to the switch
in an add and an insert in one bundle, and the switch can describe it back
in one reply, which is what a resync compares. So a pool has at most
MAX_BUCKETS members (the API says so). Later packets of the
connection are NATed by the tracking in in_acl (``ct(nat)``), replies are
un-NATed by the tracking in out_acl of the client's zone: established
connections never meet the group again, so changing the members never moves
them.

Weights. OVS picks a bucket of a ``hash`` group by the highest
``hash(bucket) * weight``, which does not share connections in proportion to
the weights (1:1:2 gives 1/6:1/6:2/3). dvn gives a member with weight w
w/gcd buckets of weight 1 instead: equal buckets share equally, so shares
follow the weights (at most MAX_BUCKETS buckets a group; beyond, weights are
scaled down and rounded, never below one bucket).

A member reaching its own VIP (hairpin) would see a packet from itself: dvn
also rewrites the source to the VIP (in a zone of its own, HAIRPIN_ZONE), and
undoes both on the way back, where the member's reply would otherwise meet
its own tables.

ARP for a VIP is answered on every node of the network with the network's
VIP MAC; a VIP with no usable member rejects new connections (the packet goes
to dvn, metered, which answers a TCP reset or an ICMP port unreachable).
Health probes come from the VIP address on the member's own node; their
replies (to ports PROBE_PORT_BASE and up) go to dvn.
"""

import functools
import math
import zlib
from typing import NamedTuple

from flows import fields
from flows.flow import (CT_DNAT, CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK, IN_PORT, LB, NETWORK,
                        Bucket, FlowSet, Group, controller, ct, ct_clear, group, make_flow, match, meter,
                        move, output, resubmit, set_field)

TCP, UDP = 6, 17
PROTOCOLS = {"tcp": TCP, "udp": UDP}
HAIRPIN_ZONE = 0xFFF0
REJECT_METER, PROBE_METER = 2, 3
PROBE_PORT_BASE = 0xF000          # probes' source ports: 61440..65535, outside Linux's ephemeral range
MAX_BUCKETS = 1300                # 48-byte buckets: a group's description stays under 64 KiB
MAX_GROUP_ID = 0xFFFF             # reg4 holds group id << 16 | a member's slot
# dvn's group ids on a switch: it deletes groups it does not want only in this
# range, and allocates from its bottom (today up to MAX_GROUP_ID); other
# os-ken apps on the same switch take ids above it (docs/architecture.md).
GROUP_ID_MIN, GROUP_ID_MAX = 1, 0xFFFFFF

P_ARP, P_HAIRPIN_BACK, P_VIP, P_VIP_OTHER, P_MEMBER, P_VIP_MAC = 300, 260, 200, 150, 100, 90   # vip_lb
P_HAIRPIN, P_NAT = 200, 100                                                    # lb_nat
P_OUT_HAIRPIN = 4100              # out_acl: above every firewall flow
P_PROBE, P_HP_REPLY, P_HP_CHECK, P_HP_NOT = 102, 101, 100, 99   # in_port_security


def is_dvn_group(group_id):
    """Whether a group with this id is dvn's (in dvn's group-id range)."""
    return GROUP_ID_MIN <= group_id <= GROUP_ID_MAX


def vip_mac(vni):
    """The MAC every VIP of a network answers ARP with."""
    return "02:dd:00:%02x:%02x:%02x" % ((vni >> 16) & 0xFF, (vni >> 8) & 0xFF, vni & 0xFF)


class Vip(NamedTuple):
    lb_id: str
    vip: str
    proto: int
    port: int
    group_id: int
    affinity: bool
    members: tuple        # (slot, address, port): the usable members, sorted
    buckets: tuple        # (bucket id, slot), sorted; () rejects


class LocalMember(NamedTuple):
    lb_id: str
    vip: str
    proto: int
    address: str
    port: int
    mac: str
    ofport: int
    probed: bool          # a health monitor probes it (from this node)


class LbOnNode(NamedTuple):
    network_id: str
    vni: int
    vips: tuple           # Vip, sorted
    macs: tuple           # (member address, MAC), sorted: every member with a port
    local: tuple          # LocalMember, sorted: members on this node


def bucket_counts(members):
    """{member id: buckets} for usable members: weights over their gcd,
    scaled down to at most MAX_BUCKETS in all."""
    weights = {m.id: m.weight for m in members}
    if not weights:
        return {}
    if len(weights) >= MAX_BUCKETS:  # the API keeps pools at most this big: one bucket each
        return {mid: 1 for mid in weights}
    g = functools.reduce(math.gcd, weights.values())
    counts = {mid: w // g for mid, w in weights.items()}
    total = sum(counts.values())
    scale = MAX_BUCKETS / total
    while total > MAX_BUCKETS:  # ends: at scale 0 every member has 1 bucket, fewer than MAX_BUCKETS
        counts = {mid: max(1, int(w // g * scale)) for mid, w in weights.items()}
        total = sum(counts.values())
        scale *= 0.95
    return counts


def bucket_ids(counts):
    """Stable bucket ids: (member id, replica) -> id, the same whatever the
    other members are (so a member change leaves the others' buckets alone)."""
    taken, out = set(), {}
    for mid in sorted(counts):
        for i in range(counts[mid]):
            bid = zlib.crc32(("%s/%d" % (mid, i)).encode()) & 0x7FFFFFFF
            while bid in taken:
                bid = (bid + 1) & 0x7FFFFFFF
            taken.add(bid)
            out[(mid, i)] = bid
    return out


def slots(members):
    """Stable 16-bit slots of a pool's members (a member keeps its slot
    whatever else joins or leaves, but for a hash collision)."""
    taken, out = set(), {}
    for mid in sorted(m.id for m in members):
        slot = zlib.crc32(mid.encode()) & 0xFFFF
        while slot in taken:
            slot = (slot + 1) & 0xFFFF
        taken.add(slot)
        out[mid] = slot
    return out


def usable(member, has_port):
    return member.admin_up and member.weight > 0 and member.status != "OFFLINE" and has_port


def plan_lb(topology, lb_id, system_id):
    """One load balancer as one node needs it, or None (no such load
    balancer, or the node hosts no port of its network). A load balancer is
    a compile unit of its own: a change to one VIP never recompiles the
    others; the flows VIPs of a network share (ARP, member MACs, hairpin)
    are identical and the controller keeps one of each."""
    lb = topology.lbs.get(lb_id)
    network = topology.networks.get(lb.network_id) if lb is not None else None
    if network is None:
        return None
    ports, plugged = {}, set()
    hosted = False
    for port_id in topology.net_ports.get(lb.network_id, ()):
        port = topology.ports.get(port_id)
        binding = topology.bindings.get(port_id)
        if port is None:
            continue
        node, ofport = binding if binding is not None else (None, None)
        if node == system_id and ofport:
            hosted = True
        for ip in port.ips:
            ports[ip] = (port.mac, ofport if node == system_id else None)
            if node:  # the store's word (stable across restarts), not another node's session
                plugged.add(ip)
    if not hosted:
        return None
    proto = PROTOCOLS[lb.protocol]
    # A member is reached through its port: one plugged in nowhere takes no connection.
    ok = [m for m in lb.members if usable(m, m.address in plugged)]
    slot = slots(lb.members)
    counts = bucket_counts(ok)
    ids = bucket_ids(counts)
    buckets = tuple(sorted((ids[(m.id, i)], slot[m.id]) for m in ok for i in range(counts[m.id])))
    members = tuple(sorted((slot[m.id], m.address, m.port) for m in ok))
    vip = Vip(lb_id, lb.vip, proto, lb.port, lb.group_id, lb.affinity > 0, members, buckets)
    macs, local = set(), set()
    for m in lb.members:
        if m.address in ports:
            mac, ofport = ports[m.address]
            macs.add((m.address, mac))
            if ofport:
                local.add(LocalMember(lb_id, lb.vip, proto, m.address, m.port, mac, ofport,
                                      lb.monitor is not None and m.admin_up))
    return LbOnNode(lb.network_id, network.vni, (vip,), tuple(sorted(macs)), tuple(sorted(local)))


def _tp(proto, side):
    return ("tcp_" if proto == TCP else "udp_") + side


def group_fields(vip):
    if vip.affinity:
        return ("ipv4_src", "ipv4_dst")
    return ("ipv4_src", "ipv4_dst", "ip_proto", _tp(vip.proto, "src"), _tp(vip.proto, "dst"))


@functools.lru_cache(maxsize=4096)
def compile_groups(view: LbOnNode):
    """{group id: Group}: one select group per VIP with a usable member."""
    out = {}
    for vip in view.vips:
        if not vip.buckets:
            continue
        reg = fields.REG_LB.name
        buckets = tuple(Bucket(bid, 1, (set_field(reg, vip.group_id << 16 | slot), resubmit("lb_nat")))
                        for bid, slot in vip.buckets)
        out[vip.group_id] = Group(vip.group_id, buckets, group_fields(vip))
    return out


def compile_lb(view: LbOnNode) -> FlowSet:
    vni, net = view.vni, view.network_id
    vmac = vip_mac(vni)
    flag = fields.HAIRPIN
    hairpin = {flag.field.name: (flag.value, flag.mask)}
    flows = {}

    def add(flow):
        have = flows.get(flow.key)
        flows[flow.key] = flow if have is None else min(have, flow)

    for address in sorted({v.vip for v in view.vips}):
        # ARP for the VIP: answered here, with the network's VIP MAC.
        add(make_flow("vip_lb", P_ARP, match(metadata=vni, eth_type=0x0806, arp_op=1, arp_tpa=address),
                      NETWORK, net, actions=(
                          move("eth_src", "eth_dst"), set_field("eth_src", vmac), set_field("arp_op", 2),
                          move("arp_sha", "arp_tha"), set_field("arp_sha", vmac),
                          move("arp_spa", "arp_tpa"), set_field("arp_spa", address), output(IN_PORT))))
        # Anything else to the VIP that no listener takes: dropped, never flooded.
        add(make_flow("vip_lb", P_VIP_OTHER, match(metadata=vni, eth_type=0x0800, ipv4_dst=address),
                      NETWORK, net))
    # A packet still sent to the VIP MAC whose member is gone (a connection
    # to a deleted member): dropped, never flooded as unknown unicast.
    add(make_flow("vip_lb", P_VIP_MAC, match(metadata=vni, eth_dst=vmac), NETWORK, net))
    for vip in view.vips:
        m = match(metadata=vni, ct_state=(CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_EST | CT_REL | CT_INV | CT_RPL),
                  eth_type=0x0800, ip_proto=vip.proto, ipv4_dst=vip.vip, **{_tp(vip.proto, "dst"): vip.port})
        if vip.buckets:
            actions = (group(vip.group_id),)
        else:
            actions = (meter(REJECT_METER), controller())
        add(make_flow("vip_lb", P_VIP, m, LB, vip.lb_id, actions=actions))
    mac_of = dict(view.macs)
    reg = fields.REG_LB.name
    for vip in view.vips:
        for slot, address, port in vip.members:
            # The bucket's member: the connection committed with its DNAT (and
            # the egress rule's mark), the packet given the member's MAC; back
            # into lb_nat for the hairpin check (reg4 cleared: once).
            add(make_flow("lb_nat", P_NAT, match(**{reg: vip.group_id << 16 | slot}, eth_type=0x0800),
                          LB, vip.lb_id, actions=(
                              set_field(reg, 0), set_field("eth_dst", mac_of[address]),
                              ct("lb_nat", fields.REG_IN_PORT.name, commit=True, mark=fields.REG_MARK.name,
                                 nat=("dst", address, port)))))
    for address, mac in view.macs:
        # A packet of an established connection, NATed in in_acl, still has
        # the VIP MAC: give it the member's (and check for hairpin).
        add(make_flow("vip_lb", P_MEMBER, match(metadata=vni, eth_dst=vmac, eth_type=0x0800, ipv4_dst=address),
                      NETWORK, net, actions=(set_field("eth_dst", mac),), goto="lb_nat"))
    if any(True for _ in view.local):
        # Back to the port it came from: OpenFlow drops an output to the
        # in_port, so the in_port is cleared first.
        add(make_flow("out_acl", P_OUT_HAIRPIN, match(**hairpin), NETWORK, net,
                      actions=(set_field("nx_in_port", 0),), goto="out_deliver"))
        # The way back of a hairpin connection, un-NATed in both zones (per
        # network: the VIP MAC it gets back is the network's).
        add(make_flow("vip_lb", P_HAIRPIN_BACK, match(metadata=vni, ct_state=(CT_TRK | CT_RPL, CT_TRK | CT_RPL),
                                                      **hairpin),
                      NETWORK, net, actions=(move("eth_src", "eth_dst"), set_field("eth_src", vmac),
                                             move(fields.REG_IN_PORT.name, fields.REG_OUT_PORT.name),
                                             set_field("nx_in_port", 0)),
                      goto="out_deliver"))
    for lm in view.local:
        own = {fields.REG_IN_PORT.name: lm.ofport}
        tp_src, tp_dst = _tp(lm.proto, "src"), _tp(lm.proto, "dst")
        # (Owned by the network: they depend on the VIP address and the
        # member only, so VIPs that share both share these flows.)
        # Hairpin: the member reached its own VIP (the connection's original
        # destination: a member of several VIPs gets one flow for each);
        # seen from it, the connection comes from that VIP.
        add(make_flow("lb_nat", P_HAIRPIN,
                      match(metadata=vni, ct_state=(CT_TRK | CT_DNAT, CT_TRK | CT_DNAT), ct_nw_dst=lm.vip,
                            eth_type=0x0800, ip_proto=lm.proto, ipv4_src=lm.address, ipv4_dst=lm.address,
                            **{tp_dst: lm.port}),
                      NETWORK, net, actions=(
                          set_field("eth_dst", lm.mac), set_field(fields.REG_OUT_PORT.name, lm.ofport),
                          set_field(flag.field.name, flag.value, flag.mask),
                          ct("out_acl", HAIRPIN_ZONE, commit=True, nat=("src", lm.vip, 0)))))
        reply = dict(own, eth_src=lm.mac, eth_type=0x0800, ip_proto=lm.proto, ipv4_src=lm.address,
                     **{tp_src: lm.port})
        add(make_flow("in_port_security", P_HP_CHECK, match(ct_state=(0, CT_TRK), ipv4_dst=lm.vip, **reply),
                      NETWORK, net, actions=(ct("in_port_security", HAIRPIN_ZONE, nat=()),)))
        add(make_flow("in_port_security", P_HP_REPLY,
                      match(ct_state=(CT_TRK | CT_RPL, CT_TRK | CT_RPL), ct_zone=HAIRPIN_ZONE, **reply),
                      NETWORK, net, actions=(set_field(flag.field.name, flag.value, flag.mask),
                                             ct("vip_lb", fields.REG_IN_PORT.name, nat=()))))
        add(make_flow("in_port_security", P_HP_NOT,
                      match(ct_state=(CT_TRK, CT_TRK | CT_RPL), ct_zone=HAIRPIN_ZONE, **reply),
                      NETWORK, net, actions=(ct_clear(),), goto="in_acl"))
        if lm.probed and lm.proto == TCP:
            add(make_flow("in_port_security", P_PROBE,
                          match(eth_type=0x0800, ip_proto=TCP, ipv4_src=lm.address, ipv4_dst=lm.vip,
                                tcp_src=lm.port, tcp_dst=(PROBE_PORT_BASE, PROBE_PORT_BASE), **own),
                          LB, "probe", actions=(meter(PROBE_METER), controller())))
    return FlowSet(flows.values())


__all__ = ["vip_mac", "plan_lb", "compile_lb", "compile_groups", "bucket_counts", "bucket_ids",
           "Vip", "LocalMember", "LbOnNode", "HAIRPIN_ZONE", "REJECT_METER", "PROBE_METER",
           "PROBE_PORT_BASE"]
