"""The running controller: northbound + nodes in, flows on every br-int out.

Three sources of truth meet here:

- the northbound store (networks, ports, nodes, and each port's node binding);
- each node's own database (which VM interface has which ofport, which tunnel
  port leads to which peer), over the connection the node opened;
- each switch's flow table, over OpenFlow.

The compiler (``flows/``) turns the first two into desired flows in compile
units, per node: its base, each network it hosts, each load balancer of
those, the firewall's shared flows, each local port's firewall flows and
each security group's rules. A change marks the units it
touches; a single worker recompiles only those, diffs each against the unit's
previous flows and sends each switch its difference in one bundle. A switch
that (re)connects is read back, diffed against the whole desired set and
corrected in one bundle: flows that are right are never touched.
"""

import collections
import hashlib
import json
import logging
import secrets
import time

import eventlet
from eventlet import event as ev_event

from controller import packets
from controller.health import Prober
from controller.ofconn import SwitchConn, SwitchError, bundle_across
from flows import acl, fields, groups, l2, lb, ofwire, pipeline
from flows.flow import GROUP, LB, Flow, FlowSet, cookie_category, cookie_owner, diff, match_value, output, owner_hash
from flows.flow import Group as flows_group
from flows.model import LoadBalancer, Member, Monitor, Network, Port, Topology
from flows.render import render_flow
from ovsdb.nb import optional as _opt

LOG = logging.getLogger(__name__)

BASE = "base"
ACL = "acl"
ALL = "*"
LB_UNIT = "lb"     # ("lb", load balancer id): one load balancer on a node
PORT_UNIT = "port"  # ("port", port id): one local port's firewall flows
GROUP_UNIT = "grp"  # ("grp", security group id): one group's rules on a node
BREATHE_S = 0.05   # the longest a compile or an encoding runs before it lets the other green threads in
LANE_MIN = 1000    # messages in a change from which it is spread over a switch's lanes
RECORD_WAIT_S = 60  # the longest a node's bindings wait for its switch's compile and bundle before they are written


class _Breather:
    """Yields to the hub's other green threads (node sessions' echoes, the
    API, other switches) at most every BREATHE_S: a full compile of a node
    with thousands of ports takes seconds, more than an inactivity probe."""

    def __init__(self):
        self.last = time.monotonic()

    def __call__(self):
        now = time.monotonic()
        if now - self.last > BREATHE_S:
            eventlet.sleep(0)
            self.last = time.monotonic()


def _now_ms():
    return int(time.time() * 1000)


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
                    action=row.action, priority=row.priority, log=_opt(row.log) is True)


def _merged(contributions):
    """The one flow the switch gets for the flows units want at one identity."""
    if not contributions:
        return None
    values = iter(contributions.values())
    first = next(values)
    if all(flow == first for flow in values):  # the usual case: units that share a flow (VIPs of a network)
        return first
    return acl.merge_all(list(contributions.values()))


CSR_KEY, CERT_KEY, CA_KEY, CERT_FOR_KEY = "dvn-csr", "dvn-cert", "dvn-ca", "dvn-cert-for"
CERTIFIED_KEY = "dvn-certified"   # Node external_ids in the store: the digest of the request dvn signed


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def node_pair(a, b):
    """The TunnelKey name of a pair of nodes."""
    return "|".join(sorted((a, b)))


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


def _may_go_early(flow):
    """Whether a flow new to the switch may take effect before the rest of its
    change (ofconn.bundle_across). Not a flow of a table that takes packets
    to a port's or a network's flows: a new port or network is reached only
    once those commit, with the rest. Not a firewall verdict: a new allow
    must not act before a new deny that outranks it, unless no packet
    reaches it yet (_verdict, then _send). A clause decides nothing alone,
    and a new rule's state flow passes only connections its verdict
    committed. Not a flow naming a group, which may come with the rest."""
    if flow.table in pipeline.DISPATCH or _names_group(flow.actions):
        return False
    return flow.table not in pipeline.FIREWALL or acl.is_clause(flow) or acl.is_state(flow)


def _verdict(flow):
    """A firewall verdict new to the switch: early only if it is for ports
    new to the switch (acl.unreached)."""
    return flow.table in pipeline.FIREWALL and not _names_group(flow.actions)


def _classified_port(flow):
    """The ofport a classify flow is for, or None."""
    return match_value(flow.match, "in_port") if flow.table == "classify" else None


class _Change:
    """The messages of one change to a switch, by when they may take effect
    (Core._send): ``early``, ``verdicts`` (early if unreached), and ``rest``
    (last); ``classified``: the ofports that get a classify flow the switch
    does not have."""

    def __init__(self, first=()):
        self.early, self.verdicts, self.rest, self.classified = [], [], list(first), set()

    def add(self, flow, new):
        """An add of ``flow``; ``new``: the switch has no flow with its key."""
        msg = (ofwire.encode_flow_mod(flow, ofwire.ADD), flow)
        if not new:
            self.rest.append(msg)
        elif _may_go_early(flow):
            self.early.append(msg)
        elif _verdict(flow):
            self.verdicts.append(msg)
        else:
            self.rest.append(msg)
            port = _classified_port(flow)
            if port is not None:
                self.classified.add(port)

    def __len__(self):
        return len(self.early) + len(self.verdicts) + len(self.rest)


def _names_group(actions):
    return any(a[0] == "group" or (a[0] == "clone" and _names_group(a[1])) for a in actions)


