"""REST API v1 (webob). It reads and writes only the northbound store.

Authentication is a bearer token; the store keeps only its SHA-256 digest.
A tenant token sees and touches only its tenant's objects (another tenant's
object is 404, as if it did not exist); an admin token sees everything and
names the tenant of what it creates. Errors are application/problem+json
with the field at fault; nothing changes on error.
"""

import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import threading

import webob

from controller import validation as v
from controller.validation import Problem, conflict, invalid
from flows import groups
from flows import lb as lb_flows
from flows.model import Port
from ovsdb.nb import Conflict, NbError
from ovsdb.nb import optional as _opt

LOG = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
VNI_AUTO_START = 1000


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(nb, tenant, role):
    """A new token (returned once; only its digest is stored)."""
    token = secrets.token_urlsafe(32)
    nb.transact([nb.api.db_create("Token", digest=digest(token), tenant=tenant or "", role=role,
                                  description="created by dvn")])
    return token


def ensure_admin_token(nb, path):
    """Make sure an admin token exists and is in ``path`` (mode 0600)."""
    if os.path.exists(path):
        with open(path) as f:
            token = f.read().strip()
        if any(r.digest == digest(token) and r.role == "admin" for r in nb.rows("Token")):
            return token
    token = create_token(nb, "", "admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Caller:
    def __init__(self, role, tenant):
        self.role, self.tenant = role, tenant

    @property
    def admin(self):
        return self.role == "admin"

    def sees(self, row):
        return self.admin or row.tenant == self.tenant


def network_view(row):
    return {"id": str(row.uuid), "name": row.name, "tenant": row.tenant, "vni": row.vni,
            "cidrs": list(row.cidrs), "tags": sorted(row.tags)}


def port_view(row):
    security = _opt(row.port_security)
    return {"id": str(row.uuid), "name": row.name, "tenant": row.tenant,
            "network": str(row.network.uuid), "mac": row.mac, "ips": list(row.ips),
            "tags": sorted(row.tags), "node": _opt(row.node),
            "port_security": security is not False, "encrypt": _opt(row.encrypt) is True,
            "security_groups": sorted(str(g.uuid) for g in row.security_groups),
            "allowed_address_pairs": [{"mac_address": p.split(",")[0], "ip_address": p.split(",")[1]}
                                      for p in sorted(row.allowed_address_pairs)]}


def rule_view(row, group_id):
    opt = _opt
    remote = opt(row.remote_group)
    proto = opt(row.protocol)
    return {"id": str(row.uuid), "security_group": group_id, "direction": row.direction,
            "ethertype": row.ethertype,
            "protocol": v.PROTOCOL_NAMES.get(proto, proto) if proto is not None else "any",
            "port_range_min": opt(row.port_range_min), "port_range_max": opt(row.port_range_max),
            "icmp_type": opt(row.icmp_type), "icmp_code": opt(row.icmp_code),
            "remote_ip_prefix": opt(row.remote_ip_prefix),
            "remote_group_id": str(remote.uuid) if remote is not None else None,
            "action": row.action, "priority": row.priority, "log": opt(row.log) is True}


def group_view(row):
    gid = str(row.uuid)
    criteria = _opt(row.criteria)
    return {"id": gid, "name": row.name, "tenant": row.tenant, "description": row.description,
            "criteria": json.loads(criteria) if criteria else None,
            "encrypt": _opt(row.encrypt) is True, "encrypt_with": sorted(str(g.uuid) for g in row.encrypt_with),
            "rules": sorted((rule_view(r, gid) for r in row.rules), key=lambda r: r["id"])}


def _criteria(body):
    """The criteria of a dynamic group, checked, as the store keeps it ([] for none)."""
    value = body.get("criteria")
    if value is None:
        return []
    try:
        groups.check(value)
    except groups.CriteriaError as exc:
        raise invalid(exc.path, exc.detail)
    text = json.dumps(value, sort_keys=True)
    if len(text) > 4096:
        raise invalid("criteria", "criteria are limited to 4096 characters of JSON")
    return [text]


def _json_opt(value):
    text = _opt(value)
    return json.loads(text) if text else None


def member_view(row, monitored, addresses):
    """``addresses``: the IP addresses of the network's plugged-in ports (a
    member without such a port cannot be reached: ERROR)."""
    if row.address not in addresses:
        status = "ERROR"
    elif not monitored:
        status = "NO_MONITOR"
    else:
        status = row.operating_status
    return {"id": str(row.uuid), "name": row.name, "address": row.address,
            "protocol_port": row.protocol_port, "weight": row.weight,
            "admin_state_up": row.admin_state_up, "operating_status": status}


def lb_view(row, addresses):
    monitor = _json_opt(row.health_monitor)
    return {"id": str(row.uuid), "name": row.name, "tenant": row.tenant, "description": row.description,
            "network": str(row.network.uuid), "vip_address": row.vip_address, "protocol": row.protocol,
            "protocol_port": row.protocol_port, "session_persistence": _json_opt(row.session_persistence),
            "health_monitor": monitor,
            "members": sorted((member_view(m, monitor is not None, addresses) for m in row.members),
                              key=lambda m: (m["address"], m["protocol_port"], m["id"]))}


def node_view(row):
    return {"system_id": row.system_id, "hostname": row.hostname, "encap_ip": row.encap_ip,
            "state": row.state, "last_seen": row.last_seen}


class Api:
    def __init__(self, nb, stats=None, events=None, lb_stats=None):
        self.nb = nb
        self.stats = stats    # rule_stats(group id, rule id) of the running controller, if any
        self.lb_stats = lb_stats  # lb_stats(load balancer id) of the running controller, if any
        self.events = events  # the controller's recent firewall log events, if any
        self.lock = threading.Lock()  # serializes read-check-write (green under eventlet)
        self.routes = [
            ("GET", r"/v1/networks", self.list_networks),
            ("POST", r"/v1/networks", self.create_network),
            ("GET", r"/v1/networks/{id}", self.show_network),
            ("PATCH", r"/v1/networks/{id}", self.update_network),
            ("DELETE", r"/v1/networks/{id}", self.delete_network),
            ("GET", r"/v1/ports", self.list_ports),
            ("POST", r"/v1/ports", self.create_port),
            ("GET", r"/v1/ports/{id}", self.show_port),
            ("PATCH", r"/v1/ports/{id}", self.update_port),
            ("DELETE", r"/v1/ports/{id}", self.delete_port),
            ("GET", r"/v1/security-groups", self.list_groups),
            ("POST", r"/v1/security-groups", self.create_group),
            ("GET", r"/v1/security-groups/{id}", self.show_group),
            ("PATCH", r"/v1/security-groups/{id}", self.update_group),
            ("DELETE", r"/v1/security-groups/{id}", self.delete_group),
            ("GET", r"/v1/security-groups/{id}/members", self.group_members),
            ("POST", r"/v1/security-groups/{id}/rules", self.create_rule),
            ("DELETE", r"/v1/security-groups/{id}/rules/{rule_id}", self.delete_rule),
            ("GET", r"/v1/security-groups/{id}/rules/{rule_id}/stats", self.rule_stats),
            ("GET", r"/v1/events", self.list_events),
            ("GET", r"/v1/load-balancers", self.list_lbs),
            ("POST", r"/v1/load-balancers", self.create_lb),
            ("GET", r"/v1/load-balancers/{id}", self.show_lb),
            ("PATCH", r"/v1/load-balancers/{id}", self.update_lb),
            ("DELETE", r"/v1/load-balancers/{id}", self.delete_lb),
            ("GET", r"/v1/load-balancers/{id}/members", self.list_members),
            ("POST", r"/v1/load-balancers/{id}/members", self.create_members),
            ("PATCH", r"/v1/load-balancers/{id}/members/{member_id}", self.update_member),
            ("DELETE", r"/v1/load-balancers/{id}/members/{member_id}", self.delete_member),
            ("GET", r"/v1/load-balancers/{id}/stats", self.show_lb_stats),
            ("GET", r"/v1/nodes", self.list_nodes),
            ("GET", r"/v1/nodes/{id}", self.show_node),
            ("DELETE", r"/v1/nodes/{id}", self.delete_node),
            ("POST", r"/v1/nodes/{id}/rotate-keys", self.rotate_keys),
            ("GET", r"/v1/openapi.json", self.openapi),
        ]
        self._compiled = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), p, h)
                          for m, p, h in self.routes]

    # ---- WSGI ------------------------------------------------------------
    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        try:
            resp = self.dispatch(req)
        except Problem as p:
            resp = self.problem(p)
        except Exception:
            LOG.exception("API: unexpected error on %s %s", req.method, req.path)
            resp = self.problem(Problem(500, "Internal error", "an unexpected error; see the dvn log"))
        return resp(environ, start_response)

    @staticmethod
    def problem(p):
        resp = webob.Response(status=p.status, body=json.dumps(p.body()).encode(),
                              content_type="application/problem+json", charset=None)
        for k, val in p.headers.items():
            resp.headers[k] = val
        return resp

    def dispatch(self, req):
        allowed = []
        for method, rx, _pattern, handler in self._compiled:
            m = rx.match(req.path_info)
            if not m:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            if handler != self.openapi:
                caller = self.authenticate(req)
            else:
                caller = None
            result = handler(req, caller, **m.groupdict())
            if isinstance(result, webob.Response):
                return result
            status, payload = result
            if payload is None:
                return webob.Response(status=status)
            return webob.Response(status=status, body=json.dumps(payload).encode(),
                                  content_type="application/json", charset=None)
        if allowed:
            raise Problem(405, "Method not allowed", "%s is not allowed on %s" % (req.method, req.path_info),
                          headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise Problem(404, "Not found", "no resource at %s" % req.path_info)

    def authenticate(self, req):
        auth = req.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise Problem(401, "Unauthorized", "an Authorization: Bearer <token> header is required",
                          headers={"WWW-Authenticate": "Bearer"})
        d = digest(auth[7:].strip())
        for row in self.nb.rows("Token"):
            if secrets.compare_digest(row.digest, d):
                return Caller(row.role, row.tenant)
        raise Problem(401, "Unauthorized", "unknown token", headers={"WWW-Authenticate": "Bearer"})

    @staticmethod
    def body(req):
        if req.content_length is not None and req.content_length > MAX_BODY:
            raise Problem(413, "Payload too large", "the body is limited to %d bytes" % MAX_BODY)
        ctype = (req.content_type or "").lower()
        if ctype != "application/json":
            raise Problem(415, "Unsupported media type", "send application/json")
        raw = req.body_file.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise Problem(413, "Payload too large", "the body is limited to %d bytes" % MAX_BODY)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(None, "the body is not valid JSON: %s" % exc)

    # ---- helpers -----------------------------------------------------------
    def _find(self, table, rid, caller):
        row = self.nb.get(table, rid)
        if row is None or not caller.sees(row):
            raise Problem(404, "Not found", "no %s %s" % (table.lower(), rid))
        return row

    def _transact(self, commands, field):
        try:
            return self.nb.transact(commands)
        except Conflict as exc:
            raise conflict(field, "the store refused it: %s" % exc)
        except NbError as exc:
            raise Problem(503, "Store unavailable", "the northbound store refused the change: %s" % exc)

    def _tenant_of_new(self, body, caller):
        if caller.admin:
            if "tenant" not in body:
                raise invalid("tenant", "an admin must name the tenant")
            return v.name(body["tenant"], "tenant")
        if "tenant" in body and body["tenant"] != caller.tenant:
            raise invalid("tenant", "a tenant token creates objects of its own tenant only")
        return caller.tenant

    @staticmethod
    def _filter(req, allowed):
        for key in req.GET:
            if key not in allowed:
                raise invalid(key, "unknown query parameter %r (allowed: %s)" % (key, ", ".join(allowed)))
        return req.GET

    NOUNS = {"Network": "network", "Port": "port", "SecurityGroup": "security group",
             "LoadBalancer": "load balancer"}

    def _check_name_free(self, table, tenant, name, rows=None, but=None):
        """Names are unique per tenant and table (409 naming the field)."""
        for r in (rows if rows is not None else self.nb.rows(table)):
            if r.tenant == tenant and r.name == name and r.uuid != but:
                raise conflict("name", "tenant %s already has a %s named %s" % (tenant, self.NOUNS[table], name))

    def _update(self, req, caller, table, id, fields):
        """PATCH: the ``fields`` a network, port or security group may change;
        the name stays unique in the tenant."""
        body = self.body(req)
        v.check_fields(body, fields)
        with self.lock:
            row = self._find(table, id, caller)
            changes = []
            if "name" in body:
                name = v.name(body["name"])
                self._check_name_free(table, row.tenant, name, but=row.uuid)
                changes.append(("name", name))
            if "tags" in body:
                changes.append(("tags", v.tags(body["tags"])))
            if "description" in body:
                changes.append(("description", v.description(body["description"])))
            if "criteria" in body:
                changes.append(("criteria", _criteria(body)))
            if "security_groups" in body:
                changes.append(("security_groups", self._groups_of(body, row.tenant)))
            if "encrypt_with" in body:
                changes.append(("encrypt_with", self._groups_of(body, row.tenant, "encrypt_with")))
            if "port_security" in body:
                changes.append(("port_security", [v.boolean(body["port_security"], "port_security")]))
            if "encrypt" in body:
                changes.append(("encrypt", [v.boolean(body["encrypt"], "encrypt")]))
            if "allowed_address_pairs" in body:
                changes.append(("allowed_address_pairs", v.address_pairs(body["allowed_address_pairs"], row.mac)))
            if changes:
                self._transact([self.nb.api.db_set(table, row.uuid, *changes)], "name")
        return self.nb.get(table, id)

    def _groups_of(self, body, tenant, field="security_groups"):
        value = body.get(field, [])
        if not isinstance(value, list) or len(value) > 32:
            raise invalid(field, "%s is a list of at most 32 group ids" % field)
        out = []
        for i, gid in enumerate(value):
            row = self.nb.get("SecurityGroup", gid) if isinstance(gid, str) else None
            if row is None or row.tenant != tenant:
                raise invalid("%s[%d]" % (field, i), "no security group %s in tenant %s" % (gid, tenant))
            out.append(row.uuid)
        return sorted(set(out))

    # ---- networks ----------------------------------------------------------
    def list_networks(self, req, caller):
        q = self._filter(req, ("name", "tenant"))
        rows = [r for r in self.nb.rows("Network") if caller.sees(r)
                and q.get("name", r.name) == r.name and q.get("tenant", r.tenant) == r.tenant]
        return 200, sorted((network_view(r) for r in rows), key=lambda n: (n["tenant"], n["name"]))

    def show_network(self, req, caller, id):
        return 200, network_view(self._find("Network", id, caller))

    def create_network(self, req, caller):
        body = self.body(req)
        v.check_fields(body, ("name", "vni", "cidrs", "tags", "tenant"), required=("name",))
        tenant = self._tenant_of_new(body, caller)
        name = v.name(body["name"])
        cidrs = v.cidrs(body.get("cidrs", []))
        tags = v.tags(body.get("tags", []))
        vni = v.vni(body["vni"]) if "vni" in body else None
        with self.lock:
            rows = self.nb.rows("Network")
            self._check_name_free("Network", tenant, name, rows)
            used = {r.vni for r in rows}
            if vni is None:
                vni = next(n for n in range(VNI_AUTO_START, v.VNI_MAX + 1) if n not in used)
            elif vni in used:
                raise conflict("vni", "VNI %d is in use" % vni)
            uuid, = self._transact([self.nb.api.db_create("Network", name=name, tenant=tenant, vni=vni,
                                                          cidrs=cidrs, tags=tags)], "name")
        return 201, network_view(self.nb.get("Network", uuid))

    def update_network(self, req, caller, id):
        return 200, network_view(self._update(req, caller, "Network", id, ("name", "tags")))

    def delete_network(self, req, caller, id):
        with self.lock:
            row = self._find("Network", id, caller)
            if any(p.network.uuid == row.uuid for p in self.nb.rows("Port")):
                raise conflict("id", "network %s still has ports; delete them first" % id)
            if any(lb.network.uuid == row.uuid for lb in self.nb.rows("LoadBalancer")):
                raise conflict("id", "network %s still has load balancers; delete them first" % id)
            self._transact([self.nb.api.db_destroy("Network", row.uuid)], "id")
        return 204, None

    # ---- ports ---------------------------------------------------------------
    def list_ports(self, req, caller):
        q = self._filter(req, ("name", "network", "tenant"))
        rows = [r for r in self.nb.rows("Port") if caller.sees(r)
                and q.get("name", r.name) == r.name and q.get("tenant", r.tenant) == r.tenant
                and q.get("network", str(r.network.uuid)) == str(r.network.uuid)]
        return 200, sorted((port_view(r) for r in rows), key=lambda p: (p["tenant"], p["name"]))

    def show_port(self, req, caller, id):
        return 200, port_view(self._find("Port", id, caller))

    def _network_of(self, body, caller):
        """The network a body's ``network`` names, if the caller may see it (else 400 on network)."""
        if not isinstance(body["network"], str):
            raise invalid("network", "network must be a network id")
        net = self.nb.get("Network", body["network"])
        if net is None or not caller.sees(net):
            raise invalid("network", "no network %s" % body["network"])
        return net

    def create_port(self, req, caller):
        body = self.body(req)
        v.check_fields(body, ("name", "network", "mac", "ips", "tags", "security_groups", "port_security",
                              "encrypt", "allowed_address_pairs"), required=("name", "network"))
        name = v.name(body["name"])
        net = self._network_of(body, caller)
        mac = v.mac(body["mac"]) if "mac" in body else None
        nets = [ipaddress.ip_network(c) for c in net.cidrs]
        ips = v.ips(body.get("ips", []), nets)
        tags = v.tags(body.get("tags", []))
        group_ids = self._groups_of(body, net.tenant)
        security = [v.boolean(body["port_security"], "port_security")] if "port_security" in body else []
        encrypt = [v.boolean(body["encrypt"], "encrypt")] if "encrypt" in body else []
        with self.lock:
            ports = self.nb.rows("Port")
            self._check_name_free("Port", net.tenant, name, ports)
            siblings = [p for p in ports if p.network.uuid == net.uuid]
            macs = {p.mac for p in siblings}
            if mac is None:
                mac = _free_mac(macs)
            elif mac in macs:
                raise conflict("mac", "%s is already used in network %s" % (mac, net.name))
            taken = {ip for p in siblings for ip in p.ips}
            taken.update(lb.vip_address for lb in self.nb.rows("LoadBalancer") if lb.network.uuid == net.uuid)
            for i, ip in enumerate(ips):
                if ip in taken:
                    raise conflict("ips[%d]" % i, "%s is already used in network %s" % (ip, net.name))
            pairs = v.address_pairs(body.get("allowed_address_pairs", []), mac)
            uuid, = self._transact([self.nb.api.db_create("Port", name=name, tenant=net.tenant,
                                                          network=net.uuid, mac=mac, ips=ips,
                                                          tags=tags, security_groups=group_ids,
                                                          port_security=security, encrypt=encrypt,
                                                          allowed_address_pairs=pairs)], "name")
        return 201, port_view(self.nb.get("Port", uuid))

    def update_port(self, req, caller, id):
        return 200, port_view(self._update(req, caller, "Port", id,
                                           ("name", "tags", "security_groups", "port_security",
                                            "encrypt", "allowed_address_pairs")))

    def delete_port(self, req, caller, id):
        with self.lock:
            row = self._find("Port", id, caller)
            self._transact([self.nb.api.db_destroy("Port", row.uuid)], "id")
        return 204, None

    # ---- security groups ---------------------------------------------------------
    def list_groups(self, req, caller):
        q = self._filter(req, ("name", "tenant"))
        rows = [r for r in self.nb.rows("SecurityGroup") if caller.sees(r)
                and q.get("name", r.name) == r.name and q.get("tenant", r.tenant) == r.tenant]
        return 200, sorted((group_view(r) for r in rows), key=lambda g: (g["tenant"], g["name"]))

    def show_group(self, req, caller, id):
        return 200, group_view(self._find("SecurityGroup", id, caller))

    def create_group(self, req, caller):
        body = self.body(req)
        v.check_fields(body, ("name", "description", "tenant", "criteria", "encrypt", "encrypt_with"),
                       required=("name",))
        tenant = self._tenant_of_new(body, caller)
        criteria = _criteria(body)
        name = v.name(body["name"])
        description = v.description(body.get("description", ""))
        encrypt = [v.boolean(body["encrypt"], "encrypt")] if "encrypt" in body else []
        encrypt_with = self._groups_of(body, tenant, "encrypt_with")
        with self.lock:
            self._check_name_free("SecurityGroup", tenant, name)
            uuid, = self._transact([self.nb.api.db_create("SecurityGroup", name=name, tenant=tenant,
                                                          description=description, criteria=criteria,
                                                          encrypt=encrypt, encrypt_with=encrypt_with)], "name")
        return 201, group_view(self.nb.get("SecurityGroup", uuid))

    def update_group(self, req, caller, id):
        return 200, group_view(self._update(req, caller, "SecurityGroup", id,
                                            ("name", "description", "criteria", "encrypt", "encrypt_with")))

    def delete_group(self, req, caller, id):
        with self.lock:
            row = self._find("SecurityGroup", id, caller)
            if any(row.uuid in [g.uuid for g in p.security_groups] for p in self.nb.rows("Port")):
                raise conflict("id", "security group %s is used by ports" % id)
            if any(_opt(r.remote_group) is not None and _opt(r.remote_group).uuid == row.uuid
                   for g in self.nb.rows("SecurityGroup") if g.uuid != row.uuid for r in g.rules):
                raise conflict("id", "security group %s is the remote group of another group's rule" % id)
            self._transact([self.nb.api.db_destroy("SecurityGroup", row.uuid)], "id")
        return 204, None

    def group_members(self, req, caller, id):
        """The ports in the group now: those that name it and, for a dynamic
        group, those its criteria select (in the group's tenant)."""
        row = self._find("SecurityGroup", id, caller)
        criteria = _opt(row.criteria)
        criteria = json.loads(criteria) if criteria else None
        members = []
        for p in self.nb.rows("Port"):
            if p.tenant != row.tenant:
                continue
            named = row.uuid in [g.uuid for g in p.security_groups]
            value = Port(str(p.uuid), p.name, p.tenant, str(p.network.uuid), p.mac, tuple(p.ips), tuple(p.tags))
            if named or (criteria is not None and groups.matches(criteria, value)):
                members.append({"id": str(p.uuid), "name": p.name})
        return 200, sorted(members, key=lambda m: m["name"])

    def create_rule(self, req, caller, id):
        body = self.body(req)
        v.check_fields(body, ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
                              "icmp_type", "icmp_code", "remote_ip_prefix", "remote_group_id", "action",
                              "priority", "log"), required=("direction",))
        columns = v.rule(body)
        with self.lock:
            group = self._find("SecurityGroup", id, caller)
            remote = body.get("remote_group_id")
            if remote is not None:
                rrow = self.nb.get("SecurityGroup", remote) if isinstance(remote, str) else None
                if rrow is None or rrow.tenant != group.tenant:
                    raise invalid("remote_group_id", "no security group %s in tenant %s" % (remote, group.tenant))
                columns["remote_group"] = [rrow.uuid]
            if len(group.rules) >= 1000:
                raise conflict("id", "security group %s has 1000 rules already" % id)
            create = self.nb.api.db_create("Rule", **columns)
            uuid, _ = self._transact([create, self.nb.api.db_add("SecurityGroup", group.uuid, "rules", create)],
                                     "id")
        return 201, rule_view(self.nb.get("Rule", uuid), id)

    def rule_stats(self, req, caller, id, rule_id):
        """Hit counters of a rule: packets of new connections it decided, and
        packets of the established connections it let in, on every switch."""
        group = self._find("SecurityGroup", id, caller)
        if rule_id not in [str(r.uuid) for r in group.rules]:
            raise Problem(404, "Not found", "no rule %s in security group %s" % (rule_id, id))
        if self.stats is None:
            raise Problem(503, "Unavailable", "statistics come from the running controller (dvn serve)")
        return 200, self.stats(str(group.uuid), rule_id)

    def list_events(self, req, caller):
        """Recent firewall log events (newest first), of the caller's ports and
        groups; filter with ?port=<id> and ?rule=<id>; ?limit= (default 100)."""
        q = self._filter(req, ("port", "rule", "limit"))
        try:
            limit = int(q.get("limit", 100))
            if not 1 <= limit <= 1000:
                raise ValueError
        except ValueError:
            raise invalid("limit", "limit is an integer from 1 to 1000")
        if self.events is None:
            raise Problem(503, "Unavailable", "events come from the running controller (dvn serve)")
        out = []
        for event in reversed(self.events):
            if "port" in q and event.get("port") != q["port"]:
                continue
            if "rule" in q and event.get("rule") != q["rule"]:
                continue
            group = self.nb.get("SecurityGroup", event["security_group"]) if event.get("security_group") else None
            if group is None or not caller.sees(group):
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return 200, out

    def delete_rule(self, req, caller, id, rule_id):
        with self.lock:
            group = self._find("SecurityGroup", id, caller)
            rule = self.nb.get("Rule", rule_id)
            if rule is None or rule.uuid not in [r.uuid for r in group.rules]:
                raise Problem(404, "Not found", "no rule %s in security group %s" % (rule_id, id))
            self._transact([self.nb.api.db_remove("SecurityGroup", group.uuid, "rules", rule.uuid)], "rule_id")
        return 204, None

    # ---- load balancers ----------------------------------------------------------
    def _plugged(self, network_uuid):
        """The addresses of the network's ports that a node has plugged in."""
        return {ip for p in self.nb.rows("Port") if p.network.uuid == network_uuid and _opt(p.node) for ip in p.ips}

    def _addresses(self, network_uuid):
        return {ip for p in self.nb.rows("Port") if p.network.uuid == network_uuid for ip in p.ips}

    def _lb_out(self, row):
        return lb_view(row, self._plugged(row.network.uuid))

    def list_lbs(self, req, caller):
        q = self._filter(req, ("name", "tenant", "network"))
        rows = [r for r in self.nb.rows("LoadBalancer") if caller.sees(r)
                and q.get("name", r.name) == r.name and q.get("tenant", r.tenant) == r.tenant
                and q.get("network", str(r.network.uuid)) == str(r.network.uuid)]
        return 200, sorted((self._lb_out(r) for r in rows), key=lambda b: (b["tenant"], b["name"]))

    def show_lb(self, req, caller, id):
        return 200, self._lb_out(self._find("LoadBalancer", id, caller))

    def _new_members(self, value, networks, have, field="members"):
        """Members to create, checked, none twice: a list of member objects
        named ``field``, or (``field`` None) one member that is the request's
        body, whose fields are named as they are."""
        one = field is None
        if not one and (not isinstance(value, list) or len(value) > 1000):
            raise invalid(field, "%s is a list of at most 1000 members" % field)
        out, seen = [], set(have)
        for i, body in enumerate([value] if one else value):
            where = None if one else "%s[%d]" % (field, i)
            try:
                m = v.member(body, networks)
            except Problem as p:
                if where:
                    p.field = where + ("." + p.field if p.field else "")
                raise
            key = (m["address"], m["protocol_port"])
            if key in seen:
                raise conflict(where or "address", "the pool has a member %s:%d already" % key)
            seen.add(key)
            out.append(m)
        return out

    def create_lb(self, req, caller):
        body = self.body(req)
        v.check_fields(body, ("name", "tenant", "description", "network", "vip_address", "protocol",
                              "protocol_port", "session_persistence", "health_monitor", "members"),
                       required=("name", "network", "vip_address", "protocol_port"))
        name = v.name(body["name"])
        net = self._network_of(body, caller)
        if "tenant" in body and body["tenant"] != net.tenant:
            raise invalid("tenant", "a load balancer belongs to its network's tenant (%s)" % net.tenant)
        networks = [ipaddress.ip_network(c) for c in net.cidrs]
        vip = v.ipv4_in(body["vip_address"], "vip_address", networks)
        protocol = v.lb_protocol(body.get("protocol", "tcp"))
        port = v.integer(body["protocol_port"], "protocol_port", 1, 65535)
        description = v.description(body.get("description", ""))
        persistence = v.session_persistence(body.get("session_persistence"))
        monitor = v.health_monitor(body.get("health_monitor"), protocol)
        members = self._new_members(body.get("members", []), networks, ())
        with self.lock:
            lbs = self.nb.rows("LoadBalancer")
            self._check_name_free("LoadBalancer", net.tenant, name, lbs)
            if vip in self._addresses(net.uuid):
                raise conflict("vip_address", "%s is a port's address in network %s" % (vip, net.name))
            for lb in lbs:
                if (lb.network.uuid, lb.vip_address, lb.protocol, lb.protocol_port) == (net.uuid, vip, protocol, port):
                    raise conflict("protocol_port", "%s %s:%d is load balancer %s already" % (
                        protocol, vip, port, lb.uuid))
            used = {lb.group_id for lb in lbs}
            group_id = next(n for n in range(1, len(used) + 2) if n not in used)
            if group_id > lb_flows.MAX_GROUP_ID:
                raise conflict("name", "dvn serves at most %d load balancers" % lb_flows.MAX_GROUP_ID)
            creates = [self.nb.api.db_create("Member", operating_status="ONLINE", **m) for m in members]
            lb = self.nb.api.db_create("LoadBalancer", name=name, tenant=net.tenant, description=description,
                                       network=net.uuid, vip_address=vip, protocol=protocol, protocol_port=port,
                                       group_id=group_id, session_persistence=persistence,
                                       health_monitor=monitor, members=creates)
            result = self._transact(creates + [lb], "name")
        return 201, self._lb_out(self.nb.get("LoadBalancer", result[-1]))

    def update_lb(self, req, caller, id):
        body = self.body(req)
        v.check_fields(body, ("name", "description", "session_persistence", "health_monitor"))
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            changes, extra = [], []
            if "name" in body:
                name = v.name(body["name"])
                self._check_name_free("LoadBalancer", row.tenant, name, but=row.uuid)
                changes.append(("name", name))
            if "description" in body:
                changes.append(("description", v.description(body["description"])))
            if "session_persistence" in body:
                changes.append(("session_persistence", v.session_persistence(body["session_persistence"])))
            if "health_monitor" in body:
                monitor = v.health_monitor(body["health_monitor"], row.protocol)
                changes.append(("health_monitor", monitor))
                if not monitor:  # nothing checks the members any more: none stays out
                    extra = [self.nb.api.db_set("Member", m.uuid, ("operating_status", "ONLINE"))
                             for m in row.members if m.operating_status != "ONLINE"]
            if changes:
                self._transact([self.nb.api.db_set("LoadBalancer", row.uuid, *changes)] + extra, "name")
        return 200, self._lb_out(self.nb.get("LoadBalancer", id))

    def delete_lb(self, req, caller, id):
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            self._transact([self.nb.api.db_destroy("LoadBalancer", row.uuid)], "id")
        return 204, None

    def list_members(self, req, caller, id):
        return 200, self._lb_out(self._find("LoadBalancer", id, caller))["members"]

    def create_members(self, req, caller, id):
        """One member (an object: 201 with it) or several (a list: 201 with them), in one transaction."""
        body = self.body(req)
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            networks = [ipaddress.ip_network(c) for c in row.network.cidrs]
            have = {(m.address, m.protocol_port) for m in row.members}
            members = self._new_members(body, networks, have, field=None if isinstance(body, dict) else "body")
            if len(row.members) + len(members) > lb_flows.MAX_BUCKETS:
                raise conflict("members", "a pool has at most %d members" % lb_flows.MAX_BUCKETS)
            creates = [self.nb.api.db_create("Member", operating_status="ONLINE", **m) for m in members]
            adds = [self.nb.api.db_add("LoadBalancer", row.uuid, "members", c) for c in creates]
            result = self._transact(creates + adds, "address")
        lb = self._lb_out(self.nb.get("LoadBalancer", id))
        made = {str(u) for u in result[:len(creates)]}
        out = [m for m in lb["members"] if m["id"] in made]
        return 201, out[0] if isinstance(body, dict) else out

    def _member(self, row, member_id):
        for m in row.members:
            if str(m.uuid) == member_id:
                return m
        raise Problem(404, "Not found", "no member %s in load balancer %s" % (member_id, row.uuid))

    def update_member(self, req, caller, id, member_id):
        body = self.body(req)
        v.check_fields(body, ("name", "weight", "admin_state_up"))
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            member = self._member(row, member_id)
            changes = []
            if "name" in body:
                changes.append(("name", v.name(body["name"])))
            if "weight" in body:
                changes.append(("weight", v.integer(body["weight"], "weight", 0, 256)))
            if "admin_state_up" in body:
                changes.append(("admin_state_up", v.boolean(body["admin_state_up"], "admin_state_up")))
            if changes:
                self._transact([self.nb.api.db_set("Member", member.uuid, *changes)], "member_id")
        lb = self._lb_out(self.nb.get("LoadBalancer", id))
        return 200, next(m for m in lb["members"] if m["id"] == member_id)

    def delete_member(self, req, caller, id, member_id):
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            member = self._member(row, member_id)
            self._transact([self.nb.api.db_remove("LoadBalancer", row.uuid, "members", member.uuid)], "member_id")
        return 204, None

    def show_lb_stats(self, req, caller, id):
        """New connections the VIP took, in all and per member, summed over every switch."""
        row = self._find("LoadBalancer", id, caller)
        if self.lb_stats is None:
            raise Problem(503, "Unavailable", "statistics come from the running controller (dvn serve)")
        return 200, self.lb_stats(str(row.uuid))

    # ---- nodes (admin) ---------------------------------------------------------
    def _admin(self, caller):
        if not caller.admin:
            raise Problem(403, "Forbidden", "nodes are visible to admins only")

    def _node(self, system_id):
        for row in self.nb.rows("Node"):
            if row.system_id == system_id:
                return row
        raise Problem(404, "Not found", "no node %s" % system_id)

    def list_nodes(self, req, caller):
        self._admin(caller)
        self._filter(req, ())
        return 200, sorted((node_view(r) for r in self.nb.rows("Node")), key=lambda n: n["system_id"])

    def show_node(self, req, caller, id):
        self._admin(caller)
        return 200, node_view(self._node(id))

    def delete_node(self, req, caller, id):
        self._admin(caller)
        with self.lock:
            row = self._node(id)
            if row.state == "up":
                raise conflict("system_id", "node %s is connected: stop it or run `dvn leave` on it first" % id)
            keys = self._node_keys(id)
            self._transact([self.nb.api.db_destroy("Node", row.uuid)]
                           + [self.nb.api.db_destroy("TunnelKey", k.uuid) for k in keys], "system_id")
        return 204, None

    def _node_keys(self, system_id):
        """The TunnelKey rows of a node's pairs (their ``nodes``: "a|b")."""
        return [k for k in self.nb.rows("TunnelKey") if system_id in k.nodes.split("|")]

    def rotate_keys(self, req, caller, id):
        """New pre-shared keys for every IPsec tunnel of the node (never returned)."""
        self._admin(caller)
        with self.lock:
            self._node(id)
            keys = self._node_keys(id)
            self._transact([self.nb.api.db_set("TunnelKey", k.uuid, ("psk", secrets.token_hex(32)),
                                               ("version", k.version + 1)) for k in keys], "system_id")
        return 200, {"system_id": id, "rotated": len(keys),
                     "versions": {k.nodes: k.version + 1 for k in keys}}

    # ---- the document ------------------------------------------------------------
    def openapi(self, req, caller):
        from controller.openapi import document
        return 200, document(self.routes)


def _free_mac(used):
    while True:
        mac = "02:" + ":".join("%02x" % b for b in secrets.token_bytes(5))
        if mac not in used:
            return mac


def make_app(nb, stats=None, events=None, lb_stats=None):
    return Api(nb, stats, events, lb_stats)


def main(argv=None):
    """Run the API alone (tests): python -m controller.api --nb REMOTE --listen HOST:PORT."""
    import eventlet
    eventlet.monkey_patch()
    import argparse
    import eventlet.wsgi
    from ovsdb.nb import Northbound

    ap = argparse.ArgumentParser()
    ap.add_argument("--nb", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--admin-token-file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    nb = Northbound(args.nb).start()
    if args.admin_token_file:
        ensure_admin_token(nb, args.admin_token_file)
    host, _, port = args.listen.rpartition(":")
    sock = eventlet.listen((host, int(port)))
    print("listening %d" % sock.getsockname()[1], flush=True)
    # No controller here: no switch statistics, and no firewall events to show.
    eventlet.wsgi.server(sock, make_app(nb, events=()), log=LOG, log_output=False)


if __name__ == "__main__":
    main()
