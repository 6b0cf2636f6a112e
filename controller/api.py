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
import time
import uuid as uuidlib
from collections import defaultdict
from functools import cached_property

import webob

from controller import validation as v
from controller.validation import Problem, conflict, invalid
from flows import groups
from flows import lb as lb_flows
from flows.model import Port
from ovsdb.nb import Conflict, NbError, Timeout
from ovsdb.nb import optional as _opt

LOG = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
MAX_IMPORT_BODY = 64 * 1024 * 1024  # POST /v1/import only: a tenant's whole configuration
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


def node_view(row, switch_state=None):
    out = {"system_id": row.system_id, "hostname": row.hostname, "encap_ip": row.encap_ip,
           "state": row.state, "last_seen": row.last_seen}
    if switch_state is not None:
        out["switch"] = switch_state(row.system_id)
    return out


NOUNS = {"Network": "network", "Port": "port", "SecurityGroup": "security group", "LoadBalancer": "load balancer"}

# The fields of the create bodies.
NETWORK_FIELDS = ("name", "vni", "cidrs", "tags", "tenant")
GROUP_FIELDS = ("name", "description", "tenant", "criteria", "encrypt", "encrypt_with")
RULE_FIELDS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "icmp_type", "icmp_code",
               "remote_ip_prefix", "remote_group_id", "action", "priority", "log")
PORT_FIELDS = ("name", "network", "mac", "ips", "tags", "security_groups", "port_security", "encrypt",
               "allowed_address_pairs")
LB_FIELDS = ("name", "tenant", "description", "network", "vip_address", "protocol", "protocol_port",
             "session_persistence", "health_monitor", "members")
# A document (POST /v1/import): its networks and groups are its tenant's; a group brings its rules.
IMPORT_KINDS = ("networks", "security_groups", "ports", "load_balancers")
IMPORT_NETWORK_FIELDS = tuple(f for f in NETWORK_FIELDS if f != "tenant")
IMPORT_GROUP_FIELDS = tuple(f for f in GROUP_FIELDS if f != "tenant") + ("rules",)
MAX_RULES = 1000


class _Net:
    """The network a new port or load balancer goes in: a store row or one the
    request creates. ``ref`` is what a Port's or LoadBalancer's ``network``
    column takes: the row's uuid, or the network's db_create command."""

    __slots__ = ("ref", "name", "tenant", "cidrs")

    def __init__(self, ref, name, tenant, cidrs):
        self.ref, self.name, self.tenant = ref, name, tenant
        self.cidrs = [ipaddress.ip_network(c) for c in cidrs]


class _Later:
    """A security group of a document, known by its name before it is made (an
    earlier group, or its own rules, may name it): ``cmd`` once it is."""

    __slots__ = ("cmd",)

    def __init__(self):
        self.cmd = None


