"""`make demo`: a whole dvn lab, shown working, then torn down.

dvn runs in this machine's namespace; three simulated hypervisors (each its
own ovsdb-server and ovs-vswitchd, userspace datapath, in a network
namespace) join it with `dvn join` over an underlay network. Two tenants get a
network each, with the same CIDR, and VMs (namespaces) on every hypervisor;
then the firewall, a load balancer with a health monitor, per-VM encryption
and a controller restart.
"""

import collections
import json
import os
import re
import shutil
import subprocess
import signal
import sys
import tempfile
import time

from ovsdb.node import tunnel_port_name
from tests.dvnproc import DvnServer, join, wait_in_sync, wait_until
from tests.netlab import Lab

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vmtools")
CTL_IP = "192.168.70.1"
HVS = {"hv1": "192.168.70.11", "hv2": "192.168.70.12", "hv3": "192.168.70.13"}
VMS = [  # name, hypervisor, network, ip
    ("web1", "hv1", "blue", "10.0.0.1"),
    ("web2", "hv2", "blue", "10.0.0.2"),
    ("db1", "hv3", "blue", "10.0.0.3"),
    ("app1", "hv1", "red", "10.0.0.11"),
    ("app2", "hv3", "red", "10.0.0.12"),
]


def say(text):
    print("\n\033[1m==> %s\033[0m" % text, flush=True)


def show(text):
    print("    " + text.replace("\n", "\n    "), flush=True)


def ping(vm, name, dst_name, dst_ip, expect):
    tx, rx = vm.ping(dst_ip, count=3, interval=0.2, timeout=1)
    if rx == 0 and expect:  # the very first packets may wait for ARP
        tx, rx = vm.ping(dst_ip, count=3, interval=0.2, timeout=1)
    ok = (rx > 0) == expect
    verdict = "passes" if rx else "blocked"
    show("%-5s -> %-5s (%s): %d/%d replies, %s %s" % (
        name, dst_name, dst_ip, rx, tx, verdict, "(as it should)" if ok else "(UNEXPECTED)"))
    return ok


def connections(vm, vip, port, count):
    """Who answered each of ``count`` new TCP connections to vip:port."""
    out = vm.exec("python3", os.path.join(TOOLS, "lbclient.py"), "tcp", vip, str(port), str(count), "0",
                  timeout=120)
    return collections.Counter(line.split()[0] if line.split() else line for line in json.loads(out))