class Switch:
    """One node's br-int as dvn sees it."""

    def __init__(self, system_id):
        self.system_id = system_id
        self.conn = None          # SwitchConn while connected
        self.synced = False       # the switch holds `installed`
        self.installed = {}       # wire key -> the Flow the switch has there
        self.groups = {}          # group id -> Group, as the switch holds it
        self.units = {}           # unit -> (view, FlowSet)
        self.contrib = {}         # wire key -> {unit: Flow}: what each unit wants there
        self.pending = set()      # units to recompile
        self.running = False      # a green thread is syncing this switch
        self.failures = 0
        self.lanes_failed = False  # the last change over the lanes failed: the next goes in one bundle


class Core:
    def __init__(self, nb, tunnel_options=None, log_rate=100, log_burst=100, identity_option=fields.IDENTITY,
                 ca=None, lane_ports=()):
        self.nb = nb
        self.lane_ports = set(lane_ports)              # local OpenFlow ports whose connections are lanes
        self.lanes = {}                                # datapath id -> {os-ken Datapath: SwitchConn}
        self.ca = ca                                   # controller.pki.Ca: IPsec by certificates, where both nodes have one
        self.certified = set()                         # nodes whose certificate request dvn has signed
        self.signing = set()
        self.recording = set()                         # nodes whose certification is being written to the store
        self.log_rate, self.log_burst = log_rate, log_burst
        self.identity_option = identity_option         # the GENEVE option of identities (TLV map)
        self.events = collections.deque(maxlen=10000)  # firewall log events, newest last
        self.tunnel_options = tunnel_options or {}
        self.networks = {}
        self.ports = {}
        self.groups = {}                               # security group id -> rules
        self.group_ports = collections.defaultdict(set)  # security group id -> port ids (named or selected)
        self.criteria = {}                             # dynamic group id -> (tenant, criteria)
        self.explicit = {}                             # port id -> the groups the port names
        self.net_ports = collections.defaultdict(set)  # network id -> port ids
        self.port_node = {}                            # port id -> system id (northbound)
        self.nodes = {}                                # system id -> encap ip (northbound)
        self.sessions = {}                             # system id -> NodeSession
        self.local_ofports = {}                        # system id -> {port id: ofport}
        self.tunnel_ofports = {}                       # system id -> {peer: ofport}
        self.secure_ofports = {}                       # system id -> {peer: ofport} of the IPsec mesh
        self.tunnel_keys = {}                          # "a|b" (sorted system ids) -> pre-shared key
        self.keys_asked = set()                        # node pairs whose key is being created
        self.own_encrypt = {}                          # port id -> its own encrypt flag
        self.encrypt_groups = set()                    # groups all of whose members' traffic is encrypted
        self.encrypt_pairs = frozenset()               # (group a, group b), a < b: traffic between is encrypted
        self.encrypt_with = {}                         # group id -> the groups it encrypts its traffic with
        self.iface_bindings = {}                       # system id -> {iface-id: ofport}, all of them
        self.switches = {}                             # system id -> Switch
        self.dpid_node = {}                            # dpid -> system id
        self.dirty = set()                             # (system id, unit)
        self.mesh_dirty = False
        self._wake = ev_event.Event()
        self._loaded = False
        self.owners = {}                               # cookie owner hash -> object id
        self.rule_index = {}                           # cookie owner hash -> (group id, Rule)
        self.lbs = {}                                  # load balancer id -> LoadBalancer
        self.net_lbs = collections.defaultdict(set)    # network id -> load balancer ids
        self.member_lb = {}                            # member id -> load balancer id
        self.lb_dirty = set()                          # load balancers to read again from the store
        self.sg_dirty = set()                          # security groups to read again from the store
        self.compiling = 0                             # switches whose units are being compiled now
        self.lb_owner = {}                             # cookie owner hash -> load balancer id
        self.prober = Prober(lambda: self.lbs, self.member_target, self.packet_out, self.set_member_status)

    # ---- start-up ---------------------------------------------------------
    def start(self):
        self.nb.subscribe(self._nb_changed)
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
        self.lb_dirty.update(str(r.uuid) for r in self.nb.rows("LoadBalancer"))
        self._refresh_lbs()
        self._loaded = True
        eventlet.spawn_n(self._worker)
        self.prober.start()

    def topology(self, system_id=None):
        """The compiler's topology; for ``system_id``, with what its node says
        is plugged into it first: its ports get their flows as soon as the
        node reports them, before their bindings are in the store (which is
        what the other nodes go by)."""
        bindings = {}
        for port_id, node in self.port_node.items():
            ofport = self.local_ofports.get(node, {}).get(port_id)
            bindings[port_id] = (node, ofport)
        for port_id, ofport in self.local_ofports.get(system_id, {}).items() if system_id else ():
            bindings[port_id] = (system_id, ofport)
        return Topology(networks=self.networks, ports=self.ports, bindings=bindings,
                        tunnels=self.tunnel_ofports, net_ports=self.net_ports, groups=self.groups,
                        lbs=self.lbs, net_lbs=self.net_lbs, secure_tunnels=self.secure_ofports,
                        encrypt_pairs=self.encrypt_pairs, group_ports=self.group_ports)

    # ---- northbound changes (called in the IDL green thread: never block) --
    def _nb_changed(self, table, event, row):
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
                network_id = str(row.network.uuid) if hasattr(row.network, "uuid") else str(_opt(row.network))
                node = _opt(row.node)
                self.explicit[port_id] = tuple(sorted(str(g.uuid) for g in row.security_groups))
                self.own_encrypt[port_id] = _opt(row.encrypt) is True
                port = self._with_groups(Port(
                    id=port_id, name=row.name, tenant=row.tenant, network_id=network_id,
                    mac=row.mac, ips=tuple(row.ips), tags=tuple(row.tags), node=node,
                    port_security=_opt(row.port_security) is not False,
                    allowed_pairs=tuple(tuple(p.split(",", 1)) for p in sorted(row.allowed_address_pairs))))
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
            for net_id in {p.network_id for p in (old, self.ports.get(port_id)) if p is not None}:
                self._touch_network(net_id, also=(old_node, self.port_node.get(port_id)))
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

    # ---- security groups -----------------------------------------------------
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
            self._touch_acl()
        else:
            # Only rules changed (or a group no port is in yet was made or
            # removed): only the groups' own units, wherever they are.
            for system_id in self.switches:
                self.dirty.update((system_id, (GROUP_UNIT, gid)) for gid in dirty)
            self._kick()

    # ---- load balancers ------------------------------------------------------
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

    def packet_out(self, system_id, ofport, frame):
        """A frame into a node's br-int, out of its port ``ofport`` (nothing while the switch is away)."""
        switch = self.switches.get(system_id)
        if switch is not None and switch.conn is not None:
            switch.conn.send(ofwire.packet_out(frame, (output(ofport),), switch.conn.next_xid()))

    def set_member_status(self, member_id, status):
        """A health verdict: to the store (every node follows it from there)."""
        def write():
            try:
                self.nb.transact([self.nb.api.db_set("Member", member_id, ("operating_status", status))])
            except Exception as exc:
                LOG.warning("member %s: status %s not recorded: %s", member_id, status, exc)
        eventlet.spawn_n(write)

    def lb_stats(self, lb_id):
        """New connections the VIP's group took, in all and per member, over every switch."""
        balancer = self.lbs.get(lb_id)
        out = {"connections": 0, "members": {}, "switches": 0}
        if balancer is None:
            return out
        slot_member = {slot: mid for mid, slot in lb.slots(balancer.members).items()}
        out["members"] = {m.id: 0 for m in balancer.members}
        for switch in list(self.switches.values()):
            group = switch.groups.get(balancer.group_id)
            if switch.conn is None or group is None:
                continue
            try:
                stats = switch.conn.read_group_stats().get(balancer.group_id)
            except SwitchError as exc:
                LOG.warning("statistics of node %s not read: %s", switch.system_id, exc)
                continue
            if stats is None:
                continue
            out["switches"] += 1
            out["connections"] += stats[0]
            for bucket, (packets_, _bytes) in zip(group.buckets, stats[2]):
                member_id = slot_member.get(bucket.actions[0][2] & 0xFFFF)
                if member_id in out["members"]:
                    out["members"][member_id] += packets_
        return out

    def _reject(self, switch, lb_id, fields, frame):
        balancer = self.lbs.get(lb_id)
        network = self.networks.get(balancer.network_id) if balancer else None
        answer = packets.reject(frame, lb.vip_mac(network.vni)) if network else None
        if answer is None or "in_port" not in fields or switch.conn is None:
            return
        switch.conn.send(ofwire.packet_out(answer, (output(fields["in_port"]),), switch.conn.next_xid()))

    def _touch_acl(self):
        """Firewall views depend on ports and groups anywhere (remote groups):
        every node's is recomputed, and compiled again only if it changed."""
        for system_id in self.switches:
            self.dirty.add((system_id, ACL))
        self._kick()

    def _kick(self):
        if not self._wake.ready():
            self._wake.send(True)

    def _node_update_soon(self, session):
        """Look at a node's interfaces again: once for a burst of new ports
        (a bulk import creates thousands in one update)."""
        if getattr(session, "update_soon", False):
            return
        session.update_soon = True

        def run():
            session.update_soon = False
            if self.sessions.get(session.system_id) is session:
                self.node_update(session)
        eventlet.spawn_n(run)

    # ---- nodes (called in a node session's green thread) -----------------
    def node_update(self, session):
        """The node's database changed: take what it says in memory first (the
        switch may be resynced at any time after this), then record it in the
        northbound store."""
        system_id = session.system_id
        if not system_id:
            return
        known = self.sessions.get(system_id)
        if known is not session:
            if known is not None:
                known.close()
            self.sessions[system_id] = session
            LOG.info("node %s connected (encap %s)", system_id, session.encap_ip)
            self.mesh_dirty = True
        if session.datapath_id:
            self.dpid_node[session.datapath_id] = system_id
        all_bindings = session.bindings()
        self.iface_bindings[system_id] = all_bindings
        # Ports: the node is the authority on what is plugged into it.
        ofports = {p: o for p, o in all_bindings.items() if p in self.ports}
        before = self.local_ofports.get(system_id)
        if ofports != before:
            before = before or {}
            plugged = sum(1 for p in ofports if p not in before)
            unplugged = sum(1 for p in before if p not in ofports)
            if plugged or unplugged:
                LOG.info("node %s: %d ports plugged, %d unplugged (%d in all)", system_id, plugged, unplugged,
                         len(ofports))
            self.local_ofports[system_id] = ofports
            self.dirty.add((system_id, ALL))
        for mesh, known in (("plain", self.tunnel_ofports), ("ipsec", self.secure_ofports)):
            tunnels = {peer: o for peer, o in session.tunnels(mesh).items() if o}
            if tunnels != known.get(system_id):
                known[system_id] = tunnels
                self.dirty.add((system_id, ALL))
        self._certificates(session)
        session.known = True
        switch = self.switches.get(system_id)
        if switch is not None and switch.conn is not None and not switch.synced:
            self.dirty.add((system_id, ALL))
        self._kick()
        self._record_soon(session)

    def _record_soon(self, session):
        """Record what the node says in the store, off the session's green
        thread (a write of 10,000 bindings takes seconds, and the session must
        go on answering the node's echoes meanwhile): one writer per session,
        which writes again while the node has said more, or after a failure."""
        session.record_wanted = True
        if getattr(session, "recording", False):
            return
        session.recording = True

        def run():
            try:
                # The node's own flows do not wait for the store (topology()):
                # let their compile and their sending have the hub first
                # (python-ovs holds it for seconds on a large write, and a
                # switch whose bundle stops coming in idles), not for long.
                deadline = time.monotonic() + RECORD_WAIT_S
                while self._switch_busy(session.system_id) and time.monotonic() < deadline:
                    eventlet.sleep(0.05)
                while session.record_wanted and self.sessions.get(session.system_id) is session:
                    session.record_wanted = False
                    if not self._record_node(session):
                        session.record_wanted = True
                        eventlet.sleep(1)
            finally:
                session.recording = False
        eventlet.spawn_n(run)

    def _queued(self, system_id):
        """Changes for the node's switch wait to be compiled."""
        switch = self.switches.get(system_id)
        return bool((switch is not None and switch.pending) or any(s == system_id for s, _u in self.dirty))

    def _switch_busy(self, system_id):
        """Flows for the node's switch are being compiled, are about to be,
        or are being sent."""
        switch = self.switches.get(system_id)
        conns = [switch.conn] + self._lanes_of(switch) if switch is not None and switch.conn else []
        return bool(self.compiling or self._queued(system_id) or any(c.sending for c in conns))

    def _record_node(self, session):
        """Write the node and its ports' bindings to the store; False if it refused."""
        system_id = session.system_id
        ofports = self.local_ofports.get(system_id, {})
        encap_ip = session.encap_ip
        if encap_ip and (self.nodes.get(system_id) != encap_ip or not getattr(session, "registered", False)):
            self.nb.upsert_node(system_id, session.hostname, encap_ip, "up", _now_ms())
            session.registered = True
            self.nodes[system_id] = encap_ip
            self.mesh_dirty = True
            self._kick()
        changes = {p: system_id for p in ofports if self.port_node.get(p) != system_id}
        changes.update((p, None) for p, node in self.port_node.items()
                       if node == system_id and p not in ofports and p in self.ports)
        if not changes:
            return True
        try:
            self.nb.set_port_bindings(changes)  # one transaction, however many ports were plugged
        except Exception as exc:  # the store is busy or away: asked again, with what the node says then
            LOG.warning("node %s: %d port bindings not recorded (%s); again in 1 s",
                        system_id, len(changes), exc)
            return False
        return True

    def node_closed(self, session):
        system_id = session.system_id
        if system_id and self.sessions.get(system_id) is session:
            del self.sessions[system_id]
            LOG.info("node %s disconnected", system_id)
            if system_id in self.nodes:
                try:
                    self.nb.set_node_state(system_id, "down", _now_ms())
                except Exception as exc:  # the node row may be gone (deleted)
                    LOG.info("node %s: state not recorded: %s", system_id, exc)

    # ---- switches (called from the os-ken app) -----------------------------
    def switch_connected(self, datapath):
        if self._is_lane(datapath):
            eventlet.spawn_n(self._lane_connected, datapath)
            return
        system_id = self._node_of(datapath.id)
        if system_id is None:
            # The OVSDB session that tells which node this is has not come yet.
            eventlet.spawn_after(0.2, self._retry_connected, datapath, 0)
            return
        switch = self.switches.setdefault(system_id, Switch(system_id))
        switch.conn = SwitchConn(datapath)
        switch.conn.on_packet_in = lambda buf, s=switch: self._packet_in(s, buf)
        switch.synced = False
        LOG.info("switch %016x (node %s) connected", datapath.id, system_id)
        self.dirty.add((system_id, ALL))
        self._kick()

    def _retry_connected(self, datapath, tries):
        if not datapath.is_active:
            return
        if self._node_of(datapath.id) is not None:
            self.switch_connected(datapath)
        elif tries < 300:
            eventlet.spawn_after(0.2, self._retry_connected, datapath, tries + 1)
        else:
            LOG.warning("switch %016x: no node reported this datapath id; ignoring it", datapath.id)

    def _node_of(self, dpid):
        return self.dpid_node.get(dpid)

    def _is_lane(self, datapath):
        try:
            return datapath.socket.getsockname()[1] in self.lane_ports
        except OSError:
            return False

    def _lane_connected(self, datapath):
        """A lane: one more connection from a switch, for large bundles only
        (see ofconn.bundle_across). It asks for no asynchronous messages, so
        a packet-in still comes to dvn once, on the main connection."""
        conn = SwitchConn(datapath)
        try:
            conn.silence()
        except SwitchError as exc:
            LOG.warning("switch %016x: lane from %s not used: %s", datapath.id, datapath.address, exc)
            return
        stray = []

        def packet_in(_buf):  # the packet came on the main connection too
            if not stray:
                stray.append(True)
                LOG.warning("switch %016x: a packet-in on a lane from %s:%s", datapath.id, *datapath.address[:2])
        conn.on_packet_in = packet_in
        if datapath.is_active:
            self.lanes.setdefault(datapath.id, {})[datapath] = conn
            LOG.info("switch %016x: lane from %s:%s", datapath.id, *datapath.address[:2])

    def switch_disconnected(self, datapath):
        conn = getattr(datapath, "dvn_conn", None)
        if conn is not None:
            conn.closed()
        lanes = self.lanes.get(datapath.id, {})
        if lanes.pop(datapath, None) is not None:
            return
        system_id = self._node_of(datapath.id)
        switch = self.switches.get(system_id)
        if switch is not None and switch.conn is not None and switch.conn.datapath is datapath:
            switch.conn = None
            switch.synced = False
            LOG.info("switch of node %s disconnected", system_id)

    # ---- firewall log ------------------------------------------------------------
    def _packet_in(self, switch, buf):
        """A logged rule's packet (rate-limited by the switch's meter): an event;
        or a load balancer's: a health probe's answer, or a connection to reject."""
        try:
            cookie, fields, frame = ofwire.decode_packet_in(buf)
            if cookie >> 60 == LB:
                lb_id = self.lb_owner.get(cookie_owner(cookie))
                if lb_id is None:
                    self.prober.packet_in(switch.system_id, frame)
                else:
                    self._reject(switch, lb_id, fields, frame)
                return
            gid, rule = self.rule_index.get(cookie_owner(cookie), (None, None))
            event = {"time": round(time.time(), 3), "node": switch.system_id, "security_group": gid,
                     "rule": rule.id if rule else None, "verdict": rule.action if rule else "?"}
            port_ofport = fields.get("reg7") or fields.get("reg6")
            event["direction"] = "ingress" if fields.get("reg7") else "egress"
            local = self.local_ofports.get(switch.system_id, {})
            event["port"] = next((p for p, o in local.items() if o == port_ofport), None)
            event.update(packets.five_tuple(frame))
        except Exception as exc:  # a malformed packet-in must not hurt the switch's thread
            LOG.warning("packet-in from node %s not understood: %s", switch.system_id, exc)
            return
        self.events.append(event)
        LOG.info("firewall: %s", json.dumps(event, sort_keys=True))

    def plugged_addresses(self, network_id):
        """The addresses of the network's ports that a node has plugged in (the store's bindings)."""
        return {ip for p in self.net_ports.get(network_id, ()) if p in self.port_node and p in self.ports
                for ip in self.ports[p].ips}

    def switch_state(self, system_id):
        """A node's br-int as dvn sees it: connected, synced (it holds what
        dvn last sent), pending (changes not sent yet), and how many flows
        and groups dvn has put there."""
        switch = self.switches.get(system_id)
        if switch is None:
            return {"connected": False, "synced": False, "pending": False, "flows": 0, "groups": 0, "lanes": 0}
        pending = bool(switch.running or self._wake.ready() or self.sg_dirty or self.lb_dirty
                       or self._queued(system_id))
        return {"connected": switch.conn is not None, "synced": switch.synced, "pending": pending,
                "flows": len(switch.installed), "groups": len(switch.groups),
                "lanes": len(self._lanes_of(switch))}

    # ---- statistics ------------------------------------------------------------
    def rule_stats(self, group_id, rule_id):
        """Packets and bytes of one rule's flows, summed over every connected switch
        (read by cookie: category and owner)."""
        owner = owner_hash("%s/%s" % (group_id, rule_id))
        cookie = (GROUP << 60) | (owner << 32)
        mask = (0xF << 60) | (0x0FFFFFFF << 32)
        total = {"packets": 0, "bytes": 0, "established_packets": 0, "switches": 0}
        for switch in list(self.switches.values()):
            if switch.conn is None:
                continue
            try:
                descs = switch.conn.read_flows(cookie, mask)
            except SwitchError as exc:
                LOG.warning("statistics of node %s not read: %s", switch.system_id, exc)
                continue
            total["switches"] += 1
            for desc in descs:
                if desc.priority == acl.P_STATE:
                    total["established_packets"] += desc.packets
                else:
                    total["packets"] += desc.packets
                    total["bytes"] += desc.bytes
        return total

    # ---- the worker ----------------------------------------------------------
    def _worker(self):
        while True:
            self._wake.wait()
            self._wake = ev_event.Event()
            eventlet.sleep(0)  # let a burst of changes arrive together
            try:
                if self.sg_dirty:
                    self._refresh_groups()
                if self.lb_dirty:
                    self._refresh_lbs()
                if self.mesh_dirty:
                    self.mesh_dirty = False
                    self._update_mesh()
                dirty, self.dirty = self.dirty, set()
                for system_id, unit in dirty:
                    switch = self.switches.get(system_id)
                    if switch is not None:  # a switch that connects later gets ALL
                        switch.pending.add(unit)
                for switch in self.switches.values():
                    if switch.pending and not switch.running:
                        switch.running = True
                        eventlet.spawn_n(self._switch_loop, switch)
            except Exception:
                LOG.exception("controller worker: unexpected error; retrying in 1 s")
                eventlet.sleep(1)
                self.dirty.update((s, ALL) for s in self.switches)
                self._kick()

    def _switch_loop(self, switch):
        """Sync one switch until nothing is pending (one green thread per switch,
        so a slow or dead switch never holds up the others)."""
        try:
            while switch.pending:
                units, switch.pending = switch.pending, set()
                try:
                    self._sync_node(switch.system_id, units)
                except Exception:
                    LOG.exception("switch of node %s: unexpected error; full resync in 1 s",
                                  switch.system_id)
                    switch.synced = False
                    eventlet.spawn_after(1, self._retry_sync, switch.system_id)
        finally:
            switch.running = False

    def _update_mesh(self):
        for system_id, session in list(self.sessions.items()):
            if not session.ready or session.datapath_id is None:
                continue
            peers = {peer: ip for peer, ip in self.nodes.items() if peer != system_id and ip}
            ipsec = {}
            for peer in peers:
                pair = node_pair(system_id, peer)
                if self.ca is not None and {system_id, peer} <= self.certified:
                    ipsec[peer] = {"remote_name": peer}     # both have dvn's certificates
                elif pair in self.tunnel_keys:
                    ipsec[peer] = {"psk": self.tunnel_keys[pair]}
                elif pair not in self.keys_asked:
                    self.keys_asked.add(pair)
                    eventlet.spawn_n(self._create_key, pair)
            session.mesh_wanted = (peers, ipsec)
            if not getattr(session, "mesh_running", False):
                session.mesh_running = True
                eventlet.spawn_n(self._ensure_tunnels, session)

    def _ensure_tunnels(self, session):
        """Apply the latest wanted mesh to one node, one transaction at a time
        (a transaction's result is in the session's view when it returns)."""
        try:
            while True:
                wanted = session.mesh_wanted
                peers, keys = wanted
                try:
                    ops = session.ensure_tunnels(peers, self.tunnel_options, keys)
                    if ops:
                        LOG.info("node %s: tunnel mesh updated (%d peers, %d operations)",
                                 session.system_id, len(peers), ops)
                except Exception as exc:
                    LOG.error("node %s: tunnel mesh not applied: %s", session.system_id, exc)
                    if session.closed:
                        return
                    eventlet.sleep(1)
                    continue
                if session.mesh_wanted is wanted:
                    return
        finally:
            session.mesh_running = False

    def _certificates(self, session):
        """Sign a node's certificate request (its CN must be the node's
        system-id); know which nodes hold a certificate of dvn's CA."""
        ext = session.external_ids
        csr = ext.get(CSR_KEY)
        done = bool(csr) and ext.get(CERT_FOR_KEY) == _digest(csr)
        if done != (session.system_id in self.certified) and session.system_id not in self.recording:
            # recorded in the store (once at a time); the mesh follows from there
            self.recording.add(session.system_id)
            eventlet.spawn_n(self._record_certified, session.system_id, _digest(csr) if done else None)
        if self.ca is None or not csr or done or session.system_id in self.signing:
            return
        self.signing.add(session.system_id)

        def sign():
            try:
                cert = self.ca.sign(csr, session.system_id)
                session.set_external_ids({CERT_KEY: cert, CA_KEY: self.ca.pem(), CERT_FOR_KEY: _digest(csr)})
                LOG.info("node %s: certificate signed by dvn's CA", session.system_id)
            except Exception as exc:
                LOG.error("node %s: certificate request not signed: %s", session.system_id, exc)
            finally:
                self.signing.discard(session.system_id)
        eventlet.spawn_n(sign)

    def _record_certified(self, system_id, digest):
        try:
            self.nb.set_node_external_id(system_id, CERTIFIED_KEY, digest)
        except Exception as exc:  # the node row may not be written yet: the next update asks again
            LOG.warning("node %s: certificate state not recorded: %s", system_id, exc)
        finally:
            self.recording.discard(system_id)

    def _create_key(self, pair):
        """A new pre-shared key for a node pair, in the store (never logged)."""
        try:
            self.nb.transact([self.nb.api.db_create("TunnelKey", nodes=pair, psk=secrets.token_hex(32), version=1)])
        except Exception as exc:  # another dvn made it first, or the store is away: asked again later
            LOG.warning("IPsec key of nodes %s not created: %s", pair, type(exc).__name__)
            self.keys_asked.discard(pair)

    def _ready(self, system_id):
        """A switch is synced once dvn knows its node (ports, tunnels); after
        that a passing loss of the node's OVSDB session does not stop updates."""
        switch = self.switches.get(system_id)
        if not self._loaded or switch is None or switch.conn is None:
            return False
        session = self.sessions.get(system_id)
        return switch.synced or (session is not None and getattr(session, "known", False))

    def _compile_units(self, switch, units):
        """Recompile ``units`` of one switch; returns {unit: (old FlowSet, new FlowSet, view)}."""
        topo = self.topology(switch.system_id)
        sid = switch.system_id
        views = {}
        if ALL in units:
            base, networks = l2.plan_node(topo, sid)
            views[BASE] = base
            views.update(networks)
            units = set(units) | {ACL} | {(LB_UNIT, b) for n in networks for b in self.net_lbs.get(n, ())}
        for unit in set(units) - {ALL, ACL} - set(views):  # networks (ALL planned them all), load balancers
            if isinstance(unit, tuple) and unit[0] == LB_UNIT:
                views[unit] = lb.plan_lb(topo, unit[1], sid)
            elif isinstance(unit, tuple) and unit[0] == GROUP_UNIT:
                if ACL not in units:      # (else planned with the whole firewall below)
                    views[unit] = acl.plan_group(topo, sid, unit[1])
            elif not isinstance(unit, tuple):
                views[unit] = l2.plan_network(topo, unit, sid)
        if ACL in units:
            # The firewall: one unit for the node's shared flows, one per
            # local port, one per security group.
            view = acl.plan_acl(topo, sid)
            ports = view.ports if view is not None else ()
            tracked = any(self.net_lbs.get(p.network_id) for p in (self.ports.get(sp.port_id) for sp in ports) if p)
            views[ACL] = acl.base_view(ports, tracked) if view is not None else None
            for sp in ports:
                views[(PORT_UNIT, sp.port_id)] = sp
            groups = acl.group_views(view) if view is not None else {}
            for gid, gview in groups.items():
                views[(GROUP_UNIT, gid)] = gview
            for unit in switch.units:
                if isinstance(unit, tuple) and unit[0] in (PORT_UNIT, GROUP_UNIT) and unit not in views:
                    views[unit] = None
        if ALL in units:
            for unit in set(switch.units) - set(views):
                views[unit] = None
        changed = {}
        breathe = _Breather()
        for unit, view in views.items():
            breathe()
            old_view, old_flows = switch.units.get(unit, (None, FlowSet(())))
            if view == old_view:
                continue
            if view is None:
                new_flows = FlowSet(())
            elif unit == BASE:
                new_flows = l2.compile_base(view)
            elif unit == ACL:
                new_flows = acl.compile_base(*view)
            elif isinstance(unit, tuple) and unit[0] == LB_UNIT:
                new_flows = lb.compile_lb(view)
            elif isinstance(unit, tuple) and unit[0] == PORT_UNIT:
                new_flows = acl.compile_port(view)
            elif isinstance(unit, tuple):
                new_flows = acl.compile_group_unit(*view)
            else:
                new_flows = l2.compile_network(view)
            changed[unit] = (old_flows, new_flows, view)
        return changed

    def _sync_node(self, system_id, units):
        if not self._ready(system_id):
            return
        switch = self.switches[system_id]
        if not switch.synced:
            units = {ALL}
        started = time.monotonic()
        self.compiling += 1
        try:
            changed = self._compile_units(switch, units)
        finally:
            self.compiling -= 1
        self.last_compile_s = time.monotonic() - started
        try:
            if not switch.synced:
                self._resync(switch, changed)
            else:
                self._apply(switch, changed)
            switch.failures = 0
        except SwitchError as exc:
            switch.failures += 1
            self._report(switch, exc)
            delay = min(30, 2 ** switch.failures)
            switch.synced = False
            eventlet.spawn_after(delay, self._retry_sync, system_id)

    def _retry_sync(self, system_id):
        self.dirty.add((system_id, ALL))
        self._kick()

    def _report(self, switch, exc):
        LOG.error("%s", exc)
        for context, (_xid, err_type, code, _data) in exc.errors:
            if isinstance(context, Flow):
                owner = "%s %s" % (cookie_category(context.cookie),
                                   self.owners.get(cookie_owner(context.cookie), "?"))
                context = render_flow(context)
            else:
                owner = "nobody (a stale flow)"
            LOG.error("switch of node %s refused a flow of %s (OpenFlow error type %d code %d): %s",
                      switch.system_id, owner, err_type, code, context)

    def _commit_units(self, switch, changed):
        for unit, (_old, new, view) in changed.items():
            if view is None:
                switch.units.pop(unit, None)
            else:
                switch.units[unit] = (view, new)

    def _apply(self, switch, changed):
        """Send the difference of the changed units in one bundle.

        Units may want a flow with one identity (a conjunction clause of two
        security groups): the switch gets their merge (acl.merge_all)."""
        touched = set()
        for unit, (old, new, _view) in changed.items():
            d = diff(old, new)
            for flow in d.delete:
                wkey = ofwire.wire_key(flow)
                switch.contrib.get(wkey, {}).pop(unit, None)
                touched.add(wkey)
            for flow in d.add + d.modify:
                wkey = ofwire.wire_key(flow)
                switch.contrib.setdefault(wkey, {})[unit] = flow
                touched.add(wkey)
        group_first, group_last, group_state = self._group_changes(switch, changed)
        change, puts, dels = _Change(group_first), {}, []
        breathe = _Breather()
        for wkey in touched:
            breathe()
            want = _merged(switch.contrib.get(wkey))
            have = switch.installed.get(wkey)
            if want is None:
                switch.contrib.pop(wkey, None)
                if have is not None:
                    change.rest.append((ofwire.encode_flow_mod(have, ofwire.DELETE_STRICT), have))
                    dels.append(wkey)
            elif have is None or have.cookie != want.cookie:
                change.add(want, have is None)
                puts[wkey] = want
        change.rest += group_last
        if change:
            started = time.monotonic()
            try:
                over = self._send(switch, change, lambda: (
                    [f for c in switch.contrib.values() for f in c.values()],
                    {_classified_port(f) for f in switch.installed.values()}))
            except SwitchError:
                switch.contrib = {}  # rebuilt from the committed units at the resync
                raise
            LOG.info("switch of node %s: %d flow changes in %s (%d units, compile %.4f s, "
                     "bundle %.3f s)", switch.system_id, len(change), over, len(changed),
                     self.last_compile_s, time.monotonic() - started)
        for wkey in dels:
            switch.installed.pop(wkey, None)
        for wkey, flow in puts.items():
            switch.installed[wkey] = flow
        for gid, group in group_state.items():
            if group is None:
                switch.groups.pop(gid, None)
            else:
                switch.groups[gid] = group
        self._commit_units(switch, changed)

    def _lanes_of(self, switch):
        if switch.conn is None:
            return []
        return [c for dp, c in list(self.lanes.get(switch.conn.dpid, {}).items()) if dp.is_active]

    def _send(self, switch, change, state):
        """Apply a _Change: one bundle, or, when it is large and the switch
        has lanes, bundles over all its connections (ofconn.bundle_across).
        Says which, for the log.

        Its early messages may act before the rest; so may its verdicts for
        ports new to the switch (``state()``: every flow the switch is to
        have, and the ofports it has classify flows for)."""
        lanes = self._lanes_of(switch)
        early, verdicts, rest = change.early, change.verdicts, change.rest
        if len(change) < LANE_MIN or not lanes or not (early or verdicts) or switch.lanes_failed:
            switch.lanes_failed = False
            switch.conn.bundle(early + verdicts + rest)
            return "one bundle"
        if verdicts:
            desired, had = state()
            new_ports = change.classified - had
            unreached = {id(f) for f in acl.unreached([f for _m, f in verdicts], desired, new_ports)}
            early = early + [m for m in verdicts if id(m[1]) in unreached]
            rest = [m for m in verdicts if id(m[1]) not in unreached] + rest
        try:
            bundle_across(switch.conn, lanes, early, rest)
        except SwitchError:
            switch.lanes_failed = True  # the resync that follows goes in one bundle
            raise
        return "bundles over %d connections" % (len(lanes) + 1)

    @staticmethod
    def _group_changes(switch, changed):
        """Group messages for the changed load balancer units: (before the
        flows: adds and changes; after them: deletes; {group id: the group as
        the switch will hold it, or None})."""
        first, last, state = [], [], {}
        for unit, (_old, _new, view) in changed.items():
            if not (isinstance(unit, tuple) and unit[0] == LB_UNIT):
                continue
            old_view = switch.units.get(unit, (None, None))[0]
            old = lb.compile_groups(old_view) if old_view is not None else {}
            new = lb.compile_groups(view) if view is not None else {}
            for gid, group in new.items():
                have = switch.groups.get(gid)
                if have is None:
                    first += [(m, group) for m in ofwire.group_install(group)]
                    state[gid] = group
                elif have.fields != group.fields or set(have.buckets) != set(group.buckets):
                    first += [(m, group) for m in ofwire.group_change(have, group)]
                    state[gid] = ofwire.after_change(have, group)
            for gid in set(old) - set(new):
                if gid in switch.groups:
                    last.append((ofwire.encode_group_mod(old[gid], ofwire.OFPGC_DELETE), old[gid]))
                    state[gid] = None
        return first, last, state

    def _resync(self, switch, changed):
        """Read the switch back and correct it to the whole desired set, in one bundle."""
        units = dict(switch.units)
        for unit, (_old, new, view) in changed.items():
            units[unit] = (view, new) if view is not None else None
        contrib = {}
        for unit, entry in units.items():
            if entry is None:
                continue
            for flow in entry[1]:
                contrib.setdefault(ofwire.wire_key(flow), {})[unit] = flow
        desired = {wkey: _merged(c) for wkey, c in contrib.items()}
        want_groups = {}
        for unit, entry in units.items():
            if entry is not None and isinstance(unit, tuple) and unit[0] == LB_UNIT:
                want_groups.update(lb.compile_groups(entry[0]))
        t0 = time.monotonic()
        # Flows set and match the identity option: it is mapped first, on
        # every (re)connect; a switch that maps it otherwise gets nothing.
        if switch.conn.ensure_tlv_map(self.identity_option):
            LOG.info("switch of node %s: GENEVE option class 0x%x type 0x%x mapped to %s", switch.system_id,
                     self.identity_option.opt_class, self.identity_option.opt_type, self.identity_option.field)
        # Logged rules, rejects and health probes send packets to dvn through
        # these meters: they must exist first.
        switch.conn.ensure_meter(acl.LOG_METER, self.log_rate, self.log_burst)
        switch.conn.ensure_meter(lb.REJECT_METER, 1000, 1000)
        switch.conn.ensure_meter(lb.PROBE_METER, 5000, 5000)
        have_groups = switch.conn.read_groups()
        group_first, group_last = [], []
        for gid, group in want_groups.items():
            if gid not in have_groups:
                group_first += [(m, group) for m in ofwire.group_install(group)]
            elif have_groups[gid] != ofwire.group_desc_of(group):
                group_first += [(m, group) for m in ofwire.group_install(group, ofwire.OFPGC_MODIFY)]
            else:  # kept as it is: its bucket counters come in the switch's order
                want_groups[gid] = ofwire.in_switch_order(group, have_groups[gid])
        for gid in set(have_groups) - set(want_groups):
            group_last.append((ofwire.encode_group_mod(flows_group(gid, ()), ofwire.OFPGC_DELETE),
                               "group %d (on the switch, not desired)" % gid))
        have = {}
        for desc in switch.conn.read_flows():
            have[(desc.table_id, desc.priority, desc.match_key)] = desc
        change = _Change(group_first)
        for wkey, desc in have.items():
            if wkey not in desired:
                change.rest.append((ofwire.encode_delete_strict_raw(desc.table_id, desc.priority, desc.raw_match),
                             ofwire.describe_desc(desc)))
        breathe = _Breather()
        for wkey, flow in desired.items():
            breathe()
            desc = have.get(wkey)
            if desc is None or desc.cookie != flow.cookie:
                change.add(flow, desc is None)
        change.rest += group_last
        t1 = time.monotonic()
        classify = pipeline.table_id("classify")
        over = self._send(switch, change, lambda: (
            desired.values(), {ofwire.in_port_of(d.match_key) for d in have.values() if d.table_id == classify})
        ) if change else "nothing"
        t2 = time.monotonic()
        switch.groups = want_groups
        switch.installed = desired
        switch.contrib = contrib
        self._commit_units(switch, changed)
        switch.synced = True
        LOG.info("switch of node %s in sync: %d flows, %d changed "
                 "(compile %.3f s, read+diff %.3f s, bundle %.3f s) in %s", switch.system_id,
                 len(desired), len(change), self.last_compile_s, t1 - t0, t2 - t1, over)
