"""A node from cloud-init (issue 12): docs/cloud-init/dvn-node-join.sh, the
script the user-data example runs on first boot, on a fresh node namespace
(its address on eth0, Open vSwitch installed but not running, as a new
cloud instance has it). It starts Open vSwitch, joins with a token and the
pin of dvn's CA, and dvn takes the node in sync; run again, it changes
nothing. A node started while dvn is down waits for dvn's API and joins
once dvn comes up (the time from dvn's start to in sync is printed, not
asserted: run with -s to see it).

In the lab OVS and dvn are installed already, so the script skips
installing them (`dvn` on its PATH runs this worktree's code)."""

import os
import subprocess
import sys
import time

import pytest

from tests.dvnproc import ROOT, dvn_lab, wait_in_sync, wait_until
from tests.netlab import Hypervisor, sh

pytestmark = pytest.mark.lab

TAG, OCTET, API_PORT = "cinit", 80, 18092
SCRIPT = os.path.join(ROOT, "docs", "cloud-init", "dvn-node-join.sh")


class FreshNode(Hypervisor):
    """A namespace as a new cloud instance is: its address on eth0 and no
    Open vSwitch running (the script starts it, with its state in self.dir)."""

    def start(self):
        os.makedirs(self.dir)
        ul = self.lab.ul
        sh("ip", "link", "add", self.name, "netns", ul, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "-n", ul, "link", "set", self.name, "master", "br0", "up")
        sh("ip", "-n", self.ns, "addr", "add", self.cidr, "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        # `dvn` as installed on a node, but this worktree's code.
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        with open(os.path.join(bindir, "dvn"), "w") as f:
            f.write('#!/bin/sh\nPYTHONPATH=%s PYTHONWARNINGS=ignore exec %s -m controller.cli "$@"\n' % (
                ROOT, sys.executable))
        os.chmod(os.path.join(bindir, "dvn"), 0o755)
        self.env = dict(self.env, PATH=bindir + ":" + os.environ["PATH"], OVS_SYSCONFDIR=os.path.join(self.dir, "etc"))
        self.pki = os.path.join(self.dir, "pki")


def fresh_node(lab, name, ip):
    node = FreshNode(lab, name, lab._netns(name), ip + "/24", 1600)
    lab.hvs[name] = node
    node.start()
    assert node.run("ovs-vsctl", "--timeout=2", "--no-wait", "show", check=False) == ""   # nothing runs yet
    return node


def script_args(env, node, token):
    return ["ip", "netns", "exec", node.ns, "bash", SCRIPT, "--controller", env.dvn.listen_ip, "--token", token,
            "--ca-hash", env.ca_hash, "--system-id", node.name, "--api-url", env.dvn.url, "--pki-dir", node.pki,
            "--wait", "120"]


def run_script(env, node, token):
    return subprocess.run(script_args(env, node, token), env=node.env, cwd=node.dir, capture_output=True, text=True,
                          timeout=300)


class Env:
    pass


@pytest.fixture(scope="module")
def cinit(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("dvn-cinit"))
    with dvn_lab(TAG, OCTET, API_PORT, state, extra=["--tls"], api_on_underlay=True) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api = lab, dvn, dvn.client()
        env.ca_hash = env.api.get("/v1/ca")["ca_hash"]
        yield env


def _certificates(env, node):
    return [c for c in env.api.get("/v1/certificates") if c["node"] == node]


def test_the_script_makes_a_fresh_node_a_dvn_node_and_a_second_run_changes_nothing(cinit):
    ip = "192.168.%d.11" % OCTET
    node = fresh_node(cinit.lab, "cn1", ip)
    token = cinit.api.post("/v1/join-tokens", {"node": "cn1", "ttl": 600})["token"]
    res = run_script(cinit, node, token)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "starting ovsdb-server" in out and "starting ovs-vswitchd" in out, out
    assert "joining dvn at %s as cn1 (tunnel address %s)" % (cinit.dvn.listen_ip, ip) in out, out
    assert out.splitlines()[-1].startswith("joined: OpenFlow ssl:%s:6653" % cinit.dvn.listen_ip), out
    wait_in_sync(cinit.api, ["cn1"])
    assert node.vsctl("get", "Open_vSwitch", ".", "external_ids:dvn-encap-ip").strip('"') == ip
    assert "ssl:%s:6653" % cinit.dvn.listen_ip in node.vsctl("get-controller", "br-int").split()
    assert len(_certificates(cinit, "cn1")) == 1
    assert token.split(".")[1] not in cinit.dvn.log()
    # Its sessions come back within about a second of a dvn restart (OVS's own back-off grows to 8 s).
    for table in ("Controller", "Manager"):
        backoff = node.vsctl("--columns=max_backoff", "--format=csv", "--no-headings", "list", table).split()
        assert backoff and set(backoff) == {"1000"}, (table, backoff)

    again = run_script(cinit, node, token)     # (the token is used up: a second admission would be refused)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "joined dvn at %s already" % cinit.dvn.listen_ip in again.stdout, again.stdout
    assert "starting" not in again.stdout and "joining" not in again.stdout, again.stdout
    assert len(_certificates(cinit, "cn1")) == 1
    wait_in_sync(cinit.api, ["cn1"])


def test_a_node_started_while_dvn_is_down_joins_once_dvn_comes_up(cinit):
    ip = "192.168.%d.12" % OCTET
    node = fresh_node(cinit.lab, "cn2", ip)
    token = cinit.api.post("/v1/join-tokens", {"node": "cn2", "ttl": 600})["token"]
    cinit.dvn.stop()
    out_path, err_path = os.path.join(node.dir, "join.out"), os.path.join(node.dir, "join.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = cinit.lab.spawn(script_args(cinit, node, token), env=node.env, cwd=node.dir, stdout=out, stderr=err)

    def said(path, text):
        with open(path) as f:
            return text in f.read()
    try:
        wait_until(lambda: said(err_path, "waiting up to 120 s") or proc.poll() is not None, timeout=120,
                   what="the script to say it waits for dvn")
        assert proc.poll() is None, open(out_path).read() + open(err_path).read()
        started = time.monotonic()
        cinit.dvn.start()
        answering = time.monotonic()
        wait_in_sync(cinit.api, ["cn2"], timeout=120)
        in_sync = time.monotonic()
        assert proc.wait(timeout=120) == 0, open(out_path).read() + open(err_path).read()
    finally:
        if proc.poll() is None:
            proc.kill()
    print("\nnode started while dvn was down: in sync %.1f s after dvn's start (its API answered after %.1f s)"
          % (in_sync - started, answering - started))
    with open(out_path) as f:
        assert f.read().splitlines()[-1].startswith("joined: OpenFlow ssl:%s:6653" % cinit.dvn.listen_ip)
    with open(err_path) as f:
        assert f.read().count("waiting up to") == 1      # said once, not once per try
    assert len(_certificates(cinit, "cn2")) == 1
    wait_in_sync(cinit.api, ["cn1", "cn2"], timeout=120)
