"""The distributed firewall: port security and security groups, per node.

Each local port's conntrack zone is its ofport (reg6 on the way out of the
sender, reg7 on the way into the receiver), so each port keeps its own
connection table. A port without security groups is open; a port with some
drops what no rule allows, statefully: replies and related packets of an
allowed connection pass, invalid ones drop.

Rules are compiled per security group and node, not per port: the group's
local members form one conjunction clause, the remote addresses another,
the port ranges a third, so flows grow with the sum of the set sizes, not
their product.

Precedence: every rule has a priority (0..1000, default 100). The highest
priority matching rule decides; at equal priority a deny wins over an allow.
Established and related traffic of a connection passes before any rule is
looked at, as long as the rule that allowed the connection exists: the rule
writes its mark into the connection's ct_mark when it commits it, and only
marks of existing allow rules pass. Removing a rule ends its connections.
"""

import functools
import hashlib
import ipaddress
import zlib
from typing import NamedTuple, Optional

from flows import fields
from flows.flow import (CT_EST, CT_INV, CT_NEW, CT_REL, CT_TRK, GROUP, PORT, FlowSet, clone, conjunction,
                        controller, ct, ct_clear, make_flow, match, match_value, meter, set_field, with_actions)
from flows.portrange import range_to_masks

IPV4, IPV6 = 0x0800, 0x86DD
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
LOG_METER = 1     # the meter that rate-limits logged packets to the controller
RULE_BASE = 1000       # OpenFlow priority of a rule: RULE_BASE + 2 * priority + (1 for deny)
# An open port's packets are tracked too (P_TRACK, so that load-balanced
# connections are un-NATed), then pass before any state is judged.
P_ARP, P_TRACK, P_OPEN, P_STATE, P_DEFAULT = 3900, 3800, 3750, 3700, 100
P_PS_OPEN = 98    # in_port_security: a port without port security, above the shared drops


class Rule(NamedTuple):
    id: str
    direction: str                  # "ingress" or "egress"
    ethertype: int = IPV4           # IPV4 or IPV6
    protocol: Optional[int] = None  # None = any
    port_min: Optional[int] = None  # tcp/udp
    port_max: Optional[int] = None
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    remote_cidr: Optional[str] = None
    remote_group: Optional[str] = None
    action: str = "allow"
    priority: int = 100
    log: bool = False
    alert: bool = False             # its packets (as logged ones) raise alerts to the tenant's webhook


class SecuredPort(NamedTuple):
    """A local port as the firewall sees it."""
    port_id: str
    ofport: int
    mac: str
    ips: tuple
    port_security: bool = True
    groups: tuple = ()               # security group ids
    allowed_pairs: tuple = ()        # (mac, ip or cidr)


class GroupOnNode(NamedTuple):
    group_id: str
    members: tuple                   # local member ofports, sorted
    rules: tuple                     # Rule, sorted


