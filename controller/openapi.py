"""The OpenAPI 3.1 document of the REST API, built from the server's own route
table and the same JSON Schemas that check its bodies (controller/api/schemas.py):
what the document accepts, the server accepts.

Statuses: 400 is a body or query the schemas refuse (or not JSON, or nested
too deep); 422 is one they accept that the server cannot act on (it names
an object the caller cannot use, or its fields disagree in a way a schema
cannot say); 409 is a clash with what the store has.
"""

import re

from controller.api.schemas import IMPORT_ITEMS, NAME, QUERY, SCHEMAS, TOKEN_ID, UUID, ref

STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}


def _obj(properties, required=None):
    return {"type": "object", "required": sorted(properties) if required is None else required,
            "properties": properties}


def _nullable(schema):
    return dict(schema, type=[schema["type"], "null"])


def _list(schema):
    return {"type": "array", "items": schema}


# What the server answers (the views of controller/api/*.py).
VIEWS = {
    "Network": _obj({"id": UUID, "name": NAME, "tenant": STRING, "vni": INTEGER, "cidrs": _list(STRING),
                     "tags": _list(STRING)}),
    "Port": _obj({"id": UUID, "name": NAME, "tenant": STRING, "network": UUID, "mac": STRING,
                  "ips": _list(STRING), "tags": _list(STRING), "node": _nullable(STRING),
                  "port_security": BOOLEAN, "encrypt": BOOLEAN, "security_groups": _list(UUID),
                  "allowed_address_pairs": _list(_obj({"mac_address": STRING, "ip_address": STRING}))}),
    "Rule": _obj({"id": UUID, "security_group": UUID, "direction": {"enum": ["ingress", "egress"]},
                  "ethertype": {"enum": ["IPv4", "IPv6"]}, "protocol": {"type": ["string", "integer"]},
                  "port_range_min": _nullable(INTEGER), "port_range_max": _nullable(INTEGER),
                  "icmp_type": _nullable(INTEGER), "icmp_code": _nullable(INTEGER),
                  "remote_ip_prefix": _nullable(STRING), "remote_group_id": _nullable(STRING),
                  "action": {"enum": ["allow", "deny"]}, "priority": INTEGER, "log": BOOLEAN,
                  "alert": BOOLEAN}),
    "SecurityGroup": _obj({"id": UUID, "name": NAME, "tenant": STRING, "description": STRING,
                           "criteria": {"type": ["object", "null"]}, "encrypt": BOOLEAN,
                           "encrypt_with": _list(UUID), "rules": _list(ref("Rule"))}),
    "GroupMember": _obj({"id": UUID, "name": STRING}),
    "RuleStats": _obj({"packets": INTEGER, "bytes": INTEGER, "established_packets": INTEGER,
                       "switches": INTEGER}, required=[]),
    "Event": {"type": "object", "description": "a firewall log event"},
    "Member": _obj({"id": UUID, "name": STRING, "address": STRING, "protocol_port": INTEGER, "weight": INTEGER,
                    "admin_state_up": BOOLEAN,
                    "operating_status": {"enum": ["ONLINE", "OFFLINE", "NO_MONITOR", "ERROR"]}}),
    "LoadBalancer": _obj({"id": UUID, "name": NAME, "tenant": STRING, "description": STRING, "network": UUID,
                          "vip_address": STRING, "protocol": {"enum": ["tcp", "udp"]}, "protocol_port": INTEGER,
                          "session_persistence": {"type": ["object", "null"]},
                          "health_monitor": {"type": ["object", "null"]}, "members": _list(ref("Member"))}),
    "LoadBalancerStats": _obj({"connections": INTEGER, "switches": INTEGER,
                               "members": {"type": "object", "additionalProperties": INTEGER}}, required=[]),
    "Node": _obj({"system_id": STRING, "hostname": STRING, "encap_ip": STRING, "state": {"enum": ["up", "down"]},
                  "last_seen": INTEGER,
                  "switch": {"type": ["object", "null"], "description": "its br-int as dvn sees it (dvn serve only)",
                             "properties": {"connected": BOOLEAN,
                                            "state": {"enum": ["connecting", "waiting for node", "resyncing",
                                                               "in sync", "failed"]},
                                            "synced": BOOLEAN, "pending": BOOLEAN,
                                            "flows": INTEGER, "groups": INTEGER, "lanes": INTEGER}}},
                 required=["system_id", "hostname", "encap_ip", "state", "last_seen"]),
    "JoinToken": _obj({"id": TOKEN_ID, "node": _nullable(STRING), "description": STRING, "created_at": STRING,
                       "expires_at": STRING, "uses": INTEGER, "used": INTEGER, "revoked": BOOLEAN,
                       "usable": BOOLEAN}),
    "JoinTokenCreated": _obj({"id": TOKEN_ID, "node": _nullable(STRING), "description": STRING,
                              "created_at": STRING, "expires_at": STRING, "uses": INTEGER, "used": INTEGER,
                              "revoked": BOOLEAN, "usable": BOOLEAN,
                              "token": dict(STRING, description="the token (id.secret): shown this once"),
                              "ca_hash": dict(STRING, description="sha256 of the CA's public key, for "
                                                                  "`dvn join --ca-hash`")},
                             required=["id", "token", "expires_at", "uses", "used", "revoked"]),
    "CaCertificate": _obj({"certificate": dict(STRING, description="PEM"),
                           "ca_hash": dict(STRING, description="sha256:<hex> of the CA's SubjectPublicKeyInfo "
                                                               "(DER)")}),
    "Enrolled": _obj({"node": STRING, "certificate": STRING, "ca_certificate": STRING, "serial": STRING,
                      "fingerprint": STRING}),
    "Enrollment": _obj({"node": STRING, "admitted": BOOLEAN,
                        "state": {"enum": ["up", "down", None],
                                  "description": "the node's OVSDB session as dvn records it (null: never up)"}}),
    "NodeCertificate": _obj({"node": STRING, "serial": STRING, "fingerprint": STRING, "not_after": STRING,
                             "issued_at": STRING, "token": STRING, "revoked": BOOLEAN}),
    "RevokedNode": _obj({"node": STRING, "revoked": _list(STRING), "keys_deleted": INTEGER}),
    "RotatedKeys": _obj({"system_id": STRING, "rotated": INTEGER,
                         "versions": {"type": "object", "additionalProperties": INTEGER}}),
    "AlertWebhook": _obj({"id": UUID, "tenant": STRING, "url": STRING}),
    "AuditRecord": _obj({"seq": INTEGER, "time": dict(INTEGER, description="ms since the epoch"),
                         "actor": dict(STRING, description="admin, tenant NAME, or (public): enrollments"),
                         "tenant": STRING, "method": STRING, "path": STRING, "status": INTEGER,
                         "detail": dict(STRING, description="the object's id, or the problem's title and field")}),
    "ImportResult": {"type": "object", "additionalProperties": False, "properties": {
        kind: {"type": "object", "additionalProperties": UUID, "description": "name -> id"} for kind in IMPORT_ITEMS}},
    "Problem": _obj({"type": STRING, "title": STRING, "status": INTEGER, "detail": STRING,
                     "field": dict(STRING, description="the field at fault: its path in the body, or a query "
                                                       "parameter")},
                    required=["type", "title", "status", "detail"]),
}

