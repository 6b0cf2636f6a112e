"""Scale (issue 6) without a lab: the whole workload compiled for its one node.

Builds the compiler's topology of benchmarks/workload.py for P ports (every
port bound to hv1 with an ofport, one peer node so the mesh is not empty) and
compiles it unit by unit as the controller does on a full sync (the node's
base, each network, each load balancer, the firewall's shared flows, each
port's, each security group), then merges the units' flows by identity as the switch gets them.
Prints, per P: flows by table and category, flows per port, groups, and the
time and memory (tracemalloc peak) of planning plus compiling.

This is the part of convergence that is dvn's own CPU and the flow count the
switch must take in; benchmarks/bench_scale.py measures the whole thing on a
real switch.

Run: .venv/bin/python -m benchmarks.bench_scale_compile [--ports 1000 3000 10000]
"""

import argparse
import collections
import gc
import sys
import time
import tracemalloc

from benchmarks.workload import Workload
from flows import acl, l2, lb, ofwire, pipeline
from flows.flow import cookie_category
from flows.model import LoadBalancer, Member, Network, Port, Topology

NODE = "hv1"


def topology(w):
    """The workload as the controller's Topology, every port on NODE."""
    nets = {"n%d" % k: Network("n%d" % k, "net%d" % k, "scale", 1000 + k, (w.cidr(k),))
            for k in range(w.n_networks)}
    gids = ["g%d" % g for g in range(w.n_groups)]
    rules = collections.defaultdict(list)
    for r in range(len(w.rules)):
        gid, body = w.rule_body(r, gids)
        proto = {"tcp": acl.TCP, "icmp": acl.ICMP}.get(body.get("protocol"))
        rules[gid].append(acl.Rule("r%d" % r, body["direction"], protocol=proto,
                                   port_min=body.get("port_range_min"), port_max=body.get("port_range_max"),
                                   remote_cidr=body.get("remote_ip_prefix"),
                                   remote_group=body.get("remote_group_id")))
    ports, bindings, net_ports = {}, {}, collections.defaultdict(set)
    for i, (k, mac, ip, groups) in enumerate(w.ports):
        pid, named = "p%d" % i, tuple(sorted(gids[g] for g in groups))
        ports[pid] = Port(pid, w.port_name(i), "scale", "n%d" % k, mac, (ip,), (), NODE,
                          security_groups=named, named_groups=named)
        bindings[pid] = (NODE, 10 + i)
        net_ports["n%d" % k].add(pid)
    lbs, net_lbs = {}, collections.defaultdict(set)
    for j, (k, vip, members) in enumerate(w.vips):
        lb_id = "lb%d" % j
        ms = tuple(sorted(Member("m%d-%d" % (j, i), w.ports[i][2], 8080) for i in members))
        lbs[lb_id] = LoadBalancer(lb_id, "scale", "n%d" % k, vip, "tcp", 80, j + 1, ms)
        net_lbs["n%d" % k].add(lb_id)
    return Topology(nets, ports, bindings, {NODE: {"hv2": 1}}, net_ports,
                    {g: tuple(sorted(rules[g])) for g in gids}, lbs, net_lbs)


def compile_node(topo, node=NODE):
    """{unit: FlowSet} of a full sync of ``node``, and the select groups."""
    units = {}
    base, networks = l2.plan_node(topo, node)
    units["base"] = l2.compile_base(base)
    for net_id, view in networks.items():
        units[net_id] = l2.compile_network(view)
    groups = {}
    for lb_id in sorted(b for n in networks for b in topo.net_lbs.get(n, ())):
        view = lb.plan_lb(topo, lb_id, node)
        if view is not None:
            units[("lb", lb_id)] = lb.compile_lb(view)
            groups.update(lb.compile_groups(view))
    view = acl.plan_acl(topo, node)
    units["acl"] = acl.compile_base(*acl.base_view(view.ports, tracked=bool(topo.lbs)))
    for sp in view.ports:
        units[("port", sp.port_id)] = acl.compile_port(sp)
    for gid, gview in acl.group_views(view).items():
        units[("grp", gid)] = acl.compile_group_unit(*gview)
    return units, groups


def merged(units):
    """The flows the switch gets: one per identity (core._merged)."""
    contrib = collections.defaultdict(list)
    for flows in units.values():
        for flow in flows:
            contrib[ofwire.wire_key(flow)].append(flow)
    return [same[0] if len(same) == 1 else acl.merge_all(same) for same in contrib.values()]


def run(p):
    w = Workload(p)
    topo = topology(w)
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    units, groups = compile_node(topo)
    t1 = time.perf_counter()
    flows = merged(units)
    t2 = time.perf_counter()
    _size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    largest = max(len(ofwire.encode_flow_mod(f, ofwire.ADD)) for f in flows)
    by_table = collections.Counter(f.table for f in flows)
    by_cat = collections.Counter(cookie_category(f.cookie) for f in flows)
    print("P = %d: %d networks, %d groups, %d rules, %d VIPs" % (
        p, w.n_networks, w.n_groups, len(w.rules), w.n_vips))
    print("  flows on br-int:  %d (%.1f per port), select groups: %d, largest flow_mod %d bytes" % (
        len(flows), len(flows) / p, len(groups), largest))
    print("  by category:      " + ", ".join("%s %d" % kv for kv in sorted(by_cat.items())))
    print("  by table:         " + ", ".join("%s %d" % (t.name, by_table[t.name]) for t in pipeline.TABLES))
    print("  plan + compile:   %.2f s, merge %.2f s, peak traced memory %.0f MiB" % (
        t1 - t0, t2 - t1, peak / 2 ** 20))
    return len(flows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ports", type=int, nargs="+", default=[1000, 3000, 10000])
    args = ap.parse_args()
    for p in args.ports:
        run(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