class Context:
    """What new objects are checked against: the store's rows, indexed once
    (each index on first use), and what the request creates, added as it goes.
    A single create uses one for its object, POST /v1/import one for its whole
    document: an object costs a few lookups, not a scan of every row.

    Use it under Api.lock, and drop it after an error (what failed may be half
    in its indexes)."""

    def __init__(self, nb, caller):
        self.nb, self.caller = nb, caller
        self.tenant = None          # a document's tenant (None: each object's own)
        self.document = False       # references may name the document's objects
        self.networks = {}          # name -> _Net: the networks the request creates
        self.groups_by_name = {}    # name -> _Later: a document's security groups
        self.later = []             # (group command, encrypt_with): groups that name groups made after them
        self.reserved_vnis = set()  # a document's explicit VNIs: no automatic VNI takes one
        self.reserved_macs = set()  # a document's explicit MACs: no generated MAC is one
        self._names = {}
        self._nets = {}
        self._ports_in = {}         # _Net.ref -> (MACs, addresses) of its ports
        self._lbs_in = {}           # _Net.ref -> (VIPs, {(VIP, protocol, port): load balancer}) of its LBs
        self._next_vni = VNI_AUTO_START
        self._next_group_id = 1

    # ---- the store's rows, indexed once ------------------------------------------
    # Rows are grouped by network in one scan; a network's sets are made from
    # its rows when first asked (a single create reads no other network's).
    @cached_property
    def _vnis(self):
        return {r.vni for r in self.nb.rows("Network")}

    @staticmethod
    def _by_network(rows):
        out = defaultdict(list)
        for r in rows:
            out[r.network.uuid].append(r)
        return out

    @cached_property
    def _port_rows(self):
        return self._by_network(self.nb.rows("Port"))

    @cached_property
    def _lb_rows(self):
        return self._by_network(self.nb.rows("LoadBalancer"))

    @cached_property
    def _group_ids(self):
        return {lb.group_id for lb in self.nb.rows("LoadBalancer")}

    def _ports(self, net):
        """The MACs and the addresses of the network's ports."""
        out = self._ports_in.get(net.ref)
        if out is None:
            rows = self._port_rows.get(net.ref, ()) if isinstance(net.ref, uuidlib.UUID) else ()
            out = self._ports_in[net.ref] = ({p.mac for p in rows}, {ip for p in rows for ip in p.ips})
        return out

    def _lbs(self, net):
        """The network's VIPs, and its (VIP, protocol, port) -> the load balancer there."""
        out = self._lbs_in.get(net.ref)
        if out is None:
            rows = self._lb_rows.get(net.ref, ()) if isinstance(net.ref, uuidlib.UUID) else ()
            out = self._lbs_in[net.ref] = ({lb.vip_address for lb in rows},
                                           {(lb.vip_address, lb.protocol, lb.protocol_port): str(lb.uuid)
                                            for lb in rows})
        return out

    def macs(self, net):
        return self._ports(net)[0]

    def port_ips(self, net):
        return self._ports(net)[1]

    def vips(self, net):
        return self._lbs(net)[0]

    def lb_keys(self, net):
        return self._lbs(net)[1]

    # ---- checks that take what they check ------------------------------------------
    def claim_name(self, table, tenant, name):
        """Names are unique per tenant and table (409 naming the field)."""
        names = self._names.get(table)
        if names is None:
            names = self._names[table] = {(r.tenant, r.name) for r in self.nb.rows(table)}
        if (tenant, name) in names:
            raise conflict("name", "tenant %s already has a %s named %s" % (tenant, NOUNS[table], name))
        names.add((tenant, name))

    def vni(self, vni):
        """The VNI of a new network: ``vni`` if it is free (else 409), or for
        None the first free one from VNI_AUTO_START."""
        used = self._vnis
        if vni is None:
            n = self._next_vni
            while n in used or n in self.reserved_vnis:
                n += 1
            if n > v.VNI_MAX:
                raise conflict("vni", "no VNI is free")
            self._next_vni = n + 1
            vni = n
        elif vni in used:
            raise conflict("vni", "VNI %d is in use" % vni)
        used.add(vni)
        return vni

    def lb_group_id(self):
        """The smallest group id no load balancer has."""
        used = self._group_ids
        n = self._next_group_id
        while n in used:
            n += 1
        self._next_group_id = n + 1
        used.add(n)
        return n

    # ---- what a body names -------------------------------------------------------------
    def tenant_of_new(self, body):
        """The tenant of a new network or security group (or of a document)."""
        if self.tenant is not None:
            return self.tenant
        if self.caller.admin:
            if "tenant" not in body:
                raise invalid("tenant", "an admin must name the tenant")
            return v.name(body["tenant"], "tenant")
        if "tenant" in body and body["tenant"] != self.caller.tenant:
            raise invalid("tenant", "a tenant token creates objects of its own tenant only")
        return self.caller.tenant

    def network(self, value):
        """The network ``value`` names, else 400 on network: the id of one the
        caller sees, or in a document the name of one of its networks or the
        id of one of its tenant's."""
        if not isinstance(value, str):
            raise invalid("network", "network must be a network id" +
                          (" or the name of a network of the document" if self.document else ""))
        net = self.networks.get(value) if self.document else None
        if net is not None:
            return net
        row = self.nb.get("Network", value)
        if row is None or not self.caller.sees(row) or (self.tenant is not None and row.tenant != self.tenant):
            raise invalid("network", "no network %s" % value +
                          (" in tenant %s or in the document" % self.tenant if self.document else ""))
        net = self._nets.get(row.uuid)
        if net is None:
            net = self._nets[row.uuid] = _Net(row.uuid, row.name, row.tenant, row.cidrs)
        return net

    def group(self, value, tenant, field):
        """The security group ``value`` names in ``tenant``, else 400 on
        ``field``: its uuid, or a document's group by name (its command, or
        its _Later while it is not made)."""
        if isinstance(value, str):
            later = self.groups_by_name.get(value)
            if later is not None:
                return later if later.cmd is None else later.cmd
            row = self.nb.get("SecurityGroup", value)
            if row is not None and row.tenant == tenant:
                return row.uuid
        raise invalid(field, "no security group %s in tenant %s" % (value, tenant) +
                      (" or in the document" if self.document else ""))

    def groups(self, value, tenant, field="security_groups"):
        if not isinstance(value, list) or len(value) > 32:
            raise invalid(field, "%s is a list of at most 32 group ids" % field)
        out = {}
        for i, gid in enumerate(value):
            out.setdefault(self.group(gid, tenant, "%s[%d]" % (field, i)))
        return list(out)