# (method, path) -> (summary, request schema, success status, response schema, query parameters,
#                    the statuses besides those every operation of its kind can give)
OPERATIONS = {
    ("GET", "/v1/networks"): ("List networks", None, 200, _list(ref("Network")), ["name", "tenant"], ()),
    ("POST", "/v1/networks"): ("Create a network", "NetworkCreate", 201, "Network", [], (409, 422)),
    ("GET", "/v1/networks/{id}"): ("Show a network", None, 200, "Network", [], ()),
    ("PATCH", "/v1/networks/{id}"): ("Rename or retag a network", "NetworkUpdate", 200, "Network", [], (409,)),
    ("DELETE", "/v1/networks/{id}"): ("Delete a network without ports or load balancers", None, 204, None, [],
                                      (409,)),
    ("GET", "/v1/ports"): ("List ports", None, 200, _list(ref("Port")), ["name", "network", "tenant"], ()),
    ("POST", "/v1/ports"): ("Create a port", "PortCreate", 201, "Port", [], (409, 422)),
    ("GET", "/v1/ports/{id}"): ("Show a port", None, 200, "Port", [], ()),
    ("PATCH", "/v1/ports/{id}"): ("Rename, retag or change the security of a port", "PortUpdate", 200, "Port", [],
                                  (409, 422)),
    ("DELETE", "/v1/ports/{id}"): ("Delete a port", None, 204, None, [], (409,)),
    ("GET", "/v1/security-groups"): ("List security groups", None, 200, _list(ref("SecurityGroup")),
                                     ["name", "tenant"], ()),
    ("POST", "/v1/security-groups"): ("Create a security group", "SecurityGroupCreate", 201, "SecurityGroup", [],
                                      (409, 422)),
    ("GET", "/v1/security-groups/{id}"): ("Show a security group and its rules", None, 200, "SecurityGroup", [],
                                          ()),
    ("PATCH", "/v1/security-groups/{id}"): ("Change a security group", "SecurityGroupUpdate", 200,
                                            "SecurityGroup", [], (409, 422)),
    ("DELETE", "/v1/security-groups/{id}"): ("Delete a security group nothing uses", None, 204, None, [], (409,)),
    ("GET", "/v1/security-groups/{id}/members"): ("The ports in the group now", None, 200, _list(ref("GroupMember")),
                                                  [], ()),
    ("POST", "/v1/security-groups/{id}/rules"): ("Add a rule", "RuleCreate", 201, "Rule", [], (409, 422)),
    ("DELETE", "/v1/security-groups/{id}/rules/{rule_id}"): ("Remove a rule", None, 204, None, [], (409,)),
    ("GET", "/v1/security-groups/{id}/rules/{rule_id}/stats"): (
        "Hit counters of a rule, over every switch (dvn serve only: 503 without the controller)", None, 200,
        "RuleStats", [], (503,)),
    ("GET", "/v1/events"): ("Recent firewall log events (dvn serve only: 503 without the controller)", None, 200,
                            _list(ref("Event")), ["port", "rule", "limit"], (503,)),
    ("GET", "/v1/load-balancers"): ("List load balancers", None, 200, _list(ref("LoadBalancer")),
                                    ["name", "tenant", "network"], ()),
    ("POST", "/v1/load-balancers"): ("Create a load balancer (a VIP, its pool and monitor)", "LoadBalancerCreate",
                                     201, "LoadBalancer", [], (409, 422)),
    ("GET", "/v1/load-balancers/{id}"): ("Show a load balancer and its members' status", None, 200, "LoadBalancer",
                                         [], ()),
    ("PATCH", "/v1/load-balancers/{id}"): ("Change a load balancer's name, affinity or monitor",
                                           "LoadBalancerUpdate", 200, "LoadBalancer", [], (409, 422)),
    ("DELETE", "/v1/load-balancers/{id}"): ("Delete a load balancer and its members", None, 204, None, [], (409,)),
    ("GET", "/v1/load-balancers/{id}/members"): ("List a pool's members", None, 200, _list(ref("Member")), [], ()),
    ("POST", "/v1/load-balancers/{id}/members"): (
        "Add a member (an object: 201 with it) or several (a list: 201 with them)", "MembersCreate", 201,
        {"anyOf": [ref("Member"), _list(ref("Member"))]}, [], (409, 422)),
    ("PATCH", "/v1/load-balancers/{id}/members/{member_id}"): ("Change a member's name, weight or admin state",
                                                               "MemberUpdate", 200, "Member", [], (409,)),
    ("DELETE", "/v1/load-balancers/{id}/members/{member_id}"): ("Remove a member", None, 204, None, [], (409,)),
    ("GET", "/v1/load-balancers/{id}/stats"): (
        "New connections per VIP and per member, over every switch (dvn serve only: 503 without the controller)",
        None, 200, "LoadBalancerStats", [], (503,)),
    ("GET", "/v1/nodes"): ("List nodes (admin)", None, 200, _list(ref("Node")), [], (403,)),
    ("GET", "/v1/nodes/{id}"): ("Show a node by system-id (admin)", None, 200, "Node", [], (403,)),
    ("DELETE", "/v1/nodes/{id}"): ("Delete a node that is down (admin)", None, 204, None, [], (403, 409)),
    ("POST", "/v1/nodes/{id}/rotate-keys"): (
        "New pre-shared keys for the node's IPsec tunnels (admin; keys are never returned)", None, 200,
        "RotatedKeys", [], (403, 409)),
    ("POST", "/v1/nodes/{id}/revoke"): (
        "Revoke a node: every certificate issued to it is refused from now on, its sessions end, its tunnels go "
        "and the pre-shared keys of its pairs are deleted (admin)", None, 200, "RevokedNode",
        [], (403,)),
    ("GET", "/v1/certificates"): ("The certificates dvn's CA issued to admitted nodes (admin)", None, 200,
                                  _list(ref("NodeCertificate")), [], (403,)),
    ("GET", "/v1/join-tokens"): ("List join tokens, without their secrets (admin)", None, 200,
                                 _list(ref("JoinToken")), [], (403,)),
    ("POST", "/v1/join-tokens"): ("Create a join token; its secret is in this answer only (admin)",
                                  "JoinTokenCreate", 201, "JoinTokenCreated", [], (403,)),
    ("GET", "/v1/join-tokens/{id}"): ("Show a join token (admin)", None, 200, "JoinToken", [], (403,)),
    ("POST", "/v1/join-tokens/{id}/revoke"): ("Revoke a join token: it admits no more nodes (admin)", None, 200,
                                              "JoinToken", [], (403,)),
    ("GET", "/v1/ca"): ("dvn's CA certificate and its hash (no token needed; check the hash against one you "
                        "trust before you trust the certificate)", None, 200, "CaCertificate", [], (503,)),
    ("POST", "/v1/enroll"): (
        "Admit a node: a join token and the node's certificate request give its certificate from dvn's CA (no "
        "bearer token: the join token is in the body)", "Enroll", 201, "Enrolled", [], (403, 422, 503)),
    ("GET", "/v1/enrollment"): (
        "The calling node's admission, known by its TLS client certificate (dvn serve --tls)", None, 200,
        "Enrollment", [], (401, 403)),
    ("POST", "/v1/import"): (
        "Create a tenant's networks, security groups, rules, ports and load balancers from one document, in one "
        "transaction (body up to 64 MiB)", "Import", 201, "ImportResult", [], (409, 422)),
    ("GET", "/v1/openapi.json"): ("This document", None, 200, {"type": "object"}, [], ()),
    ("GET", "/v1/alert-webhooks"): ("List alert webhooks (a tenant: its own)", None, 200,
                                    _list(ref("AlertWebhook")), [], ()),
    ("POST", "/v1/alert-webhooks"): ("Set the tenant's alert webhook: its rules with `alert` POST their "
                                     "events there, once per connection (5-tuple) a minute", "AlertWebhookCreate",
                                     201, "AlertWebhook", [], (409, 422)),
    ("DELETE", "/v1/alert-webhooks/{id}"): ("Remove an alert webhook", None, 204, None, [], ()),
    ("POST", "/v1/trace"): ("Walk a packet over the flows dvn installed on its node and, through the tunnel, "
                            "on the receiving node: its path in dvn's terms (firewall decisions by group and "
                            "rule, the load-balancer member, the tunnel and identity), and where it was "
                            "delivered or why it was dropped", "Trace", 200, {"type": "object"}, [],
                            (404, 422, 503)),
    ("GET", "/v1/audit"): ("The audit log: every API write (who, what, when, result), newest last; an admin sees "
                           "all, a tenant its own calls' (the newest 10,000 are kept)", None, 200, _list(ref("AuditRecord")),
                           ["after", "limit"], ()),
    ("GET", "/metrics"): ("The running controller's metrics in Prometheus' text format: switches, lanes and nodes "
                          "in sync, flows and groups per switch, reconcile latency, bundle sizes, API requests, "
                          "firewall events, load-balancer members' health, IPsec tunnels (admin)",
                          None, 200, "text/plain", [], (403, 404)),
}
WHY = {400: "the body or a query parameter is not what this document describes (the problem names it)",
       401: "no token, or an unknown one", 403: "the caller may not do this",
       404: "no such object, or not the caller's", 409: "it clashes with what the store has (the problem names "
                                                          "the field)",
       413: "the body is too large", 415: "the body is not application/json",
       422: "well formed, but it names an object the caller cannot use, or its fields disagree (the problem "
            "names the field)",
       503: "the store, or the running controller, is not there"}
