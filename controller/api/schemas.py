"""The JSON Schemas (Draft 2020-12) of the API: every body the server takes,
the query parameters, and what it answers.

The server checks each body against its schema before anything else (a
violation is 400, naming the field), and ``controller/openapi.py`` publishes
the same schemas as the OpenAPI document, so the two cannot drift. What a
schema cannot say (the store, the caller, how two fields compare) is checked
in code: ``controller/validation.py``, ``controller/api/context.py``.
"""

import json
import re

import jsonschema
import jsonschema_rs

from controller import netpatterns
from controller.validation import VNI_MAX, VNI_MIN, invalid

REF = "#/components/schemas/%s"


def ref(name):
    return {"$ref": REF % name}


def null_or(schema):
    return {"anyOf": [{"type": "null"}, schema]}


def strings(pattern, description, **more):
    return dict({"type": "string", "pattern": pattern, "description": description}, **more)


NAME = strings(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
               "1 to 64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
TAGS = {"type": "array", "maxItems": 32, "description": "at most 32 tags (repeats count once)",
        "items": strings(r"^[A-Za-z0-9._:/=@+-]{1,64}$", "a tag: 1 to 64 letters, digits or ._:/=@+-")}
UUID = strings(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", "an id",
               format="uuid")
MAC = dict(strings(r"^[0-9a-fA-F][02468aceACE](:[0-9a-fA-F]{2}){5}$",
                   "a unicast MAC address, not all zeros, like 02:00:00:00:00:01"),
           **{"not": {"pattern": "^00(:00){5}$"}})
IPV4 = {"type": "string", "format": "ipv4", "description": "an IPv4 address"}
IP = {"anyOf": [IPV4, {"type": "string", "format": "ipv6"}], "description": "an IPv4 or IPv6 address"}
DESCRIPTION = {"type": "string", "maxLength": 255}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
REFERENCE = dict(NAME, description="the id of one of the tenant's objects, or the name of one of that kind in "
                                   "the document (a name wins over an id)")  # (an id has a name's form)

# Networks, by pattern (netpatterns): the schemas refer to these by name.
NETWORK_PATTERNS = {
    "IPv4Network": ("an IPv4 network with a prefix of at most 30 bits, no host bits set: 10.0.0.0/24",
                    netpatterns.ipv4_network(0, 30)),
    "IPv6Network": ("an IPv6 network with a prefix of at most 126 bits, no host bits set: fd00:1::/64",
                    netpatterns.ipv6_network(0, 126)),
    "IPv4Prefix": ("an IPv4 prefix, no host bits set: 10.0.0.0/8, 10.0.0.5/32", netpatterns.ipv4_network(0, 32)),
    "IPv6Prefix": ("an IPv6 prefix, no host bits set: fd00::/8, ::/0", netpatterns.ipv6_network(0, 128)),
    "IPv4WithPrefix": ("an IPv4 address with a prefix: 10.0.0.5/24", netpatterns.ipv4_loose()),
    "IPv6WithPrefix": ("an IPv6 address with a prefix: fd00::5/64", netpatterns.ipv6_loose()),
}
SCHEMAS = {name: strings(pattern, description) for name, (description, pattern) in NETWORK_PATTERNS.items()}

CIDRS = {"type": "array", "maxItems": 2, "description": "at most one IPv4 and one IPv6 network",
         "items": {"anyOf": [ref("IPv4Network"), ref("IPv6Network")],
                   "description": "a network with a prefix, no host bits set: 10.0.0.0/24 (prefix at most 30), "
                                  "fd00:1::/64 (at most 126)"},
         "allOf": [{"contains": ref("IPv4Network"), "minContains": 0, "maxContains": 1,
                    "description": "at most one IPv4 network"},
                   {"contains": ref("IPv6Network"), "minContains": 0, "maxContains": 1,
                    "description": "at most one IPv6 network"}]}
PAIRS = {"type": "array", "maxItems": 16, "items": {  # (propertyNames: a stray key names the pair)
    "type": "object", "propertyNames": {"enum": ["ip_address", "mac_address"]}, "required": ["ip_address"],
    "properties": {
        "ip_address": {"anyOf": [IP, ref("IPv4WithPrefix"), ref("IPv6WithPrefix")],
                       "description": "an IP address or an address with a prefix"},
        "mac_address": MAC}}}


def _not(description):
    """A schema nothing matches: a field the other fields rule out."""
    return {"not": {}, "description": description}


# ---- networks and ports -------------------------------------------------------------
SCHEMAS.update({
    "NetworkCreate": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
        "name": NAME, "tenant": NAME, "vni": {"type": "integer", "minimum": VNI_MIN, "maximum": VNI_MAX},
        "cidrs": CIDRS, "tags": TAGS},
        "example": {"name": "blue", "tenant": "acme", "cidrs": ["10.0.0.0/24"]}},
    "NetworkUpdate": {"type": "object", "additionalProperties": False, "properties": {"name": NAME, "tags": TAGS},
                      "example": {"tags": ["web"]}},
    "PortCreate": {"type": "object", "additionalProperties": False, "required": ["name", "network"],
                   "properties": {
                       "name": NAME, "network": UUID, "mac": MAC,
                       "ips": {"type": "array", "maxItems": 16, "uniqueItems": True, "items": IP},
                       "tags": TAGS, "port_security": {"type": "boolean"}, "encrypt": {"type": "boolean"},
                       "security_groups": {"type": "array", "maxItems": 32, "items": UUID},
                       "allowed_address_pairs": PAIRS}},
})
SCHEMAS["PortUpdate"] = {"type": "object", "additionalProperties": False, "properties": {
    k: SCHEMAS["PortCreate"]["properties"][k]
    for k in ("name", "tags", "port_security", "encrypt", "security_groups", "allowed_address_pairs")}}

