"""How fast a change reaches the traffic, end to end on real switches.

The lab tests wait for dvn's own "node in sync" signal and then check what
the traffic does; how long that takes is measured here, not asserted there.
Two hypervisors: web1 (hv1) in group "web" (ICMP from anywhere, TCP 8080
from the dynamic group "trusted": ports tagged "trusted"), x1 (hv2) in no
group; a load balancer on the network with x1:9090 as its one, health
checked, member. Each round measures, from the start of the REST call (or of
the event), both when the traffic follows and when dvn says every switch is
in sync (GET /v1/nodes):

- rule removed: x1's established ping to web1 (one ICMP id, every 10 ms) cut
  (its last answer);
- retag: x1 tagged "trusted", its TCP connects to web1:8080 (retried every
  10 ms by one process in x1) let in;
- encrypt flag set on x1: its classify flow on hv2 marked for the IPsec mesh
  (polled with ovs-ofctl);
- ovs-vswitchd of hv1 killed and started again: its flows back (dvn resynced
  it, then in sync);
- a dead load balancer member (its server killed): OFFLINE in the API
  (health checks every 0.5 s, 2 failures);
- the REST API's answer time while x1 floods a logged deny rule (2 s).

Prints the median and worst of each over the rounds.

Run as root: .venv/bin/python -m benchmarks.bench_policy [--rounds 5]
"""

import argparse
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

from tests.dvnproc import add_joined_hv, dvn_lab, resyncs, wait_in_sync, wait_resynced, wait_until
from tests.netlab import Pinger

TAG, OCTET, API_PORT = "bpol", 77, 18780   # tests use 61-66, demo 70, other benchmarks 72-76
HVS = {"hv1": "192.168.%d.11" % OCTET, "hv2": "192.168.%d.12" % OCTET}
WEB1, X1 = "10.7.0.1", "10.7.0.2"
VIP = "10.7.0.100"
ENCRYPT_MARK = "0x10/0x10->reg0"

CONNECT_PROBE = """
import socket, sys, time
print("ready", flush=True)
while True:
    s = socket.socket()
    s.settimeout(0.01)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
        print(time.time(), flush=True)
        break
    except OSError:
        pass
    finally:
        s.close()
"""
POLL = 0.005   # how often the in-sync signal is read (GET /v1/nodes)

FLOOD = ("import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); end=time.time()+2\n"
         "while time.time() < end:\n s.sendto(b'x', ('%s', 9999))" % WEB1)


def ms(seconds):
    return seconds * 1000.0


class Timed:
    """wait_in_sync in a thread, timed from ``t0``, while the caller watches the traffic."""

    def __init__(self, api, t0):
        self.t0, self.took, self.error = t0, None, None
        self.thread = threading.Thread(target=self._run, args=(api,))
        self.thread.start()

    def _run(self, api):
        try:
            wait_in_sync(api, HVS, interval=POLL)
            self.took = time.time() - self.t0
        except Exception as exc:  # reported by result()
            self.error = exc

    def result(self):
        self.thread.join(120)
        if self.error is not None:
            raise self.error
        return self.took


