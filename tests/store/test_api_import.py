"""POST /v1/import against a real API server and ovsdb-server, over a real socket.

One document creates a tenant's networks, security groups (with rules), ports
and load balancers in one transaction. References are the document's names or
existing ids of the tenant; every bad document answers the problem its single
create would, with the field named by its path in the document, and changes
nothing. The server is tests.store.test_api's (one per module).
"""

import http.client
import json

import pytest

from tests.store.test_api import acme, admin, expect_problem, run_cli, server, umbrella  # noqa: F401
# (server, admin, acme, umbrella: test_api's fixtures, on this module's own server)

IMPORT = "/v1/import"
LISTS = ("/v1/networks", "/v1/ports", "/v1/security-groups", "/v1/load-balancers")


def snapshot(admin):
    return [admin.get(path) for path in LISTS]


def by_name(items):
    return {x["name"]: x for x in items}


@pytest.fixture(scope="module")
def existing(acme, umbrella):
    """Objects made by the single endpoints: acme's network base (10.50.0.0/24)
    with port base-p1 at 10.50.0.10 and load balancer base-lb on 10.50.0.100:80,
    acme's group base-sg, and umbrella's network and group."""
    net = acme.post("/v1/networks", {"name": "base", "cidrs": ["10.50.0.0/24"]})
    sg = acme.post("/v1/security-groups", {"name": "base-sg"})
    port = acme.post("/v1/ports", {"name": "base-p1", "network": net["id"], "ips": ["10.50.0.10"],
                                   "mac": "02:00:00:50:00:10"})
    lb = acme.post("/v1/load-balancers", {"name": "base-lb", "network": net["id"], "vip_address": "10.50.0.100",
                                          "protocol_port": 80})
    their_net = umbrella.post("/v1/networks", {"name": "theirs", "cidrs": ["10.50.0.0/24"]})
    their_sg = umbrella.post("/v1/security-groups", {"name": "theirs-sg"})
    return {"net": net["id"], "sg": sg["id"], "port": port["id"], "lb": lb["id"], "vni": net["vni"],
            "mac": port["mac"], "their_net": their_net["id"], "their_sg": their_sg["id"]}


def fill(value, ids):
    """``value`` with each "$key" string replaced by ids[key]."""
    if isinstance(value, str) and value.startswith("$"):
        return ids[value[1:]]
    if isinstance(value, list):
        return [fill(x, ids) for x in value]
    if isinstance(value, dict):
        return {k: fill(x, ids) for k, x in value.items()}
    return value


# ---- a whole configuration -----------------------------------------------------------

FULL = {
    "networks": [{"name": "front", "cidrs": ["10.60.0.0/24"], "tags": ["t1"]},
                 {"name": "back", "vni": 4242, "cidrs": ["10.61.0.0/24", "fd00:61::/64"]}],
    "security_groups": [
        {"name": "web", "description": "web tier", "encrypt_with": ["db"],          # a group named later
         "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                    "remote_group_id": "clients"},                                   # a group named later
                   {"direction": "ingress", "protocol": "icmp", "remote_group_id": "web"},   # itself
                   {"direction": "egress", "action": "deny", "priority": 5, "log": True}]},
        {"name": "db", "encrypt": True,
         "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "remote_group_id": "web"}]},
        {"name": "clients", "criteria": {"tags_any": ["client"]}}],
    "ports": [{"name": "web1", "network": "front", "ips": ["10.60.0.11"], "security_groups": ["web"],
               "tags": ["client"]},
              {"name": "web2", "network": "front", "ips": ["10.60.0.12"], "mac": "02:00:00:60:00:12",
               "security_groups": ["web", "clients", "web"]},
              {"name": "db1", "network": "back", "ips": ["10.61.0.5", "fd00:61::5"], "security_groups": ["db"],
               "encrypt": True, "port_security": True, "allowed_address_pairs": [{"ip_address": "10.61.0.100"}]}],
    "load_balancers": [
        {"name": "www", "network": "front", "vip_address": "10.60.0.100", "protocol_port": 80,
         "description": "the site", "health_monitor": {"type": "TCP"}, "session_persistence": {"type": "SOURCE_IP"},
         "members": [{"address": "10.60.0.11", "protocol_port": 8080},
                     {"address": "10.60.0.12", "protocol_port": 8080, "weight": 5, "name": "second"}]},
        {"name": "www-udp", "network": "front", "vip_address": "10.60.0.100", "protocol": "udp",
         "protocol_port": 80}],
}


