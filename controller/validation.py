"""API errors, and the checks of input that its JSON Schema cannot make.

The structure of every body (types, ranges, patterns, which fields go
together) is checked first, against the schemas of ``controller/api/schemas.py``;
a body that breaks them is 400. What is here takes a body that passed and
turns it into what the store keeps, and refuses what the schema cannot say:
how two fields compare, or where an address falls in a network. Those are
422, as are references the caller cannot use; clashes with what the store
has are 409 (``controller/api/context.py``).
"""

import ipaddress
import json

VNI_MIN, VNI_MAX = 1, 16777215
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


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
    """The input is not what the API document describes."""
    return Problem(400, "Invalid input", detail, field)


def unprocessable(field, detail):
    """The input is well formed, but its fields disagree, or it names what the caller cannot use."""
    return Problem(422, "Unprocessable input", detail, field)


def conflict(field, detail):
    return Problem(409, "Conflict", detail, field)


def cidrs(value):
    """A network's CIDRs (well formed, at most one per IP version) as the store keeps them."""
    return [str(ipaddress.ip_network(text)) for text in value]


def ips(value, networks):
    """A port's addresses, inside the network's CIDRs (``networks``: ipaddress networks)."""
    out = []
    for i, text in enumerate(value):
        addr = ipaddress.ip_address(text)
        inside = [n for n in networks if addr.version == n.version and addr in n]
        field = "ips[%d]" % i
        if not inside:
            raise unprocessable(field, "%s is not inside the network's CIDRs (%s)" % (
                addr, ", ".join(map(str, networks)) or "none"))
        net = inside[0]
        if addr == net.network_address or (net.version == 4 and addr == net.broadcast_address):
            raise unprocessable(field, "%s is the network or broadcast address of %s" % (addr, net))
        if str(addr) in out:  # the same address spelled twice (fd00::5, FD00::5)
            raise unprocessable(field, "%s is listed twice" % addr)
        out.append(str(addr))
    return out


def ipv4_in(value, field, networks):
    """An IPv4 address inside one of the network's CIDRs (load balancers are IPv4)."""
    addr = ipaddress.ip_address(value)
    inside = [n for n in networks if n.version == 4 and addr in n]
    if not inside:
        raise unprocessable(field, "%s is not inside the network's IPv4 CIDR" % addr)
    if addr in (inside[0].network_address, inside[0].broadcast_address):
        raise unprocessable(field, "%s is the network or broadcast address of %s" % (addr, inside[0]))
    return str(addr)


def _protocol(value):
    if value is None or value == "any":
        return None
    return PROTOCOLS.get(value, value)


def rule(body):
    """A security group rule as the store keeps it (without remote_group)."""
    pmin, pmax = body.get("port_range_min"), body.get("port_range_max")
    if pmin is not None and pmax is not None and pmax < pmin:
        raise unprocessable("port_range_max", "port_range_max is below port_range_min")
    prefix = body.get("remote_ip_prefix")
    opt = lambda value: [] if value is None else [int(value)]  # noqa: E731
    return {"log": [body.get("log", False)], "alert": [body.get("alert", False)],
            "direction": body["direction"], "ethertype": body.get("ethertype", "IPv4"),
            "protocol": opt(_protocol(body.get("protocol", "any"))),
            "port_range_min": opt(pmin), "port_range_max": opt(pmax), "icmp_type": opt(body.get("icmp_type")),
            "icmp_code": opt(body.get("icmp_code")),
            "remote_ip_prefix": [str(ipaddress.ip_network(prefix))] if prefix is not None else [],
            "action": body.get("action", "allow"), "priority": int(body.get("priority", 100))}


def address_pairs(value, port_mac):
    """allowed_address_pairs: [{"ip_address": IP or CIDR, "mac_address": MAC (default the port's)}]
    -> ["mac,cidr", ...] as the store keeps them."""
    return sorted({"%s,%s" % (pair.get("mac_address", port_mac).lower(),
                              ipaddress.ip_network(pair["ip_address"], strict=False)) for pair in value})


def session_persistence(value):
    """{"type": "SOURCE_IP", "persistence_timeout": seconds} or None -> the store's JSON."""
    if value is None:
        return []
    timeout = int(value.get("persistence_timeout", 360))
    return [json.dumps({"type": "SOURCE_IP", "persistence_timeout": timeout}, sort_keys=True)]


def health_monitor(value, protocol):
    """A health monitor (Octavia's fields; delay and timeout in seconds, may be
    fractions) for a load balancer of ``protocol``, or None -> the store's JSON."""
    if value is None:
        return []
    if protocol != "tcp":  # a create's body says so in its schema; an update's load balancer is in the store
        raise unprocessable("health_monitor", "health monitors connect over TCP: a %s load balancer takes "
                            "none (dvn does not probe UDP members)" % protocol)
    out = {"type": value["type"], "delay": float(value.get("delay", 5)), "timeout": float(value.get("timeout", 2)),
           "max_retries": int(value.get("max_retries", 2)), "max_retries_down": int(value.get("max_retries_down", 2))}
    if out["timeout"] > out["delay"]:
        raise unprocessable("health_monitor.timeout", "timeout must not be longer than delay")
    if out["type"] == "HTTP":
        out.update(url_path=value.get("url_path", "/"), expected_codes=value.get("expected_codes", "200"))
    return [json.dumps(out, sort_keys=True)]


def member(body, networks):
    """A pool member as the store keeps it."""
    return {"name": body.get("name", ""),
            "address": ipv4_in(body["address"], "address", networks),
            "protocol_port": int(body["protocol_port"]),
            "weight": int(body.get("weight", 1)),
            "admin_state_up": body.get("admin_state_up", True)}
