"""Flow install rate into one switch during a 20,000-flow initial sync.

One real hypervisor (hv1) joins dvn. The northbound store gets networks with
one port plugged on hv1 each, and 20,000 ports bound to ten other nodes (rows
in the store with tunnel IPs: dvn builds hv1's tunnels to them, so every
remote port is one l2_lookup flow on hv1). Then hv1's ovs-vswitchd is
restarted: it comes back with an empty flow table, reconnects, and dvn reads
it, diffs and installs everything in one bundle. dvn logs the parts of that
resync; the rate is flows sent / bundle time (serialization, sending, the
barrier and the commit all included).

Run as root: .venv/bin/python -m benchmarks.bench_install [--flows 20000]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

from tests.dvnproc import add_joined_hv, dvn_lab, wait_until


def transact(sock, ops):
    out = subprocess.run(["ovsdb-client", "transact", "unix:" + sock,
                          json.dumps(["DVN_Northbound"] + ops)],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    errors = [r for r in result if isinstance(r, dict) and "error" in r]
    if errors:
        raise RuntimeError(errors[:3])
    return result


def populate(sock, n_remote, n_networks, n_fake_nodes):
    ops = []
    for j in range(n_fake_nodes):
        ops.append({"op": "insert", "table": "Node", "row": {
            "system_id": "fake%d" % j, "hostname": "fake%d" % j,
            "encap_ip": "192.168.73.%d" % (100 + j), "state": "down", "last_seen": 0}})
    transact(sock, ops)
    net_uuids = []
    ops = [{"op": "insert", "table": "Network", "uuid-name": "n%d" % i,
            "row": {"name": "net%d" % i, "tenant": "bench", "vni": 2000 + i, "cidrs": ["set", []]}}
           for i in range(n_networks)]
    for r in transact(sock, ops)[:n_networks]:
        net_uuids.append(r["uuid"][1])
    per_net = n_remote // n_networks
    k = 0
    for i, net in enumerate(net_uuids):
        ops = []
        for _ in range(per_net):
            ops.append({"op": "insert", "table": "Port", "row": {
                "name": "r%d" % k, "tenant": "bench", "network": ["uuid", net],
                "mac": "02:01:%02x:%02x:%02x:%02x" % (k >> 24 & 255, k >> 16 & 255, k >> 8 & 255, k & 255),
                "node": "fake%d" % (k % n_fake_nodes)}})
            k += 1
        ops.append({"op": "insert", "table": "Port", "uuid-name": "local", "row": {
            "name": "l%d" % i, "tenant": "bench", "network": ["uuid", net],
            "mac": "02:02:00:00:%02x:%02x" % (i >> 8, i & 255)}})
        transact(sock, ops)
    return net_uuids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=20000)
    ap.add_argument("--networks", type=int, default=50)
    ap.add_argument("--fake-nodes", type=int, default=10)
    args = ap.parse_args()
    with dvn_lab("binst", 73, 18380) as (lab, dvn):
        hv = add_joined_hv(lab, dvn, "hv1", "192.168.73.11")
        sock = os.path.join(dvn.state_dir, "nb.sock")
        populate(sock, args.flows, args.networks, args.fake_nodes)
        api = dvn.client()
        # The store was written by another client: wait until dvn has seen it all.
        total = args.flows // args.networks * args.networks + args.networks
        wait_until(lambda: len(api.get("/v1/ports")) == total, timeout=120, interval=0.5,
                   what="dvn to see every port")
        for port in api.get("/v1/ports"):
            if port["name"].startswith("l"):
                hv.vsctl("add-port", "br-int", port["name"], "--", "set", "Interface", port["name"],
                         "type=internal", "external_ids:iface-id=%s" % port["id"])
        wait_until(lambda: len(hv.dump_flows()) > args.flows, timeout=300, interval=1,
                   what="first sync")
        before = len(dvn.log().split("in sync:")) - 1
        flows_before = len(hv.dump_flows())
        hv.kill_vswitchd(signal.SIGKILL)
        t0 = time.monotonic()
        hv.start_vswitchd()
        dvn.wait_log("in sync:", count=before + 1, timeout=300)
        wall = time.monotonic() - t0
        line = dvn.log().split("in sync:")[before + 1].splitlines()[0]
        m = re.search(r"(\d+) flows, (\d+) changed \(compile ([\d.]+) s, read\+diff ([\d.]+) s, "
                      r"bundle ([\d.]+) s\)", line)
        flows, changed, compile_s, read_s, bundle_s = (float(x) for x in m.groups())
        flows_after = len(hv.dump_flows())
    print("\ninitial sync of one switch (vswitchd restarted with an empty table)")
    print("  flows on the switch before / after: %d / %d" % (flows_before, flows_after))
    print("  flows sent in one bundle:           %d" % changed)
    print("  recompile (changed views only):     %.3f s" % compile_s)
    print("  read back + diff:                   %.3f s" % read_s)
    print("  bundle (serialize, send, commit):   %.3f s" % bundle_s)
    print("  install rate:                       %.0f flows/s" % (changed / bundle_s))
    print("  vswitchd start -> in sync (wall):   %.2f s" % wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