# ---- security groups, rules and dynamic criteria ---------------------------------------
CRITERIA_DEPTH = 8  # flows.groups.MAX_DEPTH: criteria nest at most this deep


def _criteria(level):
    """Criteria at ``level`` of nesting: one key; and, or and not only above the deepest."""
    text = {"type": "string", "minLength": 1, "maxLength": 64}
    tags = {"type": "array", "minItems": 1, "maxItems": 32, "items": text}
    props = {"name": dict(text, description="a shell glob of port names"),
             "network": dict(text, description="a network id"), "tags_any": tags, "tags_all": tags}
    if level < CRITERIA_DEPTH:
        inner = ref("Criteria%d" % (level + 1))
        props.update({"and": {"type": "array", "minItems": 1, "maxItems": 32, "items": inner},
                      "or": {"type": "array", "minItems": 1, "maxItems": 32, "items": inner}, "not": inner})
    return {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
            "properties": props, "description": "one of: %s" % ", ".join(props)}


for _level in range(CRITERIA_DEPTH + 1):
    SCHEMAS["Criteria%d" % _level] = _criteria(_level)
SCHEMAS["Criteria0"]["description"] = (
    "a dynamic group's criteria (at most 4096 characters of JSON, nested at most %d deep): "
    "{name: glob}, {tags_any: [...]}, {tags_all: [...]}, {network: id}, {and: [...]}, {or: [...]}, {not: ...}"
    % CRITERIA_DEPTH)

GROUP_PROPERTIES = {"name": NAME, "tenant": NAME, "description": DESCRIPTION, "criteria": null_or(ref("Criteria0")),
                    "encrypt": {"type": "boolean"},
                    "encrypt_with": {"type": "array", "maxItems": 32, "items": UUID}}
SCHEMAS["SecurityGroupCreate"] = {"type": "object", "additionalProperties": False, "required": ["name"],
                                  "properties": GROUP_PROPERTIES, "example": {"name": "web", "tenant": "acme"}}
SCHEMAS["SecurityGroupUpdate"] = {"type": "object", "additionalProperties": False, "properties": {
    k: v for k, v in GROUP_PROPERTIES.items() if k != "tenant"}}


def _when(condition, then):
    return {"if": condition, "then": then}


def _is(field, values):
    return {"properties": {field: {"enum": values}}, "required": [field]}


def _given(field):
    return {"properties": {field: {"not": {"type": "null"}}}, "required": [field]}


