"""Ports: /v1/ports."""

from controller import validation as v
from controller.api.context import Context, free_mac, given
from controller.validation import conflict
from ovsdb.nb import optional as _opt


def port_view(row):
    security = _opt(row.port_security)
    return {"id": str(row.uuid), "name": row.name, "tenant": row.tenant,
            "network": str(row.network.uuid), "mac": row.mac, "ips": list(row.ips),
            "tags": sorted(row.tags), "node": _opt(row.node),
            "port_security": security is not False, "encrypt": _opt(row.encrypt) is True,
            "security_groups": sorted(str(g.uuid) for g in row.security_groups),
            "allowed_address_pairs": [{"mac_address": p.split(",")[0], "ip_address": p.split(",")[1]}
                                      for p in sorted(row.allowed_address_pairs)]}


class Ports:
    """The handlers of /v1/ports (a part of Api)."""

    def _new_port(self, ctx, body):
        ctx.check("Port", body)
        name = body["name"]
        net = ctx.network(body["network"])
        mac = body["mac"].lower() if "mac" in body else None
        ips = v.ips(body.get("ips", []), net.cidrs)
        tags = sorted(set(body.get("tags", [])))
        group_ids = ctx.groups(body.get("security_groups", []), net.tenant)
        security = [body["port_security"]] if "port_security" in body else []
        encrypt = [body["encrypt"]] if "encrypt" in body else []
        ctx.claim_name("Port", net.tenant, name)
        macs = ctx.macs(net)
        if mac is None:
            mac = free_mac(macs, ctx.reserved_macs)
        elif mac in macs:
            raise conflict("mac", "%s is already used in network %s" % (mac, net.name))
        taken, vips = ctx.port_ips(net), ctx.vips(net)
        for i, ip in enumerate(ips):
            if ip in taken or ip in vips:
                raise conflict("ips[%d]" % i, "%s is already used in network %s" % (ip, net.name))
        pairs = v.address_pairs(body.get("allowed_address_pairs", []), mac)
        macs.add(mac)
        taken.update(ips)
        return self.nb.api.db_create("Port", **given(
            name=name, tenant=net.tenant, network=net.ref, mac=mac, ips=ips, tags=tags,
            security_groups=tuple(group_ids), port_security=security, encrypt=encrypt, allowed_address_pairs=pairs))

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
        return 200, port_view(self._update(req, caller, "Port", id, "PortUpdate"))

    def delete_port(self, req, caller, id):
        with self.lock:
            row = self._find("Port", id, caller)
            self._transact([self.nb.api.db_destroy("Port", row.uuid)], "id")
        return 204, None