def test_a_document_creates_everything_with_its_references_resolved(acme, admin):
    made = acme.post(IMPORT, FULL)
    assert {k: sorted(v) for k, v in made.items()} == {
        "networks": ["back", "front"], "security_groups": ["clients", "db", "web"],
        "ports": ["db1", "web1", "web2"], "load_balancers": ["www", "www-udp"]}
    nets, groups = made["networks"], made["security_groups"]

    front, back = (acme.get("/v1/networks/%s" % nets[n]) for n in ("front", "back"))
    assert (front["tenant"], front["cidrs"], front["tags"]) == ("acme", ["10.60.0.0/24"], ["t1"])
    assert (back["vni"], back["cidrs"]) == (4242, ["10.61.0.0/24", "fd00:61::/64"])

    web, db, clients = (acme.get("/v1/security-groups/%s" % groups[n]) for n in ("web", "db", "clients"))
    assert (web["description"], web["encrypt_with"], db["encrypt"]) == ("web tier", [groups["db"]], True)
    assert clients["criteria"] == {"tags_any": ["client"]} and clients["rules"] == []
    rules = {(r["direction"], r["protocol"]): r for r in web["rules"]}
    assert len(web["rules"]) == 3
    assert rules[("ingress", "tcp")]["remote_group_id"] == groups["clients"]
    assert (rules[("ingress", "tcp")]["port_range_min"], rules[("ingress", "tcp")]["port_range_max"]) == (80, 80)
    assert rules[("ingress", "icmp")]["remote_group_id"] == groups["web"]
    egress = rules[("egress", "any")]
    assert (egress["action"], egress["priority"], egress["log"], egress["remote_group_id"]) == ("deny", 5, True, None)
    assert [(r["port_range_min"], r["remote_group_id"]) for r in db["rules"]] == [(5432, groups["web"])]

    ports = {n: acme.get("/v1/ports/%s" % i) for n, i in made["ports"].items()}
    assert ports["web1"]["network"] == nets["front"] and ports["web1"]["security_groups"] == [groups["web"]]
    assert ports["web2"]["mac"] == "02:00:00:60:00:12"
    assert ports["web2"]["security_groups"] == sorted([groups["web"], groups["clients"]])
    first = int(ports["web1"]["mac"][:2], 16)
    assert first & 2 and not first & 1                   # a generated MAC, locally administered
    db1 = ports["db1"]
    assert (db1["network"], db1["ips"], db1["encrypt"]) == (nets["back"], ["10.61.0.5", "fd00:61::5"], True)
    assert db1["allowed_address_pairs"] == [{"mac_address": db1["mac"], "ip_address": "10.61.0.100/32"}]
    assert {m["name"] for m in acme.get("/v1/security-groups/%s/members" % groups["clients"])} == {"web1", "web2"}

    www = acme.get("/v1/load-balancers/%s" % made["load_balancers"]["www"])
    assert (www["network"], www["vip_address"], www["protocol"], www["protocol_port"]) == \
        (nets["front"], "10.60.0.100", "tcp", 80)
    assert www["health_monitor"]["type"] == "TCP" and www["session_persistence"]["type"] == "SOURCE_IP"
    assert sorted((m["address"], m["protocol_port"], m["weight"], m["name"]) for m in www["members"]) == \
        [("10.60.0.11", 8080, 1, ""), ("10.60.0.12", 8080, 5, "second")]
    udp = acme.get("/v1/load-balancers/%s" % made["load_balancers"]["www-udp"])
    assert (udp["protocol"], udp["members"]) == ("udp", [])

    # The lists show the same objects as the answer's ids.
    assert {n: p["id"] for n, p in by_name(admin.get("/v1/ports")).items() if n in made["ports"]} == made["ports"]


