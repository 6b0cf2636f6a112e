"""The distributed load balancer with real TCP and UDP, members on two hypervisors.

s1 (hv1), s2 and s3 (hv2) are servers that answer each connection with their
name, the client address they saw and the port; c1 (hv1) and c2 (hv2) are
clients. Clients and servers are in security groups: clients may send
anything, servers take TCP/UDP only from the clients' group and from
themselves (so a member's ingress firewall sees clients' real addresses).
"""

import collections
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import threading

import pytest

from tests.dvnproc import add_joined_hv, dvn_lab, resyncs, wait_in_sync, wait_resynced, wait_until

pytestmark = pytest.mark.lab

HVS = {"hv1": "192.168.63.11", "hv2": "192.168.63.12"}
TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vmtools")
VIP = "10.1.0.100"


class Env:
    pass


def mac(i):
    return "02:00:00:00:04:%02x" % i


def client(vm, *args, timeout=120):
    out = vm.exec("python3", os.path.join(TOOLS, "lbclient.py"), *map(str, args), timeout=timeout)
    return json.loads(out)


def serve(env, vm, kind, *args):
    """lbserver.py in ``vm``; returns once it listens (its last port, for a range)."""
    env.lab.spawn(["ip", "netns", "exec", vm.ns, "python3", os.path.join(TOOLS, "lbserver.py"), kind]
                  + list(map(str, args)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = args[0] if kind == "bulk" else args[1]
    vm.wait_listening(int(str(port).split("-")[-1]), udp=kind == "udp")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("dvn-lb")
    with dvn_lab("lb", 63, 18082, str(state)) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api = lab, dvn, dvn.client()
        api = env.api
        hvs = {n: add_joined_hv(lab, dvn, n, ip) for n, ip in HVS.items()}
        env.net = api.post("/v1/networks", {"name": "lbnet", "tenant": "acme", "cidrs": ["10.1.0.0/24"]})
        clients = api.post("/v1/security-groups", {"name": "clients", "tenant": "acme"})
        servers = api.post("/v1/security-groups", {"name": "servers", "tenant": "acme"})
        sg = "/v1/security-groups/%s/rules"
        for group in (clients, servers):
            api.post(sg % group["id"], {"direction": "egress"})
        for proto in ("tcp", "udp"):
            for remote in (clients, servers):
                api.post(sg % servers["id"], {"direction": "ingress", "protocol": proto,
                                              "remote_group_id": remote["id"]})
        env.vms, env.ports = {}, {}
        for i, (name, hv, group) in enumerate((("s1", "hv1", servers), ("s2", "hv2", servers),
                                               ("s3", "hv2", servers), ("c1", "hv1", clients),
                                               ("c2", "hv2", clients)), start=11):
            ip = "10.1.0.%d" % i
            port = api.post("/v1/ports", {"name": name, "network": env.net["id"], "mac": mac(i), "ips": [ip],
                                          "security_groups": [group["id"]]})
            env.ports[name] = port
            env.vms[name] = lab.add_vm(name, hvs[hv], ip + "/24", mac(i), iface_id=port["id"])
        for name in env.ports:
            wait_until(lambda: api.get("/v1/ports/%s" % env.ports[name]["id"])["node"], what="%s bound" % name)
        for name in ("s1", "s2", "s3"):
            serve(env, env.vms[name], "tcp", name, 8080)
            serve(env, env.vms[name], "udp", name, 5353)
        wait_in_sync(api, HVS)
        yield env


def ip_of(env, name):
    return env.vms[name].ip


def create_lb(env, name, port, members, protocol="tcp", **kw):
    body = {"name": name, "network": env.net["id"], "vip_address": kw.pop("vip", VIP), "protocol": protocol,
            "protocol_port": port,
            "members": [{"address": ip_of(env, m), "protocol_port": p, "weight": w} for m, p, w in members]}
    body.update(kw)
    return env.api.post("/v1/load-balancers", body)


def answers(env, vm, port, count, sport_base, vip=VIP):
    """``count`` connections to the VIP, once dvn says every switch holds it."""
    wait_in_sync(env.api, HVS)
    return client(env.vms[vm], "tcp", vip, port, count, sport_base)


def test_weights_share_connections_and_members_see_the_client(env):
    lb = create_lb(env, "web", 80, [("s1", 8080, 1), ("s2", 8080, 1), ("s3", 8080, 2)])
    seen = answers(env, "c1", 80, 200, 20000) + answers(env, "c2", 80, 200, 20000)
    assert all(len(line.split()) == 3 for line in seen), [s for s in seen if len(s.split()) != 3][:5]
    names = collections.Counter(line.split()[0] for line in seen)
    shares = {n: names[n] / len(seen) for n in ("s1", "s2", "s3")}
    print("shares of 400 connections (weights 1:1:2):", shares)
    # Each share is binomial: allow four standard deviations (a false alarm in fewer than
    # 1 run in 5,000), which still tells 1:1:2 from equal weights (s3 at 1/3 is 6.7 away).
    for name, want in (("s1", 0.25), ("s2", 0.25), ("s3", 0.5)):
        assert abs(shares[name] - want) <= 4 * math.sqrt(want * (1 - want) / len(seen)), shares
    # The member's ingress firewall and the member itself see the client's address.
    assert {line.split()[1] for line in seen} == {ip_of(env, "c1"), ip_of(env, "c2")}
    # Statistics: connections per VIP and per member, from the group buckets.
    stats = env.api.get("/v1/load-balancers/%s/stats" % lb["id"])
    by_id = {m["id"]: m["address"] for m in lb["members"]}
    per = {by_id[mid]: n for mid, n in stats["members"].items()}
    assert stats["connections"] >= 400 and stats["switches"] == 2
    assert per[ip_of(env, "s3")] >= names["s3"] and sum(per.values()) == stats["connections"]


def test_affinity_keeps_a_client_on_one_member(env):
    create_lb(env, "sticky", 81, [("s1", 8080, 1), ("s2", 8080, 1), ("s3", 8080, 1)],
              session_persistence={"type": "SOURCE_IP", "persistence_timeout": 60})
    for vm in ("c1", "c2"):
        seen = answers(env, vm, 81, 40, 21000)
        assert len({line.split()[0] for line in seen}) == 1, seen


def test_hairpin_a_member_reaches_its_own_vip(env):
    create_lb(env, "hairpin", 82, [("s1", 8080, 1), ("s2", 8080, 1), ("s3", 8080, 1)])
    seen = answers(env, "s1", 82, 60, 22000)
    assert all(len(line.split()) == 3 for line in seen), seen
    own = [line for line in seen if line.startswith("s1 ")]
    assert own, "no connection landed on s1 itself"
    # Back to itself, the connection comes from the VIP (a member never sees itself as a client).
    assert {line.split()[1] for line in own} == {VIP}
    assert {line.split()[1] for line in seen if not line.startswith("s1 ")} == {ip_of(env, "s1")}


def test_empty_pool_rejects_tcp_and_udp(env):
    create_lb(env, "empty", 83, [])
    create_lb(env, "empty-udp", 83, [], protocol="udp")
    wait_in_sync(env.api, HVS)
    assert client(env.vms["c1"], "tcp", VIP, 83, 1, 0) == ["refused"]         # a reset from the empty pool
    assert client(env.vms["c2"], "tcp", VIP, 83, 5, 23000) == ["refused"] * 5
    assert client(env.vms["c2"], "udp", VIP, 83) == "refused"   # an ICMP port unreachable, for UDP


def test_udp_vip(env):
    create_lb(env, "dns", 53, [("s1", 5353, 1), ("s2", 5353, 1)], protocol="udp")
    wait_in_sync(env.api, HVS)
    got = client(env.vms["c1"], "udp", VIP, 53)
    assert got not in ("timeout", "refused"), got
    assert got.split()[0] in ("s1", "s2") and got.split()[1] == ip_of(env, "c1")


def test_member_changes_under_a_long_transfer(env):
    serve(env, env.vms["s3"], "bulk", 9000, 40)
    lb = create_lb(env, "bulk", 90, [("s3", 9000, 1)])
    wait_in_sync(env.api, HVS)
    result = {}
    thread = threading.Thread(target=lambda: result.update(client(env.vms["c1"], "stream", VIP, 90)))
    thread.start()
    # The transfer under way (the server paces its 40 MiB over about 3 s): an
    # established connection to the VIP in c1.
    wait_until(lambda: env.vms["c1"].exec("ss", "-Htn", "state", "established", "dst", "%s:90" % VIP).strip(),
               timeout=20, interval=0.05, what="the transfer under way")
    path = "/v1/load-balancers/%s/members" % lb["id"]
    env.api.post(path, {"address": ip_of(env, "s1"), "protocol_port": 9000})          # a bucket inserted
    member = lb["members"][0]
    env.api.call("PATCH", "%s/%s" % (path, member["id"]), {"weight": 3})              # the group replaced
    env.api.post(path, [{"address": ip_of(env, "s2"), "protocol_port": 9000, "weight": 2}])
    wait_in_sync(env.api, HVS)
    # Every change on every switch while the connection still ran: else this tests nothing.
    assert thread.is_alive(), "the transfer ended before the changes were all on the switches: %s" % result
    thread.join(60)
    want = hashlib.sha256(b"".join([bytes(range(256)) * 4096] * 40)).hexdigest()
    assert result.get("bytes") == 40 << 20 and result["sha256"] == want, result


def test_health_checks_take_a_dead_member_out_and_back(env):
    for name in ("s1", "s2", "s3"):
        serve(env, env.vms[name], "tcp", name, 8081)
    delay, fall = 0.5, 2
    lb = create_lb(env, "checked", 84, [("s1", 8081, 1), ("s2", 8081, 1), ("s3", 8081, 1)],
                   health_monitor={"type": "TCP", "delay": delay, "timeout": 0.4, "max_retries": 2,
                                   "max_retries_down": fall})
    s2 = next(m for m in lb["members"] if m["address"] == ip_of(env, "s2"))

    def status():
        return env.api.get("/v1/load-balancers/%s" % lb["id"])["members"]

    assert wait_until(lambda: all(m["operating_status"] == "ONLINE" for m in status()), timeout=10)
    answers(env, "c1", 84, 1, 0)
    subprocess.run(["pkill", "-f", "lbserver.py tcp s2 8081"], check=True)
    # The health checks' verdict (how fast: benchmarks/bench_policy.py), then on every switch.
    wait_until(lambda: next(m for m in status() if m["id"] == s2["id"])["operating_status"] == "OFFLINE",
               timeout=30, interval=0.05, what="s2 OFFLINE")
    wait_in_sync(env.api, HVS)
    seen = client(env.vms["c1"], "tcp", VIP, 84, 60, 24000) + client(env.vms["c2"], "tcp", VIP, 84, 60, 24000)
    assert all(line.split()[0] in ("s1", "s3") for line in seen), seen  # none failed, none to s2
    serve(env, env.vms["s2"], "tcp", "s2", 8081)
    wait_until(lambda: next(m for m in status() if m["id"] == s2["id"])["operating_status"] == "ONLINE",
               timeout=30, what="s2 back ONLINE")
    wait_in_sync(env.api, HVS)
    seen = client(env.vms["c1"], "tcp", VIP, 84, 60, 25000)
    assert any(line.startswith("s2 ") for line in seen)


def test_http_monitor_reads_the_status_line(env):
    server = env.vms["s3"].serve_http(8088, TOOLS)
    lb = create_lb(env, "http", 85, [("s3", 8088, 1)],
                   health_monitor={"type": "HTTP", "delay": 0.5, "timeout": 0.4, "max_retries": 1,
                                   "max_retries_down": 1, "url_path": "/missing", "expected_codes": "200"})
    # /missing is a 404: the member goes OFFLINE; with 404 expected it comes back.
    wait_until(lambda: env.api.get("/v1/load-balancers/%s" % lb["id"])["members"][0]["operating_status"]
               == "OFFLINE", timeout=10, what="HTTP 404 taken as down")
    env.api.call("PATCH", "/v1/load-balancers/%s" % lb["id"], {"health_monitor": {
        "type": "HTTP", "delay": 0.5, "timeout": 0.4, "max_retries": 1, "max_retries_down": 1,
        "url_path": "/missing", "expected_codes": "404"}})
    wait_until(lambda: env.api.get("/v1/load-balancers/%s" % lb["id"])["members"][0]["operating_status"]
               == "ONLINE", timeout=10, what="HTTP 404 expected")
    server.stop()
    env.api.delete("/v1/load-balancers/%s" % lb["id"])


def test_a_pool_of_1000_members_installs_and_balances(env):
    ports = {"s1": range(10000, 10334), "s2": range(10000, 10333), "s3": range(10000, 10333)}
    for name, rng in ports.items():
        serve(env, env.vms[name], "tcp", name, "%d-%d" % (rng[0], rng[-1]))
    lb = create_lb(env, "big", 86, [])
    body = [{"address": ip_of(env, n), "protocol_port": p} for n, rng in ports.items() for p in rng]
    assert len(body) == 1000
    env.api.post("/v1/load-balancers/%s/members" % lb["id"], body)
    seen = answers(env, "c2", 86, 100, 26000)
    assert all(len(line.split()) == 3 for line in seen), seen[:5]
    assert len({line.split()[0] for line in seen}) == 3
    assert len({(line.split()[0], line.split()[2]) for line in seen}) >= 90  # spread over many members


def _switch_state(env, hv):
    """br-int's groups (text) and flows ((table, priority, match) -> duration) on ``hv``."""
    node = env.lab.hvs[hv]
    groups = sorted(line.strip() for line in node.ofctl("-O", "OpenFlow15", "dump-groups", "br-int").splitlines()
                    if "group_id=" in line)
    return groups, {(f["table"], f["priority"], f["match"]): f["duration"] for f in node.dump_flows()}


def test_controller_restart_rewrites_no_group_and_keeps_vips_answering(env):
    create_lb(env, "restart", 87, [("s1", 8080, 1), ("s2", 8080, 1), ("s3", 8080, 2)])
    answers(env, "c1", 87, 1, 0)
    # The monitors' verdicts are all in (every checked member ONLINE: they all
    # listen), and on every switch.
    wait_until(lambda: all(m["operating_status"] in ("ONLINE", "NO_MONITOR")
                           for b in env.api.get("/v1/load-balancers") for m in b["members"]),
               timeout=30, what="every monitored member ONLINE")
    wait_in_sync(env.api, HVS)
    before = {hv: _switch_state(env, hv) for hv in HVS}
    assert all(len(groups) >= 5 for groups, _ in before.values()), before  # every VIP of this module
    stats = {b["name"]: (b["id"], env.api.get("/v1/load-balancers/%s/stats" % b["id"]))
             for b in env.api.get("/v1/load-balancers")}
    before_restart = {hv: resyncs(env.dvn, hv) for hv in HVS}
    env.dvn.kill(signal.SIGKILL)
    # While dvn is away the datapath keeps balancing on its own.
    seen = client(env.vms["c2"], "tcp", VIP, 87, 20, 27000)
    assert all(line.split()[0] in ("s1", "s2", "s3") for line in seen), seen
    env.dvn.start()
    wait_resynced(env.dvn, env.api, HVS, before_restart)
    changed = re.findall(r"in sync: \d+ flows, (\d+) changed", env.dvn.log().split("northbound store")[-1])
    assert changed and set(changed) == {"0"}, changed
    for hv in HVS:
        groups, flows = _switch_state(env, hv)
        assert groups == before[hv][0], "groups of %s changed across the restart" % hv
        assert set(flows) == set(before[hv][1]), "flow set of %s changed" % hv
        assert not [k for k, d in flows.items() if d + 0.5 < before[hv][1][k]], "flows re-added on %s" % hv
    # The counters, per member too, read the same (a group's buckets are
    # counted in the switch's order, kept across the restart), but for the
    # 20 connections made while dvn was away.
    for name, (lb_id, was) in stats.items():
        now = env.api.get("/v1/load-balancers/%s/stats" % lb_id)
        if name == "restart":
            assert now["connections"] == was["connections"] + 20, (was, now)
            assert sum(now["members"].values()) == now["connections"]
        else:
            assert now == was, name
    seen = client(env.vms["c1"], "tcp", VIP, 87, 20, 28000)
    assert all(line.split()[0] in ("s1", "s2", "s3") for line in seen), seen
