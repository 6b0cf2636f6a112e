"""Logical switches over GENEVE: the L2 part of br-int, per node.

Planning picks, for one node, what of the topology concerns it (a frozen view
per network it hosts, and one for the node itself); compiling turns a view
into flows. Equal views compile to equal flows, so the controller recompiles
only views that changed.
"""

from typing import NamedTuple, Optional

from flows import fields, pipeline
from flows.acl import identity, source_macs
from flows.flow import (NETWORK, NODE, PIPELINE, PORT, FlowSet, make_flow, move,
                        match, output, output_reg, resubmit, set_field)


class LocalPort(NamedTuple):
    port_id: str
    mac: str
    ofport: int
    encrypt: bool = False
    identity: int = 0      # flows.acl.identity of its groups: what its packets carry
    macs: tuple = ()       # with port security: the MACs it may send from (its own, its pairs'), sorted


class RemotePort(NamedTuple):
    port_id: str
    mac: str
    tunnel_ofport: int
    secure_ofport: int = 0    # the IPsec mesh's tunnel to its node (0: none yet)
    encrypt: bool = False


class NetworkOnNode(NamedTuple):
    network_id: str
    vni: int
    local: tuple          # LocalPort, sorted
    remote: tuple         # RemotePort, sorted
    flood_tunnels: tuple  # plain tunnel ofports to the other nodes hosting the network (but below), sorted
    secure_flood: tuple = ()   # IPsec tunnel ofports (0: missing) to the nodes hosting an encrypted port
    all_secure: tuple = ()     # IPsec tunnel ofports (0: missing) to every other node hosting the network
    pair_out: tuple = ()       # (local ofport, remote port id, its MAC, IPsec ofport): a group pair's, sorted
    pair_in: tuple = ()        # (local port id, its MAC, a paired sender's identity), sorted


class NodeBase(NamedTuple):
    system_id: str
    tunnels: tuple        # (peer system id, tunnel ofport), sorted
    secure: tuple = ()    # (peer system id, IPsec tunnel ofport), sorted


def plan_network(topology, network_id, system_id) -> Optional[NetworkOnNode]:
    """The view of one network from one node, or None if the node hosts no port of it."""
    network = topology.networks.get(network_id)
    if network is None:
        return None
    tunnels = topology.tunnels.get(system_id, {})
    secure = topology.secure_tunnels.get(system_id, {})
    local, remote, hosts, encrypted = [], [], {}, set()
    for port_id in topology.net_ports.get(network_id, ()):
        binding = topology.bindings.get(port_id)
        port = topology.ports.get(port_id)
        if binding is None or port is None:
            continue
        node, ofport = binding
        if node == system_id:
            if ofport:
                macs = source_macs(port.mac, port.allowed_pairs) if port.port_security else ()
                local.append(LocalPort(port_id, port.mac, ofport, port.encrypt, identity(port.security_groups),
                                       macs))
        else:
            tunnel = tunnels.get(node)
            if tunnel:
                remote.append(RemotePort(port_id, port.mac, tunnel, secure.get(node, 0), port.encrypt))
                hosts[node] = (tunnel, secure.get(node, 0))
                if port.encrypt:
                    encrypted.add(node)
    if not local:
        return None
    pair_out, pair_in = _group_pairs(topology, local, remote)
    return NetworkOnNode(network_id, network.vni, tuple(sorted(local)), tuple(sorted(remote)),
                         tuple(sorted(t for n, (t, _s) in hosts.items() if n not in encrypted)),
                         tuple(sorted(s for n, (_t, s) in hosts.items() if n in encrypted)),
                         tuple(sorted(s for _t, s in hosts.values())), pair_out, pair_in)


def secure_pairs(topology):
    """The node pairs (a, b), a < b, whose traffic may cross the IPsec mesh:
    two nodes that host ports of one network, one of which hosts a port
    whose traffic is encrypted (its own flag, or a group's) or a member of a
    group whose traffic with another group is (then so does the other, if
    it hosts the other group's member). Only these pairs need an IPsec key
    and IPsec tunnel ports: a fleet that encrypts nothing has none."""
    grouped = {g for pair in topology.encrypt_pairs for g in pair}
    pairs = set()
    for port_ids in topology.net_ports.values():
        hosts, secure = set(), set()
        for port_id in port_ids:
            binding = topology.bindings.get(port_id)
            port = topology.ports.get(port_id)
            if binding is None or port is None or not binding[0]:
                continue
            hosts.add(binding[0])
            if port.encrypt or grouped.intersection(port.security_groups):
                secure.add(binding[0])
        pairs.update(tuple(sorted((a, b))) for a in secure for b in hosts if a != b)
    return pairs


