"""REST API v1 against a real ovsdb-server, over a real socket.

Every validation path answers a 4xx problem naming the field and changes
nothing; tenants see only their own objects; concurrent creates of one name
give exactly one 201; the OpenAPI document matches the server.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from controller.openapi import OPERATIONS
from ovsdb import nbserver
from tests.dvnproc import Client, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ApiServer:
    def __init__(self, state):
        self.state = str(state)
        self.remote = nbserver.start(self.state)
        token_file = os.path.join(self.state, "admin.token")
        self.log = open(os.path.join(self.state, "api.log"), "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "controller.api", "--nb", self.remote,
                                      "--listen", "127.0.0.1:0", "--admin-token-file", token_file,
                                      "--ca-dir", self.state],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening"), line
        self.port = int(line.split()[1])
        with open(token_file) as f:
            self.admin_token = f.read().strip()

    def token(self, tenant):
        out = subprocess.run([sys.executable, "-m", "controller.cli", "api-token", "create", "--nb", self.remote,
                              "--tenant", tenant], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        nbserver.stop(self.state)

    def server_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"))
    srv.acme = srv.token("acme")
    srv.umbrella = srv.token("umbrella")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server):
    return Client(server.port, server.admin_token)


@pytest.fixture(scope="module")
def acme(server):
    return Client(server.port, server.acme)


@pytest.fixture(scope="module")
def umbrella(server):
    return Client(server.port, server.umbrella)


@pytest.fixture(scope="module")
def net(acme):
    return acme.post("/v1/networks", {"name": "net1", "cidrs": ["10.1.0.0/24", "fd00:1::/64"]})


def snapshot(admin):
    return (admin.get("/v1/networks"), admin.get("/v1/ports"), admin.get("/v1/nodes"))


def expect_problem(client, method, path, body, status, field):
    code, problem = client.request(method, path, body)
    assert code == status, (code, problem)
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if field is not None:
        assert problem.get("field") == field, problem
    return problem


NETWORK_CASES = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": "bad name"}, "name"),
    ({"name": 5}, "name"),
    ({"name": "n", "vni": 0}, "vni"),
    ({"name": "n", "vni": 16777216}, "vni"),
    ({"name": "n", "vni": "5"}, "vni"),
    ({"name": "n", "vni": True}, "vni"),
    ({"name": "n", "cidrs": "10.0.0.0/24"}, "cidrs"),
    ({"name": "n", "cidrs": ["10.0.0.1/24"]}, "cidrs[0]"),
    ({"name": "n", "cidrs": ["10.0.0.0"]}, "cidrs[0]"),
    ({"name": "n", "cidrs": ["nonsense/8"]}, "cidrs[0]"),
    ({"name": "n", "cidrs": ["10.0.0.0/24", "10.1.0.0/24"]}, "cidrs[1]"),
    ({"name": "n", "cidrs": ["10.0.0.0/24", "fd00::/64", "fd01::/64"]}, "cidrs"),
    ({"name": "n", "cidrs": ["10.0.0.0/31"]}, "cidrs[0]"),
    ({"name": "n", "tags": "web"}, "tags"),
    ({"name": "n", "tags": ["ok", ""]}, "tags[1]"),
    ({"name": "n", "tags": ["t%d" % i for i in range(33)]}, "tags"),
    ({"name": "n", "colour": "blue"}, "colour"),
    ({"name": "n", "tenant": "umbrella"}, "tenant", 422),   # well formed, not the caller's to use
]


def _status(case, default=400):
    """A case is (body, field) for a 400, or (body, field, status)."""
    return case[2] if len(case) > 2 else default


@pytest.mark.parametrize("case", NETWORK_CASES)
def test_network_validation(acme, admin, case):
    before = snapshot(admin)
    expect_problem(acme, "POST", "/v1/networks", case[0], _status(case), case[1])
    assert snapshot(admin) == before


def test_network_duplicates_conflict(acme, admin, net):
    before = snapshot(admin)
    expect_problem(acme, "POST", "/v1/networks", {"name": "net1"}, 409, "name")
    expect_problem(acme, "POST", "/v1/networks", {"name": "other", "vni": net["vni"]}, 409, "vni")
    assert snapshot(admin) == before


def test_admin_must_name_the_tenant(admin):
    expect_problem(admin, "POST", "/v1/networks", {"name": "x"}, 422, "tenant")
    expect_problem(admin, "POST", "/v1/networks", {"name": "x", "tenant": "bad tenant"}, 400, "tenant")


def test_same_name_and_cidr_in_two_tenants(umbrella, net):
    other = umbrella.post("/v1/networks", {"name": "net1", "cidrs": ["10.1.0.0/24"]})
    assert other["tenant"] == "umbrella" and other["vni"] != net["vni"]


def port_cases(net_id):
    return [
        ({"network": net_id}, "name"),
        ({"name": "p"}, "network"),
        ({"name": "p", "network": 7}, "network"),
        ({"name": "p", "network": "no-such-id"}, "network"),
        ({"name": "p", "network": "00000000-0000-0000-0000-000000000000"}, "network", 422),
        ({"name": "p", "network": net_id, "mac": "02:00:00:00:00"}, "mac"),
        ({"name": "p", "network": net_id, "mac": "01:00:00:00:00:01"}, "mac"),
        ({"name": "p", "network": net_id, "mac": "00:00:00:00:00:00"}, "mac"),
        ({"name": "p", "network": net_id, "mac": "zz:00:00:00:00:01"}, "mac"),
        ({"name": "p", "network": net_id, "ips": "10.1.0.5"}, "ips"),
        ({"name": "p", "network": net_id, "ips": ["10.2.0.5"]}, "ips[0]", 422),     # outside the network
        ({"name": "p", "network": net_id, "ips": ["10.1.0.0"]}, "ips[0]", 422),
        ({"name": "p", "network": net_id, "ips": ["10.1.0.255"]}, "ips[0]", 422),
        ({"name": "p", "network": net_id, "ips": ["10.1.0.5", "10.1.0.5"]}, "ips[1]"),
        ({"name": "p", "network": net_id, "ips": ["10.1.0.300"]}, "ips[0]"),
        ({"name": "p", "network": net_id, "ips": ["fd00:2::5"]}, "ips[0]", 422),
        ({"name": "p", "network": net_id, "ips": ["fd00:1::5", "FD00:1::5"]}, "ips[1]", 422),
        ({"name": "p", "network": net_id, "ips": ["10.1.0.%d" % i for i in range(1, 18)]}, "ips"),
        ({"name": "p", "network": net_id, "tags": [1]}, "tags[0]"),
        ({"name": "p", "network": net_id, "node": "hv1"}, "node"),
    ]


def test_port_validation(acme, admin, net):
    for case in port_cases(net["id"]):
        before = snapshot(admin)
        expect_problem(acme, "POST", "/v1/ports", case[0], _status(case), case[1])
        assert snapshot(admin) == before, case


def test_port_conflicts_name_mac_ip(acme, admin, net):
    p = acme.post("/v1/ports", {"name": "web1", "network": net["id"], "mac": "02:00:00:00:0a:01",
                                "ips": ["10.1.0.10", "fd00:1::10"], "tags": ["web"]})
    assert p["node"] is None and p["tenant"] == "acme" and p["ips"] == ["10.1.0.10", "fd00:1::10"]
    before = snapshot(admin)
    expect_problem(acme, "POST", "/v1/ports", {"name": "web1", "network": net["id"]}, 409, "name")
    expect_problem(acme, "POST", "/v1/ports", {"name": "web2", "network": net["id"],
                                               "mac": "02:00:00:00:0A:01"}, 409, "mac")
    expect_problem(acme, "POST", "/v1/ports", {"name": "web2", "network": net["id"],
                                               "ips": ["10.1.0.11", "10.1.0.10"]}, 409, "ips[1]")
    assert snapshot(admin) == before
    # A generated MAC is a locally administered unicast address.
    q = acme.post("/v1/ports", {"name": "web2", "network": net["id"]})
    first = int(q["mac"][:2], 16)
    assert first & 2 and not first & 1


def test_update_and_delete(acme, admin, net):
    p = acme.post("/v1/ports", {"name": "tmp1", "network": net["id"]})
    assert acme.call("PATCH", "/v1/ports/%s" % p["id"], {"name": "tmp2", "tags": ["b", "a", "a"]}) == \
        dict(p, name="tmp2", tags=["a", "b"])
    expect_problem(acme, "PATCH", "/v1/ports/%s" % p["id"], {"mac": "02:00:00:00:00:09"}, 400, "mac")
    expect_problem(acme, "PATCH", "/v1/ports/%s" % p["id"], {"name": "web1"}, 409, "name")
    n = acme.post("/v1/networks", {"name": "tmpnet"})
    assert acme.call("PATCH", "/v1/networks/%s" % n["id"], {"tags": ["x"]})["tags"] == ["x"]
    expect_problem(acme, "DELETE", "/v1/networks/%s" % net["id"], None, 409, "id")
    acme.delete("/v1/ports/%s" % p["id"])
    acme.delete("/v1/networks/%s" % n["id"])
    expect_problem(acme, "GET", "/v1/ports/%s" % p["id"], None, 404, None)


def test_tenants_see_and_touch_only_their_own(acme, umbrella, admin, net):
    port = acme.post("/v1/ports", {"name": "secret", "network": net["id"]})
    assert all(n["tenant"] == "umbrella" for n in umbrella.get("/v1/networks"))
    assert all(p["tenant"] == "umbrella" for p in umbrella.get("/v1/ports"))
    before = snapshot(admin)
    for method, path, body in (("GET", "/v1/networks/%s" % net["id"], None),
                               ("PATCH", "/v1/networks/%s" % net["id"], {"name": "mine"}),
                               ("DELETE", "/v1/networks/%s" % net["id"], None),
                               ("GET", "/v1/ports/%s" % port["id"], None),
                               ("DELETE", "/v1/ports/%s" % port["id"], None)):
        expect_problem(umbrella, method, path, body, 404, None)
    expect_problem(umbrella, "POST", "/v1/ports", {"name": "x", "network": net["id"]}, 422, "network")
    expect_problem(umbrella, "GET", "/v1/nodes", None, 403, None)
    assert snapshot(admin) == before
    assert {n["tenant"] for n in admin.get("/v1/networks")} >= {"acme", "umbrella"}


def test_auth_and_protocol_errors(server, acme):
    nobody = Client(server.port, "not-a-token")
    expect_problem(nobody, "GET", "/v1/networks", None, 401, None)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    auth = {"Authorization": "Bearer %s" % server.acme}
    for body, headers, status in ((b"{", dict(auth, **{"Content-Type": "application/json"}), 400),
                                  (b"[1]", dict(auth, **{"Content-Type": "application/json"}), 400),
                                  (b"\xff\xfe", dict(auth, **{"Content-Type": "application/json"}), 400),
                                  (b'{"name":"x"}', dict(auth, **{"Content-Type": "text/plain"}), 415),
                                  (b"x" * 70000, dict(auth, **{"Content-Type": "application/json"}), 413)):
        conn.request("POST", "/v1/networks", body=body, headers=headers)
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        assert resp.status == status and payload["status"] == status, (body[:10], payload)
        assert resp.getheader("Content-Type") == "application/problem+json"
    conn.request("PUT", "/v1/networks", headers=auth)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 405 and "POST" in resp.getheader("Allow")
    expect_problem(acme, "GET", "/v1/nothing", None, 404, None)
    expect_problem(acme, "GET", "/v1/ports?colour=red", None, 400, "colour")


def test_twenty_concurrent_creates_of_one_port_name(acme, net):
    results = []

    def create():
        results.append(acme.request("POST", "/v1/ports", {"name": "race", "network": net["id"]})[0])

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 19
    assert len([p for p in acme.get("/v1/ports") if p["name"] == "race"]) == 1


def _audit_after(client, seq):
    return client.get("/v1/audit?after=%d&limit=1000" % seq)


def test_every_write_is_in_the_audit_log_and_each_tenant_sees_its_own(admin, acme, umbrella):
    # (records are written after the answers: start after this mark, once it is in)
    mark = acme.post("/v1/networks", {"name": "audit-mark"})["id"]
    wait_until(lambda: [r for r in admin.get("/v1/audit?limit=1000") if r["detail"] == mark],
               what="the mark in the audit log")
    start = [r for r in admin.get("/v1/audit?limit=1000") if r["detail"] == mark][0]["seq"]
    made = acme.post("/v1/networks", {"name": "audited"})
    expect_problem(acme, "POST", "/v1/networks", {"name": ""}, 400, "name")
    umbrella.post("/v1/networks", {"name": "theirs"})
    admin.delete("/v1/networks/%s" % made["id"])
    join = admin.post("/v1/join-tokens", {"node": "hv-audit"})
    acme.get("/v1/networks")   # (reads are not writes)
    wait_until(lambda: len(_audit_after(admin, start)) >= 5, what="the audit log to have the five writes")
    records = _audit_after(admin, start)
    assert [(r["actor"], r["method"], r["path"], r["status"], r["detail"]) for r in records] == [
        ("tenant acme", "POST", "/v1/networks", 201, made["id"]),
        ("tenant acme", "POST", "/v1/networks", 400, "Invalid input (name)"),
        ("tenant umbrella", "POST", "/v1/networks", 201, records[2]["detail"]),
        ("admin", "DELETE", "/v1/networks/%s" % made["id"], 204, ""),
        ("admin", "POST", "/v1/join-tokens", 201, join["id"]),
    ]
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records) and records[0]["time"] > 0
    assert join["token"].split(".")[1] not in json.dumps(records)   # a secret never reaches the log
    mine = _audit_after(acme, start)
    assert [r["status"] for r in mine] == [201, 400] and {r["tenant"] for r in mine} == {"acme"}
    assert _audit_after(admin, records[-2]["seq"]) == records[-1:]
    assert admin.get("/v1/audit?limit=2") == records[-2:]
    expect_problem(admin, "GET", "/v1/audit?limit=0", None, 400, "limit")
    expect_problem(admin, "GET", "/v1/audit?after=x", None, 400, "after")
    expect_problem(admin, "GET", "/v1/audit?since=1", None, 400, "since")


def test_metrics_are_for_admins_of_a_running_controller(admin, acme):
    expect_problem(acme, "GET", "/metrics", None, 403, None)
    # The API alone (no controller behind it) has none; tests/lab/test_l2_lab.py reads a real one.
    expect_problem(admin, "GET", "/metrics", None, 404, None)


def test_nodes_are_admin_only_and_connected_ones_stay(server, admin):
    from ovsdb.nb import Northbound
    nb = Northbound(server.remote).start()
    try:
        nb.upsert_node("hv9", "host9", "192.0.2.9", "up", 1000)
        nb.upsert_node("hv8", "host8", "192.0.2.8", "down", 1000)
    finally:
        nb.stop()
    # (written by another client of the store: the API's copy follows it shortly)
    wait_until(lambda: len(admin.get("/v1/nodes")) == 2, what="the API to see both nodes")
    assert admin.get("/v1/nodes/hv9") == {"system_id": "hv9", "hostname": "host9", "encap_ip": "192.0.2.9",
                                           "state": "up", "last_seen": 1000}
    expect_problem(admin, "DELETE", "/v1/nodes/hv9", None, 409, "system_id")
    admin.delete("/v1/nodes/hv8")
    assert [n["system_id"] for n in admin.get("/v1/nodes")] == ["hv9"]
    expect_problem(admin, "GET", "/v1/nodes/hv8", None, 404, None)


def test_acknowledged_writes_survive_a_store_restart(server, admin, acme):
    net = acme.post("/v1/networks", {"name": "durable"})
    nbserver.stop(server.state)
    nbserver.start(server.state)
    deadline = time.monotonic() + 20
    while True:  # the API reconnects to the store by itself
        code, body = acme.request("GET", "/v1/networks/%s" % net["id"])
        if code == 200:
            break
        assert time.monotonic() < deadline, (code, body)
        time.sleep(0.2)
    assert body == net


def test_openapi_document_matches_the_server(server, acme):
    doc = Client(server.port, "").get("/v1/openapi.json")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == set(OPERATIONS)
    for method, path in documented:
        url = path.replace("{id}", "00000000-0000-0000-0000-000000000000")
        code, _ = acme.request(method, url, {} if method in ("POST", "PATCH") else None)
        assert code not in (404, 405) or "{id}" in path or path == "/v1/nodes", (method, path, code)
        assert code < 500
    example = doc["components"]["schemas"]["NetworkCreate"]["example"]
    admin = Client(server.port, server.admin_token)
    created = admin.post("/v1/networks", dict(example, name="from-doc"))
    assert set(created) == set(doc["components"]["schemas"]["Network"]["properties"])


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                       max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["name", "network", "mac", "ips", "tags", "vni", "cidrs", "tenant", "x"]),
                            JSONISH, max_size=5),
       path=st.sampled_from(["/v1/networks", "/v1/ports"]))
def test_no_input_produces_a_5xx(acme, body, path):
    code, payload = acme.request("POST", path, body)
    assert code < 500, payload
    if code >= 400:
        assert payload["status"] == code


def test_tokens_never_appear_in_responses_or_logs(server, admin, acme):
    seen = json.dumps([admin.get("/v1/networks"), admin.get("/v1/ports"), admin.get("/v1/nodes"),
                       Client(server.port, "").get("/v1/openapi.json")])
    for token in (server.admin_token, server.acme, server.umbrella):
        assert token not in seen
        assert token not in server.server_log()


def run_cli(server, token, *args):
    env = dict(os.environ, DVN_URL="http://127.0.0.1:%d" % server.port, DVN_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "controller.cli"] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_cli_end_to_end(server):
    tok = server.token("cli")
    out = run_cli(server, tok, "--json", "network", "create", "clinet", "--cidr", "10.9.0.0/24", "--tag", "x")
    assert out.returncode == 0, out.stderr
    net = json.loads(out.stdout)
    assert net["tenant"] == "cli" and net["cidrs"] == ["10.9.0.0/24"]
    out = run_cli(server, tok, "port", "create", "vm1", "--network", "clinet", "--ip", "10.9.0.7")
    assert out.returncode == 0 and "10.9.0.7" in out.stdout and "NAME" in out.stdout, out
    out = run_cli(server, tok, "port", "create", "vm2", "--network", "clinet", "--ip", "10.9.0.7")
    assert out.returncode == 1 and "409" in out.stderr and "ips[0]" in out.stderr
    assert run_cli(server, tok, "port", "update", "vm1", "--new-name", "vm9").returncode == 0
    listed = json.loads(run_cli(server, tok, "--json", "port", "list").stdout)
    assert [p["name"] for p in listed] == ["vm9"]
    assert run_cli(server, tok, "port", "delete", "vm9").returncode == 0
    assert run_cli(server, tok, "network", "delete", "clinet").returncode == 0
    assert json.loads(run_cli(server, tok, "--json", "network", "list").stdout) == []
    out = run_cli(server, tok, "node", "list")
    assert out.returncode == 1 and "403" in out.stderr


@pytest.fixture(scope="module")
def sg(acme):
    return acme.post("/v1/security-groups", {"name": "sg1", "description": "web servers"})


RULE_CASES = [
    ({}, "direction"),
    ({"direction": "in"}, "direction"),
    ({"direction": "ingress", "ethertype": "IPv5"}, "ethertype"),
    ({"direction": "ingress", "protocol": "sctpx"}, "protocol"),
    ({"direction": "ingress", "protocol": 256}, "protocol"),
    ({"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"}, "protocol"),
    ({"direction": "ingress", "protocol": "icmpv6"}, "protocol"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 0}, "port_range_min"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "port_range_max", 422),
    ({"direction": "ingress", "protocol": "tcp", "port_range_max": 80}, "port_range_min"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_min": 80}, "port_range_min"),
    ({"direction": "ingress", "protocol": "tcp", "icmp_type": 8}, "icmp_type"),
    ({"direction": "ingress", "protocol": "icmp", "icmp_code": 0}, "icmp_code"),
    ({"direction": "ingress", "protocol": "icmp", "icmp_type": 300}, "icmp_type"),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.1/24"}, "remote_ip_prefix"),
    ({"direction": "ingress", "remote_ip_prefix": "fd00::/64"}, "remote_ip_prefix"),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "x"}, "remote_ip_prefix"),
    ({"direction": "ingress", "remote_group_id": "no-such-group"}, "remote_group_id"),
    ({"direction": "ingress", "action": "reject"}, "action"),
    ({"direction": "ingress", "priority": 1001}, "priority"),
    ({"direction": "ingress", "priority": "high"}, "priority"),
    ({"direction": "ingress", "colour": 1}, "colour"),
]


@pytest.mark.parametrize("case", RULE_CASES)
def test_rule_validation(acme, admin, sg, case):
    before = admin.get("/v1/security-groups")
    expect_problem(acme, "POST", "/v1/security-groups/%s/rules" % sg["id"], case[0], _status(case), case[1])
    assert admin.get("/v1/security-groups") == before


def test_security_groups_rules_and_ports(acme, umbrella, admin, net, sg):
    other = acme.post("/v1/security-groups", {"name": "sg2"})
    rule = acme.post("/v1/security-groups/%s/rules" % sg["id"],
                     {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 81,
                      "remote_group_id": other["id"], "priority": 200})
    assert rule["protocol"] == "tcp" and rule["remote_group_id"] == other["id"] and rule["action"] == "allow"
    deny = acme.post("/v1/security-groups/%s/rules" % sg["id"],
                     {"direction": "egress", "ethertype": "IPv6", "protocol": 58, "action": "deny"})
    assert deny["protocol"] == "icmpv6" and deny["priority"] == 100
    assert {r["id"] for r in acme.get("/v1/security-groups/%s" % sg["id"])["rules"]} == {rule["id"], deny["id"]}
    expect_problem(acme, "POST", "/v1/security-groups", {"name": "sg1"}, 409, "name")
    # Ports name their groups; another tenant's group is not a group here.
    port = acme.post("/v1/ports", {"name": "guarded", "network": net["id"], "security_groups": [sg["id"]]})
    assert port["security_groups"] == [sg["id"]] and port["port_security"] is True
    theirs = umbrella.post("/v1/security-groups", {"name": "theirs"})
    expect_problem(acme, "PATCH", "/v1/ports/%s" % port["id"], {"security_groups": [theirs["id"]]}, 422,
                   "security_groups[0]")
    expect_problem(acme, "PATCH", "/v1/ports/%s" % port["id"], {"port_security": "no"}, 400, "port_security")
    open_port = acme.call("PATCH", "/v1/ports/%s" % port["id"], {"port_security": False, "security_groups": []})
    assert open_port["port_security"] is False and open_port["security_groups"] == []
    acme.call("PATCH", "/v1/ports/%s" % port["id"], {"security_groups": [sg["id"]]})
    expect_problem(acme, "DELETE", "/v1/security-groups/%s" % sg["id"], None, 409, "id")
    expect_problem(acme, "DELETE", "/v1/security-groups/%s" % other["id"], None, 409, "id")
    expect_problem(umbrella, "GET", "/v1/security-groups/%s" % sg["id"], None, 404, None)
    pairs = acme.call("PATCH", "/v1/ports/%s" % port["id"],
                      {"allowed_address_pairs": [{"ip_address": "10.1.0.200"},
                                                 {"ip_address": "10.9.0.0/24", "mac_address": "02:00:00:00:99:01"}]})
    assert pairs["allowed_address_pairs"] == [
        {"mac_address": "02:00:00:00:99:01", "ip_address": "10.9.0.0/24"},
        {"mac_address": port["mac"], "ip_address": "10.1.0.200/32"}]
    expect_problem(acme, "PATCH", "/v1/ports/%s" % port["id"], {"allowed_address_pairs": [{"ip": "x"}]}, 400,
                   "allowed_address_pairs[0]")
    expect_problem(acme, "PATCH", "/v1/ports/%s" % port["id"],
                   {"allowed_address_pairs": [{"ip_address": "10.0.0.999"}]}, 400,
                   "allowed_address_pairs[0].ip_address")
    acme.delete("/v1/security-groups/%s/rules/%s" % (sg["id"], rule["id"]))
    expect_problem(acme, "DELETE", "/v1/security-groups/%s/rules/%s" % (sg["id"], rule["id"]), None, 404, None)
    acme.delete("/v1/security-groups/%s" % other["id"])
    acme.delete("/v1/ports/%s" % port["id"])



def test_cli_security_groups_and_rules(server):
    tok = server.token("clisg")
    assert run_cli(server, tok, "security-group", "create", "web").returncode == 0
    out = run_cli(server, tok, "security-group", "create", "trusted", "--criteria", '{"tags_any": ["t"]}')
    assert out.returncode == 0, out.stderr
    out = run_cli(server, tok, "--json", "rule", "add", "web", "ingress", "--protocol", "tcp", "--ports", "80-81",
                  "--remote-group", "trusted", "--log")
    assert out.returncode == 0, out.stderr
    rule = json.loads(out.stdout)
    assert (rule["port_range_min"], rule["port_range_max"], rule["log"]) == (80, 81, True)
    out = run_cli(server, tok, "rule", "add", "web", "ingress", "--protocol", "icmp", "--ports", "80")
    assert out.returncode == 1 and "port_range_min" in out.stderr
    shown = run_cli(server, tok, "security-group", "show", "web")
    assert shown.returncode == 0 and "tcp" in shown.stdout and rule["id"] in shown.stdout
    assert run_cli(server, tok, "rule", "delete", "web", rule["id"]).returncode == 0
    assert run_cli(server, tok, "security-group", "members", "trusted").returncode == 0
    assert run_cli(server, tok, "security-group", "delete", "web").returncode == 0
    assert run_cli(server, tok, "--json", "events").stdout.strip() == "[]"


def test_encryption_flags_and_policies(acme, umbrella, admin, net):
    port = acme.post("/v1/ports", {"name": "enc1", "network": net["id"], "encrypt": True})
    assert port["encrypt"] is True
    assert acme.call("PATCH", "/v1/ports/%s" % port["id"], {"encrypt": False})["encrypt"] is False
    assert acme.post("/v1/ports", {"name": "enc2", "network": net["id"]})["encrypt"] is False
    pci = acme.post("/v1/security-groups", {"name": "pci", "encrypt": True, "criteria": {"tags_any": ["pci"]}})
    db = acme.post("/v1/security-groups", {"name": "db-tier", "encrypt_with": [pci["id"]]})
    assert (pci["encrypt"], pci["encrypt_with"], db["encrypt"], db["encrypt_with"]) == (True, [], False, [pci["id"]])
    other = umbrella.post("/v1/security-groups", {"name": "theirs-enc"})
    before = snapshot(admin)
    for body, field, status in (({"name": "x", "encrypt": "yes"}, "encrypt", 400),
                                ({"name": "x", "encrypt_with": [other["id"]]}, "encrypt_with[0]", 422),  # theirs
                                ({"name": "x", "encrypt_with": ["nope"]}, "encrypt_with[0]", 400),
                                ({"name": "x", "encrypt_with": "pci"}, "encrypt_with", 400)):
        expect_problem(acme, "POST", "/v1/security-groups", body, status, field)
    expect_problem(acme, "PATCH", "/v1/ports/%s" % port["id"], {"encrypt": 1}, 400, "encrypt")
    expect_problem(acme, "PATCH", "/v1/security-groups/%s" % db["id"], {"encrypt_with": [other["id"]]}, 422,
                   "encrypt_with[0]")
    assert snapshot(admin) == before
    assert acme.call("PATCH", "/v1/security-groups/%s" % db["id"], {"encrypt_with": []})["encrypt_with"] == []
    for path in ("/v1/ports/%s" % port["id"], "/v1/security-groups/%s" % db["id"], "/v1/security-groups/%s" % pci["id"]):
        acme.delete(path)
    umbrella.delete("/v1/security-groups/%s" % other["id"])


def test_key_rotation_is_for_admins_and_known_nodes(acme, admin):
    expect_problem(acme, "POST", "/v1/nodes/hv9/rotate-keys", {}, 403, None)
    expect_problem(admin, "POST", "/v1/nodes/no-such-node/rotate-keys", {}, 404, None)
    answer = admin.post("/v1/nodes/hv9/rotate-keys", {})
    assert answer == {"system_id": "hv9", "rotated": 0, "versions": {}}   # no peer here: no key