def build(lab, dvn):
    api = dvn.client()
    hvs = {n: add_joined_hv(lab, dvn, n, ip) for n, ip in HVS.items()}
    net = api.post("/v1/networks", {"name": "pol", "tenant": "bench", "cidrs": ["10.7.0.0/24"]})
    web = api.post("/v1/security-groups", {"name": "web", "tenant": "bench"})
    trusted = api.post("/v1/security-groups", {"name": "trusted", "tenant": "bench",
                                               "criteria": {"tags_any": ["trusted"]}})
    rules = "/v1/security-groups/%s/rules" % web["id"]
    api.post(rules, {"direction": "egress"})
    api.post(rules, {"direction": "ingress", "protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080,
                     "remote_group_id": trusted["id"]})
    api.post(rules, {"direction": "ingress", "protocol": "udp", "port_range_min": 9999, "action": "deny",
                     "priority": 300, "log": True})
    ports, vms = {}, {}
    for i, (name, hv, ip, groups) in enumerate((("web1", "hv1", WEB1, [web["id"]]), ("x1", "hv2", X1, [])),
                                               start=1):
        mac = "02:00:00:00:07:%02x" % i
        ports[name] = api.post("/v1/ports", {"name": name, "network": net["id"], "mac": mac, "ips": [ip],
                                             "security_groups": groups})
        vms[name] = lab.add_vm(name, hvs[hv], ip + "/24", mac, iface_id=ports[name]["id"])
    for name, hv in (("web1", "hv1"), ("x1", "hv2")):
        wait_until(lambda: api.get("/v1/ports/%s" % ports[name]["id"])["node"] == hv, timeout=30,
                   what="%s bound" % name)
    vms["web1"].serve_tcp(8080)
    member = vms["x1"].serve_tcp(9090)
    lb = api.post("/v1/load-balancers", {
        "name": "checked", "network": net["id"], "vip_address": VIP, "protocol": "tcp", "protocol_port": 90,
        "members": [{"address": X1, "protocol_port": 9090}],
        "health_monitor": {"type": "TCP", "delay": 0.5, "timeout": 0.4, "max_retries": 2,
                           "max_retries_down": 2}})
    wait_in_sync(api, HVS)
    return {"lab": lab, "api": api, "hvs": hvs, "vms": vms, "ports": ports, "web": web, "rules": rules, "lb": lb,
            "member": member}


def member_status(env):
    return env["api"].get("/v1/load-balancers/%s" % env["lb"]["id"])["members"][0]["operating_status"]


