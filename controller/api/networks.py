"""Networks: /v1/networks."""

from controller import validation as v
from controller.api.context import Context, Net, given
from controller.validation import conflict


def network_view(row):
    return {"id": str(row.uuid), "name": row.name, "tenant": row.tenant, "vni": row.vni,
            "cidrs": list(row.cidrs), "tags": sorted(row.tags)}


class Networks:
    """The handlers of /v1/networks (a part of Api)."""

    def _new_network(self, ctx, body):
        ctx.check("Network", body)
        tenant = ctx.tenant_of_new(body)
        name = body["name"]
        cidrs = v.cidrs(body.get("cidrs", []))
        tags = sorted(set(body.get("tags", [])))
        vni = int(body["vni"]) if "vni" in body else None
        ctx.claim_name("Network", tenant, name)
        vni = ctx.vni(vni)
        cmd = self.nb.api.db_create("Network", **given(name=name, tenant=tenant, vni=vni, cidrs=cidrs, tags=tags))
        ctx.networks[name] = Net(cmd, name, tenant, cidrs)
        return cmd

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
        return 200, network_view(self._update(req, caller, "Network", id, "NetworkUpdate"))

    def delete_network(self, req, caller, id):
        with self.lock:
            row = self._find("Network", id, caller)
            if any(p.network.uuid == row.uuid for p in self.nb.rows("Port")):
                raise conflict("id", "network %s still has ports; delete them first" % id)
            if any(lb.network.uuid == row.uuid for lb in self.nb.rows("LoadBalancer")):
                raise conflict("id", "network %s still has load balancers; delete them first" % id)
            self._transact([self.nb.api.db_destroy("Network", row.uuid)], "id")
        return 204, None