WRITES = ("POST", "PATCH", "DELETE")


def _ref(schema):
    if schema is None:
        return None
    return ref(schema) if isinstance(schema, str) else schema


PUBLIC = ("/v1/openapi.json", "/v1/ca", "/v1/enroll", "/v1/enrollment")   # no bearer token
PATH_PARAMETERS = (("/v1/nodes", STRING), ("/v1/join-tokens", TOKEN_ID))   # else an id (a node: its system-id)


def _statuses(method, path, request, query, extra):
    out = set(extra)
    if path not in PUBLIC:
        out.add(401)
    if request or query:
        out.add(400)
    if request:
        out.update((413, 415))
    if "{" in path:
        out.add(404)
    if method in WRITES:
        out.update((409, 503))  # the store may refuse the transaction, or be away
    return sorted(out)


def _link(paths):
    """OpenAPI links: a create's answer gives the {id} of the operations under it."""
    for path, ops in paths.items():
        made = ops.get("post", {}).get("responses", {}).get("201")
        if made is None or path == "/v1/import":
            continue
        param = {"members": "member_id", "rules": "rule_id"}.get(path.rpartition("/")[2], "id")
        links = {}
        for other, other_ops in paths.items():
            if other.startswith(path + "/{%s}" % param):
                for method, op in other_ops.items():
                    values = {name: "$request.path.%s" % name for name in re.findall(r"\{(\w+)\}", path)}
                    values[param] = "$response.body#/id"
                    links[op["operationId"].replace(" ", "").replace("/", "_").replace("{", "").replace("}", "")] = {
                        "operationId": op["operationId"], "parameters": values}
        if links and "members" not in path:  # (a list of members has no one id)
            made["links"] = links


