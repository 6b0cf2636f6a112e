"""Load balancer REST API (and `dvn lb` / `dvn member`) against a real `dvn serve`.

The controller runs for real here (its own store, OpenFlow and OVSDB
listeners on loopback, no node), so /stats is answered by the running
controller. Every bad input answers a 4xx problem naming the field and
changes nothing; another tenant's load balancer is 404; no body gives a 5xx.
"""

import http.client
import json
import os
import socket
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from tests.dvnproc import DvnServer, wait_until
from tests.store.test_api import JSONISH, ROOT, acme, admin, expect_problem, run_cli, umbrella  # noqa: F401
# (admin, acme, umbrella: test_api's client fixtures, on this module's server)

LBS = "/v1/load-balancers"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LbServer:
    """`dvn serve` on loopback; the interface of tests.store.test_api's server (port, admin_token, token())."""

    def __init__(self, state):
        self.state = str(state)
        self.dvn = DvnServer(self.state, api_port=_free_port(), listen_ip="127.0.0.1",
                             of_port=_free_port(), ovsdb_port=_free_port(),
                             extra=["--openflow-lanes", "0"]).start()   # no switch here; its ports are random
        self.port = self.dvn.api_port
        self.admin_token = self.dvn.admin_token
        self.remote = "unix:" + os.path.join(self.state, "nb.sock")

    def token(self, tenant):
        out = subprocess.run([sys.executable, "-m", "controller.cli", "api-token", "create", "--nb", self.remote,
                              "--tenant", tenant], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def stop(self):
        self.dvn.stop()
        self.dvn.stop_store()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LbServer(tmp_path_factory.mktemp("lbapi"))
    try:
        srv.acme = srv.token("acme")
        srv.umbrella = srv.token("umbrella")
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def net(acme):
    return acme.post("/v1/networks", {"name": "lbnet", "cidrs": ["10.1.0.0/24", "fd00:1::/64"]})


@pytest.fixture(scope="module")
def backends(acme, net):
    """Ports at 10.1.0.11, .12 and .13: members at these addresses can be reached."""
    return [acme.post("/v1/ports", {"name": "web%d" % i, "network": net["id"], "ips": ["10.1.0.%d" % (10 + i)]})
            for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def lb(acme, net, backends):
    """A load balancer that stays for the whole module: tcp 10.1.0.100:80 over web1 and web2."""
    return acme.post(LBS, {"name": "web", "network": net["id"], "vip_address": "10.1.0.100", "protocol_port": 80,
                           "members": [{"address": "10.1.0.11", "protocol_port": 8080},
                                       {"address": "10.1.0.12", "protocol_port": 8080}]})


def snapshot(admin):
    return (admin.get(LBS), admin.get("/v1/networks"), admin.get("/v1/ports"))


# ---- happy paths ---------------------------------------------------------------

def test_create_show_list_patch_delete(acme, admin, net, backends):
    body = {"name": "shop", "description": "the shop", "network": net["id"], "vip_address": "10.1.0.101",
            "protocol": "tcp", "protocol_port": 53,
            "session_persistence": {"type": "SOURCE_IP"},
            "members": [{"address": "10.1.0.11", "protocol_port": 5353, "name": "a", "weight": 10},
                        {"address": "10.1.0.12", "protocol_port": 5353, "admin_state_up": False}]}
    made = acme.post(LBS, body)
    assert made["tenant"] == "acme" and made["network"] == net["id"] and made["name"] == "shop"
    assert (made["vip_address"], made["protocol"], made["protocol_port"]) == ("10.1.0.101", "tcp", 53)
    assert made["description"] == "the shop"
    assert made["session_persistence"] == {"type": "SOURCE_IP", "persistence_timeout": 360}
    assert made["health_monitor"] is None
    members = {m["address"]: m for m in made["members"]}
    assert set(members) == {"10.1.0.11", "10.1.0.12"}
    assert (members["10.1.0.11"]["name"], members["10.1.0.11"]["weight"],
            members["10.1.0.11"]["admin_state_up"]) == ("a", 10, True)
    assert (members["10.1.0.12"]["weight"], members["10.1.0.12"]["admin_state_up"]) == (1, False)
    assert all(m["protocol_port"] == 5353 and m["id"] for m in made["members"])

    assert acme.get("%s/%s" % (LBS, made["id"])) == made
    assert made in acme.get(LBS)
    assert acme.get("%s?name=shop" % LBS) == [made]
    assert [b["name"] for b in acme.get("%s?network=%s" % (LBS, net["id"]))] == \
        sorted(b["name"] for b in acme.get(LBS) if b["network"] == net["id"])
    assert acme.get("%s?name=nothing-here" % LBS) == []
    assert made in admin.get(LBS)

    patched = acme.call("PATCH", "%s/%s" % (LBS, made["id"]),
                        {"name": "shop2", "description": "", "session_persistence": {
                            "type": "SOURCE_IP", "persistence_timeout": 60},
                         "health_monitor": {"type": "HTTP", "delay": 1.5, "timeout": 0.5}})
    assert patched["name"] == "shop2" and patched["description"] == ""
    assert patched["session_persistence"] == {"type": "SOURCE_IP", "persistence_timeout": 60}
    assert patched["health_monitor"] == {"type": "HTTP", "delay": 1.5, "timeout": 0.5, "max_retries": 2,
                                         "max_retries_down": 2, "url_path": "/", "expected_codes": "200"}
    assert (patched["vip_address"], patched["protocol_port"], patched["id"]) == ("10.1.0.101", 53, made["id"])
    assert acme.get("%s/%s" % (LBS, made["id"])) == patched
    cleared = acme.call("PATCH", "%s/%s" % (LBS, made["id"]), {"session_persistence": None, "health_monitor": None})
    assert cleared["session_persistence"] is None and cleared["health_monitor"] is None

    assert acme.call("DELETE", "%s/%s" % (LBS, made["id"])) is None
    expect_problem(acme, "GET", "%s/%s" % (LBS, made["id"]), None, 404, None)
    expect_problem(acme, "GET", "%s/%s/members" % (LBS, made["id"]), None, 404, None)
    expect_problem(acme, "DELETE", "%s/%s" % (LBS, made["id"]), None, 404, None)
    assert made["id"] not in [b["id"] for b in admin.get(LBS)]


def test_same_vip_and_port_with_the_other_protocol_or_another_port(acme, net, lb):
    udp = acme.post(LBS, {"name": "web-udp", "network": net["id"], "vip_address": lb["vip_address"],
                          "protocol": "udp", "protocol_port": lb["protocol_port"]})
    tls = acme.post(LBS, {"name": "web-443", "network": net["id"], "vip_address": lb["vip_address"],
                          "protocol_port": 443})
    assert (udp["protocol"], tls["protocol"], tls["protocol_port"]) == ("udp", "tcp", 443)
    assert udp["members"] == [] and tls["members"] == []
    acme.delete("%s/%s" % (LBS, udp["id"]))
    acme.delete("%s/%s" % (LBS, tls["id"]))


def test_members_one_or_many_patch_and_delete(acme, lb):
    path = "%s/%s/members" % (LBS, lb["id"])
    before = acme.get(path)
    assert len(before) == 2
    one = acme.post(path, {"address": "10.1.0.13", "protocol_port": 8080, "weight": 3})
    assert isinstance(one, dict)
    assert (one["address"], one["protocol_port"], one["weight"], one["admin_state_up"]) == \
        ("10.1.0.13", 8080, 3, True)
    many = acme.post(path, [{"address": "10.1.0.11", "protocol_port": 9090},
                            {"address": "10.1.0.12", "protocol_port": 9090, "weight": 0}])
    assert isinstance(many, list) and len(many) == 2
    assert {(m["address"], m["protocol_port"], m["weight"]) for m in many} == \
        {("10.1.0.11", 9090, 1), ("10.1.0.12", 9090, 0)}
    now = acme.get(path)
    assert {m["id"] for m in now} == {m["id"] for m in before} | {one["id"]} | {m["id"] for m in many}
    assert acme.get("%s/%s" % (LBS, lb["id"]))["members"] == now
    assert acme.post(path, []) == [] and acme.get(path) == now

    weighted = acme.call("PATCH", "%s/%s" % (path, one["id"]), {"weight": 256})
    assert weighted == dict(one, weight=256)
    down = acme.call("PATCH", "%s/%s" % (path, one["id"]), {"admin_state_up": False, "name": "third"})
    assert down == dict(one, weight=256, admin_state_up=False, name="third")
    assert next(m for m in acme.get(path) if m["id"] == one["id"]) == down

    for m in [one] + many:
        assert acme.call("DELETE", "%s/%s" % (path, m["id"])) is None
    expect_problem(acme, "DELETE", "%s/%s" % (path, one["id"]), None, 404, None)
    expect_problem(acme, "PATCH", "%s/%s" % (path, one["id"]), {"weight": 2}, 404, None)
    assert acme.get(path) == before


def test_member_operating_status(acme, net, lb):
    # No node runs here, so no port is plugged in: no member can be reached and
    # every one is ERROR, with a monitor or without (NO_MONITOR, ONLINE and
    # OFFLINE need a node: tests/lab/test_lb_lab.py).
    path = "%s/%s/members" % (LBS, lb["id"])
    assert {m["operating_status"] for m in acme.get(path)} == {"ERROR"}
    lonely = acme.post(path, {"address": "10.1.0.77", "protocol_port": 8080})
    assert lonely["operating_status"] == "ERROR"
    monitored = acme.call("PATCH", "%s/%s" % (LBS, lb["id"]), {"health_monitor": {"type": "TCP"}})
    assert {m["operating_status"] for m in monitored["members"]} == {"ERROR"}
    assert monitored["health_monitor"]["type"] == "TCP"
    plain = acme.call("PATCH", "%s/%s" % (LBS, lb["id"]), {"health_monitor": None})
    assert plain["health_monitor"] is None and {m["operating_status"] for m in plain["members"]} == {"ERROR"}
    acme.delete("%s/%s" % (path, lonely["id"]))


def test_a_udp_load_balancer_takes_no_health_monitor(acme, net, admin):
    before = snapshot(admin)
    expect_problem(acme, "POST", LBS, {"name": "dns-checked", "network": net["id"], "vip_address": "10.1.0.102",
                                       "protocol": "udp", "protocol_port": 53,
                                       "health_monitor": {"type": "TCP"}}, 400, "health_monitor")
    assert snapshot(admin) == before
    udp = acme.post(LBS, {"name": "dns-plain", "network": net["id"], "vip_address": "10.1.0.102",
                          "protocol": "udp", "protocol_port": 53})
    expect_problem(acme, "PATCH", "%s/%s" % (LBS, udp["id"]), {"health_monitor": {"type": "TCP"}}, 422,
                   "health_monitor")
    acme.delete("%s/%s" % (LBS, udp["id"]))


def test_a_pool_has_at_most_max_buckets_members(acme, net, admin):
    from flows.lb import MAX_BUCKETS
    b = acme.post(LBS, {"name": "huge", "network": net["id"], "vip_address": "10.1.0.103", "protocol_port": 80})
    path = "%s/%s/members" % (LBS, b["id"])
    acme.post(path, [{"address": "10.1.0.11", "protocol_port": p} for p in range(1, 1001)])
    acme.post(path, [{"address": "10.1.0.11", "protocol_port": p} for p in range(1001, MAX_BUCKETS + 1)])
    before = snapshot(admin)
    expect_problem(acme, "POST", path, {"address": "10.1.0.12", "protocol_port": 1}, 409, "members")
    assert snapshot(admin) == before and len(acme.get(path)) == MAX_BUCKETS
    acme.delete("%s/%s" % (LBS, b["id"]))


def test_stats_from_the_running_controller(acme, lb):
    ids = {m["id"] for m in lb["members"]}
    stats = wait_until(lambda: (lambda s: s if set(s["members"]) == ids else None)(
        acme.get("%s/%s/stats" % (LBS, lb["id"]))), timeout=10, what="the controller to know the load balancer")
    # No node is connected: nothing counted, on no switch.
    assert stats == {"connections": 0, "switches": 0, "members": {i: 0 for i in ids}}
    expect_problem(acme, "GET", "%s/00000000-0000-0000-0000-000000000000/stats" % LBS, None, 404, None)


def test_a_network_with_a_load_balancer_is_not_deleted(acme, admin):
    n = acme.post("/v1/networks", {"name": "lbnet-tmp", "cidrs": ["10.3.0.0/24"]})
    b = acme.post(LBS, {"name": "tmp", "network": n["id"], "vip_address": "10.3.0.10", "protocol_port": 80})
    before = snapshot(admin)
    expect_problem(acme, "DELETE", "/v1/networks/%s" % n["id"], None, 409, "id")
    assert snapshot(admin) == before
    acme.delete("%s/%s" % (LBS, b["id"]))
    acme.delete("/v1/networks/%s" % n["id"])
    expect_problem(acme, "GET", "/v1/networks/%s" % n["id"], None, 404, None)


def test_vip_and_port_addresses_exclude_each_other(acme, admin, net, lb):
    before = snapshot(admin)
    expect_problem(acme, "POST", "/v1/ports", {"name": "thief", "network": net["id"],
                                               "ips": [lb["vip_address"]]}, 409, "ips[0]")
    assert snapshot(admin) == before


# ---- validation -------------------------------------------------------------------

DROP = object()
MEMBER = {"address": "10.1.0.11", "protocol_port": 8080}

LB_CASES = [
    ({"name": DROP}, 400, "name"),
    ({"name": "bad name"}, 400, "name"),
    ({"network": DROP}, 400, "network"),
    ({"network": 7}, 400, "network"),
    ({"network": "no-such-id"}, 400, "network"),
    ({"vip_address": DROP}, 400, "vip_address"),
    ({"vip_address": "10.2.0.5"}, 422, "vip_address"),           # outside the CIDR
    ({"vip_address": "fd00:1::5"}, 400, "vip_address"),          # IPv6
    ({"vip_address": "10.1.0.0"}, 422, "vip_address"),
    ({"vip_address": "10.1.0.255"}, 422, "vip_address"),
    ({"vip_address": "10.1.0.300"}, 400, "vip_address"),
    ({"vip_address": 167837796}, 400, "vip_address"),
    ({"vip_address": "10.1.0.11"}, 409, "vip_address"),          # web1's address
    ({"protocol": "icmp"}, 400, "protocol"),
    ({"protocol": "http"}, 400, "protocol"),
    ({"protocol": 6}, 400, "protocol"),
    ({"protocol": None}, 400, "protocol"),
    ({"protocol_port": DROP}, 400, "protocol_port"),
    ({"protocol_port": 0}, 400, "protocol_port"),
    ({"protocol_port": 70000}, 400, "protocol_port"),
    ({"protocol_port": "80"}, 400, "protocol_port"),
    ({"protocol_port": True}, 400, "protocol_port"),
    ({"protocol_port": 80.5}, 400, "protocol_port"),
    ({"colour": "blue"}, 400, "colour"),
    ({"tenant": "umbrella"}, 422, "tenant"),
    ({"description": "x" * 256}, 400, "description"),
    ({"members": "10.1.0.11:8080"}, 400, "members"),
    ({"members": MEMBER}, 400, "members"),
    ({"members": ["10.1.0.11:8080"]}, 400, "members[0]"),
    ({"members": [{"address": "10.1.0.11"}]}, 400, "members[0].protocol_port"),
    ({"members": [{"protocol_port": 80}]}, 400, "members[0].address"),
    ({"members": [dict(MEMBER, address="10.2.0.1")]}, 422, "members[0].address"),
    ({"members": [dict(MEMBER, address="fd00:1::11")]}, 400, "members[0].address"),
    ({"members": [MEMBER, dict(MEMBER, weight=-1)]}, 400, "members[1].weight"),
    ({"members": [dict(MEMBER, weight=257)]}, 400, "members[0].weight"),
    ({"members": [dict(MEMBER, weight="1")]}, 400, "members[0].weight"),
    ({"members": [dict(MEMBER, protocol_port=0)]}, 400, "members[0].protocol_port"),
    ({"members": [dict(MEMBER, admin_state_up="yes")]}, 400, "members[0].admin_state_up"),
    ({"members": [dict(MEMBER, port=80)]}, 400, "members[0].port"),
    ({"members": [MEMBER, dict(MEMBER)]}, 409, "members[1]"),    # the same address:port twice
    ({"session_persistence": "SOURCE_IP"}, 400, "session_persistence"),
    ({"session_persistence": {"type": "HTTP_COOKIE"}}, 400, "session_persistence.type"),
    ({"session_persistence": {"type": "APP_COOKIE", "cookie_name": "s"}}, 400, "session_persistence"),
    ({"session_persistence": {}}, 400, "session_persistence.type"),
    ({"session_persistence": {"type": "SOURCE_IP", "persistence_timeout": 0}}, 400,
     "session_persistence.persistence_timeout"),
    ({"session_persistence": {"type": "SOURCE_IP", "persistence_timeout": "60"}}, 400,
     "session_persistence.persistence_timeout"),
    ({"health_monitor": "TCP"}, 400, "health_monitor"),
    ({"health_monitor": {}}, 400, "health_monitor.type"),
    ({"health_monitor": {"type": "PING"}}, 400, "health_monitor.type"),
    ({"health_monitor": {"type": "TCP", "interval": 5}}, 400, "health_monitor.interval"),
    ({"health_monitor": {"type": "TCP", "delay": 1, "timeout": 2}}, 422, "health_monitor.timeout"),
    ({"health_monitor": {"type": "TCP", "delay": "5"}}, 400, "health_monitor.delay"),
    ({"health_monitor": {"type": "TCP", "delay": 0}}, 400, "health_monitor.delay"),
    ({"health_monitor": {"type": "TCP", "max_retries": 0}}, 400, "health_monitor.max_retries"),
    ({"health_monitor": {"type": "TCP", "max_retries_down": 11}}, 400, "health_monitor.max_retries_down"),
    ({"health_monitor": {"type": "TCP", "url_path": "/health"}}, 400, "health_monitor.url_path"),
    ({"health_monitor": {"type": "TCP", "expected_codes": "200"}}, 400, "health_monitor.expected_codes"),
    ({"health_monitor": {"type": "HTTP", "url_path": "health"}}, 400, "health_monitor.url_path"),
    ({"health_monitor": {"type": "HTTP", "url_path": "/a b"}}, 400, "health_monitor.url_path"),
    ({"health_monitor": {"type": "HTTP", "expected_codes": "2xx"}}, 400, "health_monitor.expected_codes"),
    ({"health_monitor": {"type": "HTTP", "expected_codes": "600"}}, 400, "health_monitor.expected_codes"),
    ({"health_monitor": {"type": "HTTP", "expected_codes": "200-"}}, 400, "health_monitor.expected_codes"),
    ({"health_monitor": {"type": "HTTP", "expected_codes": 200}}, 400, "health_monitor.expected_codes"),
    ({"health_monitor": {"type": "HTTP", "expected_codes": ""}}, 400, "health_monitor.expected_codes"),
]


def lb_body(net_id, change):
    body = {"name": "bad", "network": net_id, "vip_address": "10.1.0.200", "protocol_port": 8080}
    for key, value in change.items():
        if value is DROP:
            del body[key]
        else:
            body[key] = value
    return body


@pytest.mark.parametrize("change,status,field", LB_CASES)
def test_load_balancer_validation(acme, admin, net, lb, change, status, field):
    before = snapshot(admin)
    expect_problem(acme, "POST", LBS, lb_body(net["id"], change), status, field)
    assert snapshot(admin) == before


def test_load_balancer_conflicts(acme, admin, net, lb):
    before = snapshot(admin)
    # The name is taken; then the same protocol, VIP and port under another name.
    expect_problem(acme, "POST", LBS, lb_body(net["id"], {"name": "web"}), 409, "name")
    expect_problem(acme, "POST", LBS, lb_body(net["id"], {"name": "web-again", "vip_address": lb["vip_address"],
                                                           "protocol_port": lb["protocol_port"]}), 409,
                   "protocol_port")
    expect_problem(acme, "POST", LBS, lb_body(net["id"], {"name": "web-again", "vip_address": lb["vip_address"],
                                                           "protocol": "tcp",
                                                           "protocol_port": lb["protocol_port"]}), 409,
                   "protocol_port")
    assert snapshot(admin) == before


def test_bad_json_and_media_type_change_nothing(server, admin, lb):
    before = snapshot(admin)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    auth = {"Authorization": "Bearer %s" % server.acme}
    for method, path in (("POST", LBS), ("PATCH", "%s/%s" % (LBS, lb["id"])),
                         ("POST", "%s/%s/members" % (LBS, lb["id"])),
                         ("PATCH", "%s/%s/members/%s" % (LBS, lb["id"], lb["members"][0]["id"]))):
        for body, ctype, status in ((b"{", "application/json", 400),
                                    (b'{"name": "x",}', "application/json", 400),
                                    (b"\xff\xfe", "application/json", 400),
                                    (b'{"name": "x"}', "text/plain", 415)):
            conn.request(method, path, body=body, headers=dict(auth, **{"Content-Type": ctype}))
            resp = conn.getresponse()
            payload = json.loads(resp.read())
            assert resp.status == status and payload["status"] == status, (method, path, body, payload)
            assert resp.getheader("Content-Type") == "application/problem+json"
            assert payload["detail"]
    assert snapshot(admin) == before


MEMBER_CASES = [
    ({}, 400, "address"),
    ({"address": "10.1.0.13"}, 400, "protocol_port"),
    ({"protocol_port": 80}, 400, "address"),
    ({"address": "10.2.0.1", "protocol_port": 80}, 422, "address"),
    ({"address": "fd00:1::13", "protocol_port": 80}, 400, "address"),
    ({"address": "10.1.0.0", "protocol_port": 80}, 422, "address"),
    ({"address": 5, "protocol_port": 80}, 400, "address"),
    ({"address": "10.1.0.13", "protocol_port": 0}, 400, "protocol_port"),
    ({"address": "10.1.0.13", "protocol_port": 70000}, 400, "protocol_port"),
    ({"address": "10.1.0.13", "protocol_port": "80"}, 400, "protocol_port"),
    ({"address": "10.1.0.13", "protocol_port": True}, 400, "protocol_port"),
    ({"address": "10.1.0.13", "protocol_port": 80, "weight": -1}, 400, "weight"),
    ({"address": "10.1.0.13", "protocol_port": 80, "weight": 257}, 400, "weight"),
    ({"address": "10.1.0.13", "protocol_port": 80, "weight": 1.5}, 400, "weight"),
    ({"address": "10.1.0.13", "protocol_port": 80, "admin_state_up": 1}, 400, "admin_state_up"),
    ({"address": "10.1.0.13", "protocol_port": 80, "name": "bad name"}, 400, "name"),
    ({"address": "10.1.0.13", "protocol_port": 80, "colour": "red"}, 400, "colour"),
    ({"address": "10.1.0.11", "protocol_port": 8080}, 409, "address"),   # the pool has it already
    ("10.1.0.13:80", 400, "body"),
    (5, 400, "body"),
    (None, 400, "body"),
    ([{"address": "10.1.0.13", "protocol_port": 80}, 7], 400, "body[1]"),
    ([{"address": "10.1.0.13", "protocol_port": 80}, {"address": "10.1.0.13", "protocol_port": 80, "weight": 257}],
     400, "body[1].weight"),
    ([{"address": "10.1.0.13", "protocol_port": 80}, {"address": "10.1.0.13", "protocol_port": 80}], 409, "body[1]"),
    ([{"address": "10.1.0.13", "protocol_port": 80}, {"address": "10.1.0.11", "protocol_port": 8080}],
     409, "body[1]"),
    ([{"address": "10.1.0.13", "protocol_port": 80}] * 1001, 400, "body"),
]


@pytest.mark.parametrize("body,status,field", MEMBER_CASES)
def test_member_validation(acme, admin, lb, body, status, field):
    before = snapshot(admin)
    if body is None:  # a JSON null body (the client sends no body for None)
        conn = http.client.HTTPConnection("127.0.0.1", acme.port, timeout=10)
        conn.request("POST", "%s/%s/members" % (LBS, lb["id"]), body=b"null",
                     headers={"Authorization": "Bearer %s" % acme.token, "Content-Type": "application/json"})
        resp = conn.getresponse()
        problem = json.loads(resp.read())
        assert resp.status == status and problem.get("field") == field, problem
    else:
        expect_problem(acme, "POST", "%s/%s/members" % (LBS, lb["id"]), body, status, field)
    assert snapshot(admin) == before


MEMBER_PATCH_CASES = [
    ({"weight": -1}, "weight"),
    ({"weight": 257}, "weight"),
    ({"weight": "5"}, "weight"),
    ({"weight": None}, "weight"),
    ({"admin_state_up": "no"}, "admin_state_up"),
    ({"admin_state_up": None}, "admin_state_up"),
    ({"name": ""}, "name"),
    ({"address": "10.1.0.13"}, "address"),
    ({"protocol_port": 81}, "protocol_port"),
    ({"operating_status": "ONLINE"}, "operating_status"),
]


@pytest.mark.parametrize("body,field", MEMBER_PATCH_CASES)
def test_member_patch_validation(acme, admin, lb, body, field):
    before = snapshot(admin)
    expect_problem(acme, "PATCH", "%s/%s/members/%s" % (LBS, lb["id"], lb["members"][0]["id"]), body, 400, field)
    assert snapshot(admin) == before


LB_PATCH_CASES = [
    ({"vip_address": "10.1.0.150"}, 400, "vip_address"),
    ({"protocol_port": 81}, 400, "protocol_port"),
    ({"protocol": "udp"}, 400, "protocol"),
    ({"network": "x"}, 400, "network"),
    ({"members": []}, 400, "members"),
    ({"name": "bad name"}, 400, "name"),
    ({"name": None}, 400, "name"),
    ({"description": 5}, 400, "description"),
    ({"session_persistence": {"type": "HTTP_COOKIE"}}, 400, "session_persistence.type"),
    ({"session_persistence": 360}, 400, "session_persistence"),
    ({"health_monitor": {"type": "TCP", "delay": 1, "timeout": 2}}, 422, "health_monitor.timeout"),
    ({"health_monitor": {"type": "TCP", "url_path": "/"}}, 400, "health_monitor.url_path"),
    ({"health_monitor": {"type": "HTTP", "expected_codes": "abc"}}, 400, "health_monitor.expected_codes"),
    ({"health_monitor": []}, 400, "health_monitor"),
]


@pytest.mark.parametrize("body,status,field", LB_PATCH_CASES)
def test_load_balancer_patch_validation(acme, admin, lb, body, status, field):
    before = snapshot(admin)
    expect_problem(acme, "PATCH", "%s/%s" % (LBS, lb["id"]), body, status, field)
    assert snapshot(admin) == before


def test_patch_to_a_taken_name_conflicts(acme, admin, net, lb):
    other = acme.post(LBS, lb_body(net["id"], {"name": "other"}))
    before = snapshot(admin)
    expect_problem(acme, "PATCH", "%s/%s" % (LBS, other["id"]), {"name": "web"}, 409, "name")
    assert snapshot(admin) == before
    acme.delete("%s/%s" % (LBS, other["id"]))


def test_unknown_ids_and_query_parameters(acme, lb):
    nothing = "00000000-0000-0000-0000-000000000000"
    for method, path, body in (("GET", "%s/%s" % (LBS, nothing), None),
                               ("GET", "%s/not-a-uuid" % LBS, None),
                               ("PATCH", "%s/%s" % (LBS, nothing), {"name": "x"}),
                               ("DELETE", "%s/%s" % (LBS, nothing), None),
                               ("GET", "%s/%s/members" % (LBS, nothing), None),
                               ("POST", "%s/%s/members" % (LBS, nothing), MEMBER),
                               ("PATCH", "%s/%s/members/%s" % (LBS, lb["id"], nothing), {"weight": 1}),
                               ("DELETE", "%s/%s/members/not-a-uuid" % (LBS, lb["id"]), None)):
        expect_problem(acme, method, path, body, 404, None)
    expect_problem(acme, "GET", "%s?colour=red" % LBS, None, 400, "colour")


# ---- tenancy ----------------------------------------------------------------------

def test_other_tenants_do_not_see_or_touch_it(acme, umbrella, admin, net, lb):
    member = lb["members"][0]["id"]
    assert lb["id"] not in [b["id"] for b in umbrella.get(LBS)]
    assert umbrella.get("%s?tenant=acme" % LBS) == []
    assert umbrella.get("%s?network=%s" % (LBS, net["id"])) == []
    before = snapshot(admin)
    for method, path, body in (("GET", "%s/%s" % (LBS, lb["id"]), None),
                               ("PATCH", "%s/%s" % (LBS, lb["id"]), {"name": "mine"}),
                               ("DELETE", "%s/%s" % (LBS, lb["id"]), None),
                               ("GET", "%s/%s/members" % (LBS, lb["id"]), None),
                               ("POST", "%s/%s/members" % (LBS, lb["id"]), {"address": "10.1.0.13",
                                                                            "protocol_port": 80}),
                               ("PATCH", "%s/%s/members/%s" % (LBS, lb["id"], member), {"weight": 9}),
                               ("DELETE", "%s/%s/members/%s" % (LBS, lb["id"], member), None),
                               ("GET", "%s/%s/stats" % (LBS, lb["id"]), None)):
        expect_problem(umbrella, method, path, body, 404, None)
    expect_problem(umbrella, "POST", LBS, lb_body(net["id"], {"name": "theirs"}), 422, "network")
    assert snapshot(admin) == before
    assert lb["id"] in [b["id"] for b in admin.get(LBS)]
    assert acme.get("%s/%s" % (LBS, lb["id"]))["members"] == lb["members"]


def test_admin_creates_in_the_network_tenant(admin, net):
    expect_problem(admin, "POST", LBS, lb_body(net["id"], {"name": "adm", "tenant": "umbrella"}), 422, "tenant")
    made = admin.post(LBS, lb_body(net["id"], {"name": "adm", "tenant": "acme"}))
    assert made["tenant"] == "acme"
    admin.delete("%s/%s" % (LBS, made["id"]))


# ---- no input gives a 5xx ------------------------------------------------------------

def _values(*extra):
    return st.one_of(JSONISH, st.sampled_from(list(extra)))


MEMBERISH = st.dictionaries(
    st.sampled_from(["name", "address", "protocol_port", "weight", "admin_state_up", "x"]),
    _values("10.1.0.11", "10.1.0.13", "10.1.0.250", "fd00:1::1", 80, 8080, 0, 256, 257, True, "m1"), max_size=5)
MONITORISH = st.dictionaries(
    st.sampled_from(["type", "delay", "timeout", "max_retries", "max_retries_down", "url_path", "expected_codes"]),
    _values("TCP", "HTTP", 0.1, 1, 5, 3600.5, 10, "/", "/x y", "200", "200-204", "200,"), max_size=6)
PERSISTENCEISH = st.dictionaries(st.sampled_from(["type", "persistence_timeout", "x"]),
                                 _values("SOURCE_IP", 1, 86400, 86401), max_size=3)


LB_KEYS = ["name", "network", "vip_address", "protocol", "protocol_port", "session_persistence", "health_monitor",
           "members", "tenant", "description", "x"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=st.dictionaries(
    st.sampled_from(LB_KEYS),
    st.one_of(_values("NET", "fz", "10.1.0.180", "10.1.0.11", "10.1.0.100", "fd00:1::9", "tcp", "udp", 80, 65536,
                      "acme"),
              MONITORISH, PERSISTENCEISH, st.lists(MEMBERISH, max_size=3)), max_size=4),
       drop=st.sets(st.sampled_from(LB_KEYS), max_size=2), raw=st.booleans())
def test_no_load_balancer_body_produces_a_5xx(acme, net, lb, change, drop, raw):
    """Bodies near a valid one (a few fields changed or dropped), or made of fields alone."""
    body = {} if raw else {"name": "fz", "network": net["id"], "vip_address": "10.1.0.180", "protocol_port": 80}
    body.update((k, net["id"] if v == "NET" else v) for k, v in change.items())
    for key in drop:
        body.pop(key, None)
    code, payload = acme.request("POST", LBS, body)
    event("POST load-balancers: %d" % code)
    assert code < 500, payload
    if code >= 400:
        assert payload["status"] == code and payload["detail"]
    else:
        assert code == 201 and payload["name"] == body["name"] and payload["network"] == net["id"]
        acme.delete("%s/%s" % (LBS, payload["id"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(MEMBERISH, st.lists(MEMBERISH, max_size=3), JSONISH),
       patch=st.dictionaries(st.sampled_from(["name", "weight", "admin_state_up", "description",
                                              "session_persistence", "health_monitor"]),
                             st.one_of(_values(1, 256, False, "n"), MONITORISH, PERSISTENCEISH), max_size=3))
def test_no_member_body_produces_a_5xx(acme, lb, body, patch):
    path = "%s/%s/members" % (LBS, lb["id"])
    code, payload = acme.request("POST", path, body)
    event("POST members: %d" % code)
    assert code < 500, payload
    made = [] if code >= 400 else (payload if isinstance(payload, list) else [payload])
    if code >= 400:
        assert payload["status"] == code and payload["detail"]
    for m in made:
        code, payload = acme.request("PATCH", "%s/%s" % (path, m["id"]), patch)
        assert code < 500, payload
        acme.delete("%s/%s" % (path, m["id"]))
    code, payload = acme.request("PATCH", "%s/%s" % (LBS, lb["id"]), patch)
    assert code < 500, payload
    acme.call("PATCH", "%s/%s" % (LBS, lb["id"]), {"name": "web", "description": "",
                                                  "session_persistence": None, "health_monitor": None})
    assert acme.get(path) == lb["members"]


# ---- the CLI -----------------------------------------------------------------------------

def test_cli_load_balancers_end_to_end(server):
    tok = server.token("clilb")
    assert run_cli(server, tok, "network", "create", "clinet", "--cidr", "10.9.0.0/24").returncode == 0
    for name, ip in (("vm1", "10.9.0.7"), ("vm2", "10.9.0.8")):
        assert run_cli(server, tok, "port", "create", name, "--network", "clinet", "--ip", ip).returncode == 0
    out = run_cli(server, tok, "--json", "lb", "create", "web", "--network", "clinet", "--vip", "10.9.0.100",
                  "--port", "80", "--member", "10.9.0.7:8080", "--member", "10.9.0.8:8080:5", "--affinity", "600",
                  "--monitor", "http", "--monitor-delay", "2", "--monitor-timeout", "1.5", "--monitor-rise", "3",
                  "--monitor-fall", "4", "--monitor-path", "/healthz", "--monitor-codes", "200-204")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert (made["tenant"], made["vip_address"], made["protocol"], made["protocol_port"]) == \
        ("clilb", "10.9.0.100", "tcp", 80)
    assert made["session_persistence"] == {"type": "SOURCE_IP", "persistence_timeout": 600}
    assert made["health_monitor"] == {"type": "HTTP", "delay": 2, "timeout": 1.5, "max_retries": 3,
                                      "max_retries_down": 4, "url_path": "/healthz", "expected_codes": "200-204"}
    assert sorted((m["address"], m["protocol_port"], m["weight"]) for m in made["members"]) == \
        [("10.9.0.7", 8080, 1), ("10.9.0.8", 8080, 5)]

    udp = run_cli(server, tok, "--json", "lb", "create", "dns", "--network", "clinet", "--vip", "10.9.0.53",
                  "--port", "53", "--protocol", "udp")
    assert udp.returncode == 0, udp.stderr
    dns = json.loads(udp.stdout)
    assert dns["protocol"] == "udp" and dns["health_monitor"] is None
    assert dns["session_persistence"] is None and dns["members"] == []

    listed = run_cli(server, tok, "lb", "list")
    assert listed.returncode == 0 and "VIP_ADDRESS" in listed.stdout
    assert "10.9.0.100" in listed.stdout and "10.9.0.53" in listed.stdout
    shown = run_cli(server, tok, "lb", "show", "web")
    assert shown.returncode == 0, shown.stderr
    assert made["id"] in shown.stdout and "OPERATING_STATUS" in shown.stdout
    assert all(m["id"] in shown.stdout for m in made["members"])

    out = run_cli(server, tok, "--json", "member", "add", "web", "10.9.0.9:8080", "--weight", "3")
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    assert (added["address"], added["protocol_port"], added["weight"], added["operating_status"]) == \
        ("10.9.0.9", 8080, 3, "ERROR")  # no port has 10.9.0.9
    out = run_cli(server, tok, "--json", "member", "update", "web", added["id"], "--weight", "0", "--down")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == dict(added, weight=0, admin_state_up=False)
    out = run_cli(server, tok, "--json", "member", "update", "web", added["id"], "--up")
    assert out.returncode == 0 and json.loads(out.stdout)["admin_state_up"] is True
    assert run_cli(server, tok, "member", "delete", "web", added["id"]).returncode == 0
    pool = json.loads(run_cli(server, tok, "--json", "lb", "show", "web").stdout)["members"]
    assert pool == made["members"]

    stats = run_cli(server, tok, "lb", "stats", "web")
    assert stats.returncode == 0 and "CONNECTIONS" in stats.stdout, stats
    ids = {m["id"] for m in made["members"]}
    stats = wait_until(lambda: (lambda s: s if set(s["members"]) == ids else None)(
        json.loads(run_cli(server, tok, "--json", "lb", "stats", "web").stdout)), timeout=10, what="the pool's stats")
    assert stats == {"connections": 0, "switches": 0, "members": {i: 0 for i in ids}}

    # Errors come back as the API's problem, with the field.
    out = run_cli(server, tok, "lb", "create", "web2", "--network", "clinet", "--vip", "10.9.0.7", "--port", "80")
    assert out.returncode == 1 and "409" in out.stderr and "vip_address" in out.stderr
    out = run_cli(server, tok, "lb", "create", "web2", "--network", "clinet", "--vip", "10.9.0.101",
                  "--port", "80", "--member", "10.9.0.7")
    assert out.returncode == 1 and "--member" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(server, tok, "lb", "create", "web2", "--network", "clinet", "--vip", "10.9.0.101",
                  "--port", "80", "--monitor-delay", "2")
    assert out.returncode == 1 and "--monitor" in out.stderr
    out = run_cli(server, tok, "member", "add", "web", "10.9.0.7:8080")
    assert out.returncode == 1 and "409" in out.stderr
    out = run_cli(server, tok, "member", "update", "web", added["id"], "--weight", "1")
    assert out.returncode == 1 and "404" in out.stderr
    out = run_cli(server, tok, "network", "delete", "clinet")
    assert out.returncode == 1 and "409" in out.stderr

    assert run_cli(server, tok, "lb", "delete", "web").returncode == 0
    assert run_cli(server, tok, "lb", "delete", "dns").returncode == 0
    assert json.loads(run_cli(server, tok, "--json", "lb", "list").stdout) == []
    for name in ("vm1", "vm2"):
        assert run_cli(server, tok, "port", "delete", name).returncode == 0
    assert run_cli(server, tok, "network", "delete", "clinet").returncode == 0


def test_serve_starts_without_a_lane_whose_port_is_taken(tmp_path):
    # A lane only makes large changes faster: a taken port costs that lane, not dvn.
    taken = None
    while taken is None:   # a free port whose next one this test can take
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            of_port = probe.getsockname()[1]
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", of_port + 1))
        except OSError:
            taken.close()
            taken = None
    with taken:
        taken.listen()
        dvn = DvnServer(str(tmp_path), api_port=_free_port(), listen_ip="127.0.0.1", of_port=of_port,
                        ovsdb_port=_free_port(), extra=["--openflow-lanes", "1"]).start()
        try:
            assert dvn.client().request("GET", "/v1/networks")[0] == 200
            assert "OpenFlow lane port 127.0.0.1:%d not opened" % (of_port + 1) in dvn.log()
        finally:
            dvn.stop()
            dvn.stop_store()
