"""The distributed load balancer at scale: install, member changes, datapath cost.

A lab of N joined hypervisors (default 10), one network with P member ports
(internal ports with addresses, default 100, spread round robin over the
nodes, so every node hosts a bound port of the network and compiles its load
balancers) and two VMs: a client on hv1, a bulk receiver on hv2.

1. Install: POST V load balancers (default 1,000), M members each (default
   10, addresses taken round robin from the member ports), one after the
   other (--clients N: N in flight at once); then poll every node's br-int until it holds all V select groups
   and all V VIP flows (``group:`` actions in vip_lb). Timed from the first
   POST to the last node seen complete.
2. One member change, 5 times (a different VIP each time): POST one member,
   then PATCH one member's weight; each timed from the API call until every
   node's dump-groups shows the VIP's group with exactly the buckets dvn
   must give it (ids from flows.lb.bucket_ids).
3. Datapath: one TCP stream (benchmarks/tools/bulk.py, ~200 MiB or 10 s,
   whichever first) from the client to the receiver straight, and through a
   VIP whose only member is the receiver (another hypervisor than the
   client), alternated R times (default 5), with all V VIPs installed.

Every wait has a timeout; the lab (namespaces, OVS, dvn) is torn down on exit.

Run as root: .venv/bin/python -m benchmarks.bench_lb [--vips 1000 --members 10 --nodes 10]
Quick check: .venv/bin/python -m benchmarks.bench_lb --vips 50 --members 4 --nodes 3
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from flows import lb
from flows.pipeline import table_id
from tests.dvnproc import add_joined_hv, dvn_lab, wait_until

TAG, OCTET, API_PORT = "blb", 75, 18580      # tests use 61-63 (18080-18082), demo 70, benchmarks 72-74
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "bulk.py")
VIP_TABLE = table_id("vip_lb")
BULK_PORT = 5001
BULK_VIP = "10.2.99.1"
CLIENT_IP, SERVER_IP = "10.2.0.11", "10.2.0.12"
BUNDLE = re.compile(r"^(\S+ \S+) INFO controller\.\w+: switch of node \w+: (\d+) flow changes in (?:one bundle|one flow_mod) "
                    r"\(\d+ units, compile ([\d.]+) s, bundle ([\d.]+) s\)", re.M)


def hv_ip(i):
    return "192.168.%d.%d" % (OCTET, 11 + i)


def member_ip(k):
    return "10.2.%d.%d" % (1 + k // 250, k % 250 + 1)


def vip_ip(i):
    return "10.2.%d.%d" % (100 + i // 250, i % 250 + 1)


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


# ---- what a switch holds -----------------------------------------------------------
def group_count(hv):
    out = hv.ofctl("dump-groups", "br-int", check=False)
    return len(re.findall(r"^\s*group_id=", out, re.M))


def vip_flow_count(hv):
    return hv.ofctl("dump-flows", "br-int", "table=%d" % VIP_TABLE, check=False).count("actions=group:")


def buckets_of(hv, group_id):
    out = hv.ofctl("dump-groups", "br-int", str(group_id), check=False)
    return {int(b) for b in re.findall(r"bucket_id:(\d+)", out)}


def want_buckets(members):
    """The bucket ids dvn gives a pool of usable members (the API's member objects)."""
    counts = lb.bucket_counts([SimpleNamespace(id=m["id"], weight=m["weight"]) for m in members])
    return set(lb.bucket_ids(counts).values())


def until_everywhere(hvs, done, t0, timeout, what, interval=0.0):
    """Poll the nodes not done yet until each is; the time (s since t0) the last one was seen done."""
    pending, last = list(hvs), 0.0
    while pending:
        still = []
        for hv in pending:
            if done(hv):
                last = time.monotonic() - t0
            else:
                still.append(hv)
        pending = still
        if pending:
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("%s: not on %s after %d s" % (what, [h.name for h in pending], timeout))
            time.sleep(interval)
    return last


# ---- the lab -------------------------------------------------------------------------
def build(lab, dvn, args):
    api = dvn.client()
    hvs = [add_joined_hv(lab, dvn, "hv%d" % (i + 1), hv_ip(i)) for i in range(args.nodes)]
    wait_until(lambda: all(len(hv.vsctl("--bare", "--columns=name", "find", "Interface",
                                        "type=geneve").split()) == args.nodes - 1 for hv in hvs),
               timeout=120, interval=0.5, what="tunnel mesh")
    net = api.post("/v1/networks", {"name": "lbbench", "tenant": "bench", "cidrs": ["10.2.0.0/16"]})
    addresses = []
    for k in range(args.ports):
        name = "m%d" % k
        port = api.post("/v1/ports", {"name": name, "network": net["id"], "ips": [member_ip(k)],
                                      "mac": "02:00:75:01:%02x:%02x" % (k >> 8, k & 255)})
        hvs[k % args.nodes].vsctl("add-port", "br-int", name, "--", "set", "Interface", name, "type=internal",
                                  "external_ids:iface-id=%s" % port["id"])
        addresses.append(member_ip(k))
    vms = {}
    for name, hv, ip, i in (("c1", hvs[0], CLIENT_IP, 11), ("s1", hvs[1], SERVER_IP, 12)):
        mac = "02:00:75:00:00:%02x" % i
        port = api.post("/v1/ports", {"name": name, "network": net["id"], "ips": [ip], "mac": mac})
        vms[name] = lab.add_vm(name, hv, ip + "/16", mac, iface_id=port["id"])
    wait_until(lambda: all(p["node"] for p in api.get("/v1/ports")), timeout=120, interval=0.5,
               what="every port bound")
    time.sleep(3)  # the switches' last port bundles
    return api, hvs, net, addresses, vms


# ---- 1. install ----------------------------------------------------------------------
def install(dvn, api, hvs, net, addresses, args):
    n, m = args.vips, args.members
    bodies = []
    for i in range(n):
        bodies.append({"name": "vip%d" % i, "network": net["id"], "vip_address": vip_ip(i), "protocol": "tcp",
                       "protocol_port": 80,
                       "members": [{"address": addresses[(i * m + j) % len(addresses)], "protocol_port": 8000 + j}
                                   for j in range(m)]})
    mark = len(dvn.log())
    post_ms, lbs, done, errors = [], [None] * n, [0], []
    lock = threading.Lock()
    todo = iter(range(n))
    step = max(1, n // 10)
    wall0 = time.time()
    t0 = time.monotonic()

    def poster():
        while True:
            with lock:
                i = next(todo, None)
            if i is None or errors or time.monotonic() - t0 > args.timeout:
                return
            t = time.monotonic()
            lbs[i] = api.post("/v1/load-balancers", bodies[i])
            with lock:
                post_ms.append((time.monotonic() - t) * 1000)
                done[0] += 1
                if done[0] % step == 0:
                    print("  ... %d VIPs posted in %.1f s (the last POST took %.0f ms)" % (
                        done[0], time.monotonic() - t0, post_ms[-1]), flush=True)

    def guarded():
        try:
            poster()
        except Exception as exc:  # reported below, once the other posters are done
            errors.append(exc)

    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    if done[0] < n:
        raise RuntimeError("install: only %d of %d VIPs posted in %d s" % (done[0], n, args.timeout))
    posted = time.monotonic() - t0
    total = until_everywhere(hvs, lambda hv: group_count(hv) >= n and vip_flow_count(hv) >= n, t0,
                             args.timeout, "%d groups and VIP flows" % n, interval=0.2)
    bundles = BUNDLE.findall(dvn.log()[mark:])
    counts = [group_count(hv) for hv in hvs]
    flows = len(hvs[0].dump_flows())
    return lbs, {"posted": posted, "total": total, "post_median": statistics.median(post_ms),
                 "post_max": max(post_ms), "bundles": len(bundles),
                 "changes": sum(int(b[1]) for b in bundles),
                 "dvn_last": (log_time(bundles[-1][0]) - wall0) if bundles else float("nan"),
                 "groups": counts, "flows_hv1": flows}


# ---- 2. one member change ------------------------------------------------------------
def member_changes(api, hvs, lbs, addresses, rounds=5):
    added, patched = [], []
    for r in range(rounds):
        balancer = lbs[(r * 7919 + 11) % len(lbs)]
        path = "/v1/load-balancers/%s/members" % balancer["id"]
        members = api.get(path)
        # The VIP's group id: the one of its vip_lb flow (the API does not show it).
        out = hvs[0].ofctl("dump-flows", "br-int", "table=%d,tcp,nw_dst=%s,tp_dst=80" % (
            VIP_TABLE, balancer["vip_address"]))
        gid = int(re.search(r"actions=group:(\d+)", out).group(1))
        address = addresses[(r * 13 + 5) % len(addresses)]
        t0 = time.monotonic()
        new = api.post(path, {"address": address, "protocol_port": 9000 + r})
        members.append(new)
        want = want_buckets(members)
        added.append(until_everywhere(hvs, lambda hv: buckets_of(hv, gid) == want, t0, 30,
                                      "member added to group %d" % gid) * 1000)
        target = members[0]
        t0 = time.monotonic()
        api.call("PATCH", "%s/%s" % (path, target["id"]), {"weight": target["weight"] + 2})
        members[0] = dict(target, weight=target["weight"] + 2)
        want = want_buckets(members)
        patched.append(until_everywhere(hvs, lambda hv: buckets_of(hv, gid) == want, t0, 30,
                                        "weight change in group %d" % gid) * 1000)
    # What one look at every node costs (the polling's resolution).
    sweeps = []
    for _ in range(3):
        t0 = time.monotonic()
        for hv in hvs:
            buckets_of(hv, gid)
        sweeps.append((time.monotonic() - t0) * 1000)
    return added, patched, statistics.median(sweeps)


# ---- 3. datapath ---------------------------------------------------------------------
def bulk(vm, host, mbytes, seconds):
    out = vm.exec("python3", TOOL, "send", host, str(BULK_PORT), str(mbytes), str(seconds),
                  timeout=seconds + 90)
    return json.loads(out)


def reaches(vm, host):
    try:
        return bulk(vm, host, 0.01, 2)["received"] > 0
    except (RuntimeError, ValueError, subprocess.TimeoutExpired):
        return False


def datapath(lab, api, net, vms, args):
    lab.spawn(["ip", "netns", "exec", vms["s1"].ns, "python3", TOOL, "serve", str(BULK_PORT)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api.post("/v1/load-balancers", {"name": "bulk", "network": net["id"], "vip_address": BULK_VIP,
                                    "protocol": "tcp", "protocol_port": BULK_PORT,
                                    "members": [{"address": SERVER_IP, "protocol_port": BULK_PORT}]})
    c1 = vms["c1"]
    for host in (SERVER_IP, BULK_VIP):
        wait_until(lambda: reaches(c1, host), timeout=60, interval=0.5, what="bulk receiver at %s" % host)
    runs = {"direct": [], "vip": []}
    for r in range(args.rounds):
        pair = (("direct", SERVER_IP), ("vip", BULK_VIP))
        for kind, host in pair if r % 2 == 0 else pair[::-1]:  # neither always goes first
            res = bulk(c1, host, args.mbytes, args.seconds)
            if res["received"] != res["sent"]:
                raise RuntimeError("%s stream: sent %d bytes, received %d" % (kind, res["sent"], res["received"]))
            runs[kind].append(res)
    return runs


def mbps(res):
    return res["received"] / res["seconds"] / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vips", type=int, default=1000)
    ap.add_argument("--members", type=int, default=10, help="members per VIP")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--ports", type=int, default=100, help="member ports (addresses), round robin over the nodes")
    ap.add_argument("--clients", type=int, default=1, help="POSTs in flight at once during the install")
    ap.add_argument("--rounds", type=int, default=5, help="direct/VIP stream pairs")
    ap.add_argument("--mbytes", type=float, default=200, help="MiB per stream (or --seconds, whichever first)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the install")
    args = ap.parse_args()
    if args.nodes < 2 or args.ports < args.nodes or args.members < 1 or args.vips < 1:
        ap.error("need --nodes >= 2, --ports >= --nodes, --members >= 1, --vips >= 1")
    started = time.monotonic()
    print("bench_lb: %d VIPs x %d members, %d nodes, %d member ports, %d POST(s) in flight" % (
        args.vips, args.members, args.nodes, args.ports, args.clients), flush=True)
    with dvn_lab(TAG, OCTET, API_PORT) as (lab, dvn):
        try:
            api, hvs, net, addresses, vms = build(lab, dvn, args)
            built = time.monotonic() - started
            lbs, inst = install(dvn, api, hvs, net, addresses, args)
            added, patched, sweep = member_changes(api, hvs, lbs, addresses)
            runs = datapath(lab, api, net, vms, args)
        except BaseException:
            print("bench_lb failed; dvn's log is kept in %s" % dvn.log_path, file=sys.stderr)
            raise
        problems = [line for line in dvn.log().splitlines() if " ERROR " in line or "Traceback" in line]
    elapsed = time.monotonic() - started

    print("\nload balancer install: %d VIPs x %d members, %d nodes, %d member ports, %d POST(s) in flight" % (
        args.vips, args.members, args.nodes, args.ports, args.clients))
    row = "  %-52s %s"
    print(row % ("first POST -> every node has all groups and VIP flows:", "%.1f s" % inst["total"]))
    print(row % ("the %d POSTs:" % args.vips, "%.1f s (median %.1f ms, worst %.1f ms)" % (
        inst["posted"], inst["post_median"], inst["post_max"])))
    print(row % ("dvn's last bundle, from its log:", "%.1f s after the first POST" % inst["dvn_last"]))
    print(row % ("dvn's bundles, all nodes together:", "%d (%d flow/group changes)" % (
        inst["bundles"], inst["changes"])))
    print(row % ("groups per node; flows on hv1:", "%s; %d" % (sorted(set(inst["groups"])), inst["flows_hv1"])))
    print("\none member change -> every node's dump-groups (5 times, a different VIP each, median / worst)")
    print("  POST one member (a bucket inserted):    %.1f ms / %.1f ms" % (statistics.median(added), max(added)))
    print("  PATCH a member's weight (+2):           %.1f ms / %.1f ms" % (statistics.median(patched), max(patched)))
    print("  (polled with ovs-ofctl dump-groups, one node after the other: %.0f ms for all %d nodes)" % (
        sweep, args.nodes))
    direct = statistics.median(mbps(r) for r in runs["direct"])
    vip = statistics.median(mbps(r) for r in runs["vip"])
    print("\ndatapath: one TCP stream hv1 -> hv2 (userspace OVS, GENEVE), %d VIPs installed, median of %d" % (
        args.vips + 1, args.rounds))
    print("  straight to the member: %7.1f MB/s  (%s)" % (direct, ", ".join(
        "%.0f MiB in %.1f s" % (r["received"] / (1 << 20), r["seconds"]) for r in runs["direct"])))
    print("  through the VIP:        %7.1f MB/s  (%s)" % (vip, ", ".join(
        "%.0f MiB in %.1f s" % (r["received"] / (1 << 20), r["seconds"]) for r in runs["vip"])))
    print("  VIP / straight:         %7.2f" % (vip / direct))
    print("\nlab built in %.0f s; whole run %.0f s" % (built, elapsed))
    if problems:
        print("\ndvn log: %d ERROR/Traceback lines, the first:" % len(problems))
        for line in problems[:10]:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