def document(routes):
    paths = {}
    for method, path, _handler in routes:
        summary, request, status, response, query, extra = OPERATIONS[(method, path)]
        op = {"summary": summary, "operationId": "%s %s" % (method.lower(), path), "responses": {}}
        if path not in PUBLIC:
            op["security"] = [{"bearer": []}]
        params = [{"name": q, "in": "query", "required": False, "schema": QUERY[q]} for q in query]
        for name in re.findall(r"\{(\w+)\}", path):
            schema = next((s for prefix, s in PATH_PARAMETERS if path.startswith(prefix + "/")), UUID)
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        if params:
            op["parameters"] = params
        if request:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
        if response is None:
            op["responses"][str(status)] = {"description": "done"}
        elif response == "text/plain":
            op["responses"][str(status)] = {"description": "ok", "content": {"text/plain": {"schema": STRING}}}
        else:
            op["responses"][str(status)] = {"description": "ok", "content": {
                "application/json": {"schema": _ref(response)}}}
        for code in _statuses(method, path, request, query, extra):
            op["responses"][str(code)] = {"description": WHY[code], "content": {
                "application/problem+json": {"schema": ref("Problem")}}}
        paths.setdefault(path, {})[method.lower()] = op
    _link(paths)
    return {"openapi": "3.1.0",
            "info": {"title": "dvn", "version": "1", "description": "dvn REST API v1. " + __doc__.split("\n\n")[1]},
            "paths": paths,
            "components": {"schemas": dict({k: v for k, v in SCHEMAS.items() if k != "ImportTop"}, **VIEWS),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