def serve(lab, vm, name, port):
    return lab.spawn(["ip", "netns", "exec", vm.ns, "python3", os.path.join(TOOLS, "lbserver.py"), "tcp",
                      name, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    if os.geteuid() != 0:
        print("make demo needs root (network namespaces, Open vSwitch)")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    state = tempfile.mkdtemp(prefix="dvn-demo-")
    failures = 0
    Lab.cleanup_stale("demo")
    with Lab("demo") as lab:
        dvn = None
        try:
            say("Underlay network 192.168.70.0/24; dvn listens on %s (OpenFlow 6653, OVSDB 6640)" % CTL_IP)
            lab.underlay("192.168.70.0/24")
            lab.controller_uplink(CTL_IP + "/24")
            dvn = DvnServer(state, api_port=18180, listen_ip=CTL_IP).start()
            api = dvn.client()
            show("dvn serve is up; REST API on http://127.0.0.1:18180/v1 (state in %s)" % state)

            say("Three hypervisors start Open vSwitch and run `dvn join`")
            hvs = {}
            for name, ip in HVS.items():
                hvs[name] = lab.add_hv(name, ip + "/24")
            lab.seed_neighbors()
            for name, ip in HVS.items():
                join(hvs[name], CTL_IP, ip)
                show("%s (%s): dvn join --controller %s --encap-ip %s" % (name, ip, CTL_IP, ip))
            wait_until(lambda: len([n for n in api.get("/v1/nodes") if n["state"] == "up"]) == 3,
                       timeout=20, what="3 nodes up")
            for node in api.get("/v1/nodes"):
                show("node %-4s encap %-14s %s" % (node["system_id"], node["encap_ip"], node["state"]))
            wait_until(lambda: all(len(hv.vsctl("--bare", "--columns=name", "find", "Interface",
                                                "type=geneve").split()) == 2 for hv in hvs.values()),
                       timeout=20, what="full GENEVE mesh")
            show("full GENEVE mesh: every hypervisor has a plain tunnel to each of the two others (an IPsec "
                 "one comes only between nodes that carry encrypted traffic)")

            say("Two tenants, one network each, with the SAME CIDR 10.0.0.0/24")
            nets = {}
            for net, tenant in (("blue", "acme"), ("red", "umbrella")):
                nets[net] = api.post("/v1/networks", {"name": net, "tenant": tenant, "cidrs": ["10.0.0.0/24"]})
                show("network %-5s tenant %-9s VNI %d" % (net, tenant, nets[net]["vni"]))

            say("VMs (namespaces) plugged into br-int with external_ids:iface-id=<port id>")
            vms = {}
            for i, (name, hv, net, ip) in enumerate(VMS, start=1):
                mac = "02:00:00:00:02:%02x" % i
                port = api.post("/v1/ports", {"name": name, "network": nets[net]["id"], "mac": mac, "ips": [ip]})
                vms[name] = lab.add_vm(name, hvs[hv], ip + "/24", mac, iface_id=port["id"])
                show("%-5s on %s in %-4s %s  (port %s)" % (name, hv, net, ip, port["id"][:8]))
            for name, hv, _net, _ip in VMS:
                wait_until(lambda: any(p["node"] == hv for p in api.get("/v1/ports?name=%s" % name)),
                           timeout=20, what="%s bound" % name)

            say("Inside a network, across hypervisors: pings pass")
            for src, dst in (("web1", "web2"), ("web1", "db1"), ("web2", "db1"), ("app1", "app2")):
                failures += not ping(vms[src], src, dst, dict((v[0], v[3]) for v in VMS)[dst], True)

            say("Across networks (same CIDR, other tenant): nothing passes")
            for src, dst in (("web1", "app1"), ("app2", "web1"), ("db1", "app2")):
                failures += not ping(vms[src], src, dst, dict((v[0], v[3]) for v in VMS)[dst], False)

            say("Distributed firewall: db1 accepts ICMP and TCP 5432 only from the group 'frontend'")
            ips = dict((v[0], v[3]) for v in VMS)
            ports = {p["name"]: p for p in api.get("/v1/ports")}
            front = api.post("/v1/security-groups", {"name": "frontend", "tenant": "acme",
                                                     "criteria": {"name": "web1"}})
            db = api.post("/v1/security-groups", {"name": "database", "tenant": "acme"})
            for body in ({"direction": "ingress", "protocol": "icmp", "remote_group_id": front["id"]},
                         {"direction": "ingress", "protocol": "tcp", "port_range_min": 5432,
                          "remote_group_id": front["id"]},
                         {"direction": "egress"}):
                api.post("/v1/security-groups/%s/rules" % db["id"], body)
            api.call("PATCH", "/v1/ports/%s" % ports["db1"]["id"], {"security_groups": [db["id"]]})
            show("group frontend: dynamic, every port named web1; group database: db1, stateful")
            time.sleep(0.5)
            failures += not ping(vms["web1"], "web1", "db1", ips["db1"], True)
            failures += not ping(vms["web2"], "web2", "db1", ips["db1"], False)
            api.call("PATCH", "/v1/security-groups/%s" % front["id"],
                     {"criteria": {"name": "web*"}})
            show("frontend's criteria become name web*: web2 is a member now")
            time.sleep(0.5)
            failures += not ping(vms["web2"], "web2", "db1", ips["db1"], True)
            show("db1 may start connections out (its egress rule); the replies pass, statefully:")
            failures += not ping(vms["db1"], "db1", "web1", ips["web1"], True)

            say("Distributed load balancer: VIP 10.0.0.100:80 -> web1:8080 (weight 1), web2:8080 (weight 2)")
            for name in ("web1", "web2"):
                serve(lab, vms[name], name, 8080)
            for name in ("web1", "web2"):  # each server answers, straight to it, before the VIP exists
                wait_until(lambda: name in connections(vms["db1"], ips[name], 8080, 1), timeout=20,
                           what="%s's server listening" % name)
            vip = api.post("/v1/load-balancers", {
                "name": "web", "network": nets["blue"]["id"], "vip_address": "10.0.0.100", "protocol": "tcp",
                "protocol_port": 80, "members": [{"address": ips["web1"], "protocol_port": 8080, "weight": 1},
                                                 {"address": ips["web2"], "protocol_port": 8080, "weight": 2}],
                "health_monitor": {"type": "TCP", "delay": 1, "timeout": 0.5, "max_retries": 1,
                                   "max_retries_down": 2}})
            show("no load-balancer box: db1's own hypervisor (hv3) picks a member in its datapath")
            wait_until(lambda: all(m["operating_status"] == "ONLINE" for m in
                                   api.get("/v1/load-balancers/%s" % vip["id"])["members"]),
                       timeout=20, what="members ONLINE")
            got = connections(vms["db1"], "10.0.0.100", 80, 90)
            show("90 connections from db1 to the VIP: %s" % dict(sorted(got.items())))
            failures += not (set(got) == {"web1", "web2"} and got["web2"] > got["web1"])
            show("the group on hv3 (ovs-ofctl -O OpenFlow15 dump-groups br-int):")
            groups = hvs["hv3"].ofctl("-O", "OpenFlow15", "dump-groups", "br-int").splitlines()[1:]
            show("\n".join("  " + line.strip().replace(",bucket=", "\n    bucket=") for line in groups))
            subprocess.run(["pkill", "-f", "lbserver.py tcp web2 8080"], check=False)
            show("web2's server is stopped; the health monitor (from web2's own hypervisor) notices")
            web2 = next(m for m in vip["members"] if m["address"] == ips["web2"])
            wait_until(lambda: next(m for m in api.get("/v1/load-balancers/%s" % vip["id"])["members"]
                                    if m["id"] == web2["id"])["operating_status"] == "OFFLINE",
                       timeout=20, what="web2 OFFLINE")
            time.sleep(0.5)
            got = connections(vms["db1"], "10.0.0.100", 80, 30)
            show("web2 OFFLINE; 30 more connections: %s" % dict(got))
            failures += set(got) != {"web1"}
            serve(lab, vms["web2"], "web2", 8080)
            wait_until(lambda: all(m["operating_status"] == "ONLINE" for m in
                                   api.get("/v1/load-balancers/%s" % vip["id"])["members"]),
                       timeout=20, what="web2 ONLINE again")
            got = connections(vms["db1"], "10.0.0.100", 80, 30)
            show("web2's server is back and ONLINE; 30 more connections: %s" % dict(sorted(got.items())))
            failures += "web2" not in got

            say("Per-VM encryption: db1's traffic to other hypervisors crosses only the IPsec mesh")
            plain, ipsec = tunnel_port_name("hv1"), tunnel_port_name("hv1", "ipsec")
            show("hv3 has one tunnel to hv1: %s (plain GENEVE, UDP 6082); nothing is encrypted yet"
                 % plain)
            ofports = {plain: hvs["hv3"].vsctl("get", "Interface", plain, "ofport")}

            def tunnel_tx():
                """Packets hv3's flows sent out of each tunnel (the flows' counters)."""
                hvs["hv3"].appctl("revalidator/wait")
                flows = hvs["hv3"].dump_flows()
                return {name: sum(f["n_packets"] for f in flows
                                  if re.search(r"output:%s(,|$)" % ofport, f["actions"]))
                        for name, ofport in ofports.items()}

            def pings_over():
                before = tunnel_tx()
                vms["db1"].ping(ips["web1"], count=5, interval=0.1, timeout=1)
                after = tunnel_tx()
                return {name: after[name] - before[name] for name in after}

            counts = pings_over()
            show("5 pings db1 -> web1: packets sent by hv3 on the plain tunnel %d" % counts[plain])
            failures += not counts[plain] >= 5
            api.call("PATCH", "/v1/ports/%s" % ports["db1"]["id"], {"encrypt": True})
            wait_until(lambda: hvs["hv3"].vsctl("--bare", "--columns=ofport", "find", "Interface",
                                                "name=%s" % ipsec).strip() not in ("", "[]", "-1"),
                       timeout=20, what="hv3's IPsec tunnel to hv1")
            wait_in_sync(api, HVS)
            ofports[ipsec] = hvs["hv3"].vsctl("get", "Interface", ipsec, "ofport")
            show("db1 gets encrypt=true: hv3 and hv1 now carry encrypted traffic, so dvn gives the pair an "
                 "IPsec tunnel, %s (UDP 6081, a key dvn made for the pair)" % ipsec)
            counts = pings_over()
            show("db1 gets encrypt=true; 5 more pings: plain tunnel %d, IPsec tunnel %d"
                 % (counts[plain], counts[ipsec]))
            failures += not (counts[plain] == 0 and counts[ipsec] >= 5)
            show("(ovs-monitor-ipsec makes the IKE configuration of every IPsec tunnel; this lab's kernel has no "
                 "ESP, so here the packets are not really encrypted: docs/encryption.md)")

            say("What dvn put on hv1's br-int (ovs-ofctl -O OpenFlow15 dump-flows br-int)")
            show("\n".join(line.strip() for line in
                            hvs["hv1"].ofctl("dump-flows", "br-int", "--no-stats").splitlines()))

            say("The controller restarts (SIGKILL) while web1 pings web2")
            pinger = vms["web1"].start_ping("10.0.0.2", interval=0.05)
            time.sleep(1)
            dvn.kill(signal.SIGKILL)
            show("dvn killed; br-int keeps forwarding (fail_mode=secure)")
            time.sleep(1)
            dvn.start()
            time.sleep(3)
            tx, rx = pinger.stop()
            show("dvn back; ping: %d sent, %d received, %d lost" % (tx, rx, tx - rx))
            failures += tx != rx
        except KeyboardInterrupt:
            say("Interrupted")
            failures += 1
        finally:
            say("Tearing everything down")
            if dvn is not None:
                dvn.stop()
                dvn.stop_store()
    shutil.rmtree(state, ignore_errors=True)
    say("Demo %s" % ("finished: everything behaved as expected" if not failures
                     else "FAILED: %d check(s) did not hold" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
