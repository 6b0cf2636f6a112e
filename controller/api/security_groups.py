"""Security groups and their rules: /v1/security-groups."""

import json

from controller import validation as v
from controller.api.context import Context, Later, given
from controller.validation import Problem, conflict, invalid, unprocessable
from flows import groups
from flows.model import Port
from ovsdb.nb import optional as _opt

MAX_RULES = 1000
MAX_CRITERIA = 4096  # characters of JSON

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
            "action": row.action, "priority": row.priority, "log": opt(row.log) is True,
            "alert": opt(row.alert) is True}


def group_view(row):
    gid = str(row.uuid)
    criteria = _opt(row.criteria)
    return {"id": gid, "name": row.name, "tenant": row.tenant, "description": row.description,
            "criteria": json.loads(criteria) if criteria else None,
            "encrypt": _opt(row.encrypt) is True, "encrypt_with": sorted(str(g.uuid) for g in row.encrypt_with),
            "rules": sorted((rule_view(r, gid) for r in row.rules), key=lambda r: r["id"])}


def criteria_column(body):
    """The criteria of a dynamic group (its structure checked by the body's
    schema), as the store keeps them ([] for none)."""
    value = body.get("criteria")
    if value is None:
        return []
    try:
        groups.check(value)
    except groups.CriteriaError as exc:
        raise invalid(exc.path, exc.detail)
    text = json.dumps(value, sort_keys=True)
    if len(text) > MAX_CRITERIA:
        raise unprocessable("criteria", "criteria are limited to %d characters of JSON" % MAX_CRITERIA)
    return [text]


class SecurityGroups:
    """The handlers of /v1/security-groups (a part of Api)."""

    def _new_group(self, ctx, body):
        """A security group, without rules (a document's come after all its groups)."""
        ctx.check("SecurityGroup", body)
        tenant = ctx.tenant_of_new(body)
        criteria = criteria_column(body)
        name = body["name"]
        description = body.get("description", "")
        encrypt = [body["encrypt"]] if "encrypt" in body else []
        encrypt_with = ctx.groups(body.get("encrypt_with", []), tenant, "encrypt_with")
        ctx.claim_name("SecurityGroup", tenant, name)
        now = not any(isinstance(g, Later) for g in encrypt_with)
        cmd = self.nb.api.db_create("SecurityGroup", **given(
            name=name, tenant=tenant, description=description, criteria=criteria, encrypt=encrypt,
            encrypt_with=tuple(encrypt_with) if now else ()))
        if not now:  # it names groups made after it: set once they are
            ctx.later.append((cmd, encrypt_with))
        return cmd

    def _new_rule(self, ctx, body, tenant_of_group):
        """A rule, for the caller to add to its group. ``tenant_of_group()``:
        the group's tenant, asked once the body is checked."""
        if not ctx.document:  # (a document's rules were checked with their group)
            ctx.check("Rule", body)
        columns = v.rule(body)
        tenant = tenant_of_group()
        remote = body.get("remote_group_id")
        if remote is not None:
            columns["remote_group"] = (ctx.group(remote, tenant, "remote_group_id"),)
        return self.nb.api.db_create("Rule", **given(**columns))

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
        return 200, group_view(self._update(req, caller, "SecurityGroup", id, "SecurityGroupUpdate"))

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

    def delete_rule(self, req, caller, id, rule_id):
        with self.lock:
            group = self._find("SecurityGroup", id, caller)
            rule = self.nb.get("Rule", rule_id)
            if rule is None or rule.uuid not in [r.uuid for r in group.rules]:
                raise Problem(404, "Not found", "no rule %s in security group %s" % (rule_id, id))
            self._transact([self.nb.api.db_remove("SecurityGroup", group.uuid, "rules", rule.uuid)], "rule_id")
        return 204, None