TCP_UDP, ICMP_ANY = ["tcp", "udp", 6, 17], ["icmp", "icmpv6", 1, 58]
PORTS_NULL = {key: {"type": "null", "description": "port ranges need protocol tcp or udp"}
              for key in ("port_range_min", "port_range_max")}
ICMP_NULL = {key: {"type": "null", "description": "ICMP type and code need protocol icmp or icmpv6"}
             for key in ("icmp_type", "icmp_code")}
SCHEMAS["RuleCreate"] = {
    "type": "object", "additionalProperties": False, "required": ["direction"],
    # (before the properties: a problem names the field these rule out first; few ifs, since each
    # costs every rule of a large document its time)
    "allOf": [
        {"if": _is("ethertype", ["IPv6"]),
         "then": {"properties": {"protocol": {"not": {"enum": ["icmp", 1]}, "description": "ICMP with IPv6 is icmpv6"},
                                 "remote_ip_prefix": null_or(ref("IPv6Prefix"))}},
         "else": {"properties": {"protocol": {"not": {"enum": ["icmpv6", 58]},
                                              "description": "icmpv6 needs ethertype IPv6"},
                                 "remote_ip_prefix": null_or(ref("IPv4Prefix"))}}},
        {"if": _is("protocol", TCP_UDP), "then": {"properties": ICMP_NULL},
         "else": {"properties": PORTS_NULL, "if": _is("protocol", ICMP_ANY), "else": {"properties": ICMP_NULL}}},
    ],
    "dependentSchemas": {
        "port_range_max": _when(_given("port_range_max"), {"required": ["port_range_min"], "properties": {
            "port_range_min": {"type": "integer", "description": "port_range_max needs port_range_min"}}}),
        "icmp_code": _when({"not": _given("icmp_type")}, {"properties": {
            "icmp_code": {"type": "null", "description": "icmp_code needs icmp_type"}}}),
        "remote_group_id": _when(_given("remote_group_id"), {"properties": {
            "remote_ip_prefix": {"type": "null", "description": "give remote_ip_prefix or remote_group_id, not both"}}}),
    },
    "properties": {
        "direction": {"enum": ["ingress", "egress"]},
        "ethertype": {"enum": ["IPv4", "IPv6"], "description": "IPv4 unless given"},
        "protocol": {"anyOf": [{"enum": ["tcp", "udp", "icmp", "icmpv6", "any", None]},
                               {"type": "integer", "minimum": 0, "maximum": 255}],
                     "description": "tcp, udp, icmp, icmpv6, any (or null) or a number from 0 to 255"},
        "port_range_min": null_or(PORT), "port_range_max": null_or(PORT),
        "icmp_type": null_or({"type": "integer", "minimum": 0, "maximum": 255}),
        "icmp_code": null_or({"type": "integer", "minimum": 0, "maximum": 255}),
        "remote_ip_prefix": {"anyOf": [{"type": "null"}, ref("IPv4Prefix"), ref("IPv6Prefix")],
                             "description": "a network of the rule's ethertype"},
        "remote_group_id": null_or(UUID),
        "action": {"enum": ["allow", "deny"]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 1000}, "log": {"type": "boolean"},
        "alert": {"type": "boolean", "description": "its packets raise an alert to the tenant's webhook, once "
                                                    "per connection (5-tuple) a minute (logged too)"}},
    "example": {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                "remote_ip_prefix": "0.0.0.0/0"}}

# ---- load balancers -----------------------------------------------------------------
PERSISTENCE = {"type": ["object", "null"], "propertyNames": {"enum": ["type", "persistence_timeout"]},
               "required": ["type"], "properties": {
                   "type": {"const": "SOURCE_IP", "description": "the only session persistence is SOURCE_IP"},
                   "persistence_timeout": {"type": "integer", "minimum": 1, "maximum": 86400}}}
