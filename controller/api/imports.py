"""POST /v1/import: a tenant's whole configuration in one transaction."""

from controller.api import schemas
from controller.api.context import Context, Later, Pace, at
from controller.api.security_groups import MAX_RULES
from controller.validation import conflict

MAX_IMPORT_BODY = 64 * 1024 * 1024  # a tenant's whole configuration
IMPORT_KINDS = ("networks", "security_groups", "ports", "load_balancers")


class Import:
    """POST /v1/import (a part of Api)."""

    def import_document(self, req, caller):
        """A tenant's networks, security groups (with their rules), ports and
        load balancers from one document, in one transaction: all or nothing.
        A reference is the id of one of the tenant's objects or the name of an
        object of that kind in the document (a name wins over an id). Every
        object is checked as its single create checks it, against indexes
        built once, so the time is linear in the document's size. The
        document's top is checked against its schema first, each object
        against its item's schema as it comes."""
        doc = schemas.check("ImportTop", self.body(req, MAX_IMPORT_BODY))
        bodies = {kind: doc.get(kind, []) for kind in IMPORT_KINDS}
        made = {kind: {} for kind in IMPORT_KINDS if kind in doc}   # name -> its db_create command
        with self.lock:
            ctx = Context(self.nb, caller)
            ctx.tenant = ctx.tenant_of_new(doc)
            ctx.document = True
            # Automatic VNIs and MACs keep clear of the document's own.
            ctx.reserved_vnis = {int(b["vni"]) for b in bodies["networks"]  # (5.0 is an integer in JSON)
                                 if isinstance(b, dict) and type(b.get("vni")) in (int, float)
                                 and float(b["vni"]).is_integer()}
            ctx.reserved_macs = {b["mac"].lower() for b in bodies["ports"]
                                 if isinstance(b, dict) and isinstance(b.get("mac"), str)}
            # A group may name a later one (or itself) in encrypt_with and in its rules.
            for b in bodies["security_groups"]:
                if isinstance(b, dict) and isinstance(b.get("name"), str):
                    ctx.groups_by_name.setdefault(b["name"], Later())
            pace = Pace()

            networks = []
            for i, body in enumerate(bodies["networks"]):
                networks.append(at("networks[%d]" % i, self._new_network, ctx, body))
                made["networks"][body["name"]] = networks[-1]
                pace()
            groups = []
            for i, body in enumerate(bodies["security_groups"]):
                groups.append(at("security_groups[%d]" % i, self._new_group, ctx, body))
                ctx.groups_by_name[body["name"]].cmd = made["security_groups"][body["name"]] = groups[-1]
                pace()
            # Rules once every group is made; then each group gets its rules and
            # the groups it names that were made after it.
            rules, links = [], {}
            for i, (body, group) in enumerate(zip(bodies["security_groups"], groups)):
                where = "security_groups[%d].rules" % i
                value = body.get("rules", [])
                if len(value) > MAX_RULES:
                    raise conflict(where, "a security group has at most %d rules" % MAX_RULES)
                mine = []
                for j, rule in enumerate(value):
                    mine.append(at("%s[%d]" % (where, j), self._new_rule, ctx, rule, lambda: ctx.tenant))
                    pace()
                if mine:
                    links[group] = [("rules", tuple(mine))]
                rules += mine
            for group, refs in ctx.later:
                links.setdefault(group, []).append(
                    ("encrypt_with", tuple(r.cmd if isinstance(r, Later) else r for r in refs)))
            sets = [self.nb.api.db_set("SecurityGroup", group, *columns) for group, columns in links.items()]
            ports = []
            for i, body in enumerate(bodies["ports"]):
                ports.append(at("ports[%d]" % i, self._new_port, ctx, body))
                made["ports"][body["name"]] = ports[-1]
                pace()
            lbs = []
            for i, body in enumerate(bodies["load_balancers"]):
                commands = at("load_balancers[%d]" % i, self._new_lb, ctx, body)
                made["load_balancers"][body["name"]] = commands[-1]
                lbs += commands
                pace()
            self._transact(networks + groups + rules + sets + ports + lbs, None)
        return 201, {kind: {name: str(cmd.result) for name, cmd in names.items()} for kind, names in made.items()}