def test_references_by_existing_id_and_document_names_win(acme, existing):
    doc = fill({
        "security_groups": [
            {"name": "byid", "encrypt_with": ["$sg"],
             "rules": [{"direction": "ingress", "protocol": "udp", "port_range_min": 53, "remote_group_id": "$sg"}]},
            {"name": existing["net"]}],          # a document's group named like an existing network's id
        "ports": [{"name": "byid-p", "network": "$net", "ips": ["10.50.0.20"], "security_groups": ["$sg", "byid"]},
                  {"name": "byname-p", "network": "$net", "security_groups": ["$net"]}],
        "load_balancers": [{"name": "byid-lb", "network": "$net", "vip_address": "10.50.0.100", "protocol_port": 443,
                            "members": [{"address": "10.50.0.10", "protocol_port": 8443}]}]}, existing)
    made = acme.post(IMPORT, doc)
    assert set(made) == {"security_groups", "ports", "load_balancers"}   # only the kinds the document has
    group = acme.get("/v1/security-groups/%s" % made["security_groups"]["byid"])
    assert group["encrypt_with"] == [existing["sg"]] and group["rules"][0]["remote_group_id"] == existing["sg"]
    port = acme.get("/v1/ports/%s" % made["ports"]["byid-p"])
    assert port["network"] == existing["net"]
    assert port["security_groups"] == sorted([existing["sg"], made["security_groups"]["byid"]])
    # "$net" names the document's group of that name (a name wins over an id).
    named = acme.get("/v1/ports/%s" % made["ports"]["byname-p"])
    assert named["security_groups"] == [made["security_groups"][existing["net"]]]
    lb = acme.get("/v1/load-balancers/%s" % made["load_balancers"]["byid-lb"])
    assert lb["network"] == existing["net"] and [m["address"] for m in lb["members"]] == ["10.50.0.10"]


def test_document_names_win_over_ids_for_networks_too(acme, existing):
    made = acme.post(IMPORT, {"networks": [{"name": existing["net"], "cidrs": ["10.62.0.0/24"]}],
                              "ports": [{"name": "shadow-p", "network": existing["net"], "ips": ["10.62.0.5"]}]})
    port = acme.get("/v1/ports/%s" % made["ports"]["shadow-p"])
    assert port["network"] == made["networks"][existing["net"]] != existing["net"]


def test_automatic_vnis_keep_clear_of_the_document_s_own(acme, admin):
    used = {n["vni"] for n in admin.get("/v1/networks")}
    free = next(n for n in range(1000, 100000) if n not in used)
    made = acme.post(IMPORT, {"networks": [{"name": "auto-vni"}, {"name": "explicit-vni", "vni": free}]})
    auto, explicit = (acme.get("/v1/networks/%s" % made["networks"][n]) for n in ("auto-vni", "explicit-vni"))
    assert explicit["vni"] == free and auto["vni"] not in used | {free}


# ---- bad documents: the right problem, at the right path, and nothing written ------------

NET = {"name": "bad-net", "cidrs": ["10.70.0.0/24"]}
RULE = {"direction": "ingress", "protocol": "tcp", "port_range_min": 22}


def port(i, **changes):
    return dict({"name": "bad-p%d" % i, "network": "bad-net", "ips": ["10.70.0.%d" % (10 + i)]}, **changes)


def lb(i, **changes):
    return dict({"name": "bad-lb%d" % i, "network": "bad-net", "vip_address": "10.70.0.%d" % (200 + i),
                 "protocol_port": 80, "members": [{"address": "10.70.0.10", "protocol_port": 8080}]}, **changes)


def member(port_number, **changes):
    return dict({"address": "10.70.0.11", "protocol_port": port_number}, **changes)


