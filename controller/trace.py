"""`dvn trace`: why a packet goes where it goes, in dvn's terms.

The packet is walked (flows.walk) over the flows dvn installed on the
sending port's node and, when it leaves through a tunnel, over those of the
node at the other end, as it arrives there (its VNI and GENEVE identity
option, nothing else). Each flow it meets is named by its cookie's owner: a
security group's rule (by the group's name), a port, a network, a load
balancer, the node or the pipeline. The answer says, per node, the path
(table by table), each firewall decision, the load-balancer member chosen,
the tunnel taken (plain or IPsec) with the identity it carries, and where the
packet was delivered or why it was dropped.

What the walk cannot know: which bucket a switch's select group picks (a
hash of the connection): it takes the member ``member`` names, else the
first. Conntrack it plays itself: a packet is a new connection's or, with
``established``, a reply in a connection the destination opened: that
connection is walked first (from the destination's port), and what the
firewall committed then (each zone's ct_mark: the rule that let it through)
is what the reply meets.
"""

import ipaddress
from collections.abc import Mapping
from typing import NamedTuple, Optional

from flows import fields, lb, pipeline
from flows.flow import CATEGORY_NAMES, GROUP, LB, category_of, cookie_owner
from flows.walk import walk

CT_NEW, CT_REPLY = 0x21, 0x2a                # +trk+new; +trk+est+rpl
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17}
SOURCE_PORT = 40000                            # the walked packet's source port (TCP, UDP)


class TraceError(ValueError):
    """A trace that cannot be made: names the field at fault."""

    def __init__(self, field, detail):
        super().__init__(detail)
        self.field = field


class Fleet(NamedTuple):
    """What a trace reads of the running controller."""
    ports: dict              # port id -> flows.model.Port
    networks: dict           # network id -> flows.model.Network
    port_node: dict          # port id -> system id
    ofports: dict            # system id -> {port id: ofport}
    tunnels: dict            # system id -> {"plain"|"ipsec": {peer system id: ofport}}
    flows: dict              # system id -> the flows dvn installed there
    groups: dict             # system id -> {group id: Group}
    lbs: dict                # load balancer id -> flows.model.LoadBalancer
    owners: dict             # cookie owner hash -> "port ID", "network ID", "node ID"... (controller.model)
    rule_index: dict         # cookie owner hash -> (security group id, acl.Rule)
    lb_owner: dict           # cookie owner hash -> load balancer id
    group_names: dict        # security group id -> name


class Request(NamedTuple):
    from_port: str
    dest: str                # an IPv4 address in the port's network: a port's or a VIP
    protocol: str = "icmp"   # icmp, tcp or udp
    port: Optional[int] = None
    established: bool = False
    member: Optional[str] = None   # the load-balancer member the switch would pick (default: the first)


def _dest_mac(fleet, port, dest):
    """The MAC the sender puts on a packet to ``dest``: a port's of its network, or its VIPs'."""
    network = fleet.networks[port.network_id]
    for lb_ in fleet.lbs.values():
        if lb_.network_id == port.network_id and lb_.vip == dest:
            return lb.vip_mac(network.vni)
    for other in fleet.ports.values():
        if other.network_id == port.network_id and dest in other.ips:
            return other.mac
    raise TraceError("dest", "no port or VIP of network %s has %s" % (network.name, dest))


def _packet(fleet, req, sport=SOURCE_PORT, dport=None, icmp_type=8):
    port = fleet.ports.get(req.from_port)
    if port is None:
        raise TraceError("from_port", "no port %s" % req.from_port)
    # (where its node reports it: its binding may not be in the store yet)
    node = next((n for n, local in fleet.ofports.items() if port.id in local), fleet.port_node.get(port.id))
    ofport = fleet.ofports.get(node, {}).get(port.id)
    if node is None or ofport is None:
        raise TraceError("from_port", "port %s is not plugged in on any node" % port.name)
    try:
        dest = str(ipaddress.IPv4Address(req.dest))
    except ValueError:
        raise TraceError("dest", "%r is not an IPv4 address" % req.dest) from None
    src = next((ip for ip in port.ips if ":" not in ip), None)
    if src is None:
        raise TraceError("from_port", "port %s has no IPv4 address" % port.name)
    proto = PROTOCOLS.get(req.protocol)
    if proto is None:
        raise TraceError("protocol", "protocol is icmp, tcp or udp")
    pkt = {"in_port": ofport, "eth_src": port.mac, "eth_dst": _dest_mac(fleet, port, dest), "eth_type": 0x0800,
           "ipv4_src": src, "ipv4_dst": dest, "ip_proto": proto}
    if proto == 1:
        pkt.update(icmpv4_type=icmp_type, icmpv4_code=0)
    else:
        if req.port is None:
            raise TraceError("port", "a %s trace needs a destination port" % req.protocol)
        kind = "tcp" if proto == 6 else "udp"
        pkt.update({kind + "_src": sport, kind + "_dst": req.port if dport is None else dport})
    return port, node, pkt


