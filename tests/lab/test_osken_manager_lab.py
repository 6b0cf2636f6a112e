"""dvn loaded by module name under osken-manager, beside another os-ken app.

One lab: dvn's OpenFlow side runs as `osken-manager --config-file dvn.conf
controller.app tests.other_app`, configured from the file alone (the
northbound store, the node listener, the REST API); one hypervisor joins.
Both apps see the same switch; dvn brings it in sync and its resyncs leave
the other app's flow (and another user's flow and group) alone, while they
still delete stale flows and groups in dvn's own cookie space and group range.
"""

import os
import signal
import sys

import pytest

from flows.flow import DVN_COOKIE, is_dvn_cookie
from flows.lb import GROUP_ID_MAX
from tests import other_app
from tests.dvnproc import DvnServer, join, wait_until
from tests.netlab import Lab

pytestmark = pytest.mark.lab

TAG, OCTET, API_PORT = "osk", 71, 18091
CTL_IP = "192.168.%d.1" % OCTET
HV_IP = "192.168.%d.11" % OCTET

CONF = """\
[DEFAULT]
ofp_listen_host = {ctl}
ofp_tcp_listen_port = 6653
echo_request_interval = 5
maximum_unreplied_echo_requests = 3
use_stderr = false
log_file = {log}

[dvn]
nb = {nb}
state_dir = {state}
api_listen = 127.0.0.1:{api}
ovsdb_listen = {ctl}:6640

[other_app]
record = {record}
"""


OTHER_FLOWS = {(other_app.OTHER_TABLE, other_app.OTHER_PRIORITY), (0, other_app.PUNT_PRIORITY)}


def other_flows(env):
    """(table, priority) of the other app's flows on br-int."""
    return {(f["table"], f["priority"]) for f in env.flows() if f["cookie"] == other_app.OTHER_COOKIE}


