"""One firewall rule change, end to end: REST call to its flows on the switch.

One hypervisor with P local ports (internal ports, default 300) in G security
groups (default 30, each with remote-group, CIDR and egress rules). Then, 5
times: POST a rule to one group, and poll the switch for a flow with that
rule's cookie. Prints the median and worst time, and dvn's own compile time
and flow changes for the change (from its log).

Run as root: .venv/bin/python -m benchmarks.bench_rule_change [--ports 300 --groups 30]
"""

import argparse
import re
import statistics
import sys
import time

from flows.flow import GROUP, owner_cookie
from tests.dvnproc import add_joined_hv, dvn_lab, wait_until


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=300)
    ap.add_argument("--groups", type=int, default=30)
    args = ap.parse_args()
    with dvn_lab("brule", 74, 18480) as (lab, dvn):
        hv = add_joined_hv(lab, dvn, "hv1", "192.168.74.11")
        api = dvn.client()
        net = api.post("/v1/networks", {"name": "n", "tenant": "b", "cidrs": ["10.0.0.0/16"]})
        groups = [api.post("/v1/security-groups", {"name": "g%d" % i, "tenant": "b"})
                  for i in range(args.groups)]
        for i, g in enumerate(groups):
            nxt = groups[(i + 1) % len(groups)]["id"]
            for body in ({"direction": "ingress", "protocol": "tcp", "port_range_min": 80,
                          "remote_group_id": nxt},
                         {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                          "remote_ip_prefix": "192.168.0.0/16"},
                         {"direction": "ingress", "protocol": "icmp", "remote_group_id": g["id"]},
                         {"direction": "egress"}):
                api.post("/v1/security-groups/%s/rules" % g["id"], body)
        for i in range(args.ports):
            port = api.post("/v1/ports", {"name": "p%d" % i, "network": net["id"],
                                          "ips": ["10.0.%d.%d" % (i // 250, i % 250 + 1)],
                                          "security_groups": [groups[i % len(groups)]["id"]]})
            hv.vsctl("add-port", "br-int", "p%d" % i, "--", "set", "Interface", "p%d" % i,
                     "type=internal", "external_ids:iface-id=%s" % port["id"])
        wait_until(lambda: all(p["node"] for p in api.get("/v1/ports")), timeout=120, interval=0.5,
                   what="every port bound")
        time.sleep(2)
        flows = len(hv.dump_flows())
        total, compile_ms, changes = [], [], []
        for k in range(5):
            g = groups[(k * 7) % len(groups)]
            mark = len(dvn.log())
            t0 = time.monotonic()
            rule = api.post("/v1/security-groups/%s/rules" % g["id"],
                            {"direction": "ingress", "protocol": "tcp", "port_range_min": 9000 + k,
                             "remote_ip_prefix": "198.51.100.0/24"})
            cookie, mask = owner_cookie(GROUP, "%s/%s" % (g["id"], rule["id"]))
            while "priority" not in hv.ofctl("dump-flows", "br-int", "cookie=%#x/%#x" % (cookie, mask)):
                if time.monotonic() - t0 > 30:
                    raise RuntimeError("rule flows did not arrive")
            total.append((time.monotonic() - t0) * 1000)
            m = re.findall(r"(\d+) flow changes in (?:one bundle|one flow_mod) \(\d+ units, compile ([\d.]+) s",
                           dvn.log()[mark:])
            changes.append(sum(int(c) for c, _ in m))
            compile_ms.append(sum(float(t) for _, t in m) * 1000)
    print("\none rule added to one group: %d ports, %d groups, %d flows on the switch" % (
        args.ports, args.groups, flows))
    print("  REST call -> rule flows on the switch: median %.1f ms, worst %.1f ms (polled with ovs-ofctl)"
          % (statistics.median(total), max(total)))
    print("  dvn's compile for the change:          median %.2f ms, worst %.2f ms" % (
        statistics.median(compile_ms), max(compile_ms)))
    print("  flow changes sent per rule:            %s" % changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
