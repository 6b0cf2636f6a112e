"""Scale II (issue 17): the scale workload spread over many hypervisors.

N hypervisors, each its own ovsdb-server and ovs-vswitchd (userspace
datapath) in a network namespace, all joined with `dvn join` over one
underlay. The scale workload of benchmarks/workload.py (P ports: networks of
50 ports, groups of 10 with remote-group rules, VIPs of 4 members) is spread
over them: port i sits on hypervisor i mod N, so a network spans up to 50
nodes, groups span networks, and a VIP's members sit on other nodes than
most of its clients. VM ports are patch ports without a peer (an ofport,
and no datapath port to poll), plugged before the clock starts.

Figures, for each N:
1. joins: the N `dvn join`s one after another (the hypervisors started
   before), and the idle mesh settling after the last one
   (every node in sync: GET /v1/nodes says connected, synced, nothing
   pending), and what the idle mesh holds: tunnel ports and IPsec keys.
2. full convergence: one POST /v1/import of the workload, then every node
   binds its ports (one OVSDB transaction each, all nodes at once), until
   every node is in sync. Bundles sent per node meanwhile (dvn's log: one
   line per change sent, one per resync), store writes that failed or
   timed out, dvn's CPU seconds and peak RSS.
3. incremental: a port added on one node (from the binding of its
   interface there, the port made and plugged before), and a rule added to
   a group whose members span every node (from the API call): the time to
   dvn's last commit of the change on any switch (its log line comes after
   the switch's commit reply), every node then seen in sync (median and
   p99 of --ops); and dvn's part of it: to the start of its last send (the
   rest is the switches' answer, which here means 60 or 100 userspace
   switches waking at once on the machine's two cores).
4. restart: dvn SIGKILLed and started again on the same store, until every
   node has resynced and is in sync; the flows that resync changed (0 is
   right: nothing was lost, nothing is re-sent).

Run as root: .venv/bin/python -m benchmarks.bench_fleet --nodes 10 30 60 --ports 1000
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import statistics
import threading
import time

from benchmarks.bench_scale import cpu_s, mem_kib
from benchmarks.workload import Workload
from tests.dvnproc import dvn_lab, join, resyncs, wait_in_sync, wait_until

TAG, OCTET, API_PORT = "bfleet", 78, 18690   # other benchmarks use 72-77
BATCH = 500
# How often the incremental figures ask GET /v1/nodes whether every node is
# in sync: not 5 ms (answering that for 100 nodes at 200 Hz would take dvn's
# time from the change measured). The figure itself is the time of dvn's
# last commit of the change, from its log.
POLL_S = 0.05


def hv_ip(n):
    return "192.168.%d.%d" % (OCTET, 10 + n) if n < 240 else None


def plug(hv, names):
    """Patch ports without a peer on br-int (no iface-id yet); returns {name: Interface uuid}."""
    out = {}
    for b in range(0, len(names), BATCH):
        chunk = names[b:b + BATCH]
        ops = []
        for k, name in enumerate(chunk):
            ops.append({"op": "insert", "table": "Interface", "uuid-name": "i%d" % k,
                        "row": {"name": name, "type": "patch", "options": ["map", [["peer", "none-" + name]]]}})
            ops.append({"op": "insert", "table": "Port", "uuid-name": "p%d" % k,
                        "row": {"name": name, "interfaces": ["named-uuid", "i%d" % k]}})
        ops.append({"op": "mutate", "table": "Bridge", "where": [["name", "==", "br-int"]],
                    "mutations": [["ports", "insert", ["set", [["named-uuid", "p%d" % k]
                                                               for k in range(len(chunk))]]]]})
        res = hv.transact(ops)
        for k, name in enumerate(chunk):
            out[name] = res[2 * k]["uuid"][1]
    return out


def bind(hv, ids):
    """Bind interfaces ({Interface uuid: port id}) in one transaction."""
    hv.transact([{"op": "mutate", "table": "Interface", "where": [["_uuid", "==", ["uuid", uuid]]],
                  "mutations": [["external_ids", "insert", ["map", [["iface-id", port_id]]]]]}
                 for uuid, port_id in ids.items()])


def all_in_sync(api, nodes):
    """Whether GET /v1/nodes says every one of ``nodes`` is connected, synced, nothing pending."""
    seen = {}
    for view in api.get("/v1/nodes"):
        seen[view["system_id"]] = view.get("switch") or {}
    return all(seen.get(n, {}).get("connected") and seen[n].get("synced") and not seen[n].get("pending")
               for n in nodes)


def wait_all(api, nodes, timeout, interval=0.005):
    wait_until(lambda: all_in_sync(api, nodes), timeout=timeout, interval=interval,
               what="%d nodes in sync" % len(nodes))


class LogCount:
    """Lines of dvn's log since a mark."""

    def __init__(self, dvn):
        self.dvn, self.mark = dvn, len(dvn.log())

    def text(self):
        return self.dvn.log()[self.mark:]

    def bundles(self):
        """{node: changes sent to its switch}: incremental bundles and resyncs."""
        out = {}
        for node in re.findall(r"switch of node (\S+): \d+ flow changes in", self.text()):
            out[node] = out.get(node, 0) + 1
        for node in re.findall(r"switch of node (\S+) in sync:", self.text()):
            out[node] = out.get(node, 0) + 1
        return out

    def store_failures(self):
        text = self.text()
        return {"bindings not recorded": len(re.findall(r"port bindings of \d+ nodes not recorded", text)),
                "IPsec keys not created": text.count("not created"),
                "timeouts": text.count("Timeout")}

    def changes(self):
        """[(when dvn began sending it, when the switch had committed it)] of
        each change logged (wall clock; the log line comes after the
        switch's commit reply and says how long the send took)."""
        out = []
        for stamp, took in re.findall(r"^(\S+ \S+) INFO controller\.switch: switch of node \S+: \d+ flow changes "
                                      r"in .*, bundle ([\d.]+) s\)", self.text(), re.M):
            done = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((done - float(took), done))
        return out

    def resync_changes(self):
        return sum(int(n) for n in re.findall(r"in sync: \d+ flows, (\d+) changed", self.text()))


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(n_nodes, n_ports, ops=5, timeout=600, say=print, keep_log=None):
    w = Workload(n_ports)
    fig = {"nodes": n_nodes, "ports": n_ports}
    with dvn_lab(TAG, OCTET, API_PORT) as (lab, dvn):
        api = dvn.client()
        nodes = ["hv%d" % n for n in range(n_nodes)]
        # 1. joins (the hypervisors started first; no traffic here, so no
        # tunnel neighbour seeding: it costs the lab N^2 calls)
        hvs = {name: lab.add_hv(name, hv_ip(n) + "/24") for n, name in enumerate(nodes)}
        t = time.monotonic()
        for n, name in enumerate(nodes):
            join(hvs[name], dvn.listen_ip, hv_ip(n))
        last_join = time.monotonic()
        wait_all(api, nodes, timeout)
        fig["joins_s"] = last_join - t
        fig["idle_mesh_s"] = time.monotonic() - last_join
        some = hvs[nodes[0]]
        tunnels = some.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve").split()
        fig["tunnel_ports_per_node"] = len(tunnels)
        fig["ipsec_keys"] = len(dvn_store_rows(dvn, "TunnelKey"))
        say("  N=%d: %d joins in %.1f s; idle mesh in sync %.2f s after the last; %d tunnel ports a node, "
            "%d IPsec keys" % (n_nodes, n_nodes, fig["joins_s"], fig["idle_mesh_s"], fig["tunnel_ports_per_node"],
                               fig["ipsec_keys"]))
        # plug every node's ports (not timed)
        placed = {name: [] for name in nodes}
        for i in range(n_ports):
            placed[nodes[i % n_nodes]].append(i)
        uuids = {}
        for name, indices in placed.items():
            found = plug(hvs[name], [w.port_name(i) for i in indices])
            uuids.update((i, found[w.port_name(i)]) for i in indices)
        wait_all(api, nodes, timeout)
        # 2. full convergence
        log = LogCount(dvn)
        pid = dvn.proc.pid
        cpu0 = cpu_s(pid)
        t0 = time.monotonic()
        made = api.post("/v1/import", w.document())
        port_ids = {i: made["ports"][w.port_name(i)] for i in range(n_ports)}
        threads = [threading.Thread(target=bind, args=(hvs[name], {uuids[i]: port_ids[i] for i in placed[name]}))
                   for name in nodes if placed[name]]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wait_until(lambda: all(api.get("/v1/ports/%s" % port_ids[i])["node"] for i in (0, n_ports - 1)),
                   timeout=timeout, interval=0.01, what="the ports bound")
        wait_all(api, nodes, timeout)
        fig["converge_s"] = time.monotonic() - t0
        fig["dvn_cpu_s"] = cpu_s(pid) - cpu0
        fig["dvn_rss_mib"] = mem_kib(pid, "VmHWM") // 1024
        per_node = log.bundles()
        fig["bundles_per_node_max"] = max(per_node.values()) if per_node else 0
        fig["bundles_per_node_mean"] = statistics.mean(per_node.values()) if per_node else 0
        fig["store_failures"] = log.store_failures()
        say("  N=%d P=%d: full convergence %.2f s; bundles per node max %d mean %.1f; dvn CPU %.1f s, "
            "peak RSS %d MiB; store failures %s" % (
                n_nodes, n_ports, fig["converge_s"], fig["bundles_per_node_max"], fig["bundles_per_node_mean"],
                fig["dvn_cpu_s"], fig["dvn_rss_mib"], fig["store_failures"]))
        # 3. incremental
        net = made["networks"][w.network_body(0)["name"]]
        port_ms, rule_ms, port_dvn_ms, rule_dvn_ms = [], [], [], []
        for k in range(ops):
            name = nodes[k % n_nodes]
            port = api.post("/v1/ports", {"name": "extra%d" % k, "network": net,
                                          "mac": "02:ee:00:00:00:%02x" % k, "ips": ["10.0.0.%d" % (100 + k)]})
            iface = plug(hvs[name], ["extra%d" % k])
            wait_all(api, nodes, timeout)
            log = LogCount(dvn)
            t = time.time()   # from the interface's binding on its node
            bind(hvs[name], {iface["extra%d" % k]: port["id"]})
            wait_until(lambda: api.get("/v1/ports/%s" % port["id"])["node"], timeout=timeout, interval=0.02,
                       what="the new port bound")
            wait_all(api, nodes, timeout, POLL_S)
            sent = log.changes()
            port_ms.append((max(d for _s, d in sent) - t) * 1000)
            port_dvn_ms.append((max(s for s, _d in sent) - t) * 1000)
        group = made["security_groups"][w.group_body(0)["name"]]
        for k in range(ops):
            log = LogCount(dvn)
            t = time.time()
            api.post("/v1/security-groups/%s/rules" % group, {"direction": "ingress", "protocol": "tcp",
                                                               "port_range_min": 9100 + k,
                                                               "remote_ip_prefix": "198.51.100.0/24"})
            wait_all(api, nodes, timeout, POLL_S)
            sent = log.changes()
            rule_ms.append((max(d for _s, d in sent) - t) * 1000)
            rule_dvn_ms.append((max(s for s, _d in sent) - t) * 1000)
        for key, values in (("port_add_ms", port_ms), ("rule_add_ms", rule_ms), ("port_dvn_ms", port_dvn_ms),
                            ("rule_dvn_ms", rule_dvn_ms)):
            fig[key] = (statistics.median(values), percentile(values, 0.99))
        say("  N=%d: port bound on its node -> every node in sync: median %.0f ms, p99 %.0f ms "
            "(dvn's part, to its last send: %.0f / %.0f ms); rule added -> every node in sync: median %.0f ms, "
            "p99 %.0f ms (dvn's part %.0f / %.0f ms)" % (
                n_nodes, *fig["port_add_ms"], *fig["port_dvn_ms"], *fig["rule_add_ms"], *fig["rule_dvn_ms"]))
        # 4. restart
        before = {n: resyncs(dvn, n) for n in nodes}
        log = LogCount(dvn)
        dvn.kill(signal.SIGKILL)
        t = time.monotonic()
        dvn.start()
        wait_until(lambda: all(resyncs(dvn, n) > before[n] for n in nodes), timeout=timeout, interval=0.05,
                   what="every node resynced")
        wait_in_sync(api, nodes, timeout=timeout)
        fig["restart_s"] = time.monotonic() - t
        fig["restart_changes"] = log.resync_changes()
        say("  N=%d: dvn SIGKILL and restart -> every node resynced and in sync in %.2f s, %d flows changed" % (
            n_nodes, fig["restart_s"], fig["restart_changes"]))
        if keep_log:
            os.makedirs(keep_log, exist_ok=True)
            shutil.copyfile(dvn.log_path, os.path.join(keep_log, "dvn-fleet-%dx%d.log" % (n_nodes, n_ports)))
    return fig


def dvn_store_rows(dvn, table):
    """The rows of a northbound table, read with ovsdb-client."""
    import json
    import subprocess
    sock = "unix:%s" % os.path.join(dvn.state_dir, "nb.sock")
    out = subprocess.run(["ovsdb-client", "-f", "json", "dump", sock, "DVN_Northbound", table],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["data"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--ports", type=int, nargs="+", default=[1000])
    parser.add_argument("--ops", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--keep-log", metavar="DIR", help="copy dvn's log there after each run")
    args = parser.parse_args()
    for p in args.ports:
        for n in args.nodes:
            run(n, p, args.ops, args.timeout, keep_log=args.keep_log)


if __name__ == "__main__":
    main()
