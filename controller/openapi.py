"""The OpenAPI 3 document of the REST API, built from the server's own route table."""

import re

NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
TAGS = {"type": "array", "maxItems": 32, "items": {"type": "string", "pattern": "^[A-Za-z0-9._:/=@+-]{1,64}$"}}
UUID = {"type": "string", "format": "uuid"}
PAIRS = {"type": "array", "maxItems": 16, "items": {"type": "object", "required": ["ip_address"], "properties": {
    "ip_address": {"type": "string"}, "mac_address": {"type": "string"}}}}

PERSISTENCE = {"type": "object", "nullable": True, "properties": {
    "type": {"type": "string", "enum": ["SOURCE_IP"]},
    "persistence_timeout": {"type": "integer", "minimum": 1, "maximum": 86400}}}
MONITOR = {"type": "object", "nullable": True, "required": ["type"], "properties": {
    "type": {"type": "string", "enum": ["TCP", "HTTP"]},
    "delay": {"type": "number", "minimum": 0.2, "maximum": 3600},
    "timeout": {"type": "number", "minimum": 0.1, "maximum": 3600},
    "max_retries": {"type": "integer", "minimum": 1, "maximum": 10},
    "max_retries_down": {"type": "integer", "minimum": 1, "maximum": 10},
    "url_path": {"type": "string"}, "expected_codes": {"type": "string"}}}
MEMBER_CREATE = {"type": "object", "additionalProperties": False, "required": ["address", "protocol_port"],
                 "properties": {"name": NAME, "address": {"type": "string"},
                                "protocol_port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "weight": {"type": "integer", "minimum": 0, "maximum": 256},
                                "admin_state_up": {"type": "boolean"}}}