def _owner(fleet, cookie):
    """Who put the flow there, in dvn's terms."""
    category, owner = category_of(cookie), cookie_owner(cookie)
    if category == GROUP and owner in fleet.rule_index:
        gid, rule = fleet.rule_index[owner]
        return {"kind": "security group", "security_group": fleet.group_names.get(gid, gid),
                "security_group_id": gid, "rule": rule.id, "action": rule.action}
    if category == LB and owner in fleet.lb_owner:
        return {"kind": "load balancer", "load_balancer": fleet.lb_owner[owner]}
    name = CATEGORY_NAMES.get(category, "?")
    kind, _, oid = fleet.owners.get(owner, "").rpartition(" ")
    if kind == "port" and oid in fleet.ports:
        return {"kind": name, "port": fleet.ports[oid].name}
    if kind == "network" and oid in fleet.networks:
        return {"kind": name, "network": fleet.networks[oid].name}
    if kind == "node":
        return {"kind": name, "node": oid}
    return {"kind": name}


def _member(balancer, bucket):
    """The member a VIP group's bucket picks (its slot in REG_LB)."""
    slot_member = {slot: mid for mid, slot in lb.slots(balancer.members).items()}
    for action in bucket.actions:
        if action[0] == "set_field" and action[1] == fields.REG_LB.name:
            mid = slot_member.get(action[2] & 0xFFFF)
            return next((m for m in balancer.members if m.id == mid), None)
    return None


def _walk_node(fleet, req, node, pkt, path, marks=None):
    """Walk ``pkt`` on ``node``; the outputs [(ofport, packet then)] and the
    steps added to ``path``. ``marks`` ({(node, zone): ct_mark}): None for a
    new connection, whose commits are added to ``committed``; else the
    connection a reply belongs to."""
    steps = []
    by_group = {b.group_id: b for b in fleet.lbs.values()}

    def pick(group):
        balancer = by_group.get(group.group_id)
        if balancer is not None and req.member is not None:
            for bucket in group.buckets:
                member = _member(balancer, bucket)
                if member is not None and member.id == req.member:
                    return bucket
        return group.buckets[0]

    def conntrack(zone, p):
        if marks is None:
            return CT_NEW
        p["ct_mark"] = marks.get((node, zone), 0)
        return CT_REPLY

    walk(fleet.flows.get(node, ()), pkt, conntrack=conntrack, groups=fleet.groups.get(node, {}),
         pick=pick, trace=steps)
    for zone, mark in pkt.get("commits", ()):
        path.append({"node": node, "committed": {"zone": zone, "ct_mark": mark}})
    outputs = []
    for step in steps:
        if step[0] == "flow":
            _, table, flow = step
            entry = {"node": node, "table": table, "priority": flow.priority, "by": _owner(fleet, flow.cookie)}
            if table in ("in_acl", "out_acl") and entry["by"]["kind"] == "security group":
                entry["decision"] = entry["by"]["action"]
            path.append(entry)
        elif step[0] == "miss":
            path.append({"node": node, "table": step[1], "by": {"kind": "pipeline"}, "miss": True})
        elif step[0] == "group":
            balancer = by_group.get(step[1])
            member = _member(balancer, step[2]) if balancer is not None else None
            if member is not None:
                path.append({"node": node, "table": "vip_lb", "load_balancer": balancer.id,
                             "member": {"id": member.id, "address": member.address, "port": member.port}})
        else:
            outputs.append((step[1], step[2]))
    return outputs


def _arrival(pkt, in_port):
    """The packet as the other node's switch gets it from a tunnel: its
    frame, VNI and identity option; no register or conntrack state."""
    keep = {k: v for k, v in pkt.items() if k.startswith(("eth_", "ipv4_", "ip_", "tcp_", "udp_", "icmpv4_"))}
    keep.update(in_port=in_port, tun_id=pkt.get("tun_id", 0))
    keep[fields.IDENTITY.field] = pkt.get(fields.IDENTITY.field, 0)
    return keep


def trace(fleet, req):
    """The trace of ``req`` (a Request) over ``fleet``: a dict (the API's answer)."""
    if not req.established:
        port, node, pkt = _packet(fleet, req)
        return _answer(fleet, req, port, node, pkt, None)
    port, _node, _pkt = _packet(fleet, req)   # (its checks)
    opener = next((p for p in fleet.ports.values() if p.network_id == port.network_id and req.dest in p.ips), None)
    if opener is None:
        raise TraceError("dest", "an established trace is of a reply: dest must be a port's address (not a VIP)")
    src = next(ip for ip in port.ips if ":" not in ip)
    first = req._replace(from_port=opener.id, dest=src, established=False)
    o_port, o_node, o_pkt = _packet(fleet, first)
    opened = _answer(fleet, first, o_port, o_node, o_pkt, None)
    marks = {(s["node"], s["committed"]["zone"]): s["committed"]["ct_mark"]
             for s in opened["path"] if "committed" in s}
    port, node, pkt = _packet(fleet, req, sport=req.port, dport=SOURCE_PORT, icmp_type=0)
    answer = _answer(fleet, req, port, node, pkt, marks)
    answer["opened_by"] = {"packet": opened["packet"], "verdict": opened["verdict"],
                           "decisions": opened["decisions"]}
    return answer


