"""The controller's model: northbound rows in, the compiler's values out.

The store's networks, ports, security groups (with their rules and dynamic
criteria) and load balancers become ``flows.model`` values, kept with the
indexes the compiler and the API ask for (a network's ports, a group's
ports, a load balancer's members). A change marks the compile units it
touches on the nodes it touches (``_touch_*``); the scheduler does the rest.
Called in the store client's green thread: nothing here blocks.
"""

import collections
import collections.abc
import json
import logging

import eventlet

from flows import acl, groups
from flows.flow import owner_hash
from flows.model import LoadBalancer, Member, Monitor, Network, Port, Topology
from ovsdb.nb import optional as _opt

from controller.units import ACL, ALL, GROUP_UNIT, LB_UNIT

LOG = logging.getLogger(__name__)


def _rule(row):
    """A Rule row of the store as the compiler's value."""
    remote = _opt(row.remote_group)
    hi = _opt(row.port_range_max)
    return acl.Rule(id=str(row.uuid), direction=row.direction,
                    ethertype=acl.IPV4 if row.ethertype == "IPv4" else acl.IPV6,
                    protocol=_opt(row.protocol), port_min=_opt(row.port_range_min), port_max=hi,
                    icmp_type=_opt(row.icmp_type), icmp_code=_opt(row.icmp_code),
                    remote_cidr=_opt(row.remote_ip_prefix),
                    remote_group=str(remote.uuid) if remote is not None else None,
                    action=row.action, priority=row.priority, log=_opt(row.log) is True,
                    alert=_opt(row.alert) is True)


CSR_KEY, CERT_KEY, CA_KEY, CERT_FOR_KEY = "dvn-csr", "dvn-cert", "dvn-ca", "dvn-cert-for"
CERTIFIED_KEY = "dvn-certified"   # Node external_ids in the store: the digest of the request dvn signed

def _load_balancer(row):
    """A LoadBalancer row of the store, with its members, as the compiler's value."""
    persistence = _opt(row.session_persistence)
    monitor = _opt(row.health_monitor)
    mon = None
    if monitor:
        m = json.loads(monitor)
        mon = Monitor(m["type"], m["delay"], m["timeout"], m["max_retries"], m["max_retries_down"],
                      m.get("url_path", "/"), m.get("expected_codes", "200"))
    members = tuple(sorted(Member(str(r.uuid), r.address, r.protocol_port, r.weight, r.admin_state_up,
                                  r.operating_status if mon is not None else "NO_MONITOR")
                           for r in row.members))
    return LoadBalancer(str(row.uuid), row.tenant, str(row.network.uuid), row.vip_address, row.protocol,
                        row.protocol_port, row.group_id, members,
                        json.loads(persistence)["persistence_timeout"] if persistence else 0, mon)


def _secure_part(port, node):
    """What of a port the IPsec mesh depends on (l2.secure_pairs)."""
    if port is None:
        return None
    return node, port.network_id, port.encrypt, port.security_groups


class Bindings(collections.abc.Mapping):
    """port id -> (system id, ofport or None), as Topology.bindings: the
    store's bindings (``port_node``) with the ofports nodes report
    (``local_ofports``), and ``system_id``'s own ports as its node reports
    them first. Read through, not copied: a change that compiles one unit
    looks up the ports it needs, not every port (a copy cost 20 ms at 10,000
    ports, for each change). The node's own ports are the dict its node last
    reported (replaced whole on a report, never changed in place)."""

    __slots__ = ("port_node", "ofports", "system_id", "local")

    def __init__(self, port_node, local_ofports, system_id=None):
        self.port_node, self.ofports, self.system_id = port_node, local_ofports, system_id
        self.local = local_ofports.get(system_id, {}) if system_id else {}

    def get(self, port_id, default=None):
        local = self.local
        if port_id in local:
            return self.system_id, local[port_id]
        node = self.port_node.get(port_id)
        if node is None:
            return default
        return node, self.ofports.get(node, {}).get(port_id)

    def __getitem__(self, port_id):
        found = self.get(port_id)
        if found is None:
            raise KeyError(port_id)
        return found

    def __contains__(self, port_id):
        return port_id in self.local or port_id in self.port_node

    def __iter__(self):
        yield from self.port_node
        for port_id in self.local:
            if port_id not in self.port_node:
                yield port_id

    def __len__(self):
        return len(self.port_node) + sum(1 for p in self.local if p not in self.port_node)