SCHEMAS = {
    "Network": {"type": "object", "properties": {
        "id": UUID, "name": NAME, "tenant": NAME,
        "vni": {"type": "integer", "minimum": 1, "maximum": 16777215},
        "cidrs": {"type": "array", "maxItems": 2, "items": {"type": "string"}}, "tags": TAGS}},
    "NetworkCreate": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
        "name": NAME, "tenant": NAME,
        "vni": {"type": "integer", "minimum": 1, "maximum": 16777215},
        "cidrs": {"type": "array", "maxItems": 2, "items": {"type": "string"}}, "tags": TAGS},
        "example": {"name": "blue", "tenant": "acme", "cidrs": ["10.0.0.0/24"]}},
    "Update": {"type": "object", "additionalProperties": False, "properties": {"name": NAME, "tags": TAGS},
               "example": {"tags": ["web"]}},
    "Port": {"type": "object", "properties": {
        "id": UUID, "name": NAME, "tenant": NAME, "network": UUID,
        "mac": {"type": "string"}, "ips": {"type": "array", "items": {"type": "string"}},
        "tags": TAGS, "node": {"type": "string", "nullable": True}, "port_security": {"type": "boolean"},
        "encrypt": {"type": "boolean"},
        "security_groups": {"type": "array", "items": UUID}}},
    "PortCreate": {"type": "object", "additionalProperties": False, "required": ["name", "network"],
                   "properties": {"name": NAME, "network": UUID,
                                  "mac": {"type": "string", "pattern": "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"},
                                  "ips": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
                                  "tags": TAGS, "port_security": {"type": "boolean"}, "encrypt": {"type": "boolean"},
                                  "security_groups": {"type": "array", "maxItems": 32, "items": UUID},
                                  "allowed_address_pairs": PAIRS}},
    "PortUpdate": {"type": "object", "additionalProperties": False, "properties": {
        "name": NAME, "tags": TAGS, "port_security": {"type": "boolean"}, "encrypt": {"type": "boolean"},
        "security_groups": {"type": "array", "maxItems": 32, "items": UUID}, "allowed_address_pairs": PAIRS}},
    "SecurityGroup": {"type": "object", "properties": {
        "id": UUID, "name": NAME, "tenant": NAME, "description": {"type": "string"},
        "criteria": {"type": "object", "nullable": True}, "encrypt": {"type": "boolean"},
        "encrypt_with": {"type": "array", "items": UUID},
        "rules": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}}}},
    "SecurityGroupCreate": {"type": "object", "additionalProperties": False, "required": ["name"],
                            "properties": {"name": NAME, "tenant": NAME,
                                           "description": {"type": "string", "maxLength": 255},
                                           "criteria": {"type": "object", "nullable": True},
                                           "encrypt": {"type": "boolean"},
                                           "encrypt_with": {"type": "array", "maxItems": 32, "items": UUID}},
                            "example": {"name": "web", "tenant": "acme"}},
    "SecurityGroupUpdate": {"type": "object", "additionalProperties": False,
                            "properties": {"name": NAME, "description": {"type": "string", "maxLength": 255},
                                           "criteria": {"type": "object", "nullable": True},
                                           "encrypt": {"type": "boolean"},
                                           "encrypt_with": {"type": "array", "maxItems": 32, "items": UUID}}},
    "Rule": {"type": "object", "properties": {
        "id": UUID, "security_group": UUID, "direction": {"type": "string", "enum": ["ingress", "egress"]},
        "ethertype": {"type": "string", "enum": ["IPv4", "IPv6"]},
        "protocol": {"oneOf": [{"type": "string", "enum": ["tcp", "udp", "icmp", "icmpv6", "any"]},
                               {"type": "integer", "minimum": 0, "maximum": 255}]},
        "port_range_min": {"type": "integer", "nullable": True}, "port_range_max": {"type": "integer", "nullable": True},
        "icmp_type": {"type": "integer", "nullable": True}, "icmp_code": {"type": "integer", "nullable": True},
        "remote_ip_prefix": {"type": "string", "nullable": True},
        "remote_group_id": {"type": "string", "nullable": True},
        "action": {"type": "string", "enum": ["allow", "deny"]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 1000}, "log": {"type": "boolean"}}},
    "RuleCreate": {"type": "object", "additionalProperties": False, "required": ["direction"], "properties": {
        "direction": {"type": "string", "enum": ["ingress", "egress"]},
        "ethertype": {"type": "string", "enum": ["IPv4", "IPv6"]},
        "protocol": {"oneOf": [{"type": "string", "enum": ["tcp", "udp", "icmp", "icmpv6", "any"]},
                               {"type": "integer", "minimum": 0, "maximum": 255}]},
        "port_range_min": {"type": "integer", "minimum": 1, "maximum": 65535},
        "port_range_max": {"type": "integer", "minimum": 1, "maximum": 65535},
        "icmp_type": {"type": "integer", "minimum": 0, "maximum": 255},
        "icmp_code": {"type": "integer", "minimum": 0, "maximum": 255},
        "remote_ip_prefix": {"type": "string"}, "remote_group_id": UUID,
        "action": {"type": "string", "enum": ["allow", "deny"]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 1000}, "log": {"type": "boolean"}},
        "example": {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                    "remote_ip_prefix": "0.0.0.0/0"}},
    "Member": {"type": "object", "properties": {
        "id": UUID, "name": {"type": "string"}, "address": {"type": "string"},
        "protocol_port": {"type": "integer"}, "weight": {"type": "integer"}, "admin_state_up": {"type": "boolean"},
        "operating_status": {"type": "string", "enum": ["ONLINE", "OFFLINE", "NO_MONITOR", "ERROR"]}}},
    "MemberCreate": MEMBER_CREATE,
    "MemberUpdate": {"type": "object", "additionalProperties": False, "properties": {
        "name": NAME, "weight": {"type": "integer", "minimum": 0, "maximum": 256},
        "admin_state_up": {"type": "boolean"}}},
    "LoadBalancer": {"type": "object", "properties": {
        "id": UUID, "name": NAME, "tenant": NAME, "description": {"type": "string"}, "network": UUID,
        "vip_address": {"type": "string"}, "protocol": {"type": "string", "enum": ["tcp", "udp"]},
        "protocol_port": {"type": "integer"}, "session_persistence": PERSISTENCE,
        "health_monitor": MONITOR,
        "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}}}},
    "LoadBalancerCreate": {"type": "object", "additionalProperties": False,
                           "required": ["name", "network", "vip_address", "protocol_port"], "properties": {
                               "name": NAME, "tenant": NAME, "description": {"type": "string", "maxLength": 255},
                               "network": UUID, "vip_address": {"type": "string"},
                               "protocol": {"type": "string", "enum": ["tcp", "udp"]},
                               "protocol_port": {"type": "integer", "minimum": 1, "maximum": 65535},
                               "session_persistence": PERSISTENCE, "health_monitor": MONITOR,
                               "members": {"type": "array", "maxItems": 1000, "items": MEMBER_CREATE}},
                           "example": {"name": "web", "network": "<network id>", "vip_address": "10.0.0.100",
                                       "protocol": "tcp", "protocol_port": 80,
                                       "members": [{"address": "10.0.0.5", "protocol_port": 8080}]}},
    "LoadBalancerUpdate": {"type": "object", "additionalProperties": False, "properties": {
        "name": NAME, "description": {"type": "string", "maxLength": 255},
        "session_persistence": PERSISTENCE, "health_monitor": MONITOR}},
    "LoadBalancerStats": {"type": "object", "properties": {
        "connections": {"type": "integer"}, "switches": {"type": "integer"},
        "members": {"type": "object", "additionalProperties": {"type": "integer"}}}},
    "Node": {"type": "object", "properties": {
        "system_id": {"type": "string"}, "hostname": {"type": "string"}, "encap_ip": {"type": "string"},
        "state": {"type": "string", "enum": ["up", "down"]}, "last_seen": {"type": "integer"},
        "switch": {"type": "object", "nullable": True, "description": "its br-int as dvn sees it (dvn serve only)",
                   "properties": {"connected": {"type": "boolean"}, "synced": {"type": "boolean"},
                                  "pending": {"type": "boolean"}, "flows": {"type": "integer"},
                                  "groups": {"type": "integer"}}}}},
    "Problem": {"type": "object", "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "field": {"type": "string"}}},
}


# POST /v1/import: its items are the create bodies, whose references may be names.
REF = {"type": "string", "description": "the id of one of the tenant's objects, or the name of one of that kind "
                                        "in the document (a name wins over an id)"}


def _import_item(create, refs=(), drop=("tenant",), extra=None):
    """A create schema as an item of a document: no example, without ``drop``, and
    its references ``refs`` (property names) an id or a name of the document."""
    properties = {k: v for k, v in SCHEMAS[create]["properties"].items() if k not in drop}
    for key in refs:  # a reference, or a list of them
        properties[key] = REF if properties[key] is UUID else dict(properties[key], items=REF)
    properties.update(extra or {})
    return {k: v for k, v in dict(SCHEMAS[create], properties=properties).items() if k != "example"}


SCHEMAS["ImportRule"] = _import_item("RuleCreate", refs=("remote_group_id",))
SCHEMAS["Import"] = {
    "type": "object", "additionalProperties": False, "properties": {
        "tenant": NAME,
        "networks": {"type": "array", "items": _import_item("NetworkCreate")},
        "security_groups": {"type": "array", "items": _import_item(
            "SecurityGroupCreate", refs=("encrypt_with",), extra={"rules": {
                "type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/ImportRule"}}})},
        "ports": {"type": "array", "items": _import_item("PortCreate", refs=("network", "security_groups"))},
        "load_balancers": {"type": "array", "items": _import_item("LoadBalancerCreate", refs=("network",))}},
    "example": {"tenant": "acme",
                "networks": [{"name": "blue", "cidrs": ["10.0.0.0/24"]}],
                "security_groups": [{"name": "web", "rules": [
                    {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                     "remote_ip_prefix": "0.0.0.0/0"},
                    {"direction": "ingress", "protocol": "icmp", "remote_group_id": "web"}]}],
                "ports": [{"name": "web1", "network": "blue", "ips": ["10.0.0.11"], "security_groups": ["web"]}],
                "load_balancers": [{"name": "www", "network": "blue", "vip_address": "10.0.0.100",
                                    "protocol_port": 80,
                                    "members": [{"address": "10.0.0.11", "protocol_port": 8080}]}]}}
SCHEMAS["ImportResult"] = {"type": "object", "properties": {
    kind: {"type": "object", "additionalProperties": UUID, "description": "name -> id"}
    for kind in ("networks", "security_groups", "ports", "load_balancers")}}


# (method, path) -> (summary, request schema, success status, response schema, query parameters)
OPERATIONS = {
    ("GET", "/v1/networks"): ("List networks", None, 200, {"type": "array", "items": {"$ref": "#/components/schemas/Network"}}, ["name", "tenant"]),
    ("POST", "/v1/networks"): ("Create a network", "NetworkCreate", 201, "Network", []),
    ("GET", "/v1/networks/{id}"): ("Show a network", None, 200, "Network", []),
    ("PATCH", "/v1/networks/{id}"): ("Rename or retag a network", "Update", 200, "Network", []),
    ("DELETE", "/v1/networks/{id}"): ("Delete a network without ports", None, 204, None, []),
    ("GET", "/v1/ports"): ("List ports", None, 200, {"type": "array", "items": {"$ref": "#/components/schemas/Port"}}, ["name", "network", "tenant"]),
    ("POST", "/v1/ports"): ("Create a port", "PortCreate", 201, "Port", []),
    ("GET", "/v1/ports/{id}"): ("Show a port", None, 200, "Port", []),
    ("PATCH", "/v1/ports/{id}"): ("Rename, retag or change the security of a port", "PortUpdate", 200, "Port", []),
    ("DELETE", "/v1/ports/{id}"): ("Delete a port", None, 204, None, []),
    ("GET", "/v1/security-groups"): ("List security groups", None, 200, {"type": "array", "items": {"$ref": "#/components/schemas/SecurityGroup"}}, ["name", "tenant"]),
    ("POST", "/v1/security-groups"): ("Create a security group", "SecurityGroupCreate", 201, "SecurityGroup", []),
    ("GET", "/v1/security-groups/{id}"): ("Show a security group and its rules", None, 200, "SecurityGroup", []),
    ("PATCH", "/v1/security-groups/{id}"): ("Rename a security group", "SecurityGroupUpdate", 200, "SecurityGroup", []),
    ("DELETE", "/v1/security-groups/{id}"): ("Delete a security group no port uses", None, 204, None, []),
    ("GET", "/v1/security-groups/{id}/members"): ("The ports in the group now", None, 200, {"type": "array", "items": {"type": "object"}}, []),
    ("POST", "/v1/security-groups/{id}/rules"): ("Add a rule", "RuleCreate", 201, "Rule", []),
    ("DELETE", "/v1/security-groups/{id}/rules/{rule_id}"): ("Remove a rule", None, 204, None, []),
    ("GET", "/v1/security-groups/{id}/rules/{rule_id}/stats"): ("Hit counters of a rule, over every switch", None, 200, {"type": "object", "properties": {"packets": {"type": "integer"}, "bytes": {"type": "integer"}, "established_packets": {"type": "integer"}, "switches": {"type": "integer"}}}, []),
    ("GET", "/v1/events"): ("Recent firewall log events", None, 200, {"type": "array", "items": {"type": "object"}}, ["port", "rule", "limit"]),
    ("GET", "/v1/load-balancers"): ("List load balancers", None, 200, {"type": "array", "items": {"$ref": "#/components/schemas/LoadBalancer"}}, ["name", "tenant", "network"]),
    ("POST", "/v1/load-balancers"): ("Create a load balancer (a VIP, its pool and monitor)", "LoadBalancerCreate", 201, "LoadBalancer", []),
    ("GET", "/v1/load-balancers/{id}"): ("Show a load balancer and its members' status", None, 200, "LoadBalancer", []),
    ("PATCH", "/v1/load-balancers/{id}"): ("Change a load balancer's name, affinity or monitor", "LoadBalancerUpdate", 200, "LoadBalancer", []),
    ("DELETE", "/v1/load-balancers/{id}"): ("Delete a load balancer and its members", None, 204, None, []),
    ("GET", "/v1/load-balancers/{id}/members"): ("List a pool's members", None, 200, {"type": "array", "items": {"$ref": "#/components/schemas/Member"}}, []),
    ("POST", "/v1/load-balancers/{id}/members"): ("Add a member (an object) or several (a list)", {"oneOf": [{"$ref": "#/components/schemas/MemberCreate"}, {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/MemberCreate"}}]}, 201, {"oneOf": [{"$ref": "#/components/schemas/Member"}, {"type": "array", "items": {"$ref": "#/components/schemas/Member"}}]}, []),
    ("PATCH", "/v1/load-balancers/{id}/members/{member_id}"): ("Change a member's weight or admin state", "MemberUpdate", 200, "Member", []),
    ("DELETE", "/v1/load-balancers/{id}/members/{member_id}"): ("Remove a member", None, 204, None, []),
    ("GET", "/v1/load-balancers/{id}/stats"): ("New connections per VIP and per member, over every switch", None, 200, "LoadBalancerStats", []),
    ("GET", "/v1/nodes"): ("List nodes (admin)", None, 200, {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}, []),
    ("GET", "/v1/nodes/{id}"): ("Show a node by system-id (admin)", None, 200, "Node", []),
    ("DELETE", "/v1/nodes/{id}"): ("Delete a node that is down (admin)", None, 204, None, []),
    ("POST", "/v1/nodes/{id}/rotate-keys"): ("New pre-shared keys for the node's IPsec tunnels (admin; keys are never returned)", None, 200, {"type": "object", "properties": {"system_id": {"type": "string"}, "rotated": {"type": "integer"}, "versions": {"type": "object"}}}, []),
    ("POST", "/v1/import"): ("Create a tenant's networks, security groups, rules, ports and load balancers from one document, in one transaction (body up to 64 MiB)", "Import", 201, "ImportResult", []),
    ("GET", "/v1/openapi.json"): ("This document", None, 200, {"type": "object"}, []),
}


def _ref(schema):
    if schema is None:
        return None
    return {"$ref": "#/components/schemas/%s" % schema} if isinstance(schema, str) else schema


def document(routes):
    paths = {}
    problem = {"description": "problem", "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    for method, path, _handler in routes:
        summary, request, status, response, query = OPERATIONS[(method, path)]
        op = {"summary": summary, "responses": {"4XX": problem}}
        if path != "/v1/openapi.json":
            op["security"] = [{"bearer": []}]
        params = [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query]
        for name in re.findall(r"\{(\w+)\}", path):
            params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
        if params:
            op["parameters"] = params
        if request:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
        if response is None:
            op["responses"][str(status)] = {"description": "done"}
        else:
            op["responses"][str(status)] = {"description": "ok", "content": {
                "application/json": {"schema": _ref(response)}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.0.3",
            "info": {"title": "dvn", "version": "1", "description": "dvn REST API v1"},
            "paths": paths,
            "components": {"schemas": SCHEMAS,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
