"""The scale workload (benchmarks/workload.py) on a lab hypervisor: plugging its
interfaces, binding them to the ports dvn made, and the sanity check that the
configuration is real. Shared by tests/lab/test_scale_lab.py and
benchmarks/bench_scale.py.

The three pinned VMs (vm_a, vm_b, vm_c) are veths into namespaces; every
other port is an interface of ``port_type``: ``dummy`` (the hypervisor needs
enable_dummy), or ``patch`` with a peer that never exists (an ofport, and no
datapath port for vswitchd's main loop to poll).
"""

import json
import os
import subprocess
import time

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vmtools")
VM_NAMES = {"vm_a": "vma", "vm_b": "vmb", "vm_c": "vmc"}
BATCH = 500   # interfaces per OVSDB transaction


def plug(lab, hv, w, port_type="dummy", timeout=1200):
    """Plug every port's interface into br-int, without an iface-id; returns
    ({port index: Interface uuid}, {role: VM}) once all have an ofport."""
    vms, uuids = {}, {}
    for role, name in VM_NAMES.items():
        i = w.vms[role]
        _k, mac, ip, _g = w.ports[i]
        vms[role] = lab.add_vm(name, hv, ip + "/24", mac)
        hv.vsctl("add-port", "br-int", name)
        uuids[i] = hv.vsctl("get", "Interface", name, "_uuid")
    rest = [i for i in range(w.n_ports) if i not in uuids]
    for b in range(0, len(rest), BATCH):
        chunk = rest[b:b + BATCH]
        ops = []
        for i in chunk:
            name = w.port_name(i)
            row = {"name": name, "type": port_type}
            if port_type == "patch":
                row["options"] = ["map", [["peer", "none-%d" % i]]]
            ops.append({"op": "insert", "table": "Interface", "uuid-name": "i%d" % i, "row": row})
            ops.append({"op": "insert", "table": "Port", "uuid-name": "p%d" % i,
                        "row": {"name": name, "interfaces": ["named-uuid", "i%d" % i]}})
        ops.append({"op": "mutate", "table": "Bridge", "where": [["name", "==", "br-int"]],
                    "mutations": [["ports", "insert", ["set", [["named-uuid", "p%d" % i] for i in chunk]]]]})
        res = hv.transact(ops)
        for n, i in enumerate(chunk):
            uuids[i] = res[2 * n]["uuid"][1]
    names = [w.port_name(i) for i in rest] + list(VM_NAMES.values())
    deadline = time.monotonic() + timeout
    while hv.ofport_count(names) != len(names):
        if time.monotonic() > deadline:
            raise RuntimeError("not every interface has an ofport after %d s" % timeout)
        time.sleep(1)
    return uuids, vms


def bind(hv, w, port_ids, uuids, indices=None, batch=BATCH):
    """Bind interfaces to their ports (``port_ids``: port index -> id),
    ``batch`` per transaction; returns [(interfaces, ms)] per transaction."""
    vm_of = {i: role for role, i in w.vms.items()}
    indices = list(range(w.n_ports)) if indices is None else list(indices)
    out = []
    for b in range(0, len(indices), batch):
        ops = []
        for i in indices[b:b + batch]:
            ids = [["iface-id", port_ids[i]]]
            if i in vm_of:
                ids.append(["attached-mac", w.ports[i][1]])
            ops.append({"op": "mutate", "table": "Interface", "where": [["_uuid", "==", ["uuid", uuids[i]]]],
                        "mutations": [["external_ids", "insert", ["map", ids]]]})
        t = time.monotonic()
        hv.transact(ops)
        out.append((len(ops), (time.monotonic() - t) * 1000))
    return out


def sanity(lab, vms, w):
    """{check: passed}: an allowed ping passes, denied ones drop, the VIP
    answers through a remote-group rule and not without it (see
    benchmarks/workload.py for why these verdicts)."""
    ips = {role: w.ports[i][2] for role, i in w.vms.items()}
    vip = w.sanity_vip[1]
    lab.spawn(["ip", "netns", "exec", vms["vm_b"].ns, "python3", os.path.join(TOOLS, "lbserver.py"),
               "tcp", "vmb", "80"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    checks = {"ping a->b passes (same group)": vms["vm_a"].ping_ok(ips["vm_b"]),
              "ping c->b drops (not in b's group)": vms["vm_c"].ping(ips["vm_b"], count=3)[1] == 0,
              "ping a->c drops (not in c's group)": vms["vm_a"].ping(ips["vm_c"], count=3)[1] == 0}

    def tcp(role):
        out = vms[role].exec("python3", os.path.join(TOOLS, "lbclient.py"), "tcp", vip, "80", "1", "0",
                             timeout=60)
        return json.loads(out)[0]

    got = None
    for _ in range(10):  # the first connection may wait for ARP
        got = tcp("vm_c")
        if got.startswith("vmb "):
            break
    checks["TCP c->VIP:80 answered by vm_b:80 (remote group rule)"] = bool(got and got.startswith("vmb "))
    checks["TCP a->VIP:80 gets no answer (a not in the next group)"] = tcp("vm_a") == "timeout"
    return checks