BAD = [
    # the document
    ({"tenant": "umbrella", "networks": [NET]}, 422, "tenant"),
    ({"tenant": 5, "networks": [NET]}, 400, "tenant"),
    ({"colour": "blue", "networks": [NET]}, 400, "colour"),
    ({}, 400, None),
    ({"networks": [], "ports": []}, 400, None),
    ({"networks": NET}, 400, "networks"),
    ({"ports": None}, 400, "ports"),
    # networks
    ({"networks": [NET, "n2"]}, 400, "networks[1]"),
    ({"networks": [NET, {"name": "n2", "cidrs": ["10.71.0.1/24"]}]}, 400, "networks[1].cidrs[0]"),
    ({"networks": [{"cidrs": []}]}, 400, "networks[0].name"),
    ({"networks": [dict(NET, tenant="acme")]}, 400, "networks[0].tenant"),
    ({"networks": [dict(NET, vni="5")]}, 400, "networks[0].vni"),
    ({"networks": [dict(NET, vni="$vni")]}, 409, "networks[0].vni"),                    # in use
    ({"networks": [dict(NET, vni=77001), {"name": "n2", "vni": 77001}]}, 409, "networks[1].vni"),
    ({"networks": [dict(NET, name="base")]}, 409, "networks[0].name"),                  # taken in the store
    ({"networks": [NET, dict(NET, cidrs=[])]}, 409, "networks[1].name"),                # twice in the document
    # security groups and their rules
    ({"security_groups": [{"name": "g1"}, {"name": "g1"}]}, 409, "security_groups[1].name"),
    ({"security_groups": [{"name": "base-sg"}]}, 409, "security_groups[0].name"),
    ({"security_groups": [{"name": "g1", "tenant": "acme"}]}, 400, "security_groups[0].tenant"),
    ({"security_groups": [{"name": "g1", "encrypt_with": ["nope"]}]}, 422, "security_groups[0].encrypt_with[0]"),
    ({"security_groups": [{"name": "g1", "encrypt_with": "g1"}]}, 400, "security_groups[0].encrypt_with"),
    ({"security_groups": [{"name": "g1", "criteria": {"or": [{"tags_any": "x"}]}}]}, 400,
     "security_groups[0].criteria.or[0].tags_any"),
    ({"security_groups": [{"name": "g1", "rules": {}}]}, 400, "security_groups[0].rules"),
    ({"security_groups": [{"name": "g1", "rules": ["ingress"]}]}, 400, "security_groups[0].rules[0]"),
    ({"security_groups": [{"name": "g0"}, {"name": "g1"}, {"name": "g2"},
                          {"name": "g3", "rules": [RULE, RULE, dict(RULE, port_range_min=0)]}]}, 400,
     "security_groups[3].rules[2].port_range_min"),
    ({"security_groups": [{"name": "g1", "rules": [{"direction": "ingress", "remote_group_id": "nope"}]}]}, 422,
     "security_groups[0].rules[0].remote_group_id"),
    ({"security_groups": [{"name": "g1", "rules": [{"direction": "ingress", "colour": 1}]}]}, 400,
     "security_groups[0].rules[0].colour"),
    ({"security_groups": [{"name": "g1", "rules": [RULE] * 1001}]}, 409, "security_groups[0].rules"),
    # ports
    ({"networks": [NET], "ports": [port(i) for i in range(12)] + [port(12, mac="01:00:00:00:00:01")]}, 400,
     "ports[12].mac"),
    ({"ports": [port(0, network="nope")]}, 422, "ports[0].network"),
    ({"ports": [port(0, network=7)]}, 400, "ports[0].network"),
    ({"networks": [NET], "ports": [port(0, security_groups=["nope"])]}, 422, "ports[0].security_groups[0]"),
    ({"networks": [NET], "ports": [port(0, ips=["10.71.0.5"])]}, 422, "ports[0].ips[0]"),
    ({"networks": [NET], "ports": [port(0, node="hv1")]}, 400, "ports[0].node"),
    ({"networks": [NET], "ports": [port(0, allowed_address_pairs=[{"ip_address": "x"}])]}, 400,
     "ports[0].allowed_address_pairs[0].ip_address"),
    ({"networks": [NET], "ports": [port(0, mac="02:00:00:70:00:01"), port(1, mac="02:00:00:70:00:01")]}, 409,
     "ports[1].mac"),                                                                    # one MAC twice
    ({"networks": [NET], "ports": [port(0, mac="02:00:00:70:00:0a"), port(1, mac="02:00:00:70:00:0A")]}, 409,
     "ports[1].mac"),
    ({"ports": [{"name": "x", "network": "$net", "mac": "$mac"}]}, 409, "ports[0].mac"),  # base-p1's
    ({"networks": [NET], "ports": [port(0), port(1, ips=["10.70.0.10"])]}, 409, "ports[1].ips[0]"),
    ({"ports": [{"name": "x", "network": "$net", "ips": ["10.50.0.100"]}]}, 409, "ports[0].ips[0]"),  # a VIP
    ({"ports": [{"name": "base-p1", "network": "$net"}]}, 409, "ports[0].name"),
    ({"networks": [NET], "ports": [port(0), port(1, name="bad-p0")]}, 409, "ports[1].name"),
    # load balancers
    ({"networks": [NET], "load_balancers": [lb(0, members=[member(80), member(80, address="10.99.0.1")])]}, 422,
     "load_balancers[0].members[1].address"),
    ({"networks": [NET], "load_balancers": [lb(0, members=[member(80), member(81, weight=300)])]}, 400,
     "load_balancers[0].members[1].weight"),
    ({"networks": [NET], "load_balancers": [lb(0, members=[member(80), member(80)])]}, 409,
     "load_balancers[0].members[1]"),
    ({"networks": [NET], "load_balancers": [lb(0, members=[member(p) for p in range(1, 1002)])]}, 400,
     "load_balancers[0].members"),
    ({"networks": [NET], "load_balancers": [lb(0, health_monitor={"type": "TCP", "delay": 0})]}, 400,
     "load_balancers[0].health_monitor.delay"),
    ({"networks": [NET], "load_balancers": [lb(0, tenant="umbrella")]}, 400, "load_balancers[0].tenant"),
    ({"networks": [NET], "load_balancers": [lb(0, vip_address="10.71.0.1")]}, 422, "load_balancers[0].vip_address"),
    ({"networks": [NET], "load_balancers": [lb(0), lb(1, vip_address="10.70.0.200")]}, 409,
     "load_balancers[1].protocol_port"),                                                 # one VIP:port twice
    ({"networks": [NET], "ports": [port(0)], "load_balancers": [lb(0, vip_address="10.70.0.10")]}, 409,
     "load_balancers[0].vip_address"),                                                   # a port's of the document
    ({"load_balancers": [{"name": "x", "network": "$net", "vip_address": "10.50.0.10", "protocol_port": 80}]}, 409,
     "load_balancers[0].vip_address"),                                                   # base-p1's
    ({"load_balancers": [{"name": "x", "network": "$net", "vip_address": "10.50.0.100", "protocol_port": 80}]}, 409,
     "load_balancers[0].protocol_port"),                                                 # base-lb's
    ({"networks": [NET], "load_balancers": [lb(0), lb(1, name="bad-lb0")]}, 409, "load_balancers[1].name"),
    # the last object is wrong: none of the many before it is written
    ({"networks": [NET, {"name": "late-net"}], "security_groups": [{"name": "late-sg", "rules": [RULE] * 5}],
      "ports": [port(i, security_groups=["late-sg"]) for i in range(40)],
      "load_balancers": [lb(0), lb(1), lb(2, protocol_port=0)]}, 400, "load_balancers[2].protocol_port"),
]