def _answer(fleet, req, port, node, pkt, marks):
    path, delivered = [], []
    local = {o: p for p, o in fleet.ofports.get(node, {}).items()}
    outputs = _walk_node(fleet, req, node, pkt, path, marks)
    for ofport, out in outputs:
        if ofport in local:
            delivered.append({"node": node, "port": fleet.ports[local[ofport]].name, "port_id": local[ofport]})
            continue
        mesh, peer = _tunnel(fleet, node, ofport)
        if peer is None:
            continue
        hop = {"node": node, "tunnel": {"to": peer, "mesh": mesh, "vni": out.get("tun_id", 0),
                                        "identity": out.get(fields.IDENTITY.field, 0)}}
        path.append(hop)
        back = fleet.tunnels.get(peer, {}).get(mesh, {}).get(node)
        if back is None:
            hop["tunnel"]["dropped"] = "node %s has no %s tunnel from %s" % (peer, mesh, node)
            continue
        remote = {o: p for p, o in fleet.ofports.get(peer, {}).items()}
        for ofport2, _out2 in _walk_node(fleet, req, peer, _arrival(out, back), path, marks):
            if ofport2 in remote:
                delivered.append({"node": peer, "port": fleet.ports[remote[ofport2]].name,
                                  "port_id": remote[ofport2]})
    answer = {"from_port": port.name, "node": node, "packet": _describe(pkt, req), "path": path,
              "delivered": delivered}
    decisions = [s for s in path if "decision" in s]
    if not delivered:
        last = path[-1] if path else {"table": pipeline.TABLES[0].name, "node": node}
        answer["dropped"] = {"node": last.get("node"), "table": last.get("table"),
                             "by": last.get("by", {"kind": "pipeline"}), "why": _why(last)}
    answer["verdict"] = "delivered" if delivered else "dropped"
    answer["decisions"] = decisions
    return answer


def _why(last):
    by = last.get("by", {})
    if last.get("decision") == "deny":
        return "denied by rule %s of security group %s" % (by["rule"], by["security_group"])
    if "tunnel" in last:
        return last["tunnel"].get("dropped", "lost in the tunnel")
    if last.get("table") in ("in_acl", "out_acl"):
        side = "egress (the sender's)" if last["table"] == "in_acl" else "ingress (the receiver's)"
        return "no %s rule of the port's security groups allows it" % side
    if last.get("miss"):
        return "no flow of table %s takes it" % last["table"]
    return "a flow of table %s (%s) drops it" % (last.get("table"), by.get("kind", "?"))


def _tunnel(fleet, node, ofport):
    for mesh, peers in fleet.tunnels.get(node, {}).items():
        for peer, o in peers.items():
            if o == ofport:
                return mesh, peer
    return None, None


def _describe(pkt, req):
    text = "%s -> %s %s" % (pkt["ipv4_src"], pkt["ipv4_dst"], req.protocol)
    for kind in ("tcp", "udp"):
        if kind + "_dst" in pkt:
            text = "%s:%d -> %s:%d %s" % (pkt["ipv4_src"], pkt[kind + "_src"], pkt["ipv4_dst"], pkt[kind + "_dst"],
                                          kind)
    return text + (" (a reply)" if req.established else " (new)")


class _PerSwitch(Mapping):
    """{system id: what ``get(switch)`` gives}, made when asked: a walk needs
    the flows of two switches, not of every one."""

    def __init__(self, switches, get):
        self.switches, self.get_ = switches, get

    def __getitem__(self, node):
        return self.get_(self.switches[node])

    def __iter__(self):
        return iter(self.switches)

    def __len__(self):
        return len(self.switches)


class Tracing:
    """dvn trace over the running controller (a part of Core)."""

    def trace_packet(self, req):
        """trace(req) over what dvn installed on the switches now; TraceError naming the field at fault."""
        tunnels = {node: {"plain": s.tunnels("plain"), "ipsec": s.tunnels("ipsec")}
                   for node, s in list(self.sessions.items())}
        switches = dict(self.switches)
        names = {str(row.uuid): row.name for row in self.nb.rows("SecurityGroup")}
        fleet = Fleet(ports=self.ports, networks=self.networks, port_node=self.port_node,
                      ofports=self.local_ofports, tunnels=tunnels,
                      flows=_PerSwitch(switches, lambda s: list(s.table.installed.values())),
                      groups=_PerSwitch(switches, lambda s: dict(s.table.groups)),
                      lbs=self.lbs, owners=self.owners, rule_index=self.rule_index, lb_owner=self.lb_owner,
                      group_names=names)
        return trace(fleet, req)
