"""Firewall compile: flow counts with conjunction against the cross product, and compile times.

1. 1,000 ports on one node, 100 security groups of 10 ports, each group with
   ingress TCP 80 and 443 from the next group (remote group), ICMP from its own
   group, SSH from 192.168.0.0/16 and egress any: flows with conjunctive
   matches, and what one flow per combination would need.
2. 10,000 ports on one node, 1,000 groups, 10,000 rules: plan + compile of the
   node's whole firewall, and of one group after one rule is added.

Run: .venv/bin/python -m benchmarks.bench_firewall
"""

import sys
import time

from flows import acl
from flows.acl import ICMP, TCP, Rule, compile_group, plan_acl
from flows.flow import diff
from flows.model import Network, Port, Topology


def build(n_ports, n_groups, seed_rules):
    net = Network("n", "n", "t", 1000, ("10.0.0.0/8",))
    ports, bindings = {}, {}
    for i in range(n_ports):
        pid = "p%d" % i
        ports[pid] = Port(pid, pid, "t", "n", "02:00:%02x:%02x:%02x:%02x" % (i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255),
                          ("10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255 or 1),), (), "hv1",
                          security_groups=("g%d" % (i * n_groups // n_ports),),
                          named_groups=("g%d" % (i * n_groups // n_ports),))
        bindings[pid] = ("hv1", 10 + i)
    groups = {"g%d" % g: tuple(sorted(seed_rules(g, n_groups))) for g in range(n_groups)}
    return Topology({"n": net}, ports, bindings, {}, {"n": set(ports)}, groups)


def four_rules(g, n_groups):
    nxt = "g%d" % ((g + 1) % n_groups)
    return [Rule("http", "ingress", protocol=TCP, port_min=80, remote_group=nxt),
            Rule("https", "ingress", protocol=TCP, port_min=443, remote_group=nxt),
            Rule("icmp", "ingress", protocol=ICMP, remote_group="g%d" % g),
            Rule("ssh", "ingress", protocol=TCP, port_min=22, remote_cidr="192.168.0.0/16"),
            Rule("out", "egress")]


def ten_rules(g, n_groups):
    rules = four_rules(g, n_groups)
    rules += [Rule("t%d" % k, "ingress", protocol=TCP, port_min=9000 + k, port_max=9000 + k * 7,
                   remote_cidr="10.%d.0.0/16" % k) for k in range(5)]
    return rules


def group_addresses(topo):
    """{group id: its members' addresses}: what a remote group would be matched by without identities."""
    out = {}
    for port in topo.ports.values():
        for gid in port.security_groups:
            out.setdefault(gid, set()).update(port.ips)
    return out


def cross_product(view, topo):
    """Flows if every (member, remote address, port match) combination were a flow."""
    addrs = group_addresses(topo)
    total = 0
    for group in view.groups:
        for rule in group.rules:
            n_addr = len(addrs.get(rule.remote_group, ())) if rule.remote_group else 1
            n_ports = len(acl._dimension_ports(rule))
            total += len(group.members) * max(n_addr, 0) * n_ports
    return total


def main():
    topo = build(1000, 100, four_rules)
    view = plan_acl(topo, "hv1")
    flows = acl.compile_view(view)
    rule_flows = sum(len(compile_group(g, dict(view.addrs), dict(view.idents))) for g in view.groups)
    addrs = group_addresses(topo)
    remote = {r.remote_group for g in view.groups for r in g.rules if r.remote_group and r.direction == "ingress"}
    print("1,000 ports, 100 groups with remote-group rules, one node:")
    print("  firewall flows on the node (all):           %d" % len(flows))
    print("  of them, rule flows (conjunctive matches):  %d" % rule_flows)
    print("  rule flows as a cross product would be:     %d" % cross_product(view, topo))
    print("  remote side of ingress group rules:         %d identities (%d addresses)" % (
        sum(len(i) for _g, i in view.idents), sum(len(addrs.get(g, ())) for g in remote)))

    topo = build(10000, 1000, ten_rules)
    t0 = time.perf_counter()
    view = plan_acl(topo, "hv1")
    t1 = time.perf_counter()
    flows = acl.compile_view(view)
    t2 = time.perf_counter()
    print("\n10,000 ports, 1,000 groups, %d rules, one node:" % sum(len(r) for r in topo.groups.values()))
    print("  plan:     %.3f s" % (t1 - t0))
    print("  compile:  %.3f s (%d flows)" % (t2 - t1, len(flows)))
    # One rule added to one group, as the controller handles it: plan the node's
    # firewall, compare every group's view with the last one, compile and diff
    # only the groups whose view changed.
    before = acl.group_views(view)
    units = {gid: acl.compile_group_unit(*gv) for gid, gv in before.items()}
    gid = "g7"
    topo.groups[gid] = tuple(sorted(topo.groups[gid] + (Rule("new", "ingress", protocol=TCP, port_min=9001,
                                                                 remote_cidr="198.51.100.0/24"),)))
    t0 = time.perf_counter()
    after = acl.group_views(plan_acl(topo, "hv1"))
    changed = [g for g, gv in after.items() if before.get(g) != gv]
    flow_changes = 0
    for g in changed:
        d = diff(units[g], acl.compile_group_unit(*after[g]))
        flow_changes += len(d.add) + len(d.modify) + len(d.delete)
    t1 = time.perf_counter()
    print("  one rule added: %.1f ms to plan, compare %d group views, compile and diff %d (%d flow changes)"
          % ((t1 - t0) * 1000, len(after), len(changed), flow_changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