MONITOR = {"type": ["object", "null"], "additionalProperties": False, "required": ["type"],
           "description": "a TCP or HTTP health monitor; its timeout is at most its delay",
           "allOf": [_when(_is("type", ["TCP"]), {"properties": {
               "url_path": _not("url_path and expected_codes are for HTTP monitors"),
               "expected_codes": _not("url_path and expected_codes are for HTTP monitors")}})],
           "properties": {
               "type": {"enum": ["TCP", "HTTP"]},
               "delay": {"type": "number", "minimum": 0.2, "maximum": 3600},
               "timeout": {"type": "number", "minimum": 0.1, "maximum": 3600},
               "max_retries": {"type": "integer", "minimum": 1, "maximum": 10},
               "max_retries_down": {"type": "integer", "minimum": 1, "maximum": 10},
               "url_path": strings("^/[^\\u0000-\\u0020\\u007f]{0,254}$", "a path starting with / (no spaces)"),
               "expected_codes": strings(r"^[1-5][0-9][0-9]((-[1-5][0-9][0-9])|(,[1-5][0-9][0-9])*)$",
                                         "like 200, 200,202 or 200-204")}}
MEMBER_PROPERTIES = {"name": NAME, "address": IPV4, "protocol_port": PORT,
                     "weight": {"type": "integer", "minimum": 0, "maximum": 256}, "admin_state_up": {"type": "boolean"}}
SCHEMAS.update({
    "MemberCreate": {"type": "object", "additionalProperties": False, "required": ["address", "protocol_port"],
                     "properties": MEMBER_PROPERTIES},
    "MemberUpdate": {"type": "object", "additionalProperties": False, "properties": {
        k: MEMBER_PROPERTIES[k] for k in ("name", "weight", "admin_state_up")}},
    "MemberList": {"type": "array", "maxItems": 1000, "items": ref("MemberCreate")},
    "LoadBalancerCreate": {
        "type": "object", "additionalProperties": False,
        "required": ["name", "network", "vip_address", "protocol_port"],
        "allOf": [_when(_is("protocol", ["udp"]), {"properties": {"health_monitor": {
            "type": "null", "description": "health monitors connect over TCP: a udp load balancer takes none"}}})],
        "properties": {"name": NAME, "tenant": dict(NAME, description="its network's tenant"),
                       "description": DESCRIPTION, "network": UUID, "vip_address": IPV4,
                       "protocol": {"enum": ["tcp", "udp"]}, "protocol_port": PORT,
                       "session_persistence": PERSISTENCE, "health_monitor": MONITOR,
                       "members": {"type": "array", "maxItems": 1000, "items": ref("MemberCreate")}},
        "example": {"name": "web", "network": "<network id>", "vip_address": "10.0.0.100", "protocol": "tcp",
                    "protocol_port": 80, "members": [{"address": "10.0.0.5", "protocol_port": 8080}]}},
    "LoadBalancerUpdate": {"type": "object", "additionalProperties": False, "properties": {
        "name": NAME, "description": DESCRIPTION, "session_persistence": PERSISTENCE, "health_monitor": MONITOR}},
})
SCHEMAS["MembersCreate"] = {"anyOf": [ref("MemberCreate"), ref("MemberList")],
                            "description": "one member (an object) or several (a list)"}


# ---- POST /v1/import: its items are the create bodies, whose references may be names ------
def _import_item(create, refs=(), extra=None):
    schema = {k: v for k, v in SCHEMAS[create].items() if k != "example"}
    properties = {k: v for k, v in schema["properties"].items() if k != "tenant"}
    for key in refs:  # a reference, or a list of them
        properties[key] = REFERENCE if properties[key] is UUID else dict(properties[key], items=REFERENCE)
    properties.update(extra or {})
    return dict(schema, properties=properties)


SCHEMAS["ImportRule"] = _import_item("RuleCreate", extra={"remote_group_id": null_or(REFERENCE)})
SCHEMAS["ImportNetwork"] = _import_item("NetworkCreate")
SCHEMAS["ImportSecurityGroup"] = _import_item("SecurityGroupCreate", refs=("encrypt_with",), extra={
    "rules": {"type": "array", "items": ref("ImportRule"), "description": "at most 1000 rules (409 beyond)"}})
SCHEMAS["ImportPort"] = _import_item("PortCreate", refs=("network", "security_groups"))
SCHEMAS["ImportLoadBalancer"] = _import_item("LoadBalancerCreate", refs=("network",))
IMPORT_ITEMS = {"networks": "ImportNetwork", "security_groups": "ImportSecurityGroup", "ports": "ImportPort",
                "load_balancers": "ImportLoadBalancer"}
