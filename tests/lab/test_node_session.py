"""dvn join and the node OVSDB session against a real ovsdb-server and ovs-vswitchd.

No namespace is needed: one Open vSwitch in a temporary run directory, whose
ovsdb-server dials the listener (ovs-vsctl set-manager, done by `dvn join`).
"""

import json
import os
import subprocess
import sys
import time

import pytest

from ovsdb.join import datapath_id, join, leave
from ovsdb.node import tunnel_port_name
from tests.ovs1 import SingleOvs

pytestmark = pytest.mark.lab
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Probe:
    """The listener runs in the node's namespace, where 127.0.0.1 is the node's loopback."""

    def __init__(self, ns):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.node_probe"],
                                     cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.port = self.read()["port"]
        self.last = {}

    def read(self):
        line = self.proc.stdout.readline()
        assert line, "node probe exited"
        return json.loads(line)

    def wait(self, predicate, timeout=10):
        """The first message (or the latest session state) that satisfies ``predicate``."""
        if self.last and predicate(self.last):
            return self.last
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read()
            if "system_id" in msg:
                self.last = msg
            if predicate(msg):
                return msg
        raise AssertionError("no matching update; last: %s" % self.last)

    def command(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        while True:  # session updates may come before the reply; they update self.last
            msg = self.read()
            if "system_id" in msg:
                self.last = msg
            elif "ops" in msg or "error" in msg:
                return msg

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def node(tmp_path):
    ovs = SingleOvs(tmp_path)
    ovs.start()
    probe = Probe(ovs.ns)
    yield ovs, probe
    probe.stop()
    ovs.stop()


def test_join_configures_br_int_and_the_node_connects_out(node):
    ovs, probe = node
    join("127.0.0.1", "10.9.0.1", system_id="n1", db=ovs.db, datapath_type="netdev",
         of_port=1, db_port=probe.port)
    msg = probe.wait(lambda m: m.get("dpid") is not None)
    assert msg["system_id"] == "n1" and msg["encap_ip"] == "10.9.0.1"
    assert msg["dpid"] == int(datapath_id("n1"), 16)
    assert ovs.vsctl("get", "Bridge", "br-int", "fail_mode") == "secure"
    assert "OpenFlow15" in ovs.vsctl("get", "Bridge", "br-int", "protocols")
    # The controller, and three lanes on the ports after it (more connections for large changes).
    assert sorted(ovs.vsctl("get-controller", "br-int").split()) == ["tcp:127.0.0.1:%d" % p for p in (1, 2, 3, 4)]
    rows = json.loads(ovs.vsctl("--format=json", "--columns=target,max_backoff,external_ids", "list", "Controller"))
    assert sorted((t, b, dict(ids[1]).get("dvn-lane")) for t, b, ids in rows["data"]) == [
        ("tcp:127.0.0.1:1", 1000, None), ("tcp:127.0.0.1:2", 1000, "1"),
        ("tcp:127.0.0.1:3", 1000, "2"), ("tcp:127.0.0.1:4", 1000, "3")]


def test_tunnel_mesh_is_diffed_and_applied_in_one_transaction(node):
    ovs, probe = node
    join("127.0.0.1", "10.9.0.1", system_id="n1", db=ovs.db, datapath_type="netdev",
         of_port=1, db_port=probe.port)
    probe.wait(lambda m: m.get("dpid") is not None)
    assert probe.command({"tunnels": {"n2": "10.9.0.2", "n3": "10.9.0.3"}})["ops"] > 0
    msg = probe.wait(lambda m: m.get("tunnels") and all(m["tunnels"].values()) and len(m["tunnels"]) == 2)
    assert set(msg["tunnels"]) == {"n2", "n3"}
    name = tunnel_port_name("n2")
    assert ovs.vsctl("get", "Interface", name, "options:remote_ip") == '"10.9.0.2"'
    assert ovs.vsctl("get", "Interface", name, "type") == "geneve"
    # The same mesh again: nothing to send.
    assert probe.command({"tunnels": {"n2": "10.9.0.2", "n3": "10.9.0.3"}})["ops"] == 0
    # n3 leaves, n2 moves: one transaction updates one port and removes the other.
    assert probe.command({"tunnels": {"n2": "10.9.0.22"}})["ops"] > 0
    probe.wait(lambda m: set(m.get("tunnels") or {}) == {"n2"})
    assert ovs.vsctl("get", "Interface", name, "options:remote_ip") == '"10.9.0.22"'
    assert tunnel_port_name("n3") not in ovs.vsctl("list-ports", "br-int").split()


def test_vm_interfaces_are_reported_by_iface_id(node):
    ovs, probe = node
    join("127.0.0.1", "10.9.0.1", system_id="n1", db=ovs.db, datapath_type="netdev",
         of_port=1, db_port=probe.port)
    probe.wait(lambda m: m.get("dpid") is not None)
    ovs.vsctl("add-port", "br-int", "vm1", "--", "set", "Interface", "vm1", "type=internal",
              "external_ids:iface-id=port-1")
    msg = probe.wait(lambda m: "port-1" in (m.get("bindings") or {}))
    assert msg["bindings"]["port-1"] > 0
    ovs.vsctl("del-port", "br-int", "vm1")
    probe.wait(lambda m: "bindings" in m and "port-1" not in m["bindings"])


def test_leave_removes_what_dvn_put_on_the_node(node):
    ovs, probe = node
    join("127.0.0.1", "10.9.0.1", system_id="n1", db=ovs.db, datapath_type="netdev",
         of_port=1, db_port=probe.port)
    probe.wait(lambda m: m.get("dpid") is not None)
    probe.command({"tunnels": {"n2": "10.9.0.2"}})
    probe.wait(lambda m: m.get("tunnels"))
    leave(db=ovs.db)
    probe.wait(lambda m: "closed" in m)
    assert ovs.vsctl("get-manager") == ""
    assert ovs.vsctl("get-controller", "br-int") == ""
    assert tunnel_port_name("n2") not in ovs.vsctl("list-ports", "br-int").split()


def _dvn_join(ovs, port, *extra):
    """`dvn join` in the node's namespace, as a user runs it; (exit code, output)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = subprocess.run(["ip", "netns", "exec", ovs.ns, sys.executable, "-m", "controller.cli", "join",
                          "--controller", "127.0.0.1", "--encap-ip", "10.9.0.1", "--system-id", "n1",
                          "--datapath-type", "netdev", "--db", ovs.db, "--openflow-port", str(port),
                          "--ovsdb-port", str(port), "--openflow-lanes", "0", *extra],
                         cwd=root, env=dict(ovs.env, PYTHONWARNINGS="ignore", PYTHONPATH=root),
                         capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("vswitchd,managers,why", [
    (False, True, "ovs-vswitchd has not applied the configuration: is it running?"),
    (True, False, "does it serve its Manager table (--remote=db:Open_vSwitch,Open_vSwitch,manager_options)?"),
])
def test_join_says_in_one_line_why_the_node_did_not_join(tmp_path, vswitchd, managers, why):
    """What a new user met: no vswitchd gave a traceback after 10 s; an
    ovsdb-server that does not serve its Manager table printed `joined:`."""
    ovs = SingleOvs(tmp_path, vswitchd=vswitchd, managers=managers)
    ovs.start()
    try:
        code, out = _dvn_join(ovs, 9, "--wait", "2")
        assert code == 2 and out.count("\n") == 1 and out.startswith("dvn join: not joined after 2 s: "), out
        assert why in out and "Traceback" not in out
        assert ovs.vsctl("get-controller", "br-int") == "tcp:127.0.0.1:9"   # the configuration is written
    finally:
        ovs.stop()


def test_join_waits_for_its_sessions_and_says_it_joined(node):
    ovs, probe = node
    code, out = _dvn_join(ovs, probe.port, "--wait", "20")
    # The probe takes the OVSDB session; nothing answers OpenFlow on its port.
    assert code == 2 and "br-int's OpenFlow controller tcp:127.0.0.1:%d is not connected" % probe.port in out, out
    assert "OVSDB manager" not in out
