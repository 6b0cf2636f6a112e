"""Every `dvn` client command against a real REST server, over a real socket.

The CLI runs in this process through its main(argv) (a few runs are real
processes: what a user's shell sees on stderr, and that a client command
imports nothing of the server stack). Every API operation is reached by
some command (the last test checks it against the OpenAPI table), errors
are one line with the problem's title, detail and field, and the options
of the connection come from flags (before or after the command), the
environment or the config file, in that order.
"""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from controller import cli
from controller.openapi import OPERATIONS
from ovsdb import nbserver
from ovsdb.nb import Northbound
from ovsdb.pki import new_key_and_request
from tests.dvnproc import Client, DvnServer
from tests.store.test_api import ROOT, ApiServer

# The operations the CLI reached in this module: (method, path pattern).
REACHED = set()
ROUTES = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"[^/]+", p) + "$"), p) for m, p in OPERATIONS]
# What no client command calls: a node's own enrollment, which `dvn join --token` does (ovsdb/enroll.py,
# tests/lab/test_trust_lab.py).
JOIN_ONLY = {("POST", "/v1/enroll"), ("GET", "/v1/enrollment")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("cli"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tenant_token(server):
    return server.token("clit")


class Run:
    """`dvn ARGS` in this process, with ``token`` in $DVN_TOKEN (None: no
    $DVN_TOKEN): its exit status, stdout and stderr."""

    def __init__(self, capsys, env, token):
        self.capsys, self.env, self.token = capsys, env, token

    def __call__(self, *argv, stdin=None):
        if self.token is None:
            self.env.delenv("DVN_TOKEN", raising=False)
        else:
            self.env.setenv("DVN_TOKEN", self.token)
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            rc = cli.main([str(a) for a in argv])
        finally:
            sys.stdin = sys.__stdin__
        out, err = self.capsys.readouterr()
        self.rc, self.out, self.err = rc, out, err
        return self

    def ok(self, *argv, **kw):
        self(*argv, **kw)
        assert self.rc == 0 and self.err == "", (argv, self.rc, self.err)
        return self

    def json(self, *argv, **kw):
        return json.loads(self.ok(*argv, "--json", **kw).out)

    def fails(self, *argv):
        self(*argv)
        assert self.rc != 0 and self.out == "", (argv, self.out)
        assert len(self.err.strip().splitlines()) == 1 and "Traceback" not in self.err, self.err
        return self.err.strip()


@pytest.fixture
def env(server, monkeypatch, tmp_path):
    """The connection in the environment, as a user sets it (the tenant's token), and no config file."""
    for key in ("DVN_TOKEN_FILE", "DVN_CA_FILE", "DVN_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DVN_URL", "http://127.0.0.1:%d" % server.port)
    original = cli.request

    def recording(args, method, path, *a, **kw):
        pattern = next((p for m, rx, p in ROUTES if m == method and rx.match(path.partition("?")[0])), None)
        assert pattern is not None, (method, path)
        REACHED.add((method, pattern))
        return original(args, method, path, *a, **kw)
    monkeypatch.setattr(cli, "request", recording)
    return monkeypatch


@pytest.fixture
def dvn(env, capsys, tenant_token):
    return Run(capsys, env, tenant_token)


@pytest.fixture
def admin_dvn(env, capsys, server):
    return Run(capsys, env, server.admin_token)


@pytest.fixture
def net(dvn):
    made = dvn.json("network", "create", "clinet", "--cidr", "10.7.0.0/24")
    yield made
    dvn("network", "delete", made["id"])


def test_networks(dvn, admin_dvn):
    made = dvn.json("network", "create", "blue", "--cidr", "10.5.0.0/24", "--tag", "a", "--vni", 4242)
    assert (made["name"], made["tenant"], made["vni"], made["cidrs"], made["tags"]) == \
        ("blue", "clit", 4242, ["10.5.0.0/24"], ["a"])
    listed = dvn.ok("network", "list").out
    assert listed.split()[:2] == ["ID", "NAME"] and "blue" in listed and "4242" in listed
    shown = dvn.ok("network", "show", "blue").out
    assert re.search(r"^cidrs\s+10\.5\.0\.0/24$", shown, re.M) and made["id"] in shown
    assert dvn.json("network", "update", "blue", "--new-name", "blue2", "--tag", "x", "--tag", "y")["tags"] == \
        ["x", "y"]
    assert dvn.json("network", "update", "blue2", "--no-tags")["tags"] == []
    made_by_admin = admin_dvn.json("network", "create", "red", "--tenant", "other", "--cidr", "10.5.0.0/24")
    assert made_by_admin["tenant"] == "other"
    assert [n["name"] for n in admin_dvn.json("network", "list", "--tenant", "other")] == ["red"]
    assert [n["name"] for n in dvn.json("network", "list")] == ["blue2"]     # a tenant sees its own
    admin_dvn.ok("network", "delete", "red")
    dvn.ok("network", "delete", made["id"])
    assert dvn.json("network", "list") == []


def test_a_port_gets_groups_encryption_port_security_and_address_pairs(dvn, net):
    web = dvn.json("security-group", "create", "web")
    db = dvn.json("security-group", "create", "db")
    port = dvn.json("port", "create", "vm1", "--network", "clinet", "--ip", "10.7.0.5", "--security-group", "web",
                    "--encrypt", "--no-port-security", "--allowed-address", "10.7.0.50",
                    "--allowed-address", "10.7.0.64/28,02:00:00:00:00:99", "--tag", "t1")
    assert port["security_groups"] == [web["id"]] and port["encrypt"] is True and port["port_security"] is False
    assert sorted((p["ip_address"], p["mac_address"]) for p in port["allowed_address_pairs"]) == [
        ("10.7.0.50/32", port["mac"]), ("10.7.0.64/28", "02:00:00:00:00:99")]   # (no MAC: the port's)
    assert dvn.ok("port", "show", "vm1", "--field", "id").out == port["id"] + "\n"         # one field, for scripts
    assert dvn.ok("--field", "ips", "port", "show", "vm1").out == "10.7.0.5\n"
    assert dvn.ok("port", "list", "--field", "security_groups").out == web["id"] + "\n"    # ids, not names
    assert "--field nosuch: the answer has allowed_address_pairs, encrypt" in dvn.fails(
        "port", "show", "vm1", "--field", "nosuch")
    shown = dvn.ok("port", "show", "vm1").out        # names, not ids, for people
    assert re.search(r"^security_groups\s+web$", shown, re.M) and re.search(r"^network\s+clinet$", shown, re.M)
    assert re.search(r"^encrypt\s+True$", shown, re.M)

    def groups(*flags):
        return sorted(dvn.json("port", "update", "vm1", *flags)["security_groups"])
    assert groups("--add-security-group", "db") == sorted([web["id"], db["id"]])
    assert groups("--remove-security-group", "web") == [db["id"]]
    assert groups("--security-group", web["id"], "--security-group", "db") == sorted([web["id"], db["id"]])
    assert groups("--no-security-groups") == []
    updated = dvn.json("port", "update", "vm1", "--no-encrypt", "--port-security", "--no-allowed-addresses",
                       "--new-name", "vm2", "--no-tags")
    assert (updated["name"], updated["encrypt"], updated["port_security"], updated["allowed_address_pairs"],
            updated["tags"]) == ("vm2", False, True, [], [])
    updated = dvn.json("port", "update", "vm2", "--allowed-address", "10.7.0.51", "--security-group", "db",
                       "--tag", "t2")
    assert updated["allowed_address_pairs"][0]["ip_address"] == "10.7.0.51/32" and updated["tags"] == ["t2"]
    listed = dvn.ok("port", "list", "--network", "clinet").out
    assert "vm2" in listed and " db" in listed and "SECURITY_GROUPS" in listed
    assert [p["name"] for p in dvn.json("port", "list", "--network", "clinet")] == ["vm2"]
    dvn.ok("port", "delete", "vm2")
    dvn.ok("security-group", "delete", "web")
    dvn.ok("security-group", "delete", "db")


def test_security_groups_and_their_rules(dvn, admin_dvn):
    peer = dvn.json("security-group", "create", "peer")
    made = dvn.json("security-group", "create", "app", "--description", "the app tier", "--criteria",
                    '{"tags_any": ["app"]}', "--encrypt", "--encrypt-with", "peer")
    assert (made["description"], made["criteria"], made["encrypt"], made["encrypt_with"]) == \
        ("the app tier", {"tags_any": ["app"]}, True, [peer["id"]])
    changed = dvn.json("security-group", "update", "app", "--new-name", "app2", "--description", "tier 2",
                       "--no-criteria", "--no-encrypt", "--no-encrypt-with")
    assert (changed["name"], changed["description"], changed["criteria"], changed["encrypt"],
            changed["encrypt_with"]) == ("app2", "tier 2", None, False, [])
    changed = dvn.json("security-group", "update", "app2", "--criteria", '{"name": "vm*"}', "--encrypt-with",
                       "peer")
    assert changed["criteria"] == {"name": "vm*"} and changed["encrypt_with"] == [peer["id"]]
    assert "app2" in dvn.ok("security-group", "list").out
    assert [g["name"] for g in admin_dvn.json("security-group", "list", "--tenant", "clit")] == ["app2", "peer"]
    assert dvn.json("security-group", "members", "app2") == []

    web = dvn.json("rule", "add", "app2", "ingress", "--protocol", "tcp", "--ports", "8000-8080",
                   "--remote-group", "peer", "--log")
    assert (web["port_range_min"], web["port_range_max"], web["remote_group_id"], web["log"]) == \
        (8000, 8080, peer["id"], True)
    ping = dvn.json("rule", "add", "app2", "ingress", "--protocol", "icmp", "--icmp-type", 8, "--icmp-code", 0,
                    "--remote-ip-prefix", "10.0.0.0/8", "--allow")
    assert (ping["icmp_type"], ping["icmp_code"], ping["action"]) == (8, 0, "allow")
    deny = dvn.json("rule", "add", "app2", "egress", "--protocol", "17", "--ports", "53", "--deny",
                    "--priority", 900)
    assert (deny["protocol"], deny["action"], deny["priority"]) == ("udp", "deny", 900)
    six = dvn.json("rule", "add", "app2", "ingress", "--ethertype", "IPv6", "--protocol", "icmpv6")
    assert (six["ethertype"], six["protocol"]) == ("IPv6", "icmpv6")
    rules = dvn.json("rule", "list", "app2")
    assert sorted(r["id"] for r in rules) == sorted(r["id"] for r in (web, ping, deny, six))
    table = dvn.ok("rule", "list", "app2").out
    assert "REMOTE_GROUP_ID" in table and "peer" in table and "8000" in table and "deny" in table
    shown = dvn.ok("security-group", "show", "app2").out
    assert "tier 2" in shown and web["id"] in shown
    assert dvn.json("rule", "stats", "app2", web["id"]) == \
        {"packets": 0, "bytes": 0, "established_packets": 0, "switches": 0}
    for rule in (web, ping, deny, six):
        dvn.ok("rule", "delete", "app2", rule["id"])
    assert dvn.json("rule", "list", "app2") == []
    dvn.ok("security-group", "delete", "app2")
    dvn.ok("security-group", "delete", "peer")


def test_load_balancers_and_members(dvn, net):
    for name, ip in (("b1", "10.7.0.11"), ("b2", "10.7.0.12")):
        dvn.ok("port", "create", name, "--network", "clinet", "--ip", ip)
    made = dvn.json("lb", "create", "www", "--network", "clinet", "--vip", "10.7.0.100", "--port", 80,
                    "--member", "10.7.0.11:8080", "--description", "the site")
    assert made["description"] == "the site" and len(made["members"]) == 1
    assert [b["name"] for b in dvn.json("lb", "list", "--network", "clinet")] == ["www"]
    updated = dvn.json("lb", "update", "www", "--new-name", "www2", "--affinity", 300, "--monitor", "tcp",
                       "--monitor-delay", 2, "--monitor-timeout", 1)
    assert updated["name"] == "www2" and updated["session_persistence"]["persistence_timeout"] == 300
    assert updated["health_monitor"]["type"] == "TCP"
    shown = dvn.ok("lb", "show", "www2").out
    assert "affinity: source IP, 300 s" in shown and "monitor: delay=2" in shown
    updated = dvn.json("lb", "update", "www2", "--no-affinity", "--no-monitor")
    assert updated["session_persistence"] is None and updated["health_monitor"] is None
    added = dvn.json("member", "add", "www2", "10.7.0.12:8080", "10.7.0.12:8081", "--weight", 2)
    assert sorted((m["protocol_port"], m["weight"]) for m in added) == [(8080, 2), (8081, 2)]
    one = dvn.json("member", "add", "www2", "10.7.0.11:9000", "--name", "nine", "--down")
    assert (one["name"], one["admin_state_up"]) == ("nine", False)
    assert len(dvn.json("member", "list", "www2")) == 4
    renamed = dvn.json("member", "update", "www2", "10.7.0.12:8081", "--name", "m2", "--down")
    assert (renamed["name"], renamed["admin_state_up"]) == ("m2", False)
    dvn.ok("member", "delete", "www2", "10.7.0.12:8081")
    dvn.ok("member", "delete", "www2", one["id"])
    assert "CONNECTIONS" in dvn.ok("lb", "stats", "www2").out
    assert dvn.json("lb", "stats", "www2")["connections"] == 0
    assert "no member 10.7.0.12:9999" in dvn.fails("member", "delete", "www2", "10.7.0.12:9999")
    dvn.ok("lb", "delete", "www2")
    for name in ("b1", "b2"):
        dvn.ok("port", "delete", name)


def test_events_and_import(dvn, net, tmp_path):
    dvn.ok("port", "create", "ev1", "--network", "clinet")
    assert dvn.json("events", "--port", "ev1", "--limit", 5) == []
    doc = {"networks": [{"name": "imp", "cidrs": ["10.8.0.0/24"]}],
           "security_groups": [{"name": "impg", "rules": [{"direction": "ingress", "protocol": "icmp"}]}],
           "ports": [{"name": "imp1", "network": "imp", "security_groups": ["impg"]}]}
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    made = dvn.json("import", path)
    assert set(made["ports"]) == {"imp1"}
    table = dvn.ok("import", "-", stdin=json.dumps(dict(doc, networks=[{"name": "imp-b"}], ports=[],
                                                          security_groups=[]))).out
    assert re.search(r"^networks\s+imp-b\s+\S+$", table, re.M)
    assert dvn.json("port", "show", "imp1")["security_groups"] == [made["security_groups"]["impg"]]
    for kind, name in (("port", "imp1"), ("port", "ev1"), ("network", "imp"), ("network", "imp-b"),
                       ("security-group", "impg")):
        dvn.ok(kind, "delete", name)


def test_nodes_tokens_certificates_and_the_ca(admin_dvn, dvn, server, env):
    nb = Northbound(server.remote).start()
    try:
        nb.transact([nb.api.db_create("Node", system_id="hv-cli", hostname="hv-cli.example", encap_ip="192.0.2.7",
                                      state="down", last_seen=0)])
    finally:
        nb.stop()
    assert "hv-cli" in admin_dvn.ok("node", "list").out
    assert re.search(r"^encap_ip\s+192\.0\.2\.7$", admin_dvn.ok("node", "show", "hv-cli").out, re.M)
    assert admin_dvn.json("node", "rotate-keys", "hv-cli") == {"system_id": "hv-cli", "rotated": 0, "versions": {}}
    assert admin_dvn.ok("node", "rotate-keys", "hv-cli").out.strip() == "node hv-cli: 0 tunnel keys rotated"
    assert "403" in dvn.fails("node", "list")              # a tenant's token

    tokens = admin_dvn
    tokens("token", "create", "--node", "hv-cert", "--ttl", 600, "--description", "for the test")
    assert tokens.rc == 0 and "--ca-hash sha256:" in tokens.err
    token = tokens.out.strip()
    token_id = token.split(".")[0]
    assert tokens.json("token", "show", token_id)["description"] == "for the test"
    assert token_id in tokens.ok("token", "list").out and token.split(".")[1] not in tokens.out
    # The node's side of the join (what `dvn join --token` sends), then its certificate as the CLI shows it.
    _key, csr = new_key_and_request("hv-cert")
    status, enrolled = Client(server.port, "").request("POST", "/v1/enroll", {"token": token, "csr": csr})
    assert status == 201, enrolled
    certs = admin_dvn.json("node", "certificates")
    assert [(c["node"], c["serial"]) for c in certs] == [("hv-cert", enrolled["serial"])]
    assert enrolled["serial"] in admin_dvn.ok("node", "revoke", "hv-cert").out
    assert admin_dvn.json("node", "certificates")[0]["revoked"] is True
    assert admin_dvn.json("token", "revoke", token_id)["revoked"] is True

    admin_dvn.ok("node", "delete", "hv-cli")
    assert "404" in admin_dvn.fails("node", "show", "hv-cli")

    admin_dvn.token = None                                 # the CA and the document need no token
    ca = admin_dvn.json("ca", "show")
    assert admin_dvn.ok("ca", "show").out.strip() == ca["ca_hash"]
    assert admin_dvn.ok("ca", "show", "--pem").out.strip() == ca["certificate"].strip()
    document = json.loads(admin_dvn.ok("openapi").out)
    assert set(document["paths"]) == {p for _m, p in OPERATIONS}


# ---- errors -------------------------------------------------------------------------------------------
def test_the_audit_log_trace_and_metrics(dvn, admin_dvn, net):
    made = dvn.json("port", "create", "aud1", "--network", "clinet")
    dvn.ok("port", "delete", "aud1")
    # (the API writes its records just after answering)
    for _ in range(100):
        mine = dvn.json("audit", "--limit", 1000)
        if any(r["method"] == "DELETE" and r["path"] == "/v1/ports/%s" % made["id"] for r in mine):
            break
    rows = [r for r in mine if made["id"] in (r["detail"], r["path"].rpartition("/")[2])]
    assert [(r["actor"], r["method"], r["status"]) for r in rows] == [("tenant clit", "POST", 201),
                                                                       ("tenant clit", "DELETE", 204)]
    table = dvn.ok("audit", "--after", rows[0]["seq"] - 1, "--limit", 2).out
    assert table.splitlines()[0].split() == ["SEQ", "TIME", "ACTOR", "METHOD", "PATH", "STATUS", "DETAIL"]
    # This API runs without a controller: nothing to trace over, no metrics (tests/lab: with one).
    port = dvn.json("port", "create", "tr1", "--network", "clinet", "--ip", "10.7.0.9")
    dvn("trace", "tr1", "10.7.0.1", "tcp/22")
    assert dvn.rc != 0 and dvn.err.startswith("dvn: 404 Not found: no controller runs with this API"), dvn.err
    admin_dvn("metrics")
    assert admin_dvn.rc != 0 and "404 Not found" in admin_dvn.err and admin_dvn.err.count("\n") == 1
    dvn("metrics")
    assert dvn.rc != 0 and "403 Forbidden" in dvn.err
    dvn.ok("port", "delete", port["id"])


def test_an_alert_rule_and_the_tenants_webhook(dvn, admin_dvn):
    group = dvn.json("security-group", "create", "alerted")
    rule = dvn.json("rule", "add", "alerted", "ingress", "--protocol", "udp", "--ports", "9999", "--deny", "--alert")
    assert rule["alert"] is True and rule["log"] is False and rule["action"] == "deny"
    hook = dvn.json("webhook", "set", "http://127.0.0.1:9/alerts")
    assert hook["tenant"] == "clit" and hook["url"] == "http://127.0.0.1:9/alerts"
    dvn("webhook", "set", "http://127.0.0.1:9/other")
    assert dvn.rc != 0 and "409 Conflict" in dvn.err and "(field: tenant)" in dvn.err
    dvn("webhook", "set", "ftp://example.com/x")
    assert dvn.rc != 0 and "(field: url)" in dvn.err
    assert [w["id"] for w in dvn.json("webhook", "list")] == [hook["id"]]
    assert hook["id"] in [w["id"] for w in admin_dvn.json("webhook", "list")]
    dvn.ok("webhook", "delete", hook["id"])
    assert dvn.json("webhook", "list") == []
    dvn.ok("security-group", "delete", group["id"])


def test_an_api_problem_is_one_line_with_its_title_detail_and_field(dvn, net):
    line = dvn.fails("network", "create", "bad", "--cidr", "10.9.0.1/24")
    assert line.startswith("dvn: 400 ") and "(field: cidrs[0])" in line
    dvn.ok("port", "create", "p1", "--network", "clinet", "--ip", "10.7.0.9")
    line = dvn.fails("port", "create", "p2", "--network", "clinet", "--ip", "10.7.0.9")
    assert line.startswith("dvn: 409 Conflict: 10.7.0.9 is already used") and line.endswith("(field: ips[0])")
    assert dvn.fails("port", "show", "nosuch") == "dvn: no port named 'nosuch'"
    assert "(field: security_groups[0])" in dvn.fails(
        "port", "update", "p1", "--security-group", "00000000-0000-0000-0000-000000000000")
    dvn.ok("port", "delete", "p1")


@pytest.mark.parametrize("argv,says", [
    (["--url", "http://127.0.0.1:1", "network", "list"], "dvn: cannot reach dvn at http://127.0.0.1:1: "),
    (["--url", "ftp://x", "network", "list"], "give http://HOST:PORT"),
    (["--url", "http://127.0.0.1:99999", "network", "list"], "give http://HOST:PORT"),
    (["--url", "https://127.0.0.1:1", "--ca-file", "/nonexistent.pem", "network", "list"], "cannot read the CA"),
    (["--token", "wrong", "network", "list"], "dvn: 401 "),
    (["import", "/nonexistent.json"], "cannot read /nonexistent.json"),
    (["rule", "add", "00000000-0000-0000-0000-000000000000", "ingress", "--ports", "x"], "--ports 'x'"),
    (["member", "add", "00000000-0000-0000-0000-000000000000", "10.0.0.1"], "give IP:PORT"),
    (["network", "create", "x", "--vni", "abc"],
     "dvn network create: argument --vni: invalid int value: 'abc' (see dvn network create --help)"),
    (["port", "shw"], "dvn port: argument action: invalid choice: 'shw'"),
    ([], "dvn: the following arguments are required: COMMAND (see dvn --help)"),
])
def test_errors_are_one_line_never_a_traceback(dvn, argv, says):
    assert says in dvn.fails(*argv)


def test_no_token_says_where_one_comes_from(dvn):
    dvn.token = None
    line = dvn.fails("network", "list")
    assert "no token" in line and "DVN_TOKEN_FILE" in line and "cli.conf" in line


def test_a_server_that_is_not_dvn_is_one_line(dvn):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        import threading

        def answer():
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            conn.close()
        t = threading.Thread(target=answer)
        t.start()
        line = dvn.fails("network", "list", "--url", "http://127.0.0.1:%d" % port)
        t.join()
    assert "no JSON: is it dvn's API?" in line


# ---- where the connection comes from -------------------------------------------------------------------
def test_connection_options_go_before_or_after_the_command_and_beat_the_environment(dvn, server, env,
                                                                                    tenant_token):
    url = "http://127.0.0.1:%d" % server.port
    env.setenv("DVN_URL", "http://127.0.0.1:1")            # wrong: the flag wins
    dvn.token = "wrong"
    assert dvn.ok("network", "list", "--url", url, "--token", tenant_token, "--json").out.strip() == "[]"
    assert dvn.ok("--url", url, "--token", tenant_token, "--json", "network", "list").out.strip() == "[]"
    assert dvn.ok("--url", url, "network", "list", "--token", tenant_token, "--json").out.strip() == "[]"
    assert "cannot reach" in dvn.fails("network", "list", "--token", tenant_token)


def test_a_config_file_gives_what_flags_and_the_environment_do_not(dvn, server, env, tmp_path, tenant_token):
    env.delenv("DVN_URL")
    dvn.token = None
    token_file = tmp_path / "token"
    token_file.write_text(tenant_token + "\n")
    conf = tmp_path / "config" / "dvn" / "cli.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[dvn]\nurl = http://127.0.0.1:%d\ntoken_file = %s\n" % (server.port, token_file))
    assert dvn.ok("network", "list", "--json").out.strip() == "[]"          # $XDG_CONFIG_HOME/dvn/cli.conf
    env.setenv("DVN_URL", "http://127.0.0.1:1")                             # the environment beats it
    assert "cannot reach dvn at http://127.0.0.1:1" in dvn.fails("network", "list")
    env.delenv("DVN_URL")
    other = tmp_path / "other.conf"
    other.write_text("[dvn]\nurl = http://127.0.0.1:%d\ntoken = %s\n" % (server.port, tenant_token))
    conf.write_text("[dvn]\nurl = http://127.0.0.1:1\n")
    assert dvn.ok("network", "list", "--config", other).out.startswith("ID")
    env.setenv("DVN_CONFIG", str(other))
    assert dvn.ok("network", "list").out.startswith("ID")
    other.write_text("[dvn]\nurl = http://127.0.0.1:1\ntokn = x\n")
    assert "unknown key tokn" in dvn.fails("network", "list")
    other.write_text("url = x\n")
    assert "is not INI" in dvn.fails("network", "list")
    assert "cannot read the config file /nonexistent.conf" in dvn.fails("network", "list", "--config",
                                                                        "/nonexistent.conf")
    env.delenv("DVN_CONFIG")
    conf.write_text("[dvn]\nurl = http://127.0.0.1:%d\ntoken_file = /nonexistent-token\n" % server.port)
    assert "cannot read the token file /nonexistent-token" in dvn.fails("network", "list")


# ---- real processes -------------------------------------------------------------------------------------
def _process_env(server, token):
    env = dict(os.environ, DVN_URL="http://127.0.0.1:%d" % server.port, DVN_TOKEN=token)
    for key in ("PYTHONWARNINGS", "DVN_CONFIG", "DVN_TOKEN_FILE", "DVN_CA_FILE"):
        env.pop(key, None)
    return env


@pytest.mark.parametrize("argv", [["--help"], ["network", "list"], ["port", "create", "--help"]])
def test_help_and_a_client_command_print_nothing_on_stderr(server, tenant_token, argv):
    out = subprocess.run([sys.executable, "-m", "controller.cli"] + argv, cwd=ROOT,
                         env=_process_env(server, tenant_token), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "" and out.stdout, out


def test_client_commands_import_nothing_of_the_server_stack(server, tenant_token):
    script = ("import sys\nfrom controller import cli\n"
              "for argv in (['network', 'create', 'imports', '--cidr', '10.6.0.0/24'], ['network', 'list'],\n"
              "             ['security-group', 'create', 'imports'],\n"
              "             ['port', 'create', 'imports', '--network', 'imports', '--security-group', 'imports'],\n"
              "             ['rule', 'list', 'imports'], ['port', 'delete', 'imports'],\n"
              "             ['security-group', 'delete', 'imports'], ['network', 'delete', 'imports']):\n"
              "    assert cli.main(argv) == 0, argv\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & "
              "{'eventlet', 'os_ken', 'ovs', 'ovsdbapp', 'webob', 'jsonschema', 'greenlet'}))\n"
              "print(sorted(m for m in sys.modules if m.startswith(('controller.', 'ovsdb', 'flows'))))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_process_env(server, tenant_token),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["[]", "['controller.cli']"], out.stdout


def test_join_with_a_wrong_database_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "controller.cli", "join", "--db", str(tmp_path / "wrong.sock"),
                          "--controller", "127.0.0.1", "--encap-ip", "192.0.2.9", "--wait", "0"], cwd=ROOT,
                         env=dict(os.environ, PYTHONWARNINGS=""), capture_output=True, text=True, timeout=60)
    said = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode != 0 and len(said) == 1 and "wrong.sock" in said[0], out


# ---- dvn serve and its store ----------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CliServe(DvnServer):
    """`dvn serve` as the CLI runs it."""

    def command(self):
        cmd = super().command()
        return [sys.executable, "-m", "controller.cli", "serve"] + cmd[cmd.index("--state-dir"):]


@pytest.mark.parametrize("keep", [False, True])
def test_serve_stops_the_store_it_started_unless_told_to_keep_it(tmp_path, keep):
    state = str(tmp_path)
    dvn = CliServe(state, api_port=_free_port(), listen_ip="127.0.0.1", of_port=_free_port(),
                   ovsdb_port=_free_port(), extra=["--openflow-lanes", "0"] + (["--keep-nb"] if keep else []))
    dvn.start()
    try:
        store = nbserver._running_pid(os.path.join(state, "nb.pid"))
        assert store is not None
        dvn.kill(signal.SIGTERM)
        assert dvn.proc.returncode == 0, dvn.log()
        running = nbserver._running_pid(os.path.join(state, "nb.pid")) == store
        assert running is keep
        # It starts again on the same file, with what was written before.
        dvn.start()
        assert dvn.client().get("/v1/networks") == []
        dvn.kill(signal.SIGTERM)
    finally:
        dvn.kill()
        dvn.stop_store()


# ---- the OpenAPI document against the CLI -------------------------------------------------------------------
def test_every_api_operation_has_a_command():
    """Runs last: the operations the commands above reached are every one the API has (but a node's own)."""
    if not REACHED:
        pytest.skip("runs with the module's other tests, whose commands it counts")
    missing = sorted(set(OPERATIONS) - JOIN_ONLY - REACHED)
    assert not missing, "no CLI command reaches %s" % missing
