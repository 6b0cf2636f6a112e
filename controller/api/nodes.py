"""Nodes (admin only): /v1/nodes."""

import secrets

from controller.validation import Problem, conflict

def node_view(row, switch_state=None):
    out = {"system_id": row.system_id, "hostname": row.hostname, "encap_ip": row.encap_ip,
           "state": row.state, "last_seen": row.last_seen}
    if switch_state is not None:
        out["switch"] = switch_state(row.system_id)
    return out

class Nodes:
    """The handlers of /v1/nodes (a part of Api)."""

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

