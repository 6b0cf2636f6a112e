"""Revoking a node in the lab (issue 12): three nodes joined with tokens over
TLS, VMs on each, a1 (hv1) and a3 (hv3) encrypted so that every pair has an
IPsec key. hv3 is revoked while a1 pings a2 (hv2): hv3's OpenFlow
connections and OVSDB session end, every tunnel to it goes from hv1 and hv2
with its VMs' flows, its pairs' keys leave the store, the ping between hv1
and hv2 loses nothing, and hv3 is refused each time it comes back. A new
token for hv3 admits it again, with new keys for its pairs."""

import datetime
import json
import os
import re
import subprocess
import time

import pytest

from ovsdb.node import tunnel_port_name
from tests.dvnproc import dvn_lab, token_join, wait_in_sync, wait_until
from tests.lab.test_encryption_lab import tunnel_ports

pytestmark = pytest.mark.lab

TAG, OCTET, API_PORT = "revoke", 68, 18088
HVS = {"hv%d" % i: "192.168.%d.1%d" % (OCTET, i) for i in (1, 2, 3)}
ENCRYPTED = {"a1", "a3"}


class Env:
    pass


def mac(i):
    return "02:00:00:00:68:%02x" % i


@pytest.fixture(scope="module")
def rev(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("dvn-revoke"))
    with dvn_lab(TAG, OCTET, API_PORT, state, extra=["--tls"], api_on_underlay=True) as (lab, dvn):
        env = Env()
        env.lab, env.dvn, env.api, env.state = lab, dvn, dvn.client(), state
        env.hvs = {n: lab.add_hv(n, ip + "/24") for n, ip in HVS.items()}
        lab.seed_neighbors()
        for name, ip in HVS.items():
            token = env.api.post("/v1/join-tokens", {"node": name, "ttl": 600})["token"]
            token_join(env.dvn, env.hvs[name], ip, token, wait=60)
        net = env.api.post("/v1/networks", {"name": "revnet", "tenant": "acme", "cidrs": ["10.68.0.0/24"]})
        env.ports, env.vms = {}, {}
        for i, hv in enumerate(HVS, start=1):
            name, ip = "a%d" % i, "10.68.0.%d" % i
            env.ports[name] = env.api.post("/v1/ports", {"name": name, "network": net["id"], "mac": mac(i),
                                                         "ips": [ip], "encrypt": name in ENCRYPTED})
            env.vms[name] = lab.add_vm(name, env.hvs[hv], ip + "/24", mac(i), iface_id=env.ports[name]["id"])
        for name, port in env.ports.items():
            wait_until(lambda: env.api.get("/v1/ports/%s" % port["id"])["node"], what="%s bound" % name)
        for hv in env.hvs.values():   # a plain and an IPsec tunnel to each peer
            wait_until(lambda: len(tunnel_ports(hv)) == 4, timeout=30, what="four tunnel ports on %s" % hv.name)
        wait_in_sync(env.api, HVS)
        yield env


def pair_keys(env):
    """{"a|b": pre-shared key} of the TunnelKey rows in dvn's store."""
    out = subprocess.run(["ovsdb-client", "-f", "json", "dump", "unix:" + os.path.join(env.state, "nb.sock"),
                          "DVN_Northbound", "TunnelKey", "nodes", "psk"], capture_output=True, text=True, check=True)
    table = json.loads(out.stdout)
    columns = table["headings"]
    return {row[columns.index("nodes")]: row[columns.index("psk")] for row in table["data"]}


def keys_in_use(hv):
    """{peer's tunnel port name: psk} of hv's IPsec tunnel ports."""
    return {name: o["psk"] for name, o in tunnel_ports(hv).items() if "psk" in o}


def sessions(hv):
    """Whether hv's OpenFlow controllers (main and lanes) and its OVSDB manager are connected, as its OVS says."""
    def connected(table):
        out = hv.vsctl("--columns=is_connected", "--format=csv", "--no-headings", "list", table)
        return [v == "true" for v in out.split()]
    return connected("Controller"), connected("Manager")