@functools.lru_cache(maxsize=1 << 16)
def identity(groups: tuple):
    """A port's security identity: a 64-bit hash of the set of security groups
    it is in (dynamic ones too), the same on every node and across restarts
    without any state; never 0 (a packet without the option has no identity).
    Ports in the same groups share one identity, so a rule whose remote side
    is a group matches one value per distinct set of groups among its
    members, where it would match one per address. (Cached: a replan asks
    for every port's.)"""
    digest = hashlib.blake2b("\n".join(sorted(set(groups))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def source_macs(mac, allowed_pairs):
    """The MACs a port with port security may send from: its own and its
    allowed address pairs', sorted."""
    return tuple(sorted({mac} | {m for m, _ip in allowed_pairs}))


@functools.lru_cache(maxsize=1 << 16)
def _network(ip):
    """(IP version, network address, netmask) of an address or prefix, as text."""
    net = ipaddress.ip_network(ip, strict=False)
    return net.version, str(net.network_address), str(net.netmask)


def compile_port_security(port: SecuredPort) -> FlowSet:
    """in_port_security: a port sends only from its own MACs and addresses
    (its identity, and whether the MAC is one it may use, come from
    classify: l2.compile_network)."""
    own = {fields.REG_IN_PORT.name: port.ofport}

    def allow(priority, m):
        return make_flow("in_port_security", priority, m, PORT, port.port_id, goto="in_acl")

    if not port.port_security:
        return FlowSet([allow(P_PS_OPEN, match(**own))])
    flows = []
    pairs = [(port.mac, ip) for ip in port.ips] + list(port.allowed_pairs)
    for mac, ip in pairs:
        version, addr, mask = _network(ip)
        if version == 4:
            flows.append(allow(90, match(**own, eth_src=mac, eth_type=IPV4, ipv4_src=(addr, mask))))
            flows.append(allow(90, match(**own, eth_src=mac, eth_type=0x0806, arp_spa=(addr, mask), arp_sha=mac)))
        else:
            flows.append(allow(90, match(**own, eth_src=mac, eth_type=IPV6, ipv6_src=(addr, mask))))
            # Neighbour advertisements of its own addresses (link-local ones: _secured_base)
            flows.append(allow(95, match(**own, eth_src=mac, eth_type=IPV6, ip_proto=ICMPV6, icmpv6_type=136,
                                         nd_target=(addr, mask))))
    # Solicitations name its own MAC as the source link-layer address (or none: _secured_base).
    for mac in source_macs(port.mac, port.allowed_pairs):
        flows.append(allow(95, match(**own, eth_src=mac, eth_type=IPV6, ip_proto=ICMPV6, icmpv6_type=135,
                                     nd_sll=mac)))
    # Everything else from this port (other MACs, spoofed addresses, ARP or
    # ND lies) is dropped by the node's shared flows (_secured_base).
    return FlowSet(flows)


def _secured_base():
    """Once per node with a secured port: what a port may send from any MAC
    classify let it use (fields.SOURCE_MAC: link-local IPv6 and DHCPv4
    discovery, which come from no address yet; neighbour discovery of
    link-local addresses and duplicate address detection), what no allow
    flow of its port security takes, and the firewall's default deny in both
    directions. (A port without port security, or without groups, passes
    above these.)"""
    ok = {fields.SOURCE_MAC.field.name: (fields.SOURCE_MAC.value, fields.SOURCE_MAC.mask)}

    def allow(priority, m):
        return make_flow("in_port_security", priority, m, PORT, "acl", goto="in_acl")

    nd = dict(ok, eth_type=IPV6, ip_proto=ICMPV6)
    flows = [allow(90, match(**ok, eth_type=IPV6, ipv6_src=("fe80::", "ffc0::"))),
             allow(90, match(**ok, eth_type=IPV4, ipv4_src="0.0.0.0", ip_proto=UDP, udp_dst=67)),
             allow(95, match(**nd, icmpv6_type=136, nd_target=("fe80::", "ffc0::"))),
             allow(95, match(**nd, icmpv6_type=135, nd_sll="00:00:00:00:00:00"))]
    flows += [make_flow("in_port_security", 94, match(eth_type=IPV6, ip_proto=ICMPV6, icmpv6_type=nd_type),
                        PORT, "acl") for nd_type in (135, 136)]   # ND lies: above the link-local allow
    flows.append(make_flow("in_port_security", 80, match(), PORT, "acl"))
    flows += [make_flow(table, P_DEFAULT, match(), PORT, "acl") for table in ("in_acl", "out_acl")]
    return flows


def _stateful_base():
    """The flows every node needs once, for both directions."""
    flows = []
    for table, zone_reg, nxt in (("in_acl", fields.REG_IN_PORT.name, "vip_lb"),
                                 ("out_acl", fields.REG_OUT_PORT.name, "out_deliver")):
        for eth in (IPV4, IPV6):
            if table == "in_acl":
                flows.append(make_flow(table, P_TRACK, match(ct_state=(0, CT_TRK), eth_type=eth),
                                       PORT, "acl", actions=(ct(table, zone_reg, nat=()),)))
            else:
                # The packet may carry the sender's zone state (same host): clear it
                # and track it in the receiver's zone, once (reg0 bit 1).
                mark = fields.INGRESS_TRACKED
                flows.append(make_flow(table, P_TRACK, match(**{mark.field.name: (0, mark.mask)}, eth_type=eth),
                                       PORT, "acl",
                                       actions=(set_field(mark.field.name, mark.value, mark.mask), ct_clear(),
                                                ct(table, zone_reg, nat=()))))
            flows.append(make_flow(table, P_STATE + 1, match(ct_state=(CT_TRK | CT_INV, CT_TRK | CT_INV),
                                                             eth_type=eth), PORT, "acl"))
        # ARP, and IPv6 neighbour and router discovery, pass for every port (port
        # security has checked the sender's addresses already).
        flows.append(make_flow(table, P_ARP, match(eth_type=0x0806), PORT, "acl", goto=nxt))
        if table == "in_acl":
            # A new connection an egress rule allowed: committed in the sender's
            # zone with the rule's mark, in vip_lb (a VIP's bucket commits it
            # itself, with its NAT: a connection is committed once).
            commit = fields.COMMIT
            for eth in (IPV4, IPV6):
                flows.append(make_flow("vip_lb", 1, match(**{commit.field.name: (commit.value, commit.mask)},
                                                          eth_type=eth),
                                       PORT, "acl", actions=(ct(None, zone_reg, commit=True,
                                                                mark=fields.REG_MARK.name),),
                                       goto="l2_lookup"))
        for nd_type in (133, 134, 135, 136):
            flows.append(make_flow(table, P_ARP, match(eth_type=IPV6, ip_proto=ICMPV6, icmpv6_type=nd_type),
                                   PORT, "acl", goto=nxt))
    return flows


def _port_defaults(port: SecuredPort):
    flows = []
    for table, reg, nxt in (("in_acl", fields.REG_IN_PORT.name, "vip_lb"),
                            ("out_acl", fields.REG_OUT_PORT.name, "out_deliver")):
        if not port.groups or not port.port_security:
            flows.append(make_flow(table, P_OPEN, match(**{reg: port.ofport}), PORT, port.port_id, goto=nxt))
        # else: the shared default deny (_secured_base)
    return flows


def _base(rule):
    """Fields every flow of the rule matches: a new connection of its ethertype."""
    return {"eth_type": rule.ethertype, "ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_EST | CT_REL | CT_INV)}


def _dimension_ports(rule):
    if rule.protocol not in (TCP, UDP) or rule.port_min is None:
        return [{}]
    field = ("tcp" if rule.protocol == TCP else "udp") + "_dst"
    hi = rule.port_max if rule.port_max is not None else rule.port_min
    return [{field: (v, m)} for v, m in range_to_masks(rule.port_min, hi)]


def _dimension_service(rule):
    """A rule's protocol with its destination ports or ICMP type and code."""
    if rule.protocol is None:
        return [{}]
    m = {"ip_proto": rule.protocol}
    if rule.protocol in (ICMP, ICMPV6):
        prefix = "icmpv4" if rule.protocol == ICMP else "icmpv6"
        if rule.icmp_type is not None:
            m[prefix + "_type"] = rule.icmp_type
            if rule.icmp_code is not None:
                m[prefix + "_code"] = rule.icmp_code
    return [dict(m, **ports) for ports in _dimension_ports(rule)]


def _dimension_remote(rule, group_addrs, group_idents):
    """A rule's remote side: for an ingress rule naming a group, the
    identities of its members (carried in the packet, set by the sender's
    node); for an egress one, its members' addresses (the destination's
    identity is not known at the sender)."""
    side = "src" if rule.direction == "ingress" else "dst"
    field = ("ipv4_" if rule.ethertype == IPV4 else "ipv6_") + side
    if rule.remote_group is not None and rule.direction == "ingress":
        return [{fields.REG_IDENTITY.name: i} for i in sorted(group_idents.get(rule.remote_group, ()))]
    if rule.remote_group is not None:
        out = []
        for addr in group_addrs.get(rule.remote_group, ()):
            ip = ipaddress.ip_address(addr)
            if ip.version == (4 if rule.ethertype == IPV4 else 6):
                out.append({field: str(ip)})
        return sorted(out, key=lambda d: d[field])  # may be empty: the rule matches nothing
    if rule.remote_cidr is not None:
        net = ipaddress.ip_network(rule.remote_cidr)
        if net.prefixlen == 0:
            return [{}]
        return [{field: (str(net.network_address), str(net.netmask))}]
    return [{}]


def conj_id(group_id, rule_id):
    return zlib.crc32(("%s/%s" % (group_id, rule_id)).encode()) or 1


def rule_mark(group_id, rule_id):
    """The ct_mark of the connections an allow rule let in (never 0: unmarked)."""
    return zlib.crc32(("mark:%s/%s" % (group_id, rule_id)).encode()) or 1


def _remotes(group, direction):
    return tuple(sorted({r.remote_group for r in group.rules
                         if r.remote_group is not None and r.direction == direction}))


def compile_group(group: GroupOnNode, group_addrs, group_idents) -> list:
    """The rule flows of one security group on one node: ``group_addrs``,
    the addresses of the groups its egress rules name; ``group_idents``, the
    identities of those its ingress rules name."""
    addrs = tuple((g, tuple(group_addrs.get(g, ()))) for g in _remotes(group, "egress"))
    idents = tuple((g, tuple(group_idents.get(g, ()))) for g in _remotes(group, "ingress"))
    return list(_compile_group(group, addrs, idents))


@functools.lru_cache(maxsize=256)
def _compile_group(group, addrs, idents):
    """compile_group for hashable inputs: an unchanged group is not compiled
    again while it is recent (switches that want the same one). Not every
    group: the controller compiles only views that changed, and a cache of
    all of them kept their flows twice (before and after the merge of what
    groups share: 80,000 flows more at 10,000 ports)."""
    group_addrs, group_idents = dict(addrs), dict(idents)
    flows = []
    for rule in group.rules:
        table, reg, nxt = (("in_acl", fields.REG_IN_PORT.name, "vip_lb") if rule.direction == "egress"
                           else ("out_acl", fields.REG_OUT_PORT.name, "out_deliver"))
        prio = RULE_BASE + 2 * rule.priority + (1 if rule.action == "deny" else 0)
        zone = reg
        mark = rule_mark(group.group_id, rule.id)
        log = (clone(meter(LOG_METER), controller()),) if rule.log or rule.alert else ()
        if rule.action == "deny":
            verdict = {"actions": log}
        elif rule.direction == "egress":
            commit = fields.COMMIT
            verdict = {"actions": log + (set_field(fields.REG_MARK.name, mark),
                                         set_field(commit.field.name, commit.value, commit.mask)), "goto": nxt}
        else:
            verdict = {"actions": log + (ct(None, zone, commit=True, mark=mark),), "goto": nxt}
        owner = "%s/%s" % (group.group_id, rule.id)
        if rule.action == "allow":
            # The rule's connections (marked at commit: a new connection has no
            # mark) pass while the rule exists, in both directions: replies
            # cross the other table. Remove the rule and its established and
            # related connections stop at once.
            for t, n in (("in_acl", "vip_lb"), ("out_acl", "out_deliver")):
                flows.append(make_flow(t, P_STATE, match(ct_state=(CT_TRK, CT_TRK | CT_INV), ct_mark=mark,
                                                         eth_type=rule.ethertype), GROUP, owner, goto=n))
        base = _base(rule)
        members = [{reg: ofport} for ofport in group.members]
        dims = [members, _dimension_remote(rule, group_addrs, group_idents), _dimension_service(rule)]
        if any(not d for d in dims):
            continue  # no member here, or an empty remote group: nothing can match
        others = [d for d in dims[1:] if d != [{}]]
        if not others:  # any packet of the members: no conjunction
            for value in members:
                flows.append(make_flow(table, prio, match(**base, **value), GROUP, owner, **verdict))
            continue
        # A conjunction of the members, the remote side and the service, each
        # clause matching its own fields only: clauses that match the same
        # packets are one flow with the conjunction actions of every rule that
        # has them (on the node, across groups): a port's membership is one
        # flow per direction and priority, a remote group's identities and a
        # service (tcp/80) one flow each, whichever rules use them.
        cid = conj_id(group.group_id, rule.id)
        clauses = [members] + others
        for clause, values in enumerate(clauses, start=1):
            actions = (conjunction(cid, clause, len(clauses)),)   # (one for the clause's flows, not one each)
            for value in values:
                flows.append(make_flow(table, prio, match(**base, **value), GROUP, owner, actions=actions))
        flows.append(make_flow(table, prio, match(conj_id=cid, eth_type=rule.ethertype), GROUP, owner,
                               **verdict))
    return tuple(flows)


def is_state(flow):
    """An allow rule's state flow: it lets through the connections its rule
    committed (their ct_mark), and none before the rule's verdict has."""
    return flow.priority == P_STATE and match_value(flow.match, "ct_mark") is not None


def is_clause(flow):
    """A conjunction clause: it decides nothing by itself (a packet that
    completes no conjunction goes on as if it were not there)."""
    return bool(flow.actions) and flow.goto is None and all(a[0] == "conjunction" for a in flow.actions)


_PORT_REG = {"in_acl": fields.REG_IN_PORT.name, "out_acl": fields.REG_OUT_PORT.name}


def pinned_port(flow):
    """The local port (ofport) a firewall flow is for, or None: the sender's
    (reg6) in in_acl, the receiver's (reg7) in out_acl."""
    reg = _PORT_REG.get(flow.table)
    return match_value(flow.match, reg) if reg else None


def unreached(verdicts, desired, new_ports):
    """Those of ``verdicts`` (firewall flows that decide, not clauses) that no
    packet reaches while the local ports ``new_ports`` (ofports) have no flow
    in the tables that take packets to them: a verdict for one of those
    ports, or a conjunction one of whose clauses matches only them.
    ``desired``: every flow the switch is to have (for the clauses)."""
    new_ports = set(new_ports) - {None}
    pins = {}   # (conjunction id, clause) -> the ports its flows are for (None: not one port)
    for flow in desired:
        if flow.table in _PORT_REG and is_clause(flow):
            pin = pinned_port(flow)
            for action in flow.actions:
                pins.setdefault(action[1:3], set()).add(pin)
    dead = {cid for (cid, _clause), ports in pins.items() if ports <= new_ports}
    out = []
    for flow in verdicts:
        if pinned_port(flow) in new_ports or match_value(flow.match, "conj_id") in dead:
            out.append(flow)
    return out


class MergeConflict(Exception):
    """Flows that units want at one identity and that no one flow can stand
    for: plain flows with different verdicts (or doing otherwise different
    things), or clauses that would make one flow two clauses of one
    conjunction. ``flows``: the flows in conflict, sorted."""

    def __init__(self, flows, why):
        self.flows = tuple(sorted(flows, key=lambda f: (f.cookie, repr(f))))
        super().__init__("%s at one identity: %s" % (why, " / ".join(f.describe() for f in self.flows)))


_LOG_ACTION = clone(meter(LOG_METER), controller())


def _verdict(flow):
    """What a plain flow does, but for which rule it credits (the ct_mark
    its rule commits) and whether it logs: two allows of one port's packets
    at one priority from different rules differ only there."""
    actions = []
    for action in flow.actions:
        if action == _LOG_ACTION:
            continue
        if action[0] == "ct":
            action = action[:4] + (None,) + action[5:]
        elif action[0] == "set_field" and action[1] == fields.REG_MARK.name:
            action = action[:2] + (None,) + action[3:]
        actions.append(action)
    return tuple(actions), flow.metadata, flow.goto


def merge_all(flows):
    """Flows with one identity as one: conjunction clauses of several rules
    that match the same packets become one flow with all their conjunction
    actions; a plain flow with the same match and priority covers a clause flow
    (the same verdict by construction: allows and denies never share a
    priority). Plain flows (rules of several groups, or of one, that match
    the same packets) must give one verdict: the least of them stands for
    all, the least of those that log if any does (so the packets are still
    logged), and the connections it commits carry its rule's mark.
    MergeConflict if the flows cannot be one: plain flows that do different
    things, or one conjunction's id in two clauses. The result does not
    depend on the order, and a clause that hundreds of groups share costs
    one union."""
    first = flows[0]
    if len(flows) == 1:
        return first
    plain = [f for f in flows if not is_clause(f)]
    if plain:
        if len({_verdict(f) for f in plain}) > 1:
            raise MergeConflict(plain, "plain flows with different verdicts")
        return min([f for f in plain if _LOG_ACTION in f.actions] or plain)
    actions = sorted({a for f in flows for a in f.actions})
    clause_of = {}
    for action in actions:
        if clause_of.setdefault(action[1], action[2:]) != action[2:]:
            raise MergeConflict(flows, "two clauses of conjunction %d" % action[1])
    if len({f.metadata for f in flows}) > 1:
        raise MergeConflict(flows, "clauses with different metadata")
    merged = with_actions(first, actions, first.metadata)
    return merged._replace(cookie=min(f.cookie for f in flows) & ~0xFFFFFFFF | (merged.cookie & 0xFFFFFFFF))


def merge(flows):
    """One flow per identity (see merge_all)."""
    index = {}
    for flow in flows:
        index.setdefault(flow.key, []).append(flow)
    return FlowSet(merge_all(same) for same in index.values())


def base_view(ports, tracked=False):
    """What the node's shared firewall flows depend on: (the stateful base:
    a port is guarded by groups, or ``tracked``: a VIP is served here; the
    shared drops: a port has port security)."""
    return (tracked or any(p.groups and p.port_security for p in ports), any(p.port_security for p in ports))


def compile_base(stateful, secured) -> FlowSet:
    """The firewall flows a node needs once (base_view says which)."""
    return FlowSet((_stateful_base() if stateful else []) + (_secured_base() if secured else []))


def compile_port(port: SecuredPort) -> FlowSet:
    """One local port's own firewall flows: its port security and, if it is
    open, its pass in both directions. (A compile unit of its own: plugging
    a port recompiles only it.)"""
    return FlowSet(list(compile_port_security(port)) + _port_defaults(port))


def compile_ports(ports, tracked=False) -> FlowSet:
    """Port security, defaults and the shared flows of one node's local ports."""
    return compile_base(*base_view(ports, tracked)).union(*(compile_port(p) for p in ports))


def compile_group_unit(group, addrs, idents) -> FlowSet:
    """One group's rule flows on one node, ``addrs`` and ``idents`` as group_views gives them."""
    return merge(compile_group(group, dict(addrs), dict(idents)))


def compile_acl(ports, groups, group_addrs, group_idents) -> FlowSet:
    """Port security and security groups of one node's local ports."""
    flows = list(compile_ports(ports))
    for group in groups:
        flows += compile_group(group, group_addrs, group_idents)
    return merge(flows)


class AclView(NamedTuple):
    """What the firewall of one node depends on."""
    ports: tuple      # SecuredPort, sorted
    groups: tuple     # GroupOnNode, sorted
    addrs: tuple      # (group id, addresses), sorted: the remote groups egress rules name
    idents: tuple     # (group id, identities), sorted: the remote groups ingress rules name


def _group_ports(topology):
    """{group id: the ids of the ports in it, on any node}: the topology's
    index, or made from its ports."""
    if topology.group_ports:
        return topology.group_ports
    out = {}
    for port_id, port in topology.ports.items():
        for gid in port.security_groups:
            out.setdefault(gid, set()).add(port_id)
    return out


def _guards(topology, port, gid):
    """A group the port names guards it (even with no rule: then it drops
    everything, as in Neutron); a dynamic group that selects it guards it
    only if the group has rules: without, it only names a set of ports."""
    return gid in topology.groups and (gid in port.named_groups or bool(topology.groups[gid]))


def plan_group(topology, system_id, gid, group_ports=None):
    """One security group's compile unit on one node: (GroupOnNode, the
    addresses of the groups its egress rules name, the identities of those
    its ingress rules name), or None if the node hosts no port it guards.
    Looks only at the members of the group and of its remote groups."""
    group_ports = _group_ports(topology) if group_ports is None else group_ports
    ports = topology.ports
    members = []
    for port_id in group_ports.get(gid, ()):
        port = ports.get(port_id)
        node, ofport = topology.bindings.get(port_id, (None, None))
        if port is not None and node == system_id and ofport and _guards(topology, port, gid):
            members.append(ofport)
    if not members:
        return None
    group = GroupOnNode(gid, tuple(sorted(members)), tuple(sorted(topology.groups[gid])))
    remote = lambda g: [ports[p] for p in group_ports.get(g, ()) if p in ports]
    addrs = tuple((g, tuple(sorted({ip for port in remote(g) for ip in port.ips})))
                  for g in _remotes(group, "egress"))
    idents = tuple((g, tuple(sorted({identity(port.security_groups) for port in remote(g)})))
                   for g in _remotes(group, "ingress"))
    return group, addrs, idents


def plan_acl(topology, system_id):
    """The firewall view of one node, or None if it has no local port."""
    local = []
    for port_id, (node, ofport) in topology.bindings.items():
        port = topology.ports.get(port_id)
        if node != system_id or not ofport or port is None:
            continue
        guards = tuple(g for g in port.security_groups if _guards(topology, port, g))
        local.append(SecuredPort(port_id, ofport, port.mac, tuple(port.ips), port.port_security, guards,
                                 tuple(port.allowed_pairs)))
    if not local:
        return None
    group_ports = _group_ports(topology)
    groups, addrs, idents = [], {}, {}
    for gid in sorted({g for sp in local for g in sp.groups}):
        group, group_addrs, group_idents = plan_group(topology, system_id, gid, group_ports)
        groups.append(group)
        addrs.update(group_addrs)
        idents.update(group_idents)
    return AclView(tuple(sorted(local)), tuple(groups), tuple(sorted(addrs.items())), tuple(sorted(idents.items())))


def compile_view(view: AclView) -> FlowSet:
    return compile_acl(view.ports, view.groups, dict(view.addrs), dict(view.idents))


def group_views(view: AclView):
    """{group id: (GroupOnNode, the addresses of the groups its egress rules
    name, the identities of those its ingress rules name)}: one compile unit
    per group, so a change to one group recompiles only it."""
    addrs, idents = dict(view.addrs), dict(view.idents)
    out = {}
    for group in view.groups:
        out[group.group_id] = (group, tuple((g, addrs.get(g, ())) for g in _remotes(group, "egress")),
                               tuple((g, idents.get(g, ())) for g in _remotes(group, "ingress")))
    return out
