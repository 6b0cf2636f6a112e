"""Compile time of the L2 pipeline: 10,000 ports in 200 networks on 50 nodes.

Prints: planning + compiling every node, one node, the incremental cost of
one added port (plan and compile the one network on the nodes that host it,
and diff), and the cost of serializing 20,000 flows (cold and cached).

Run: .venv/bin/python -m benchmarks.bench_compile
"""

import random
import sys
import time

from flows import ofwire
from flows.flow import diff
from flows.l2 import compile_base, compile_network, plan_network, plan_node
from flows.model import Network, Port, Topology


def build(n_ports=10000, n_networks=200, n_nodes=50, seed=1):
    rng = random.Random(seed)
    nodes = ["hv%02d" % i for i in range(n_nodes)]
    networks = {"net%d" % i: Network("net%d" % i, "net%d" % i, "t%d" % (i % 20), 1000 + i, ("10.0.0.0/16",))
                for i in range(n_networks)}
    ports, bindings, net_ports = {}, {}, {n: set() for n in networks}
    ofport = {n: 100 for n in nodes}
    for i in range(n_ports):
        net = "net%d" % (i % n_networks)
        node = rng.choice(nodes)
        pid = "port%d" % i
        ports[pid] = Port(pid, pid, networks[net].tenant, net, "02:00:%02x:%02x:%02x:%02x" % (
            i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255), (), (), node)
        ofport[node] += 1
        bindings[pid] = (node, ofport[node])
        net_ports[net].add(pid)
    tunnels = {n: {p: 2 + j for j, p in enumerate(nodes) if p != n} for n in nodes}
    return Topology(networks, ports, bindings, tunnels, net_ports), nodes


def compile_node_units(topo, node):
    base, views = plan_node(topo, node)
    units = {"base": compile_base(base)}
    for net_id, view in views.items():
        units[net_id] = compile_network(view)
    return units


def timed(fn, repeat=3):
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, result


def main():
    topo, nodes = build()
    t_all, all_units = timed(lambda: {n: compile_node_units(topo, n) for n in nodes}, repeat=1)
    n_flows = sum(len(fs) for units in all_units.values() for fs in units.values())
    t_one, _ = timed(lambda: compile_node_units(topo, nodes[0]))

    # One added port: its network is recompiled on the nodes hosting it, then diffed.
    net = "net7"
    pid = "new-port"
    node = nodes[3]
    topo.ports[pid] = Port(pid, pid, "t7", net, "02:ff:00:00:00:01", (), (), node)
    topo.bindings[pid] = (node, 9999)
    topo.net_ports[net].add(pid)
    hosts = {topo.bindings[p][0] for p in topo.net_ports[net]}

    def incremental():
        changed = 0
        for h in hosts:
            view = plan_network(topo, net, h)
            new = compile_network(view)
            d = diff(all_units[h].get(net, new.__class__(())), new)
            changed += len(d.add) + len(d.modify) + len(d.delete)
        return changed

    t_inc, changed = timed(incremental, repeat=5)

    flows = [f for units in all_units.values() for fs in units.values() for f in fs][:20000]
    ofwire._PIECES.clear()
    ofwire._ACTIONS.clear()
    t0 = time.perf_counter()
    for f in flows:
        ofwire.encode_flow_mod(f, ofwire.ADD)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, f in enumerate(flows):
        ofwire.bundle_add(1, ofwire.encode_flow_mod(f, ofwire.ADD), i + 1)
    t_warm = time.perf_counter() - t0

    print("L2 compile: %d ports, %d networks, %d nodes (full GENEVE mesh)" % (
        len(topo.ports) - 1, len(topo.networks), len(nodes)))
    print("  flows on all nodes:                      %d" % n_flows)
    print("  plan + compile, all nodes:               %.3f s" % t_all)
    print("  plan + compile, one node:                %.1f ms" % (t_one * 1000))
    print("  one added port (plan+compile+diff on the %d nodes of its network): %.2f ms, %d flow changes"
          % (len(hosts), t_inc * 1000, changed))
    print("  serialize %d flows, cold:             %.3f s (%.0f flows/s)" % (len(flows), t_cold, len(flows) / t_cold))
    print("  serialize %d flows into bundle adds, pieces cached: %.3f s (%.0f flows/s)" % (
        len(flows), t_warm, len(flows) / t_warm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