@pytest.mark.parametrize("doc,status,field", BAD)
def test_bad_documents_change_nothing(acme, admin, existing, doc, status, field):
    before = snapshot(admin)
    expect_problem(acme, "POST", IMPORT, fill(doc, existing), status, field)
    assert snapshot(admin) == before


# ---- tenants -------------------------------------------------------------------------------

def test_a_tenant_imports_only_for_itself_and_with_its_own_objects(acme, umbrella, admin, existing):
    before = snapshot(admin)
    for doc, field in (({"tenant": "umbrella", "networks": [NET]}, "tenant"),
                       ({"ports": [port(0, network="$their_net")]}, "ports[0].network"),
                       ({"load_balancers": [lb(0, network="$their_net")]}, "load_balancers[0].network"),
                       ({"networks": [NET], "ports": [port(0, security_groups=["$their_sg"])]},
                        "ports[0].security_groups[0]"),
                       ({"security_groups": [{"name": "g1", "encrypt_with": ["$their_sg"]}]},
                        "security_groups[0].encrypt_with[0]"),
                       ({"security_groups": [{"name": "g1", "rules": [{"direction": "ingress",
                                                                       "remote_group_id": "$their_sg"}]}]},
                        "security_groups[0].rules[0].remote_group_id")):
        expect_problem(acme, "POST", IMPORT, fill(doc, existing), 422, field)
    # ... and umbrella cannot use acme's.
    expect_problem(umbrella, "POST", IMPORT, fill({"ports": [port(0, network="$net")]}, existing), 422,
                   "ports[0].network")
    expect_problem(umbrella, "POST", IMPORT, {"tenant": "acme", "networks": [NET]}, 422, "tenant")
    assert snapshot(admin) == before
    # A tenant may name itself.
    made = umbrella.post(IMPORT, {"tenant": "umbrella", "networks": [{"name": "u-net"}]})
    assert umbrella.get("/v1/networks/%s" % made["networks"]["u-net"])["tenant"] == "umbrella"


def test_an_admin_names_the_tenant(admin, existing):
    before = snapshot(admin)
    expect_problem(admin, "POST", IMPORT, {"networks": [NET]}, 422, "tenant")
    expect_problem(admin, "POST", IMPORT, {"tenant": "bad tenant", "networks": [NET]}, 400, "tenant")
    # The tenant's objects only, even for an admin.
    expect_problem(admin, "POST", IMPORT, fill({"tenant": "acme", "ports": [port(0, network="$their_net")]},
                                              existing), 422, "ports[0].network")
    assert snapshot(admin) == before
    made = admin.post(IMPORT, fill({"tenant": "acme", "security_groups": [{"name": "adm-sg"}],
                                    "ports": [{"name": "adm-p", "network": "$net", "security_groups": ["adm-sg"]}]},
                                   existing))
    port_ = admin.get("/v1/ports/%s" % made["ports"]["adm-p"])
    assert port_["tenant"] == "acme" and port_["network"] == existing["net"]
    assert admin.get("/v1/security-groups/%s" % made["security_groups"]["adm-sg"])["tenant"] == "acme"