class Model:
    """Store rows as the compiler's values (a part of Core)."""

    def _init_model(self):
        self.networks = {}                             # network id -> Network
        self.ports = {}                                # port id -> Port, with its effective groups
        self.groups = {}                               # security group id -> rules
        self.group_ports = collections.defaultdict(set)  # security group id -> port ids (named or selected)
        self.criteria = {}                             # dynamic group id -> (tenant, criteria)
        self.explicit = {}                             # port id -> the groups the port names
        self.net_ports = collections.defaultdict(set)  # network id -> port ids
        self.port_node = {}                            # port id -> system id (northbound)
        self.own_encrypt = {}                          # port id -> its own encrypt flag
        self.encrypt_groups = set()                    # groups all of whose members' traffic is encrypted
        self.encrypt_pairs = frozenset()               # (group a, group b), a < b: traffic between is encrypted
        self.encrypt_with = {}                         # group id -> the groups it encrypts its traffic with
        self.owners = {}                               # cookie owner hash -> object id
        self.rule_index = {}                           # cookie owner hash -> (group id, Rule)
        self.lbs = {}                                  # load balancer id -> LoadBalancer
        self.net_lbs = collections.defaultdict(set)    # network id -> load balancer ids
        self.member_lb = {}                            # member id -> load balancer id
        self.lb_owner = {}                             # cookie owner hash -> load balancer id
        self.lb_dirty = set()                          # load balancers to read again from the store
        self.sg_dirty = set()                          # security groups to read again from the store

    def _load(self):
        """Every row of the store into the model."""
        for row in self.nb.rows("SecurityGroup"):
            self._nb_changed("SecurityGroup", "create", row)
        self._refresh_groups()
        for row in self.nb.rows("Network"):
            self._nb_changed("Network", "create", row)
        for row in self.nb.rows("Port"):
            self._nb_changed("Port", "create", row)
        for row in self.nb.rows("Node"):
            self._nb_changed("Node", "create", row)
        for row in self.nb.rows("TunnelKey"):
            self._nb_changed("TunnelKey", "create", row)
        self._revocations_changed()
        self.lb_dirty.update(str(r.uuid) for r in self.nb.rows("LoadBalancer"))
        self._refresh_lbs()

    def _reload(self, exc):
        """The model failed to take a change of the store (a bug: nb.subscribe
        logged and counted it): read every row again, and look at every
        switch again (unchanged views compile nothing)."""
        LOG.error("the model missed a change of the northbound store (%s): reading it all again", exc)
        self.model_reloads += 1
        self._init_model()
        self.nodes.clear()
        self.tunnel_keys.clear()
        self.certified.clear()
        self._load()
        self.mesh_dirty = True
        for system_id in self.switches:
            self.dirty.add((system_id, ALL))
            self.dirty.add((system_id, ACL))
        self._kick()

    def topology(self, system_id=None):
        """The compiler's topology; for ``system_id``, with what its node says
        is plugged into it first: its ports get their flows as soon as the
        node reports them, before their bindings are in the store (which is
        what the other nodes go by)."""
        return Topology(networks=self.networks, ports=self.ports,
                        bindings=Bindings(self.port_node, self.local_ofports, system_id),
                        tunnels=self.tunnel_ofports, net_ports=self.net_ports, groups=self.groups,
                        lbs=self.lbs, net_lbs=self.net_lbs, secure_tunnels=self.secure_ofports,
                        encrypt_pairs=self.encrypt_pairs, group_ports=self.group_ports)

    def _nb_changed(self, table, event, row, columns=None):
        """A row of the store changed (``columns``: those an update changed, if known)."""
        if table == "Network":
            net_id = str(row.uuid)
            if event == "delete":
                self.networks.pop(net_id, None)
            else:
                self.owners[owner_hash(net_id)] = "network " + net_id
                self.networks[net_id] = Network(
                    id=net_id, name=row.name, tenant=row.tenant, vni=row.vni,
                    cidrs=tuple(row.cidrs))
            self._touch_network(net_id)
        elif table == "Port":
            port_id = str(row.uuid)
            old = self.ports.get(port_id)
            old_node = self.port_node.get(port_id)
            if event == "delete":
                self._set_port(port_id, None)
                self.port_node.pop(port_id, None)
                self.explicit.pop(port_id, None)
                self.own_encrypt.pop(port_id, None)
                if old is not None:
                    self.net_ports[old.network_id].discard(port_id)
            else:
                node = _opt(row.node)
                if old is not None and columns is not None and columns <= {"node"}:
                    # Only its binding changed (nodes' bindings come in
                    # thousands at once): the rest of the row is not read again.
                    port = old._replace(node=node)
                else:
                    network_id = str(row.network.uuid) if hasattr(row.network, "uuid") else str(_opt(row.network))
                    self.explicit[port_id] = tuple(sorted(str(g.uuid) for g in row.security_groups))
                    self.own_encrypt[port_id] = _opt(row.encrypt) is True
                    port = self._with_groups(Port(
                        id=port_id, name=row.name, tenant=row.tenant, network_id=network_id,
                        mac=row.mac, ips=tuple(row.ips), tags=tuple(row.tags), node=node,
                        port_security=_opt(row.port_security) is not False,
                        allowed_pairs=tuple(tuple(p.split(",", 1)) for p in sorted(row.allowed_address_pairs))))
                network_id = port.network_id
                self._set_port(port_id, port)
                self.owners[owner_hash(port_id)] = "port " + port_id
                if old is not None and old.network_id != network_id:
                    self.net_ports[old.network_id].discard(port_id)
                self.net_ports[network_id].add(port_id)
                if old is None:
                    for system_id, found in self.iface_bindings.items():
                        if port_id in found and system_id in self.sessions:
                            self._node_update_soon(self.sessions[system_id])
                if node:
                    self.port_node[port_id] = node
                else:
                    self.port_node.pop(port_id, None)
            if _secure_part(old, old_node) != _secure_part(self.ports.get(port_id), self.port_node.get(port_id)):
                self.mesh_dirty = True   # the pairs that need IPsec may change (l2.secure_pairs)
            new = self.ports.get(port_id)
            for net_id in {p.network_id for p in (old, new) if p is not None}:
                self._touch_network(net_id, also=(old_node, self.port_node.get(port_id)))
            if old is not None and new is not None and old._replace(node=None) == new._replace(node=None):
                # Only where it is plugged changed: a firewall view depends on
                # the bindings of its own node's ports alone (remote groups
                # take every member's addresses, plugged or not), so only the
                # two nodes' firewalls are looked at again, not every node's.
                for system_id in {old_node, self.port_node.get(port_id)} - {None}:
                    self.dirty.add((system_id, ACL))
                self._kick()
            else:
                self._touch_acl()
        elif table == "SecurityGroup":
            # Its rules may arrive later in this same update (a bulk import):
            # read it once the update is in, before the next compile.
            self.sg_dirty.add(str(row.uuid))
            self._kick()
        elif table == "TunnelKey":
            # A node pair's pre-shared key (new, or rotated): both nodes' IPsec ports follow.
            if event == "delete":
                self.tunnel_keys.pop(row.nodes, None)
            else:
                self.tunnel_keys[row.nodes] = row.psk
            self.keys_asked.discard(row.nodes)
            self.mesh_dirty = True
            self._kick()
        elif table == "NodeCertificate":
            # A node revoked (or admitted again): its sessions, tunnels and mesh follow at once.
            self._revocations_changed()
        elif table == "LoadBalancer":
            # Its members may arrive later in this same update: read it in the worker.
            self.lb_dirty.add(str(row.uuid))
            self._kick()
        elif table == "Member":
            lb_id = self.member_lb.get(str(row.uuid))
            if lb_id is not None:
                self.lb_dirty.add(lb_id)
                self._kick()
        elif table == "Node":
            system_id = row.system_id
            if event == "delete":
                self.nodes.pop(system_id, None)
                session = self.sessions.get(system_id)
                if session is not None:
                    session.close()
            else:
                self.owners[owner_hash(system_id)] = "node " + system_id
                self.nodes[system_id] = row.encap_ip
            # Whether the node holds a certificate of dvn's CA: kept in the
            # store, so a restart knows it before the node's session is back.
            if event != "delete" and row.external_ids.get(CERTIFIED_KEY):
                self.certified.add(system_id)
            else:
                self.certified.discard(system_id)
            self.mesh_dirty = True
            self._kick()

    def _set_port(self, port_id, port):
        """The port as the compiler sees it (None: gone), and the index of groups' ports."""
        old = self.ports.pop(port_id, None)
        for gid in old.security_groups if old is not None else ():
            self.group_ports[gid].discard(port_id)
        if port is not None:
            self.ports[port_id] = port
            for gid in port.security_groups:
                self.group_ports[gid].add(port_id)

    def _with_groups(self, port):
        """``port`` with its effective groups: those it names and the dynamic
        groups of its tenant whose criteria select it."""
        found = set(self.explicit.get(port.id, ()))
        for gid, (tenant, criteria) in self.criteria.items():
            if tenant == port.tenant and groups.matches(criteria, port):
                found.add(gid)
        return port._replace(security_groups=tuple(sorted(found)),
                             named_groups=self.explicit.get(port.id, ()),
                             encrypt=self.own_encrypt.get(port.id, False) or bool(found & self.encrypt_groups))

    def _hosts(self, network_id):
        return {self.port_node[p] for p in self.net_ports.get(network_id, ()) if p in self.port_node}

    def _touch_network(self, network_id, also=()):
        for system_id in self._hosts(network_id) | {n for n in also if n}:
            self.dirty.add((system_id, network_id))
            for lb_id in self.net_lbs.get(network_id, ()):  # members' MACs and ports, where hosted
                self.dirty.add((system_id, (LB_UNIT, lb_id)))
        self._kick()

    def _refresh_groups(self):
        """Read the dirty security groups (with their rules) from the store."""
        dirty, self.sg_dirty = self.sg_dirty, set()
        touch_all = False
        for gid in dirty:
            row = self.nb.get("SecurityGroup", gid)
            old_criteria = self.criteria.get(gid)
            old_policy = (gid in self.encrypt_groups, self.encrypt_with.get(gid, frozenset()))
            had_rules = bool(self.groups.get(gid))
            if row is None:
                self.groups.pop(gid, None)
                self.criteria.pop(gid, None)
                self.encrypt_groups.discard(gid)
                self.encrypt_with.pop(gid, None)
            else:
                if _opt(row.encrypt) is True:
                    self.encrypt_groups.add(gid)
                else:
                    self.encrypt_groups.discard(gid)
                self.encrypt_with[gid] = frozenset(str(g.uuid) for g in row.encrypt_with)
                self.owners[owner_hash(gid)] = "security group " + gid
                self.groups[gid] = tuple(sorted(_rule(r) for r in row.rules))
                for r in self.groups[gid]:
                    self.owners[owner_hash("%s/%s" % (gid, r.id))] = "rule %s/%s" % (gid, r.id)
                    self.rule_index[owner_hash("%s/%s" % (gid, r.id))] = (gid, r)
                text = _opt(row.criteria)
                if text:
                    self.criteria[gid] = (row.tenant, json.loads(text))
                else:
                    self.criteria.pop(gid, None)
            policy = (gid in self.encrypt_groups, self.encrypt_with.get(gid, frozenset()))
            if (self.criteria.get(gid) is not None or old_criteria is not None) and \
                    had_rules != bool(self.groups.get(gid)):
                touch_all = True     # a dynamic group guards its ports only while it has rules
            if self.criteria.get(gid) != old_criteria or policy != old_policy:
                touch_all = True
                # Membership of a dynamic group, or what its members encrypt, changed:
                # every port is looked at again, and every network (unchanged views compile nothing).
                self.encrypt_pairs = frozenset(tuple(sorted((a, b))) for a, bs in self.encrypt_with.items()
                                               for b in bs)
                for port_id, port in list(self.ports.items()):
                    new = self._with_groups(port)
                    self._set_port(port_id, new)
                    if new.security_groups != port.security_groups:
                        # its identity changed, which its node sets in classify
                        self._touch_network(port.network_id, also=(self.port_node.get(port_id),))
                if policy != old_policy:
                    for network_id in list(self.net_ports):
                        self._touch_network(network_id)
        if touch_all:
            self.mesh_dirty = True   # membership or encryption policy changed: so may the IPsec pairs
            self._touch_acl()
        else:
            # Only rules changed (or a group no port is in yet was made or
            # removed): only the groups' own units, wherever they are.
            for system_id in self.switches:
                self.dirty.update((system_id, (GROUP_UNIT, gid)) for gid in dirty)
            self._kick()

    def _refresh_lbs(self):
        """Read the dirty load balancers from the store; mark what they touch."""
        dirty, self.lb_dirty = self.lb_dirty, set()
        for lb_id in dirty:
            old = self.lbs.pop(lb_id, None)
            row = self.nb.get("LoadBalancer", lb_id)
            new = _load_balancer(row) if row is not None else None
            nets = {b.network_id for b in (old, new) if b is not None}
            served = {n: bool(self.net_lbs.get(n)) for n in nets}
            if old is not None:
                self.net_lbs[old.network_id].discard(lb_id)
                for m in old.members:
                    self.member_lb.pop(m.id, None)
                if new is None:
                    self.lb_owner.pop(owner_hash(lb_id), None)
            if new is not None:
                self.lbs[lb_id] = new
                self.net_lbs[new.network_id].add(lb_id)
                self.lb_owner[owner_hash(lb_id)] = lb_id
                self.owners[owner_hash(lb_id)] = "load balancer " + lb_id
                for m in new.members:
                    self.member_lb[m.id] = lb_id
            for net_id in nets:
                # The firewall tracks every port of a network with VIPs: it
                # changes when a network gets its first one or loses its last.
                acl_too = served[net_id] != bool(self.net_lbs.get(net_id))
                for system_id in self._hosts(net_id):
                    self.dirty.add((system_id, (LB_UNIT, lb_id)))
                    if acl_too:
                        self.dirty.add((system_id, ACL))

    def _touch_acl(self):
        """Firewall views depend on ports and groups anywhere (remote groups):
        every node's is recomputed, and compiled again only if it changed."""
        for system_id in self.switches:
            self.dirty.add((system_id, ACL))
        self._kick()

    def member_target(self, balancer, member):
        """(system id, ofport, MAC, VNI) of the port with the member's address, if plugged in."""
        network = self.networks.get(balancer.network_id)
        for port_id in self.net_ports.get(balancer.network_id, ()):
            port = self.ports.get(port_id)
            if port is not None and member.address in port.ips:
                system_id = self.port_node.get(port_id)
                ofport = self.local_ofports.get(system_id, {}).get(port_id)
                switch = self.switches.get(system_id)
                if ofport and network and switch is not None and switch.synced:
                    return system_id, ofport, port.mac, network.vni
        return None

    def set_member_status(self, member_id, status):
        """A health verdict: to the store (every node follows it from there)."""
        def write():
            try:
                self.nb.transact([self.nb.api.db_set("Member", member_id, ("operating_status", status))])
            except Exception as exc:
                LOG.warning("member %s: status %s not recorded: %s", member_id, status, exc)
        eventlet.spawn_n(write)

    def plugged_addresses(self, network_id):
        """The addresses of the network's ports that a node has plugged in (the store's bindings)."""
        return {ip for p in self.net_ports.get(network_id, ()) if p in self.port_node and p in self.ports
                for ip in self.ports[p].ips}