def dropped(hv, since):
    """When hv's vswitchd and ovsdb-server first logged each of their connections to dvn ending after ``since``."""
    first = {}
    for daemon in ("ovs-vswitchd", "ovsdb-server"):
        with open(os.path.join(hv.dir, daemon + ".log")) as f:
            for line in f:
                m = re.match(r"(\S+)Z\|.*\|(?:br-int<->)?((?:ssl|tcp):[\d.:]+): (connection dropped|connection "
                             r"closed by peer)", line)
                when = m and datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
                if m and when >= since and m.group(2) not in first:
                    first[m.group(2)] = when
    return sorted(first.values())


def log_time(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def test_revoking_a_node_under_traffic_ends_it_and_spares_the_others(rev):
    hv1, hv2, hv3 = (rev.hvs[n] for n in HVS)
    assert rev.vms["a1"].ping_ok("10.68.0.3") and rev.vms["a2"].ping_ok("10.68.0.3")   # hv3's VM, reachable
    assert sessions(hv3) == ([True] * 4, [True])
    keys = pair_keys(rev)
    assert sorted(keys) == ["hv1|hv2", "hv1|hv3", "hv2|hv3"]
    assert sorted(keys_in_use(hv1).values()) == sorted([keys["hv1|hv2"], keys["hv1|hv3"]])
    assert any(mac(3) in f["match"] + f["actions"] for f in hv1.dump_flows())

    ping = rev.vms["a1"].start_ping("10.68.0.2", interval=0.05)   # hv1 -> hv2, over their IPsec tunnel
    ping.wait_for(lambda p: len(p.answered()) >= 20, what="20 answered pings before the revocation")
    started, started_utc = time.monotonic(), datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    said = rev.api.post("/v1/nodes/hv3/revoke", None)
    answered = time.monotonic() - started
    assert said["keys_deleted"] == 2 and len(said["revoked"]) == 1, said
    revoked_at = ping.reported()

    # hv3's own OVS sees every session end. (Its rows say so once no refused reconnect is up at that moment,
    # and ovsdb-server refreshes the Manager row's status every few seconds: its logs tell when each ended.)
    wait_until(lambda: sessions(hv3)[0] == [False] * 4, timeout=10, interval=0.05,
               what="hv3's controllers not connected")
    of_down = time.monotonic() - started
    wait_until(lambda: sessions(hv3) == ([False] * 4, [False]), timeout=10, interval=0.05,
               what="hv3's controllers and manager not connected")
    db_down = time.monotonic() - started
    assert len(dropped(hv3, started_utc)) == 5     # (hv3's four OpenFlow connections and its OVSDB session)
    log = rev.dvn.log()
    api_line = next(ln for ln in log.splitlines() if "node hv3 revoked: 1 certificate(s) refused" in ln)
    ended = [ln for ln in log.splitlines() if "node hv3 revoked: sessions ended" in ln]
    assert len(ended) == 1 and "OVSDB, OpenFlow, 3 lanes" in ended[0] and "leave 2 peers" in ended[0], ended
    print("\nrevocation: the API answered in %.2f s; dvn logged the sessions ended %+.3f s from the API's line; "
          "hv3's OVS showed its controllers down after %.2f s, its manager too after %.2f s; hv3's own logs saw its "
          "connections end %s s after the API call" % (
              answered, (log_time(ended[0]) - log_time(api_line)).total_seconds(), of_down, db_down,
              ", ".join("%.3f" % (t - started_utc).total_seconds() for t in dropped(hv3, started_utc))))

    # No tunnel to hv3 on hv1 and hv2, and no flow for hv3's VM; the key of hv1|hv2 stays.
    for hv in (hv1, hv2):
        wait_until(lambda: set(tunnel_ports(hv)).isdisjoint({tunnel_port_name("hv3"),
                                                             tunnel_port_name("hv3", "ipsec")}),
                   timeout=10, what="no tunnel to hv3 on %s" % hv.name)
        assert len(tunnel_ports(hv)) == 2
    assert pair_keys(rev) == {"hv1|hv2": keys["hv1|hv2"]}
    rev.revoked_keys = {keys["hv1|hv3"], keys["hv2|hv3"]}
    assert list(keys_in_use(hv1).values()) == [keys["hv1|hv2"]]
    synced = wait_in_sync(rev.api, ["hv1", "hv2"])
    for hv in (hv1, hv2):
        assert not [f for f in hv.dump_flows() if mac(3) in f["match"] + f["actions"]], \
            "%s keeps flows for hv3's VM once dvn said in sync (%s)" % (hv.name, synced)
    assert rev.vms["a2"].ping(rev.vms["a3"].ip, count=3)[1] == 0

    # hv3 is neither live nor in sync; its reconnects are refused, and logged.
    node = rev.api.get("/v1/nodes/hv3")
    assert node["state"] == "down" and not node["switch"]["connected"] and not node["switch"]["synced"], node
    of_refused = "refused: the certificate of node hv3 (serial %s) is revoked" % (
        [c for c in rev.api.get("/v1/certificates") if c["node"] == "hv3"][0]["serial"])
    rev.dvn.wait_log(of_refused, count=4, timeout=20)     # (each of its four connections once at least)
    # (its OVSDB session is refused at the TLS listener, by its certificate)
    rev.dvn.wait_log("OVSDB connection from %s:" % HVS["hv3"], count=2, timeout=20)
    assert of_refused in rev.dvn.log().split("OVSDB connection from %s:" % HVS["hv3"])[-1]
    assert not rev.api.get("/v1/nodes/hv3")["switch"]["connected"]
    after = rev.dvn.log().split(ended[0])[-1]
    assert "(node hv3) connected" not in after and "node hv3 connected" not in after
    assert rev.dvn.log().count("node hv3 revoked: sessions ended") == 1
    assert keys["hv1|hv3"] not in rev.dvn.log() and keys["hv2|hv3"] not in rev.dvn.log()
    assert "Traceback" not in rev.dvn.log()   # (ending a TLS connection under os-ken's reader)

    ping.wait_for(lambda p: p.reported() >= revoked_at + 40, what="40 more pings after the revocation")
    tx, rx = ping.stop()
    assert tx >= 60 and rx == tx, "hv1 -> hv2 lost %d of %d pings across hv3's revocation" % (tx - rx, tx)


def test_a_new_token_admits_the_revoked_node_again_with_new_keys(rev):
    hv1, hv3 = rev.hvs["hv1"], rev.hvs["hv3"]
    before = pair_keys(rev)
    assert sorted(before) == ["hv1|hv2"]    # (the test above revoked hv3)
    token = rev.api.post("/v1/join-tokens", {"node": "hv3", "ttl": 600})["token"]
    out = token_join(rev.dvn, hv3, HVS["hv3"], token, wait=60, check=False)
    if not out.startswith("joined:"):
        with open(os.path.join(hv3.dir, "ovs-vswitchd.log")) as f:
            raise AssertionError("%s\nhv3's vswitchd said:\n%s" % (out, "".join(f.readlines()[-20:])))
    wait_until(lambda: sorted(pair_keys(rev)) == ["hv1|hv2", "hv1|hv3", "hv2|hv3"], timeout=30,
               what="keys for hv3's pairs again")
    for hv in rev.hvs.values():
        wait_until(lambda: len(tunnel_ports(hv)) == 4, timeout=30, what="four tunnel ports on %s" % hv.name)
    wait_in_sync(rev.api, HVS)
    keys = pair_keys(rev)
    assert keys["hv1|hv2"] == before["hv1|hv2"]
    assert sorted(keys_in_use(hv1).values()) == sorted([keys["hv1|hv2"], keys["hv1|hv3"]])
    assert keys_in_use(hv3)[tunnel_port_name("hv1", "ipsec")] == keys["hv1|hv3"]
    assert rev.revoked_keys.isdisjoint(keys.values())     # what hv3 knew is worth nothing
    assert rev.vms["a1"].ping_ok("10.68.0.3")