class _Pace:
    """Called once an object of a document: now and then it lets the other
    green threads run (the controller's connections must not starve while a
    large document is checked under the lock)."""

    EVERY = 256

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        if self.n % self.EVERY == 0:
            time.sleep(0)  # eventlet's sleep under `dvn serve`: a yield


def _given(**columns):
    """Columns for db_create, without those at the column's default (an empty
    set or string): the store fills them in, and a large transaction is
    cheaper for python-ovs without them."""
    return {k: val for k, val in columns.items() if not (isinstance(val, (list, tuple, str)) and len(val) == 0)}


def _at(where, make, *args):
    """``make(*args)``; a problem's field is named by its path in the document."""
    try:
        return make(*args)
    except Problem as p:
        p.field = where + ("." + p.field if p.field else "")
        raise


class Api:
    def __init__(self, nb, stats=None, events=None, lb_stats=None, switch_state=None, plugged=None):
        self.nb = nb
        self.stats = stats    # rule_stats(group id, rule id) of the running controller, if any
        self.lb_stats = lb_stats  # lb_stats(load balancer id) of the running controller, if any
        self.switch_state = switch_state  # switch_state(system id) of the running controller, if any
        self.plugged = plugged    # plugged(network id): its plugged ports' addresses, from the running controller
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
            ("POST", r"/v1/import", self.import_document),
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
    def body(req, limit=MAX_BODY):
        if req.content_length is not None and req.content_length > limit:
            raise Problem(413, "Payload too large", "the body is limited to %d bytes" % limit)
        ctype = (req.content_type or "").lower()
        if ctype != "application/json":
            raise Problem(415, "Unsupported media type", "send application/json")
        raw = req.body_file.read(limit + 1)
        if len(raw) > limit:
            raise Problem(413, "Payload too large", "the body is limited to %d bytes" % limit)
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
        except Timeout as exc:
            raise Problem(503, "Store unavailable", "%s: look before retrying" % exc)
        except NbError as exc:
            raise Problem(503, "Store unavailable", "the northbound store refused the change: %s" % exc)

    @staticmethod
    def _filter(req, allowed):
        for key in req.GET:
            if key not in allowed:
                raise invalid(key, "unknown query parameter %r (allowed: %s)" % (key, ", ".join(allowed)))
        return req.GET

    def _check_name_free(self, table, tenant, name, but):
        """A renamed object's name stays unique per tenant and table (409 naming the field)."""
        for r in self.nb.rows(table):
            if r.tenant == tenant and r.name == name and r.uuid != but:
                raise conflict("name", "tenant %s already has a %s named %s" % (tenant, NOUNS[table], name))

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
                self._check_name_free(table, row.tenant, name, row.uuid)
                changes.append(("name", name))
            if "tags" in body:
                changes.append(("tags", v.tags(body["tags"])))
            if "description" in body:
                changes.append(("description", v.description(body["description"])))
            if "criteria" in body:
                changes.append(("criteria", _criteria(body)))
            ctx = Context(self.nb, caller)
            if "security_groups" in body:
                changes.append(("security_groups", ctx.groups(body["security_groups"], row.tenant)))
            if "encrypt_with" in body:
                changes.append(("encrypt_with", ctx.groups(body["encrypt_with"], row.tenant, "encrypt_with")))
            if "port_security" in body:
                changes.append(("port_security", [v.boolean(body["port_security"], "port_security")]))
            if "encrypt" in body:
                changes.append(("encrypt", [v.boolean(body["encrypt"], "encrypt")]))
            if "allowed_address_pairs" in body:
                changes.append(("allowed_address_pairs", v.address_pairs(body["allowed_address_pairs"], row.mac)))
            if changes:
                self._transact([self.nb.api.db_set(table, row.uuid, *changes)], "name")
        return self.nb.get(table, id)

    # ---- new objects: a body checked against a Context, as store commands ----------
    # The single creates and POST /v1/import share these; each takes what it
    # creates into the context's indexes.
    def _new_network(self, ctx, body, fields=NETWORK_FIELDS):
        v.check_fields(body, fields, required=("name",))
        tenant = ctx.tenant_of_new(body)
        name = v.name(body["name"])
        cidrs = v.cidrs(body.get("cidrs", []))
        tags = v.tags(body.get("tags", []))
        vni = v.vni(body["vni"]) if "vni" in body else None
        ctx.claim_name("Network", tenant, name)
        vni = ctx.vni(vni)
        cmd = self.nb.api.db_create("Network", **_given(name=name, tenant=tenant, vni=vni, cidrs=cidrs, tags=tags))
        ctx.networks[name] = _Net(cmd, name, tenant, cidrs)
        return cmd

    def _new_group(self, ctx, body, fields=GROUP_FIELDS):
        """A security group, without rules (a document's come after all its groups)."""
        v.check_fields(body, fields, required=("name",))
        tenant = ctx.tenant_of_new(body)
        criteria = _criteria(body)
        name = v.name(body["name"])
        description = v.description(body.get("description", ""))
        encrypt = [v.boolean(body["encrypt"], "encrypt")] if "encrypt" in body else []
        encrypt_with = ctx.groups(body.get("encrypt_with", []), tenant, "encrypt_with")
        ctx.claim_name("SecurityGroup", tenant, name)
        now = not any(isinstance(g, _Later) for g in encrypt_with)
        cmd = self.nb.api.db_create("SecurityGroup", **_given(
            name=name, tenant=tenant, description=description, criteria=criteria, encrypt=encrypt,
            encrypt_with=tuple(encrypt_with) if now else ()))
        if not now:  # it names groups made after it: set once they are
            ctx.later.append((cmd, encrypt_with))
        return cmd

    def _new_rule(self, ctx, body, tenant_of_group):
        """A rule, for the caller to add to its group. ``tenant_of_group()``:
        the group's tenant, asked once the body is checked."""
        v.check_fields(body, RULE_FIELDS, required=("direction",))
        columns = v.rule(body)
        tenant = tenant_of_group()
        remote = body.get("remote_group_id")
        if remote is not None:
            columns["remote_group"] = (ctx.group(remote, tenant, "remote_group_id"),)
        return self.nb.api.db_create("Rule", **_given(**columns))

    def _new_port(self, ctx, body):
        v.check_fields(body, PORT_FIELDS, required=("name", "network"))
        name = v.name(body["name"])
        net = ctx.network(body["network"])
        mac = v.mac(body["mac"]) if "mac" in body else None
        ips = v.ips(body.get("ips", []), net.cidrs)
        tags = v.tags(body.get("tags", []))
        group_ids = ctx.groups(body.get("security_groups", []), net.tenant)
        security = [v.boolean(body["port_security"], "port_security")] if "port_security" in body else []
        encrypt = [v.boolean(body["encrypt"], "encrypt")] if "encrypt" in body else []
        ctx.claim_name("Port", net.tenant, name)
        macs = ctx.macs(net)
        if mac is None:
            mac = _free_mac(macs, ctx.reserved_macs)
        elif mac in macs:
            raise conflict("mac", "%s is already used in network %s" % (mac, net.name))
        taken, vips = ctx.port_ips(net), ctx.vips(net)
        for i, ip in enumerate(ips):
            if ip in taken or ip in vips:
                raise conflict("ips[%d]" % i, "%s is already used in network %s" % (ip, net.name))
        pairs = v.address_pairs(body.get("allowed_address_pairs", []), mac)
        macs.add(mac)
        taken.update(ips)
        return self.nb.api.db_create("Port", **_given(
            name=name, tenant=net.tenant, network=net.ref, mac=mac, ips=ips, tags=tags,
            security_groups=tuple(group_ids), port_security=security, encrypt=encrypt, allowed_address_pairs=pairs))

    def _new_lb(self, ctx, body):
        """A load balancer and its members: the members' commands, then its own."""
        v.check_fields(body, LB_FIELDS, required=("name", "network", "vip_address", "protocol_port"))
        name = v.name(body["name"])
        net = ctx.network(body["network"])
        if "tenant" in body and body["tenant"] != net.tenant:
            raise invalid("tenant", "a load balancer belongs to its network's tenant (%s)" % net.tenant)
        vip = v.ipv4_in(body["vip_address"], "vip_address", net.cidrs)
        protocol = v.lb_protocol(body.get("protocol", "tcp"))
        port = v.integer(body["protocol_port"], "protocol_port", 1, 65535)
        description = v.description(body.get("description", ""))
        persistence = v.session_persistence(body.get("session_persistence"))
        monitor = v.health_monitor(body.get("health_monitor"), protocol)
        members = self._new_members(body.get("members", []), net.cidrs, ())
        ctx.claim_name("LoadBalancer", net.tenant, name)
        if vip in ctx.port_ips(net):
            raise conflict("vip_address", "%s is a port's address in network %s" % (vip, net.name))
        key, taken = (vip, protocol, port), ctx.lb_keys(net)
        if key in taken:
            raise conflict("protocol_port", "%s %s:%d is load balancer %s already" % (
                protocol, vip, port, taken[key]))
        group_id = ctx.lb_group_id()
        if group_id > lb_flows.MAX_GROUP_ID:
            raise conflict("name", "dvn serves at most %d load balancers" % lb_flows.MAX_GROUP_ID)
        taken[key] = name
        ctx.vips(net).add(vip)
        creates = [self.nb.api.db_create("Member", **_given(operating_status="ONLINE", **m)) for m in members]
        lb = self.nb.api.db_create("LoadBalancer", **_given(
            name=name, tenant=net.tenant, description=description, network=net.ref, vip_address=vip,
            protocol=protocol, protocol_port=port, group_id=group_id, session_persistence=persistence,
            health_monitor=monitor, members=tuple(creates)))
        return creates + [lb]

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
        with self.lock:
            uuid, = self._transact([self._new_network(Context(self.nb, caller), body)], "name")
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

    def create_port(self, req, caller):
        body = self.body(req)
        with self.lock:
            uuid, = self._transact([self._new_port(Context(self.nb, caller), body)], "name")
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
        with self.lock:
            uuid, = self._transact([self._new_group(Context(self.nb, caller), body)], "name")
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
        with self.lock:
            found = []

            def tenant_of_group():
                found.append(self._find("SecurityGroup", id, caller))
                return found[0].tenant

            create = self._new_rule(Context(self.nb, caller), body, tenant_of_group)
            group = found[0]
            if len(group.rules) >= MAX_RULES:
                raise conflict("id", "security group %s has %d rules already" % (id, MAX_RULES))
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
    def _plugged(self, network_uuid=None):
        """The addresses of the network's ports that a node has plugged in
        (no network: {network uuid: them} of every network, in one scan).
        The running controller knows them per network; without it, the
        store's ports are scanned."""
        if self.plugged is not None:
            if network_uuid is not None:
                return self.plugged(str(network_uuid))
            return _Lazy(lambda net: self.plugged(str(net)))
        out = defaultdict(set)
        for p in self.nb.rows("Port"):
            if _opt(p.node) and (network_uuid is None or p.network.uuid == network_uuid):
                out[p.network.uuid].update(p.ips)
        return out if network_uuid is None else out[network_uuid]

    def _lb_out(self, row):
        return lb_view(row, self._plugged(row.network.uuid))

    def list_lbs(self, req, caller):
        q = self._filter(req, ("name", "tenant", "network"))
        rows = [r for r in self.nb.rows("LoadBalancer") if caller.sees(r)
                and q.get("name", r.name) == r.name and q.get("tenant", r.tenant) == r.tenant
                and q.get("network", str(r.network.uuid)) == str(r.network.uuid)]
        plugged = self._plugged()
        return 200, sorted((lb_view(r, plugged[r.network.uuid]) for r in rows), key=lambda b: (b["tenant"], b["name"]))

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
        with self.lock:
            result = self._transact(self._new_lb(Context(self.nb, caller), body), "name")
        return 201, self._lb_out(self.nb.get("LoadBalancer", result[-1]))

    def update_lb(self, req, caller, id):
        body = self.body(req)
        v.check_fields(body, ("name", "description", "session_persistence", "health_monitor"))
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            changes, extra = [], []
            if "name" in body:
                name = v.name(body["name"])
                self._check_name_free("LoadBalancer", row.tenant, name, row.uuid)
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
        return 200, sorted((node_view(r, self.switch_state) for r in self.nb.rows("Node")),
                           key=lambda n: n["system_id"])

    def show_node(self, req, caller, id):
        self._admin(caller)
        return 200, node_view(self._node(id), self.switch_state)

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

    # ---- bulk import ------------------------------------------------------------------
    def import_document(self, req, caller):
        """A tenant's networks, security groups (with their rules), ports and
        load balancers from one document, in one transaction: all or nothing.
        A reference is the id of one of the tenant's objects or the name of an
        object of that kind in the document (a name wins over an id). Every
        object is checked as its single create checks it, against indexes
        built once, so the time is linear in the document's size."""
        doc = self.body(req, MAX_IMPORT_BODY)
        v.check_fields(doc, ("tenant",) + IMPORT_KINDS)
        for kind in IMPORT_KINDS:
            if not isinstance(doc.get(kind, []), list):
                raise invalid(kind, "%s is a list" % kind)
        if not any(doc.get(kind) for kind in IMPORT_KINDS):
            raise invalid(None, "the document creates nothing: give networks, security_groups, ports "
                                "or load_balancers")
        bodies = {kind: doc.get(kind, []) for kind in IMPORT_KINDS}
        made = {kind: {} for kind in IMPORT_KINDS if kind in doc}   # name -> its db_create command
        with self.lock:
            ctx = Context(self.nb, caller)
            ctx.tenant = ctx.tenant_of_new(doc)
            ctx.document = True
            # Automatic VNIs and MACs keep clear of the document's own.
            ctx.reserved_vnis = {b["vni"] for b in bodies["networks"]
                                 if isinstance(b, dict) and type(b.get("vni")) is int}
            ctx.reserved_macs = {b["mac"].lower() for b in bodies["ports"]
                                 if isinstance(b, dict) and isinstance(b.get("mac"), str)}
            # A group may name a later one (or itself) in encrypt_with and in its rules.
            for b in bodies["security_groups"]:
                if isinstance(b, dict) and isinstance(b.get("name"), str):
                    ctx.groups_by_name.setdefault(b["name"], _Later())
            pace = _Pace()

            networks = []
            for i, body in enumerate(bodies["networks"]):
                networks.append(_at("networks[%d]" % i, self._new_network, ctx, body, IMPORT_NETWORK_FIELDS))
                made["networks"][body["name"]] = networks[-1]
                pace()
            groups = []
            for i, body in enumerate(bodies["security_groups"]):
                groups.append(_at("security_groups[%d]" % i, self._new_group, ctx, body, IMPORT_GROUP_FIELDS))
                ctx.groups_by_name[body["name"]].cmd = made["security_groups"][body["name"]] = groups[-1]
                pace()
            # Rules once every group is made; then each group gets its rules and
            # the groups it names that were made after it.
            rules, links = [], {}
            for i, (body, group) in enumerate(zip(bodies["security_groups"], groups)):
                where = "security_groups[%d].rules" % i
                value = body.get("rules", [])
                if not isinstance(value, list):
                    raise invalid(where, "rules is a list of rules")
                if len(value) > MAX_RULES:
                    raise conflict(where, "a security group has at most %d rules" % MAX_RULES)
                mine = []
                for j, rule in enumerate(value):
                    mine.append(_at("%s[%d]" % (where, j), self._new_rule, ctx, rule, lambda: ctx.tenant))
                    pace()
                if mine:
                    links[group] = [("rules", tuple(mine))]
                rules += mine
            for group, refs in ctx.later:
                links.setdefault(group, []).append(
                    ("encrypt_with", tuple(r.cmd if isinstance(r, _Later) else r for r in refs)))
            sets = [self.nb.api.db_set("SecurityGroup", group, *columns) for group, columns in links.items()]
            ports = []
            for i, body in enumerate(bodies["ports"]):
                ports.append(_at("ports[%d]" % i, self._new_port, ctx, body))
                made["ports"][body["name"]] = ports[-1]
                pace()
            lbs = []
            for i, body in enumerate(bodies["load_balancers"]):
                commands = _at("load_balancers[%d]" % i, self._new_lb, ctx, body)
                made["load_balancers"][body["name"]] = commands[-1]
                lbs += commands
                pace()
            self._transact(networks + groups + rules + sets + ports + lbs, None)
        return 201, {kind: {name: str(cmd.result) for name, cmd in names.items()} for kind, names in made.items()}

    # ---- the document ------------------------------------------------------------
    def openapi(self, req, caller):
        from controller.openapi import document
        return 200, document(self.routes)


def _free_mac(*used):
    while True:
        mac = "02:" + ":".join("%02x" % b for b in secrets.token_bytes(5))
        if not any(mac in u for u in used):
            return mac


class _Lazy(dict):
    """{key: make(key)}, made when first asked."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        value = self[key] = self.make(key)
        return value


def make_app(nb, stats=None, events=None, lb_stats=None, switch_state=None, plugged=None):
    return Api(nb, stats, events, lb_stats, switch_state, plugged)


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
