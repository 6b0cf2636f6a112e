"""Property: for random topologies, packets walked through the compiled flows
go exactly where the networks say, and never into another network."""

from hypothesis import given, settings, strategies as st

from flows.l2 import compile_node
from flows.model import Network, Port, Topology
from flows.walk import walk

BROADCAST = "ff:ff:ff:ff:ff:ff"


@st.composite
def topologies(draw):
    n_nodes = draw(st.integers(2, 4))
    nodes = ["hv%d" % i for i in range(n_nodes)]
    n_nets = draw(st.integers(1, 3))
    networks = {"n%d" % i: Network("n%d" % i, "n%d" % i, "t", 100 + i, ("10.0.0.0/24",)) for i in range(n_nets)}
    n_ports = draw(st.integers(1, 10))
    ports, bindings, net_ports = {}, {}, {n: set() for n in networks}
    next_ofport = {n: 10 for n in nodes}
    for i in range(n_ports):
        net = draw(st.sampled_from(sorted(networks)))
        node = draw(st.sampled_from(nodes))
        pid = "p%d" % i
        ports[pid] = Port(pid, pid, "t", net, "02:00:00:00:00:%02x" % (i + 1), (), (), node)
        bindings[pid] = (node, next_ofport[node])
        next_ofport[node] += 1
        net_ports[net].add(pid)
    tunnels = {n: {p: 1 + j for j, p in enumerate(nodes) if p != n} for n in nodes}
    return Topology(networks, ports, bindings, tunnels, net_ports)


def hosts(topo, net):
    return {topo.bindings[p][0] for p in topo.net_ports[net]}


@settings(max_examples=150, deadline=None)
@given(topo=topologies(), data=st.data())
def test_unicast_and_broadcast_from_a_local_port(topo, data):
    src = data.draw(st.sampled_from(sorted(topo.ports)))
    node, ofport = topo.bindings[src]
    net = topo.ports[src].network_id
    vni = topo.networks[net].vni
    flows = compile_node(topo, node)
    for dst, port in topo.ports.items():
        out = walk(flows, {"in_port": ofport, "eth_src": topo.ports[src].mac, "eth_dst": port.mac})
        if port.network_id != net:
            # Another network's MAC is unknown here: flooded inside the sender's network only.
            assert all(tun == vni for o, tun in out if o < 10)
            assert port.node != node or topo.bindings[dst][1] not in [o for o, _ in out]
            continue
        dnode, dofport = topo.bindings[dst]
        if dst == src:
            assert out == []
        elif dnode == node:
            assert out == [(dofport, None)]
        else:
            assert out == [(topo.tunnels[node][dnode], vni)]
    out = walk(flows, {"in_port": ofport, "eth_src": topo.ports[src].mac, "eth_dst": BROADCAST})
    local = sorted(topo.bindings[p][1] for p in topo.net_ports[net] if topo.bindings[p][0] == node and p != src)
    remote = sorted(topo.tunnels[node][h] for h in hosts(topo, net) if h != node)
    assert sorted(o for o, _ in out if o >= 10) == local
    assert sorted(o for o, t in out if o < 10) == remote
    assert all(t == vni for o, t in out if o < 10)


@settings(max_examples=150, deadline=None)
@given(topo=topologies(), data=st.data())
def test_packets_from_a_tunnel_stay_local_and_in_their_network(topo, data):
    node = data.draw(st.sampled_from(sorted({b[0] for b in topo.bindings.values()})))
    peer = data.draw(st.sampled_from(sorted(topo.tunnels[node])))
    net = data.draw(st.sampled_from(sorted(topo.networks)))
    vni = topo.networks[net].vni
    flows = compile_node(topo, node)
    tunnel = topo.tunnels[node][peer]
    for dst, port in topo.ports.items():
        out = walk(flows, {"in_port": tunnel, "tun_id": vni, "eth_dst": port.mac})
        assert all(o >= 10 for o, _ in out), "a tunnelled packet went back into a tunnel"
        mine = {topo.bindings[p][1] for p in topo.net_ports[net] if topo.bindings[p][0] == node}
        assert {o for o, _ in out} <= mine, "a packet crossed into another network"
        if port.network_id == net and port.node == node:
            assert out == [(topo.bindings[dst][1], vni)]
    # A VNI that no network here has is dropped.
    assert walk(flows, {"in_port": tunnel, "tun_id": 99999, "eth_dst": BROADCAST}) == []