SCHEMAS["Import"] = {
    "type": "object", "additionalProperties": False,
    "anyOf": [{"required": [kind], "properties": {kind: {"minItems": 1}}} for kind in IMPORT_ITEMS],
    "description": "creates something: at least one network, security group, port or load balancer",
    "properties": dict({"tenant": NAME}, **{kind: {"type": "array", "items": ref(item)}
                                            for kind, item in IMPORT_ITEMS.items()}),
    "example": {"tenant": "acme", "networks": [{"name": "blue", "cidrs": ["10.0.0.0/24"]}],
                "security_groups": [{"name": "web", "rules": [
                    {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                     "remote_ip_prefix": "0.0.0.0/0"},
                    {"direction": "ingress", "protocol": "icmp", "remote_group_id": "web"}]}],
                "ports": [{"name": "web1", "network": "blue", "ips": ["10.0.0.11"], "security_groups": ["web"]}],
                "load_balancers": [{"name": "www", "network": "blue", "vip_address": "10.0.0.100",
                                    "protocol_port": 80,
                                    "members": [{"address": "10.0.0.11", "protocol_port": 8080}]}]}}
# The server checks a document's top, then each item as it comes to it.
SCHEMAS["ImportTop"] = dict(SCHEMAS["Import"], properties=dict(
    SCHEMAS["Import"]["properties"], **{kind: {"type": "array"} for kind in IMPORT_ITEMS}))

# ---- trusted nodes: join tokens and admission (controller/api/trust.py) -----------------
NODE_NAME = strings(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$",
                    "a node's name (its system-id): 1 to 253 letters, digits, '.', '_' or '-', starting with a "
                    "letter or digit")
TOKEN_ID = strings(r"^[a-z0-9]{6}$", "a join token's id: the 6 characters before its dot")
SCHEMAS["JoinTokenCreate"] = {
    "type": "object", "additionalProperties": False, "properties": {
        "node": dict(NODE_NAME, description="the one node name the token admits (default: any name no "
                                            "node has been admitted with)"),
        "ttl": {"type": "integer", "minimum": 1, "maximum": 365 * 24 * 3600, "default": 24 * 3600,
                "description": "seconds until the token expires (default one day, at most a year)"},
        "uses": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1,
                 "description": "how many nodes it may admit (default 1)"},
        "description": DESCRIPTION},
    "example": {"node": "hv7", "ttl": 3600, "uses": 1}}
SCHEMAS["Enroll"] = {
    "type": "object", "additionalProperties": False, "required": ["token", "csr"], "properties": {
        "token": strings(r"^[a-z0-9]{6}\.[a-z0-9]{16}$",
                         "a join token: 6 and 16 characters of a-z and 0-9, joined by a dot"),
        "csr": {"type": "string", "minLength": 1, "maxLength": 16384,
                "description": "the node's certificate request (PEM), whose common name is the node's name"}}}

SCHEMAS["AlertWebhookCreate"] = {
    "type": "object", "additionalProperties": False, "required": ["url"], "properties": {
        "url": strings(r"^https?://[^\s]+$", "where the tenant's alerts are POSTed (http or https)",
                       maxLength=2048),
        "tenant": NAME},
    "example": {"url": "https://alerts.example.com/dvn"}}

SCHEMAS["Trace"] = {
    "type": "object", "additionalProperties": False, "required": ["from_port", "dest"], "properties": {
        "from_port": dict(UUID, description="the sending port"),
        "dest": {"type": "string", "maxLength": 64,
                 "description": "an IPv4 address in the port's network: another port's, or a VIP"},
        "protocol": {"enum": ["icmp", "tcp", "udp"], "default": "icmp"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                 "description": "the destination port (tcp, udp)"},
        "established": {"type": "boolean", "default": False,
                        "description": "a reply in a connection dest opened (walked first), not a new one"},
        "member": dict(UUID, description="for a VIP: the member the switch's hash would pick (default: "
                                         "the first bucket's)")},
    "example": {"from_port": "7d1c2b9e-4d0a-4f43-9f8e-2c3b7a1d9e55", "dest": "10.0.0.5", "protocol": "tcp",
                "port": 22}}