class OskenManager(DvnServer):
    """osken-manager running dvn's app and the other app, from a config file."""

    def __init__(self, state_dir, nb):
        super().__init__(state_dir, api_port=API_PORT, listen_ip=CTL_IP)
        self.conf_path = os.path.join(state_dir, "dvn.conf")
        self.record_path = os.path.join(state_dir, "other_app.events")
        with open(self.conf_path, "w") as f:
            f.write(CONF.format(ctl=CTL_IP, log=self.log_path, nb=nb, state=state_dir, api=API_PORT,
                                record=self.record_path))

    def command(self):
        return [sys.executable, "-m", "controller.osken_manager", "--config-file", self.conf_path,
                "controller.app", "tests.other_app"]

    def records(self):
        """The other app's record: one line per event."""
        try:
            with open(self.record_path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


class Env:
    def __init__(self, lab, om, hv):
        self.lab, self.om, self.hv = lab, om, hv
        self.api = om.client()
        self.dpid = int(hv.vsctl("get", "Bridge", "br-int", "datapath_id").strip('"'), 16)

    def state(self):
        return self.api.get("/v1/nodes/hv1")["switch"]

    def wait_synced(self):
        """dvn's own word: the switch holds all dvn wants, nothing pending."""
        def synced():
            s = self.state()
            return s["connected"] and s["synced"] and not s["pending"] and s["flows"]
        wait_until(synced, timeout=60, interval=0.2, what="hv1's switch in sync (GET /v1/nodes/hv1)")

    def flows(self):
        return self.hv.dump_flows()

    def groups(self):
        out = self.hv.ofctl("dump-groups", "br-int")
        return {int(line.split("group_id=")[1].split(",")[0]) for line in out.splitlines() if "group_id=" in line}

    def restart(self):
        """A new osken-manager process: the switch reconnects and dvn resyncs it."""
        self.om.stop()
        self.om.start()
        self.wait_synced()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from ovsdb import nbserver
    state = str(tmp_path_factory.mktemp("dvn-osk"))
    Lab.cleanup_stale(TAG)
    with Lab(TAG) as lab:
        lab.underlay("192.168.%d.0/24" % OCTET)
        lab.controller_uplink(CTL_IP + "/24")
        os.makedirs(os.path.join(state, "nb"))
        nb = nbserver.start(os.path.join(state, "nb"))   # an existing store, named in the config file
        om = OskenManager(state, nb)
        try:
            om.start()
            hv = lab.add_hv("hv1", HV_IP + "/24")
            lab.seed_neighbors()
            join(hv, CTL_IP, HV_IP, extra=["--openflow-lanes", "0"])
            e = Env(lab, om, hv)
            e.wait_synced()
            yield e
        finally:
            om.stop()
            nbserver.stop(os.path.join(state, "nb"))


def test_dvn_brings_the_switch_in_sync_under_osken_manager(env):
    flows = env.flows()
    dvn = [f for f in flows if is_dvn_cookie(f["cookie"])]
    assert dvn and len(dvn) == env.state()["flows"]
    assert "running controller.app, tests.other_app" in env.om.log()
    assert "northbound store" not in env.om.log()  # the store named in the file, not an embedded one


def test_the_other_app_saw_the_same_switch_and_has_its_flow(env):
    assert env.om.records()[:2] == ["features %016x" % env.dpid, "flow installed %016x" % env.dpid]
    assert other_flows(env) == OTHER_FLOWS


def test_the_other_app_gets_the_packet_ins_of_its_own_flows(env):
    # A frame of the other app's EtherType, into table 0 as if from br-int's
    # own port: its punt flow sends it to the controllers, and dvn leaves the
    # packet-in (not its cookie) to os-ken's apps.
    frame = "ffffffffffff" + "020000000001" + "%04x" % other_app.OTHER_ETH_TYPE + "00" * 46
    mark = len(env.om.log())
    env.hv.ofctl("packet-out", "br-int", "in_port=LOCAL packet=%s actions=table" % frame)
    line = "packet-in %016x cookie %#x table 0" % (env.dpid, other_app.OTHER_COOKIE)
    wait_until(lambda: line in env.om.records(), what="the other app's record of its packet-in")
    assert "packet-in" not in env.om.log()[mark:] and "firewall:" not in env.om.log()[mark:]


def test_a_resync_keeps_other_apps_flows_and_groups_and_drops_dvns_stale_ones(env):
    ofctl = env.hv.ofctl
    # Someone else's flow in dvn's first table, and a group above dvn's range.
    ofctl("add-flow", "br-int", "cookie=0x42,table=0,priority=3,udp,tp_dst=9 actions=drop")
    ofctl("add-group", "br-int", "group_id=%d,type=all,bucket=bucket_id:0,actions=drop" % (GROUP_ID_MAX + 1))
    # A flow in dvn's cookie space and a group in dvn's range that dvn does not want.
    stale_cookie = DVN_COOKIE | (1 << 60) | 0xDEAD
    ofctl("add-flow", "br-int", "cookie=%#x,table=0,priority=4,udp,tp_dst=10 actions=drop" % stale_cookie)
    ofctl("add-group", "br-int", "group_id=4242,type=all,bucket=bucket_id:0,actions=drop")
    features = env.om.records().count("features %016x" % env.dpid)

    env.restart()

    cookies = {f["cookie"] for f in env.flows()}
    assert other_flows(env) == OTHER_FLOWS        # installed once, in the first run only
    assert 0x42 in cookies
    assert stale_cookie not in cookies
    assert env.groups() == {GROUP_ID_MAX + 1}
    assert len([f for f in env.flows() if is_dvn_cookie(f["cookie"])]) == env.state()["flows"]
    # The other app saw the switch again, on the same connection dvn resynced.
    assert env.om.records().count("features %016x" % env.dpid) == features + 1
    assert env.om.records().count("flow installed %016x" % env.dpid) == 1


def test_osken_manager_stops_on_sigterm_and_leaves_the_flows(env):
    have = {(f["table"], f["priority"], f["match"], f["cookie"]) for f in env.flows()}
    env.om.kill(signal.SIGTERM)
    assert env.om.proc.returncode == 0
    assert {(f["table"], f["priority"], f["match"], f["cookie"]) for f in env.flows()} == have
    env.om.start()
    env.wait_synced()