def rule_cut(lab, env):
    api, x1 = env["api"], env["vms"]["x1"]
    rule = api.post(env["rules"], {"direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"})
    wait_in_sync(api, HVS)
    x1.ping_ok(WEB1)
    ping = Pinger(lab.spawn(["ip", "netns", "exec", x1.ns, "ping", "-D", "-O", "-i", "0.01", "-W", "1", WEB1],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        ping.wait_for(lambda p: len(p.answered()) >= 10, what="the established ping answered")
        t0 = time.time()
        api.delete("%s/%s" % (env["rules"], rule["id"]))
        wait_in_sync(api, HVS, interval=POLL)
        synced = time.time() - t0
        mark = ping.reported()
        ping.wait_for(lambda p: p.reported() >= mark + 50, what="50 more pings")
    finally:
        ping.stop()
    answers = [float(t) for t in re.findall(r"\[([\d.]+)\] \d+ bytes from .* icmp_seq=\d+ ttl=\d+ time=", ping.out)]
    late = [float(t) for t, n in re.findall(r"\[([\d.]+)\] \d+ bytes from .* icmp_seq=(\d+) ttl", ping.out)
            if int(n) > mark + 2]
    if late:
        raise RuntimeError("the established ping went on after dvn said in sync")
    # The connection was cut between its last answer and the next request
    # (10 ms later); 0 if that answer came before the call.
    return max(0.0, max(answers) - t0), synced


def retag(lab, env):
    api, x1 = env["api"], env["vms"]["x1"]
    path = "/v1/ports/%s" % env["ports"]["x1"]["id"]
    probe = lab.spawn(["ip", "netns", "exec", x1.ns, "python3", "-c", CONNECT_PROBE, WEB1, "8080"],
                      stdout=subprocess.PIPE, text=True)
    try:
        assert probe.stdout.readline().strip() == "ready"
        t0 = time.time()
        api.call("PATCH", path, {"tags": ["trusted"]})
        synced = Timed(api, t0)
        out, _ = probe.communicate(timeout=60)
        let_in = float(out.split()[0]) - t0
        took = synced.result()
    finally:
        if probe.poll() is None:
            probe.kill()
    api.call("PATCH", path, {"tags": []})
    wait_in_sync(api, HVS)
    return let_in, took


def encrypt(env):
    api, hv2 = env["api"], env["hvs"]["hv2"]
    ofport = hv2.vsctl("get", "Interface", "x1", "ofport")
    path = "/v1/ports/%s" % env["ports"]["x1"]["id"]

    def marked():
        out = hv2.ofctl("dump-flows", "br-int", "table=0,in_port=%s" % ofport)
        return ENCRYPT_MARK in out
    t0 = time.time()
    marked()
    read = time.time() - t0   # what one look at the switch costs (a process in the namespace)
    t0 = time.time()
    api.call("PATCH", path, {"encrypt": True})
    synced = Timed(api, t0)
    wait_until(marked, timeout=60, interval=0, what="x1 marked")
    on_switch = time.time() - t0
    took = synced.result()
    api.call("PATCH", path, {"encrypt": False})
    wait_in_sync(api, HVS)
    return on_switch, took, read


def vswitchd_restart(dvn, env):
    hv1 = env["hvs"]["hv1"]
    before = {"hv1": resyncs(dvn, "hv1")}
    t0 = time.time()
    hv1.kill_vswitchd(signal.SIGKILL)
    hv1.start_vswitchd()
    wait_resynced(dvn, env["api"], ["hv1"], before)
    took = time.time() - t0
    env["lab"].seed_neighbors()   # a new vswitchd has no tunnel neighbour entries
    return took


def dead_member(env):
    wait_until(lambda: member_status(env) == "ONLINE", timeout=30, what="the member ONLINE")
    env["member"].stop()
    t0 = time.time()
    wait_until(lambda: member_status(env) == "OFFLINE", timeout=30, interval=0.02, what="the member OFFLINE")
    took = time.time() - t0
    env["member"] = env["vms"]["x1"].serve_tcp(9090)
    wait_until(lambda: member_status(env) == "ONLINE", timeout=30, what="the member back ONLINE")
    wait_in_sync(env["api"], HVS)
    return took


def api_under_flood(lab, env):
    api = env["api"]
    flood = lab.spawn(["ip", "netns", "exec", env["vms"]["x1"].ns, "python3", "-c", FLOOD])
    took = []
    while flood.poll() is None:
        t0 = time.time()
        api.get("/v1/networks")
        took.append(time.time() - t0)
        time.sleep(0.05)  # the pace of the calls
    return took


def run(rounds=5):
    figures = {k: [] for k in ("cut", "cut_sync", "retag", "retag_sync", "encrypt", "encrypt_sync", "ofctl_read",
                               "vswitchd", "dead_member", "api_flood")}
    with dvn_lab(TAG, OCTET, API_PORT) as (lab, dvn):
        env = build(lab, dvn)
        for _ in range(rounds):
            cut, sync = rule_cut(lab, env)
            figures["cut"].append(cut)
            figures["cut_sync"].append(sync)
            let_in, sync = retag(lab, env)
            figures["retag"].append(let_in)
            figures["retag_sync"].append(sync)
            on_switch, sync, read = encrypt(env)
            figures["encrypt"].append(on_switch)
            figures["ofctl_read"].append(read)
            figures["encrypt_sync"].append(sync)
            figures["vswitchd"].append(vswitchd_restart(dvn, env))
            figures["dead_member"].append(dead_member(env))
            figures["api_flood"].extend(api_under_flood(lab, env))

    def line(what, key, scale=ms, unit="ms"):
        values = figures[key]
        print("  %-58s median %7.1f %s, worst %7.1f %s" % (what, scale(statistics.median(values)), unit,
                                                           scale(max(values)), unit))
    print("\npolicy changes end to end, 2 hypervisors, %d round(s) (times from the REST call;"
          " in sync: GET /v1/nodes read every %.0f ms)" % (rounds, ms(POLL)))
    line("rule removed -> established ping's last answer (+<10 ms):", "cut")
    line("rule removed -> dvn in sync:", "cut_sync")
    line("retag into a group -> TCP let in (a try every ~10 ms):", "retag")
    line("retag into a group -> dvn in sync:", "retag_sync")
    line("encrypt flag -> classify flow marked on the switch:", "encrypt")
    line("  (of which up to one ovs-ofctl read of the switch:)", "ofctl_read")
    line("encrypt flag -> dvn in sync:", "encrypt_sync")
    line("ovs-vswitchd killed and restarted -> dvn in sync:", "vswitchd")
    line("member's server killed -> OFFLINE (delay 0.5 s x 2):", "dead_member", scale=lambda s: s, unit="s ")
    line("API answer during a 2 s logged-packet flood:", "api_flood")
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    run(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