# ---- query parameters ---------------------------------------------------------------
QUERY = {"name": NAME, "tenant": NAME, "network": UUID, "port": UUID, "rule": UUID,
         "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
         "after": {"type": "integer", "minimum": 0, "maximum": 2 ** 53, "default": 0}}


# ---- checking ------------------------------------------------------------------------
def _ecma(pattern):
    """ECMA-262's $ ends the string; Python's also matches before a final newline."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern)


_PATTERNS = {}


def _pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    rx = _PATTERNS.get(pattern)
    if rx is None:
        rx = _PATTERNS[pattern] = _ecma(pattern)
    if not rx.search(instance):
        yield jsonschema.ValidationError("%r does not match the pattern" % instance)


Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
_VALIDATORS = {}


def validator(name):
    v = _VALIDATORS.get(name)
    if v is None:
        root = dict(SCHEMAS[name], components={"schemas": SCHEMAS})  # its own refs resolve in the root
        v = _VALIDATORS[name] = Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return v


KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def path_text(path, root=""):
    """A field's path: ``networks[1].cidrs[0]``; an unusual key is quoted: ``tags["a b"]``."""
    out = root
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        elif KEY.match(part):
            out += ("." if out else "") + part
        else:
            out += "[%s]" % json.dumps(part)
    return out or None


def _field(error):
    """The path of the field at fault: a missing or unknown property is named itself."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        path += [next(k for k in error.validator_value if k not in error.instance)]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        path += [sorted(set(error.instance) - set(error.schema.get("properties", {})))[0]]
    elif error.validator == "uniqueItems":
        seen = []
        for i, item in enumerate(error.instance):
            if item in seen:
                path.append(i)
                break
            seen.append(item)
    elif error.validator == "maxContains" and isinstance(error.instance, list):  # too many of a kind
        kind = Validator(dict(error.schema["contains"], components={"schemas": SCHEMAS}),
                         format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        matching = [i for i, item in enumerate(error.instance) if kind.is_valid(item)]
        if len(matching) > error.validator_value:
            path.append(matching[error.validator_value])
    return path


def _detail(error, field, path):
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "required":
        return "%s is required" % field
    if error.validator == "additionalProperties":
        return "unknown field %s" % json.dumps(path[-1])
    if description:
        return "%s: %s" % (field or "the body", description)
    return "%s: %s" % (field or "the body", error.message[:300])


_FAST = {}


def _fast(name):
    """Schema ``name`` compiled by jsonschema-rs, which tells valid from not
    about a hundred times faster than jsonschema (a 10,000-port import: 0.02 s
    against 3.7 s); jsonschema, the reference, says why when it is not."""
    v = _FAST.get(name)
    if v is None:
        root = dict(SCHEMAS[name], components={"schemas": SCHEMAS})
        v = _FAST[name] = jsonschema_rs.validator_for(root, validate_formats=True)
    return v


def check(name, value, root=""):
    """Raise 400 (naming the field: ``root`` then its path) unless ``value`` matches schema ``name``."""
    if _fast(name).is_valid(value):
        return value
    errors = list(validator(name).iter_errors(value))
    if errors:  # the shallowest, then the first the schema's order gives
        error = min(errors, key=lambda e: len(e.absolute_path))
        while error.context and error.validator in ("anyOf", "oneOf") and _one_branch(error) is not None:
            error = _one_branch(error)
        path = _field(error)
        field = path_text(path, root)
        raise invalid(field, _detail(error, field, path))
    return value


def check_query(key, value):
    """A query parameter's value (an integer's already parsed), checked against its schema."""
    error = jsonschema.exceptions.best_match(
        Validator(QUERY[key], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).iter_errors(value))
    if error is not None:
        raise invalid(key, _detail(error, key, [key]))
    return value


def _one_branch(error):
    """Of an anyOf that failed, the branch of the value's own type when only one has it (an object
    refused by the object branch names its field, not the anyOf)."""
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    typed = [subs for subs in branches.values() if not any(s.validator == "type" and not s.path for s in subs)]
    if len(typed) != 1:
        return None
    return min(typed[0], key=lambda e: len(e.absolute_path))
