"""Load balancers and their members: /v1/load-balancers."""

import ipaddress
import json
from collections import defaultdict

from controller import validation as v
from controller.api import schemas
from controller.api.context import Context, given
from controller.validation import Problem, conflict, unprocessable
from flows import lb as lb_flows
from ovsdb.nb import optional as _opt


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


class _Lazy(dict):
    """{key: make(key)}, made when first asked."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        value = self[key] = self.make(key)
        return value


class LoadBalancers:
    """The handlers of /v1/load-balancers (a part of Api)."""

    def _new_lb(self, ctx, body):
        """A load balancer and its members: the members' commands, then its own."""
        ctx.check("LoadBalancer", body)
        name = body["name"]
        net = ctx.network(body["network"])
        if "tenant" in body and body["tenant"] != net.tenant:
            raise unprocessable("tenant", "a load balancer belongs to its network's tenant (%s)" % net.tenant)
        vip = v.ipv4_in(body["vip_address"], "vip_address", net.cidrs)
        protocol = body.get("protocol", "tcp")
        port = int(body["protocol_port"])
        description = body.get("description", "")
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
        creates = [self.nb.api.db_create("Member", **given(operating_status="ONLINE", **m)) for m in members]
        lb = self.nb.api.db_create("LoadBalancer", **given(
            name=name, tenant=net.tenant, description=description, network=net.ref, vip_address=vip,
            protocol=protocol, protocol_port=port, group_id=group_id, session_persistence=persistence,
            health_monitor=monitor, members=tuple(creates)))
        return creates + [lb]

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
        """Members to create (their schema checked), none twice: a list of
        member objects named ``field``, or (``field`` None) one member that
        is the request's body, whose fields are named as they are."""
        one = field is None
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
        body = schemas.check("LoadBalancerUpdate", self.body(req))
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            changes, extra = [], []
            if "name" in body:
                self._check_name_free("LoadBalancer", row.tenant, body["name"], row.uuid)
                changes.append(("name", body["name"]))
            if "description" in body:
                changes.append(("description", body["description"]))
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
        if isinstance(body, dict):
            schemas.check("MemberCreate", body)
        else:  # a list, or neither: the body is named
            schemas.check("MemberList", body, "body")
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
        body = schemas.check("MemberUpdate", self.body(req))
        with self.lock:
            row = self._find("LoadBalancer", id, caller)
            member = self._member(row, member_id)
            changes = [(key, int(body[key]) if key == "weight" else body[key])
                       for key in ("name", "weight", "admin_state_up") if key in body]
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

