"""Logical switches over GENEVE: the L2 part of br-int, per node.

Planning picks, for one node, what of the topology concerns it (a frozen view
per network it hosts, and one for the node itself); compiling turns a view
into flows. Equal views compile to equal flows, so the controller recompiles
only views that changed.
"""

from typing import NamedTuple, Optional

from flows import fields, pipeline
from flows.flow import (NETWORK, NODE, PIPELINE, PORT, FlowSet, make_flow, move,
                        match, output, resubmit, set_field)


class LocalPort(NamedTuple):
    port_id: str
    mac: str
    ofport: int


class RemotePort(NamedTuple):
    port_id: str
    mac: str
    tunnel_ofport: int


class NetworkOnNode(NamedTuple):
    network_id: str
    vni: int
    local: tuple          # LocalPort, sorted
    remote: tuple         # RemotePort, sorted
    flood_tunnels: tuple  # tunnel ofports to the other nodes hosting the network, sorted


class NodeBase(NamedTuple):
    system_id: str
    tunnels: tuple        # (peer system id, tunnel ofport), sorted


def plan_network(topology, network_id, system_id) -> Optional[NetworkOnNode]:
    """The view of one network from one node, or None if the node hosts no port of it."""
    network = topology.networks.get(network_id)
    if network is None:
        return None
    tunnels = topology.tunnels.get(system_id, {})
    local, remote, hosts = [], [], set()
    for port_id in topology.net_ports.get(network_id, ()):
        binding = topology.bindings.get(port_id)
        port = topology.ports.get(port_id)
        if binding is None or port is None:
            continue
        node, ofport = binding
        if node == system_id:
            if ofport:
                local.append(LocalPort(port_id, port.mac, ofport))
        else:
            tunnel = tunnels.get(node)
            if tunnel:
                remote.append(RemotePort(port_id, port.mac, tunnel))
                hosts.add(tunnel)
    if not local:
        return None
    return NetworkOnNode(network_id, network.vni, tuple(sorted(local)), tuple(sorted(remote)),
                         tuple(sorted(hosts)))


def plan_node(topology, system_id):
    """(NodeBase, {network id: NetworkOnNode}) for every network the node hosts."""
    base = NodeBase(system_id, tuple(sorted(topology.tunnels.get(system_id, {}).items())))
    hosted = {net_id for port_id, (node, _ofport) in topology.bindings.items()
              if node == system_id and port_id in topology.ports
              for net_id in (topology.ports[port_id].network_id,)}
    views = {}
    for net_id in hosted:
        view = plan_network(topology, net_id, system_id)
        if view is not None:
            views[net_id] = view
    return base, views


def compile_base(base: NodeBase) -> FlowSet:
    flows = []
    for t in pipeline.TABLES:
        if t.miss == "next":
            flows.append(make_flow(t.name, 0, (), PIPELINE, "pipeline", goto=pipeline.next_table(t.name)))
        else:
            flows.append(make_flow(t.name, 0, (), PIPELINE, "pipeline"))
    flag = fields.FROM_TUNNEL
    for peer, ofport in base.tunnels:
        flows.append(make_flow("classify", 100, match(in_port=ofport), NODE, peer,
                               actions=(set_field(flag.field.name, flag.value, flag.mask),),
                               goto="tunnel_classify"))
    return FlowSet(flows)


def compile_network(view: NetworkOnNode) -> FlowSet:
    vni, net = view.vni, view.network_id
    reg_flags, out_reg = fields.REG_FLAGS.name, fields.REG_OUT_PORT.name
    from_local = (fields.FROM_LOCAL.value, fields.FROM_LOCAL.mask)
    from_tunnel = (fields.FROM_TUNNEL.value, fields.FROM_TUNNEL.mask)
    flows = [
        # The sender's identity, from its GENEVE option, into a register
        # before any conntrack recirculation (none: 0).
        make_flow("tunnel_classify", 100, match(tun_id=vni), NETWORK, net,
                  actions=(move(fields.IDENTITY.field, fields.REG_IDENTITY.name),),
                  metadata=vni, goto="l2_lookup"),
    ]
    deliver_local = []
    for lp in view.local:
        flows.append(make_flow("classify", 100, match(in_port=lp.ofport), PORT, lp.port_id,
                               actions=(set_field(fields.REG_IN_PORT.name, lp.ofport),),
                               metadata=vni, goto="in_port_security"))
        flows.append(make_flow("l2_lookup", 100, match(metadata=vni, eth_dst=lp.mac), PORT, lp.port_id,
                               actions=(set_field(out_reg, lp.ofport),), goto="out_acl"))
        flows.append(make_flow("out_deliver", 100, match(**{out_reg: lp.ofport}), PORT, lp.port_id,
                               actions=(output(lp.ofport),)))
        deliver_local += [set_field(out_reg, lp.ofport), resubmit("out_acl")]
    for rp in view.remote:
        flows.append(make_flow("l2_lookup", 100,
                               match(metadata=vni, **{reg_flags: from_local}, eth_dst=rp.mac),
                               PORT, rp.port_id,
                               actions=(set_field("tun_id", vni), output(rp.tunnel_ofport))))
    # Broadcast, multicast and unknown unicast: every local port, and from a
    # local port also every node that hosts the network (once each).
    flows.append(make_flow("l2_lookup", 10, match(metadata=vni, **{reg_flags: from_tunnel}),
                           NETWORK, net, actions=tuple(deliver_local)))
    to_tunnels = []
    if view.flood_tunnels:
        to_tunnels.append(set_field("tun_id", vni))
        to_tunnels += [output(t) for t in view.flood_tunnels]
    flows.append(make_flow("l2_lookup", 10, match(metadata=vni, **{reg_flags: from_local}),
                           NETWORK, net, actions=tuple(deliver_local + to_tunnels)))
    return FlowSet(flows)


def compile_node(topology, system_id) -> FlowSet:
    """Every L2 flow of one node (for tests, golden files and benchmarks)."""
    base, views = plan_node(topology, system_id)
    return compile_base(base).union(*(compile_network(v) for v in views.values()))


__all__ = ["LocalPort", "RemotePort", "NetworkOnNode", "NodeBase", "plan_network", "plan_node",
           "compile_base", "compile_network", "compile_node"]