def _group_pairs(topology, local, remote):
    """Unicast between members of two groups whose traffic is encrypted (and
    neither port encrypted anyway): the sender's flows onto the IPsec mesh, the
    receiver's drops of such a sender's packets from the plain mesh (by the
    sender's identity)."""
    pairs = topology.encrypt_pairs
    if not pairs:
        return (), ()

    def paired(g1, g2):
        return any((a in g1 and b in g2) or (b in g1 and a in g2) for a, b in pairs)

    groups = {p.port_id: set(topology.ports[p.port_id].security_groups) for p in local + remote}
    out, into = set(), set()
    for lp in local:
        for rp in remote:
            if lp.encrypt or rp.encrypt or not paired(groups[lp.port_id], groups[rp.port_id]):
                continue
            out.add((lp.ofport, rp.port_id, rp.mac, rp.secure_ofport))
            into.add((lp.port_id, lp.mac, identity(topology.ports[rp.port_id].security_groups)))
    return tuple(sorted(out)), tuple(sorted(into))


def plan_node(topology, system_id):
    """(NodeBase, {network id: NetworkOnNode}) for every network the node hosts."""
    base = NodeBase(system_id, tuple(sorted(topology.tunnels.get(system_id, {}).items())),
                    tuple(sorted(topology.secure_tunnels.get(system_id, {}).items())))
    hosted = {net_id for port_id, (node, _ofport) in topology.bindings.items()
              if node == system_id and port_id in topology.ports
              for net_id in (topology.ports[port_id].network_id,)}
    views = {}
    for net_id in hosted:
        view = plan_network(topology, net_id, system_id)
        if view is not None:
            views[net_id] = view
    return base, views


def _mark(m):
    return (m.value, m.mask)


def compile_base(base: NodeBase) -> FlowSet:
    flows = []
    for t in pipeline.TABLES:
        if t.miss == "none":   # (no packet comes there)
            continue
        if t.miss == "next":
            flows.append(make_flow(t.name, 0, (), PIPELINE, "pipeline", goto=pipeline.next_table(t.name)))
        else:
            flows.append(make_flow(t.name, 0, (), PIPELINE, "pipeline"))
    # Delivery to the local port in reg7 (set by l2_lookup, a flood or a
    # hairpin): one flow for every port.
    flows.append(make_flow("out_deliver", 100, (), NODE, base.system_id,
                           actions=(output_reg(fields.REG_OUT_PORT.name),)))
    reg = fields.REG_FLAGS.name
    for marks, tunnels in (((fields.FROM_TUNNEL,), base.tunnels),
                           ((fields.FROM_TUNNEL, fields.SECURE), base.secure)):
        value = sum(m.value for m in marks)
        for peer, ofport in tunnels:
            flows.append(make_flow("classify", 100, match(in_port=ofport), NODE, peer,
                                   actions=(set_field(reg, value, value),), goto="tunnel_classify"))
    return FlowSet(flows)


def compile_network(view: NetworkOnNode) -> FlowSet:
    """A network on one node. Traffic of a port whose traffic must be
    encrypted (and traffic to one) crosses to other nodes only through the
    IPsec mesh; where that tunnel is missing it is dropped, never sent on the
    plain mesh (fail closed). Such a port takes nothing from the plain mesh."""
    vni, net = view.vni, view.network_id
    reg_flags, out_reg = fields.REG_FLAGS.name, fields.REG_OUT_PORT.name
    from_local, from_tunnel = _mark(fields.FROM_LOCAL), _mark(fields.FROM_TUNNEL)
    enc, sec = fields.ENCRYPT, fields.SECURE
    encrypted_local = (enc.value, enc.mask | fields.FROM_TUNNEL.mask)        # from an encrypted local port
    plain_tunnel = (fields.FROM_TUNNEL.value, fields.FROM_TUNNEL.mask | sec.mask)
    secure_tunnel = (fields.FROM_TUNNEL.value | sec.value, fields.FROM_TUNNEL.mask | sec.mask)
    encrypting = any(lp.encrypt for lp in view.local)
    flows = [
        # The sender's identity, from its GENEVE option, into a register
        # before any conntrack recirculation (none: 0).
        make_flow("tunnel_classify", 100, match(tun_id=vni), NETWORK, net,
                  actions=(move(fields.IDENTITY.field, fields.REG_IDENTITY.name),),
                  metadata=vni, goto="l2_lookup"),
    ]
    deliver_local, deliver_plain = [], []
    mac_ok = fields.SOURCE_MAC
    for lp in view.local:
        # Where it came from, and its identity (its node vouches for it); a
        # packet from one of the MACs port security lets it use is marked so,
        # and only such packets of a port with port security go on.
        actions = (set_field(fields.REG_IN_PORT.name, lp.ofport),
                   set_field(fields.REG_IDENTITY.name, lp.identity), set_field(fields.IDENTITY.field, lp.identity))
        if lp.encrypt:
            actions += (set_field(reg_flags, enc.value, enc.mask),)
        if not lp.macs:   # (with port security, a packet from another MAC ends here: classify drops it)
            flows.append(make_flow("classify", 100, match(in_port=lp.ofport), PORT, lp.port_id,
                                   actions=actions, metadata=vni, goto="in_port_security"))
        for mac in lp.macs:
            flows.append(make_flow("classify", 110, match(in_port=lp.ofport, eth_src=mac), PORT, lp.port_id,
                                   actions=actions + (set_field(reg_flags, mac_ok.value, mac_ok.mask),),
                                   metadata=vni, goto="in_port_security"))
        flows.append(make_flow("l2_lookup", 100, match(metadata=vni, eth_dst=lp.mac), PORT, lp.port_id,
                               actions=(set_field(out_reg, lp.ofport),), goto="out_acl"))
        if lp.encrypt:
            flows.append(make_flow("l2_lookup", 110, match(metadata=vni, **{reg_flags: plain_tunnel},
                                                           eth_dst=lp.mac), PORT, lp.port_id))
        deliver = [set_field(out_reg, lp.ofport), resubmit("out_acl")]
        deliver_local += deliver
        if not lp.encrypt:
            deliver_plain += deliver

    for rp in view.remote:
        flows += _remote_flows(vni, encrypting, rp)
    for ofport, port_id, mac, secure in view.pair_out:
        flows.append(make_flow("l2_lookup", 102, match(metadata=vni, **{reg_flags: from_local,
                                                                        fields.REG_IN_PORT.name: ofport},
                                                       eth_dst=mac), PORT, port_id, actions=_tunnel_out(vni, secure)))
    for port_id, mac, ident in view.pair_in:
        flows.append(make_flow("l2_lookup", 111, match(metadata=vni, **{reg_flags: plain_tunnel,
                                                                        fields.REG_IDENTITY.name: ident},
                                                       eth_dst=mac), PORT, port_id))
    # Broadcast, multicast and unknown unicast: every local port, and from a
    # local port also every node that hosts the network (once each).
    flows.append(make_flow("l2_lookup", 10, match(metadata=vni, **{reg_flags: from_tunnel}),
                           NETWORK, net, actions=tuple(deliver_plain)))
    flows.append(make_flow("l2_lookup", 10, match(metadata=vni, **{reg_flags: from_local}),
                           NETWORK, net, actions=tuple(deliver_local) + _tunnel_out(vni, *view.flood_tunnels,
                                                                                  *view.secure_flood)))
    if encrypting:
        flows.append(make_flow("l2_lookup", 11, match(metadata=vni, **{reg_flags: secure_tunnel}),
                               NETWORK, net, actions=tuple(deliver_local)))
        flows.append(make_flow("l2_lookup", 11, match(metadata=vni, **{reg_flags: encrypted_local}),
                               NETWORK, net, actions=tuple(deliver_local) + _tunnel_out(vni, *view.all_secure)))
    return FlowSet(flows)


