"""Validation of API input: every field checked, every error names its field."""

import ipaddress
import json
import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TAG_RE = re.compile(r"^[A-Za-z0-9._:/=@+-]{1,64}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
MAX_TAGS = 32
MAX_IPS = 16
VNI_MIN, VNI_MAX = 1, 16777215


class Problem(Exception):
    """An error the client sees: HTTP status, a title, a detail and the field."""

    def __init__(self, status, title, detail, field=None, headers=None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.field = status, title, detail, field
        self.headers = headers or {}

    def body(self):
        out = {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        return out


def invalid(field, detail):
    return Problem(400, "Invalid input", detail, field)


def conflict(field, detail):
    return Problem(409, "Conflict", detail, field)


def check_fields(body, allowed, required=()):
    if not isinstance(body, dict):
        raise invalid(None, "the body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise invalid(key, "unknown field %r (allowed: %s)" % (key, ", ".join(sorted(allowed))))
    for key in required:
        if key not in body:
            raise invalid(key, "%s is required" % key)


def name(value, field="name"):
    if not isinstance(value, str):
        raise invalid(field, "%s must be a string" % field)
    if not NAME_RE.match(value):
        raise invalid(field, "%s must be 1 to 64 characters: letters, digits, '.', '_' or '-', "
                      "starting with a letter or digit" % field)
    return value


def description(value):
    if not isinstance(value, str) or len(value) > 255:
        raise invalid("description", "description is a string of at most 255 characters")
    return value


def tags(value, field="tags"):
    if not isinstance(value, list):
        raise invalid(field, "tags must be a list of strings")
    if len(value) > MAX_TAGS:
        raise invalid(field, "at most %d tags" % MAX_TAGS)
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise invalid("%s[%d]" % (field, i), "a tag is 1 to 64 characters of letters, digits and ._:/=@+-")
    return sorted(set(value))


def vni(value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid("vni", "vni must be an integer")
    if not VNI_MIN <= value <= VNI_MAX:
        raise invalid("vni", "vni must be between %d and %d" % (VNI_MIN, VNI_MAX))
    return value


def cidrs(value):
    if not isinstance(value, list):
        raise invalid("cidrs", "cidrs must be a list")
    if len(value) > 2:
        raise invalid("cidrs", "at most one IPv4 and one IPv6 CIDR")
    out, versions = [], set()
    for i, text in enumerate(value):
        field = "cidrs[%d]" % i
        if not isinstance(text, str) or "/" not in text or len(text) > 64:
            raise invalid(field, "a CIDR is a string like 10.0.0.0/24 or fd00::/64")
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise invalid(field, "%r is not a network address with a prefix: %s" % (text, exc))
        if net.version in versions:
            raise invalid(field, "at most one IPv%d CIDR" % net.version)
        if net.num_addresses < 4:
            raise invalid(field, "%s is too small for ports" % text)
        versions.add(net.version)
        out.append(str(net))
    return out


def mac(value):
    if not isinstance(value, str) or not MAC_RE.match(value):
        raise invalid("mac", "mac must look like 02:00:00:00:00:01")
    value = value.lower()
    if int(value[:2], 16) & 1:
        raise invalid("mac", "mac must be a unicast address (first octet even)")
    if value == "00:00:00:00:00:00":
        raise invalid("mac", "mac must not be all zeros")
    return value


def ips(value, networks):
    """``networks``: the network's CIDRs as ipaddress networks."""
    if not isinstance(value, list):
        raise invalid("ips", "ips must be a list of addresses")
    if len(value) > MAX_IPS:
        raise invalid("ips", "at most %d addresses" % MAX_IPS)
    out = []
    for i, text in enumerate(value):
        field = "ips[%d]" % i
        if not isinstance(text, str) or len(text) > 64:
            raise invalid(field, "an address is a string")
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise invalid(field, "%r is not an IP address" % text)
        inside = [n for n in networks if addr.version == n.version and addr in n]
        if not inside:
            raise invalid(field, "%s is not inside the network's CIDRs (%s)" % (
                addr, ", ".join(map(str, networks)) or "none"))
        net = inside[0]
        if addr == net.network_address or (net.version == 4 and addr == net.broadcast_address):
            raise invalid(field, "%s is the network or broadcast address of %s" % (addr, net))
        if str(addr) in out:
            raise invalid(field, "%s is listed twice" % addr)
        out.append(str(addr))
    return out


PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


def _opt_int(body, field, lo, hi):
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise invalid(field, "%s must be an integer from %d to %d" % (field, lo, hi))
    return value


def rule(body):
    """A security group rule as the store keeps it (without remote_group)."""
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise invalid("direction", "direction must be ingress or egress")
    ethertype = body.get("ethertype", "IPv4")
    if ethertype not in ("IPv4", "IPv6"):
        raise invalid("ethertype", "ethertype must be IPv4 or IPv6")
    proto = body.get("protocol", "any")
    if proto is None or proto == "any":
        proto = None
    elif isinstance(proto, str) and proto in PROTOCOLS:
        proto = PROTOCOLS[proto]
    elif isinstance(proto, int) and not isinstance(proto, bool) and 0 <= proto <= 255:
        pass
    else:
        raise invalid("protocol", "protocol is tcp, udp, icmp, icmpv6, any or a number from 0 to 255")
    if proto == 1 and ethertype == "IPv6":
        raise invalid("protocol", "ICMP with IPv6 is icmpv6")
    if proto == 58 and ethertype == "IPv4":
        raise invalid("protocol", "icmpv6 needs ethertype IPv6")
    pmin = _opt_int(body, "port_range_min", 1, 65535)
    pmax = _opt_int(body, "port_range_max", 1, 65535)
    if (pmin is not None or pmax is not None) and proto not in (6, 17):
        raise invalid("port_range_min" if pmin is not None else "port_range_max",
                      "port ranges need protocol tcp or udp")
    if pmax is not None and pmin is None:
        raise invalid("port_range_min", "port_range_max needs port_range_min")
    if pmin is not None and pmax is not None and pmax < pmin:
        raise invalid("port_range_max", "port_range_max is below port_range_min")
    itype = _opt_int(body, "icmp_type", 0, 255)
    icode = _opt_int(body, "icmp_code", 0, 255)
    if (itype is not None or icode is not None) and proto not in (1, 58):
        raise invalid("icmp_type" if itype is not None else "icmp_code", "ICMP type and code need protocol icmp or icmpv6")
    if icode is not None and itype is None:
        raise invalid("icmp_code", "icmp_code needs icmp_type")
    prefix = body.get("remote_ip_prefix")
    if prefix is not None:
        if "remote_group_id" in body and body["remote_group_id"] is not None:
            raise invalid("remote_ip_prefix", "give remote_ip_prefix or remote_group_id, not both")
        if not isinstance(prefix, str):
            raise invalid("remote_ip_prefix", "remote_ip_prefix is a CIDR")
        try:
            net = ipaddress.ip_network(prefix, strict=True)
        except ValueError as exc:
            raise invalid("remote_ip_prefix", "%r is not a network address with a prefix: %s" % (prefix, exc))
        if net.version != (4 if ethertype == "IPv4" else 6):
            raise invalid("remote_ip_prefix", "remote_ip_prefix is not an %s network" % ethertype)
        prefix = str(net)
    action = body.get("action", "allow")
    if action not in ("allow", "deny"):
        raise invalid("action", "action is allow or deny")
    priority = body.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 1000:
        raise invalid("priority", "priority is an integer from 0 to 1000")
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise invalid("log", "log must be true or false")
    opt = lambda v: [] if v is None else [v]  # noqa: E731
    return {"log": [log],
            "direction": direction, "ethertype": ethertype, "protocol": opt(proto),
            "port_range_min": opt(pmin), "port_range_max": opt(pmax), "icmp_type": opt(itype),
            "icmp_code": opt(icode), "remote_ip_prefix": opt(prefix), "action": action, "priority": priority}


def boolean(value, field):
    if not isinstance(value, bool):
        raise invalid(field, "%s must be true or false" % field)
    return value


def address_pairs(value, port_mac):
    """allowed_address_pairs: [{"ip_address": IP or CIDR, "mac_address": MAC (default the port's)}]
    -> ["mac,cidr", ...] as the store keeps them."""
    if not isinstance(value, list) or len(value) > 16:
        raise invalid("allowed_address_pairs", "allowed_address_pairs is a list of at most 16 pairs")
    out = []
    for i, pair in enumerate(value):
        field = "allowed_address_pairs[%d]" % i
        if not isinstance(pair, dict) or not set(pair) <= {"ip_address", "mac_address"} or "ip_address" not in pair:
            raise invalid(field, "a pair is {\"ip_address\": ..., \"mac_address\": ...(optional)}")
        try:
            net = ipaddress.ip_network(pair["ip_address"], strict=False) if isinstance(pair["ip_address"], str) \
                else None
        except ValueError:
            net = None
        if net is None:
            raise invalid(field + ".ip_address", "ip_address is an IP address or a CIDR")
        pmac = mac(pair["mac_address"]) if "mac_address" in pair else port_mac
        out.append("%s,%s" % (pmac, net))
    return sorted(set(out))


def integer(value, field, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise invalid(field, "%s must be an integer from %d to %d" % (field, lo, hi))
    return value


def _number(value, field, lo, hi):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise invalid(field, "%s must be a number from %g to %g" % (field, lo, hi))
    return float(value)


def ipv4_in(value, field, networks):
    """An IPv4 address inside one of the network's CIDRs (load balancers are IPv4)."""
    if not isinstance(value, str) or len(value) > 64:
        raise invalid(field, "%s is an IPv4 address" % field)
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise invalid(field, "%r is not an IP address" % value)
    if addr.version != 4:
        raise invalid(field, "load balancers take IPv4 addresses only")
    inside = [n for n in networks if n.version == 4 and addr in n]
    if not inside:
        raise invalid(field, "%s is not inside the network's IPv4 CIDR" % addr)
    if addr in (inside[0].network_address, inside[0].broadcast_address):
        raise invalid(field, "%s is the network or broadcast address of %s" % (addr, inside[0]))
    return str(addr)


def lb_protocol(value):
    if value not in ("tcp", "udp"):
        raise invalid("protocol", "protocol is tcp or udp")
    return value


def session_persistence(value):
    """{"type": "SOURCE_IP", "persistence_timeout": seconds} or None -> the store's JSON."""
    if value is None:
        return []
    if not isinstance(value, dict) or not set(value) <= {"type", "persistence_timeout"}:
        raise invalid("session_persistence", "session_persistence is null or {\"type\": \"SOURCE_IP\", "
                      "\"persistence_timeout\": seconds}")
    if value.get("type") != "SOURCE_IP":
        raise invalid("session_persistence.type", "the only session persistence is SOURCE_IP")
    timeout = integer(value.get("persistence_timeout", 360), "session_persistence.persistence_timeout", 1, 86400)
    return [json.dumps({"type": "SOURCE_IP", "persistence_timeout": timeout}, sort_keys=True)]


CODES_RE = re.compile(r"^[1-5][0-9][0-9]((-[1-5][0-9][0-9])|(,[1-5][0-9][0-9])*)$")


def health_monitor(value, protocol):
    """A health monitor (Octavia's fields; delay and timeout in seconds, may be
    fractions) for a load balancer of ``protocol``, or None -> the store's JSON."""
    if value is None:
        return []
    if protocol != "tcp":
        raise invalid("health_monitor", "health monitors connect over TCP: a %s load balancer takes none "
                      "(dvn does not probe UDP members)" % protocol)
    allowed = {"type", "delay", "timeout", "max_retries", "max_retries_down", "url_path", "expected_codes"}
    if not isinstance(value, dict):
        raise invalid("health_monitor", "health_monitor is null or an object with a type (TCP or HTTP)")
    try:
        check_fields(value, allowed, required=("type",))
    except Problem as p:  # name the field inside the monitor
        p.field = "health_monitor." + p.field
        raise
    kind = value["type"]
    if kind not in ("TCP", "HTTP"):
        raise invalid("health_monitor.type", "type is TCP or HTTP")
    out = {"type": kind,
           "delay": _number(value.get("delay", 5), "health_monitor.delay", 0.2, 3600),
           "timeout": _number(value.get("timeout", 2), "health_monitor.timeout", 0.1, 3600),
           "max_retries": integer(value.get("max_retries", 2), "health_monitor.max_retries", 1, 10),
           "max_retries_down": integer(value.get("max_retries_down", 2), "health_monitor.max_retries_down", 1, 10)}
    if out["timeout"] > out["delay"]:
        raise invalid("health_monitor.timeout", "timeout must not be longer than delay")
    if kind == "HTTP":
        path = value.get("url_path", "/")
        if not isinstance(path, str) or not path.startswith("/") or len(path) > 255 \
                or any(c <= " " or c == "\x7f" for c in path):
            raise invalid("health_monitor.url_path", "url_path is a path starting with / (no spaces)")
        codes = value.get("expected_codes", "200")
        if not isinstance(codes, str) or not CODES_RE.match(codes):
            raise invalid("health_monitor.expected_codes", "expected_codes is like 200, 200,202 or 200-204")
        out.update(url_path=path, expected_codes=codes)
    elif "url_path" in value or "expected_codes" in value:
        raise invalid("health_monitor.url_path" if "url_path" in value else "health_monitor.expected_codes",
                      "url_path and expected_codes are for HTTP monitors")
    return [json.dumps(out, sort_keys=True)]


def member(body, networks, prefix="member"):
    """A pool member as the store keeps it."""
    check_fields(body, ("name", "address", "protocol_port", "weight", "admin_state_up"),
                 required=("address", "protocol_port"))
    return {"name": name(body["name"], "name") if "name" in body else "",
            "address": ipv4_in(body["address"], "address", networks),
            "protocol_port": integer(body["protocol_port"], "protocol_port", 1, 65535),
            "weight": integer(body.get("weight", 1), "weight", 0, 256),
            "admin_state_up": boolean(body.get("admin_state_up", True), "admin_state_up")}