# ---- size and protocol ----------------------------------------------------------------------

def _raw(server, path, headers, body=b""):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for k, val in dict({"Authorization": "Bearer %s" % server.acme, "Content-Type": "application/json"},
                           **headers).items():
            conn.putheader(k, val)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), json.loads(resp.read())
    finally:
        conn.close()


def test_the_body_limit_is_64_mib_here_and_64_kib_elsewhere(server, admin):
    before = snapshot(admin)
    # Over the limit: refused on its Content-Length, before the body is read.
    status, ctype, problem = _raw(server, IMPORT, {"Content-Length": str(64 * 1024 * 1024 + 1)})
    assert (status, ctype, problem["status"]) == (413, "application/problem+json", 413)
    assert str(64 * 1024 * 1024) in problem["detail"]
    # 70 kB is too much for any other route, not for an import (here: a problem in the document).
    padding = json.dumps({"networks": [{"name": "pad", "tags": ["x" * 60] * 32}] * 35}).encode()
    assert 64 * 1024 < len(padding) < 1024 * 1024
    assert _raw(server, "/v1/networks", {"Content-Length": str(len(padding))}, padding)[0] == 413
    status, _, problem = _raw(server, IMPORT, {"Content-Length": str(len(padding))}, padding)
    assert (status, problem["field"]) == (409, "networks[1].name")
    for body, ctype, status in ((b"{", "application/json", 400), (b"[]", "application/json", 400),
                                (b'{"networks": []}', "text/plain", 415)):
        assert _raw(server, IMPORT, {"Content-Type": ctype, "Content-Length": str(len(body))}, body)[0] == status
    assert snapshot(admin) == before


def test_a_document_over_64_kib_is_one_transaction(acme, admin):
    doc = {"networks": [{"name": "big", "cidrs": ["10.63.0.0/22"]}],
           "security_groups": [{"name": "big-sg", "rules": [{"direction": "ingress", "protocol": "tcp",
                                                              "port_range_min": 1000 + i} for i in range(200)]}],
           "ports": [{"name": "big-p%d" % i, "network": "big", "ips": ["10.63.%d.%d" % (i // 250, 1 + i % 250)],
                      "mac": "02:00:00:63:%02x:%02x" % (i // 256, i % 256), "security_groups": ["big-sg"],
                      "tags": ["bulk-%02d-%s" % (t, "x" * 48) for t in range(6)]} for i in range(200)]}
    assert len(json.dumps(doc)) > 64 * 1024
    made = acme.post(IMPORT, doc)
    assert len(made["ports"]) == 200
    ports = [p for p in admin.get("/v1/ports") if p["name"].startswith("big-p")]
    assert len(ports) == 200 and all(p["security_groups"] == [made["security_groups"]["big-sg"]] for p in ports)
    assert len(acme.get("/v1/security-groups/%s" % made["security_groups"]["big-sg"])["rules"]) == 200


# ---- the CLI ----------------------------------------------------------------------------------

def test_cli_import(server, tmp_path):
    tok = server.token("cliimp")
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"networks": [{"name": "n"}], "ports": [{"name": "p", "network": "n"}]}))
    out = run_cli(server, tok, "--json", "import", str(path))
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert set(made) == {"networks", "ports"} and set(made["ports"]) == {"p"}
    out = run_cli(server, tok, "import", str(path))               # the same again: the names are taken
    assert out.returncode == 1 and "409" in out.stderr and "networks[0].name" in out.stderr
    path.write_text(json.dumps({"ports": [{"name": "q", "network": "n"}]}))
    out = run_cli(server, tok, "import", str(path))
    assert out.returncode == 1 and "ports[0].network" in out.stderr   # "n" is not in this document
    path.write_text(json.dumps({"ports": [{"name": "q", "network": made["networks"]["n"]}]}))
    out = run_cli(server, tok, "import", str(path))
    assert out.returncode == 0 and "KIND" in out.stdout and "ports" in out.stdout, out
    path.write_text("{")
    out = run_cli(server, tok, "import", str(path))
    assert out.returncode == 1 and "not JSON" in out.stderr and "Traceback" not in out.stderr
