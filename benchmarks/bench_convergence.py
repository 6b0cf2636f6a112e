"""Convergence: from the REST call that creates a port to its flows on every switch.

For each of N ports (default 200) in a lab of H hypervisors (3 and 10): POST
/v1/ports, plug an interface with that iface-id on one hypervisor (round
robin), then poll every hypervisor of the network until its l2_lookup flow for
the port's MAC is there. Prints the median and p99, with the part spent in
the REST call and the plug shown apart.

Run as root: .venv/bin/python -m benchmarks.bench_convergence [--ports 200] [--hvs 3 10]
"""

import argparse
import datetime
import re
import statistics
import sys
import time

from tests.dvnproc import add_joined_hv, dvn_lab, wait_until


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def has_flow(hv, mac):
    out = hv.ofctl("dump-flows", "br-int", "dl_dst=%s" % mac, check=False)
    return "out_acl" in out or "goto_table" in out or "output" in out


def run(n_hvs, n_ports):
    with dvn_lab("bconv", 72, 18280) as (lab, dvn):
        api = dvn.client()
        hvs = [add_joined_hv(lab, dvn, "hv%d" % (i + 1), "192.168.72.%d" % (11 + i)) for i in range(n_hvs)]
        wait_until(lambda: all(len(hv.vsctl("--bare", "--columns=name", "find", "Interface",
                                            "type=geneve").split()) == n_hvs - 1 for hv in hvs),
                   timeout=60, what="tunnel mesh")
        net = api.post("/v1/networks", {"name": "bench", "tenant": "bench", "cidrs": ["10.1.0.0/16"]})
        rest_ms, plug_ms, total_ms, dvn_ms = [], [], [], []
        for i in range(n_ports):
            hv = hvs[i % n_hvs]
            mac = "02:00:00:01:%02x:%02x" % (i // 256, i % 256)
            mark = len(dvn.log())
            wall0 = time.time()
            t0 = time.monotonic()
            port = api.post("/v1/ports", {"name": "p%d" % i, "network": net["id"], "mac": mac})
            t1 = time.monotonic()
            name = "p%d" % i
            hv.vsctl("add-port", "br-int", name, "--", "set", "Interface", name, "type=internal",
                     "external_ids:iface-id=%s" % port["id"])
            t2 = time.monotonic()
            # Every hypervisor that has a port of the network must know the new MAC.
            needed = hvs if i >= n_hvs else hvs[:i + 1]
            pending = list(needed)
            while pending:
                pending = [h for h in pending if not has_flow(h, mac)]
                if pending and time.monotonic() - t0 > 30:
                    raise RuntimeError("port %d not converged on %s" % (i, [h.name for h in pending]))
            t3 = time.monotonic()
            # dvn's side: the last bundle it committed for this port (log time, ms).
            stamps = re.findall(r"^(\S+ \S+) INFO controller\.\w+: switch of node \w+: \d+ flow changes",
                                dvn.log()[mark:], re.M)
            if stamps:
                last = datetime.datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                dvn_ms.append((last - wall0) * 1000)
            rest_ms.append((t1 - t0) * 1000)
            plug_ms.append((t2 - t1) * 1000)
            total_ms.append((t3 - t0) * 1000)
        return {"hvs": n_hvs, "ports": n_ports,
                "median": statistics.median(total_ms), "p99": percentile(total_ms, 99),
                "rest_median": statistics.median(rest_ms), "plug_median": statistics.median(plug_ms),
                "dvn_median": statistics.median(dvn_ms), "dvn_p99": percentile(dvn_ms, 99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=200)
    ap.add_argument("--hvs", type=int, nargs="+", default=[3, 10])
    args = ap.parse_args()
    rows = [run(h, args.ports) for h in args.hvs]
    print("\nconvergence: REST port create -> flows on every switch of the network")
    print("%4s %6s %12s %10s %14s %14s %16s %12s" % ("hvs", "ports", "median ms", "p99 ms", "REST call ms",
                                                   "plug ms", "dvn median ms", "dvn p99 ms"))
    for r in rows:
        print("%4d %6d %12.1f %10.1f %14.1f %14.1f %16.1f %12.1f" % (
            r["hvs"], r["ports"], r["median"], r["p99"], r["rest_median"], r["plug_median"],
            r["dvn_median"], r["dvn_p99"]))
    print("(median/p99: REST call to the flow seen on every switch, polled one switch after the other "
          "with ovs-ofctl (~10 ms each), REST call and ovs-vsctl plug included; dvn median/p99: REST "
          "call to dvn's last bundle commit for the port, from its log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