def _remote_flows(vni, encrypting, rp):
    """A remote port's flows on a node of its network: its MAC to its node's tunnel."""
    reg_flags = fields.REG_FLAGS.name
    encrypted_local = (fields.ENCRYPT.value, fields.ENCRYPT.mask | fields.FROM_TUNNEL.mask)
    to = {"metadata": vni, "eth_dst": rp.mac}
    flows = [make_flow("l2_lookup", 100, match(**to, **{reg_flags: _mark(fields.FROM_LOCAL)}), PORT, rp.port_id,
                       actions=_tunnel_out(vni, rp.secure_ofport if rp.encrypt else rp.tunnel_ofport))]
    if encrypting and not rp.encrypt:
        flows.append(make_flow("l2_lookup", 101, match(**to, **{reg_flags: encrypted_local}), PORT,
                               rp.port_id, actions=_tunnel_out(vni, rp.secure_ofport)))
    return flows


def _tunnel_out(vni, *ofports):
    ofports = [o for o in ofports if o]   # a missing IPsec tunnel: not sent there
    return (set_field("tun_id", vni),) + tuple(output(o) for o in ofports) if ofports else ()


def compile_network_change(old_view, old_flows, view):
    """compile_network(view), from what ``old_view`` compiled to
    (``old_flows``), when only its remote ports differ: a port plugged on or
    unplugged from another node of the network, the common change on most
    of the network's nodes, makes only that port's flows (a network of a few
    hundred ports would compile them all again on every node). None when
    more than that differs."""
    if old_view is None or old_flows is None or old_view._replace(remote=()) != view._replace(remote=()):
        return None
    old_remote, new_remote = set(old_view.remote), set(view.remote)
    encrypting = any(lp.encrypt for lp in view.local)
    index = dict(old_flows.items())
    for rp in old_remote - new_remote:
        for flow in _remote_flows(view.vni, encrypting, rp):
            if index.pop(flow.key, None) != flow:
                return None   # (not its flow there: two ports with one MAC; the whole compile says so)
    for rp in new_remote - old_remote:
        for flow in _remote_flows(view.vni, encrypting, rp):
            if index.setdefault(flow.key, flow) is not flow:
                return None
    return FlowSet.of_index(index)


def compile_node(topology, system_id) -> FlowSet:
    """Every L2 flow of one node (for tests, golden files and benchmarks)."""
    base, views = plan_node(topology, system_id)
    return compile_base(base).union(*(compile_network(v) for v in views.values()))


__all__ = ["LocalPort", "RemotePort", "NetworkOnNode", "NodeBase", "plan_network", "plan_node",
           "compile_base", "compile_network", "compile_network_change", "compile_node"]
