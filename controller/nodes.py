"""Nodes: their OVSDB sessions, the tunnel mesh, IPsec keys and certificates.

A node is the authority on what is plugged into it: its session's view is
taken in memory first (its switch may be resynced from it at once), then
recorded in the store off the session's green thread. The mesh gives every
node a tunnel to each peer; IPsec ones carry a pair's key, or both nodes'
certificates. A revoked node (controller.trust.revoked_nodes) has
neither sessions nor tunnels, and no peer keeps a key with it (see
_revoke). What dvn keeps about a session (whether it is registered,
known, being recorded, its wanted mesh) is dvn's own, in a NodeState, not
attributes set on the session object.
"""

import dataclasses
import hashlib
import logging
import secrets
import time

import eventlet

from controller import trust
from controller.ofconn import end_connection
from controller.units import ACL, ALL, LB_UNIT
from flows import l2

LOG = logging.getLogger(__name__)

CSR_KEY, CERT_KEY, CA_KEY, CERT_FOR_KEY = "dvn-csr", "dvn-cert", "dvn-ca", "dvn-cert-for"
CERTIFIED_KEY = "dvn-certified"   # Node external_ids in the store: the digest of the request dvn signed
BINDING_WINDOW_S = 0.02  # bindings that nodes report this close together are written together
BINDINGS_PER_WRITE = 2000  # port bindings in one transaction of the store
BINDING_HOLD_S = 2.0  # the longest a compile waits for bindings being written (scheduler: bindings_settled)


def _now_ms():
    return int(time.time() * 1000)

def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]

def node_pair(a, b):
    """The TunnelKey name of a pair of nodes."""
    return "|".join(sorted((a, b)))


@dataclasses.dataclass
class NodeState:
    """What dvn keeps about one node session."""
    session: object
    known: bool = False          # dvn has taken the session's view at least once
    registered: bool = False     # the node's row is in the store
    update_soon: bool = False    # a look at its interfaces is scheduled
    record_wanted: bool = False  # the store is behind what the node says
    recording: bool = False      # a writer records it
    mesh_wanted: tuple = None    # (peers, ipsec options) to apply
    mesh_running: bool = False   # a green thread applies the mesh


class Nodes:
    """Node sessions, the mesh, keys and certificates (a part of Core)."""

    def _init_nodes(self):
        self.nodes = {}                                # system id -> encap ip (northbound)
        self.sessions = {}                             # system id -> NodeSession
        self.node_states = {}                          # system id -> NodeState of its session
        self.local_ofports = {}                        # system id -> {port id: ofport}
        self.tunnel_ofports = {}                       # system id -> {peer: ofport}
        self.secure_ofports = {}                       # system id -> {peer: ofport} of the IPsec mesh
        self.iface_bindings = {}                       # system id -> {iface-id: ofport}, all of them
        self.dpid_node = {}                            # dpid -> system id
        self.tunnel_keys = {}                          # "a|b" (sorted system ids) -> pre-shared key
        self.keys_asked = set()                        # node pairs whose key is being created
        self.certified = set()                         # nodes whose certificate request dvn has signed
        self.signing = set()                           # nodes whose request is being signed
        self.recording = set()                         # nodes whose certification is being written to the store
        self.mesh_dirty = False                        # the mesh is to be looked at again
        self.bindings_wanted = set()                   # nodes whose port bindings the store is behind on
        self.bindings_writing = False                  # the binding writer runs
        self._bindings_written = 0.0                   # when it last wrote (monotonic)
        self.bindings_in_write = set()                 # nodes whose bindings the writer is writing
        self.revoked = set()                           # nodes whose every certificate is revoked (the store's)

    def node_state(self, session):
        """dvn's state of a session (a new session of a node starts afresh)."""
        state = self.node_states.get(session.system_id)
        if state is None or state.session is not session:
            state = self.node_states[session.system_id] = NodeState(session)
        return state

    def _node_update_soon(self, session):
        """Look at a node's interfaces again: once for a burst of new ports
        (a bulk import creates thousands in one update)."""
        state = self.node_state(session)
        if state.update_soon:
            return
        state.update_soon = True

        def run():
            state.update_soon = False
            if self.sessions.get(session.system_id) is session:
                self.node_update(session)
        eventlet.spawn_n(run)

    def node_update(self, session):
        """The node's database changed: take what it says in memory first (the
        switch may be resynced at any time after this), then record it in the
        northbound store."""
        system_id = session.system_id
        if not system_id:
            return
        if system_id in self.revoked:
            LOG.warning("OVSDB session from %s refused: node %s is revoked", _address(session), system_id)
            session.close()
            return
        known = self.sessions.get(system_id)
        if known is not session:
            if known is not None:
                known.close()
            self.sessions[system_id] = session
            LOG.info("node %s connected (encap %s%s)", system_id, session.encap_ip,
                     ", public %s" % session.public_ip if session.public_ip else "")
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
            # Only the networks of the ports that came, went or moved (and
            # their load balancers), and the firewall, are planned again.
            moved = {p for p in set(ofports) | set(before) if ofports.get(p) != before.get(p)}
            for net_id in {self.ports[p].network_id for p in moved if p in self.ports}:
                self.dirty.add((system_id, net_id))
                self.dirty.update((system_id, (LB_UNIT, b)) for b in self.net_lbs.get(net_id, ()))
            self.dirty.add((system_id, ACL))
            # Wanted now, not once the recorder runs: the other switches'
            # compiles wait for these bindings (bindings_settled) only if
            # they know of them when they start.
            self._bindings_soon(system_id)
        for mesh, known in (("plain", self.tunnel_ofports), ("ipsec", self.secure_ofports)):
            tunnels = {peer: o for peer, o in session.tunnels(mesh).items() if o and peer not in self.revoked}
            if tunnels != known.get(system_id):
                known[system_id] = tunnels
                self.dirty.add((system_id, ALL))
        self._certificates(session)
        self.node_state(session).known = True
        switch = self.switches.get(system_id)
        if switch is not None and switch.conn is not None and not switch.synced:
            self.dirty.add((system_id, ALL))
        self._kick()
        self._record_soon(session)

    def _record_soon(self, session):
        """Record what the node says in the store, off the session's green
        thread (the session must go on answering the node's echoes): one
        writer per session, which writes again while the node has said more,
        or after a failure; its bindings go to the binding writer."""
        state = self.node_state(session)
        state.record_wanted = True
        if state.recording:
            return
        state.recording = True

        def run():
            try:
                while state.record_wanted and self.sessions.get(session.system_id) is session:
                    state.record_wanted = False
                    if not self._record_node(session):
                        state.record_wanted = True
                        eventlet.sleep(1)
            finally:
                state.recording = False
        eventlet.spawn_n(run)

    def _record_node(self, session):
        """Write the node to the store, and have its ports' bindings written
        (with other nodes', by the binding writer); False if the store refused."""
        system_id = session.system_id
        encap_ip = session.tunnel_ip   # (what peers tunnel to: behind a NAT, the public address)
        state = self.node_state(session)
        if encap_ip and (self.nodes.get(system_id) != encap_ip or not state.registered):
            try:
                self.nb.upsert_node(system_id, session.hostname, encap_ip, "up", _now_ms())
            except Exception as exc:  # the store is busy or away: asked again
                LOG.warning("node %s not recorded (%s); again in 1 s", system_id, exc)
                return False
            state.registered = True
            self.nodes[system_id] = encap_ip
            self.mesh_dirty = True
            self._kick()
        self._bindings_soon(system_id)
        return True

    def _binding_changes(self, system_id):
        """{port id: node, or None}: where the store is behind what the node says is plugged into it."""
        ofports = self.local_ofports.get(system_id, {})
        changes = {p: system_id for p in ofports if self.port_node.get(p) != system_id}
        changes.update((p, None) for p, node in self.port_node.items()
                       if node == system_id and p not in ofports and p in self.ports)
        return changes

    def _bindings_soon(self, system_id):
        self.bindings_wanted.add(system_id)
        if not self.bindings_writing:
            self.bindings_writing = True
            eventlet.spawn_n(self._binding_writer)

    def _binding_writer(self):
        """Write the port bindings nodes report, for every node at once: those
        that arrive within BINDING_WINDOW_S go in one write of the store (in
        transactions of BINDINGS_PER_WRITE), so the store sends one update,
        and each node's switch gets one change, however many nodes plugged
        ports meanwhile (not one per node: N nodes binding their ports cost
        N changes a node, N^2 in all). The first report after a quiet
        window is written at once. The write waits for no switch; the
        switches' compiles wait for it instead (bindings_settled), so each
        compiles its own ports and the other nodes' in one go, not in two
        rounds."""
        try:
            while self.bindings_wanted:
                quiet = time.monotonic() - self._bindings_written
                eventlet.sleep(max(0.0, BINDING_WINDOW_S - quiet))
                nodes, self.bindings_wanted = self.bindings_wanted, set()
                self.bindings_in_write = nodes
                items = sorted(self._binding_changes_of(nodes).items())
                for b in range(0, len(items), BINDINGS_PER_WRITE):
                    try:
                        self.nb.set_port_bindings(dict(items[b:b + BINDINGS_PER_WRITE]))
                    except Exception as exc:  # the store is busy or away: asked again, with what the nodes say then
                        LOG.warning("%d port bindings of %d nodes not recorded (%s); again in 1 s",
                                    len(items) - b, len(nodes), exc)
                        self.bindings_wanted |= nodes
                        eventlet.sleep(1)
                        break
                else:
                    self._until_modelled(items)
                self._bindings_written = time.monotonic()
                self.bindings_in_write = set()
        finally:
            self.bindings_writing = False
            self.bindings_in_write = set()

    def bindings_settled(self, system_id):
        """Wait (at most BINDING_HOLD_S) while other nodes' bindings are to
        be written or being written: a compile of ``system_id``'s switch
        that starts then would miss them, and each switch would compile
        twice in an import (its own ports, then the other nodes'). A write
        waited for is one the switches need anyway; a node's own bindings
        are not (its own ports compile from what it reported)."""
        deadline = time.monotonic() + BINDING_HOLD_S
        while (self.bindings_wanted | self.bindings_in_write) - {system_id} and time.monotonic() < deadline:
            eventlet.sleep(0.005)

    def _until_modelled(self, items):
        """Wait (at most BINDING_HOLD_S) until the model has taken the
        store's update for bindings just written: the compiles held for
        them (bindings_settled) must find the other nodes' units marked."""
        deadline = time.monotonic() + BINDING_HOLD_S
        while any(self.port_node.get(p) != n for p, n in items if p in self.ports) and time.monotonic() < deadline:
            eventlet.sleep(0.005)

    def _binding_changes_of(self, nodes):
        changes = {}
        for system_id in nodes:
            if system_id in self.sessions:
                changes.update(self._binding_changes(system_id))
        return changes

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

    def _update_mesh(self):
        """Every node gets a plain tunnel to each peer, and an IPsec one to
        each peer it may have to encrypt traffic with (l2.secure_pairs):
        keys and IPsec ports only where encryption is asked for."""
        secure = {node_pair(a, b) for a, b in l2.secure_pairs(self.topology())}
        for system_id, session in list(self.sessions.items()):
            if not session.ready or session.datapath_id is None or system_id in self.revoked:
                continue
            peers = {peer: ip for peer, ip in self.nodes.items()
                     if peer != system_id and ip and peer not in self.revoked}
            ipsec = {}
            for peer in peers:
                pair = node_pair(system_id, peer)
                if pair not in secure:
                    continue
                if self.ca is not None and {system_id, peer} <= self.certified:
                    ipsec[peer] = {"remote_name": peer}     # both have dvn's certificates
                elif pair in self.tunnel_keys:
                    ipsec[peer] = {"psk": self.tunnel_keys[pair]}
                    if session.public_ip:   # behind a NAT: IKE names it by the address its peers know
                        ipsec[peer]["ipsec_leftid"] = session.public_ip
                elif pair not in self.keys_asked:
                    self.keys_asked.add(pair)
                    eventlet.spawn_n(self._create_key, pair)
            state = self.node_state(session)
            if state.mesh_wanted == (peers, ipsec):
                continue   # (applied, or being applied)
            state.mesh_wanted = (peers, ipsec)
            if not state.mesh_running:
                state.mesh_running = True
                eventlet.spawn_n(self._ensure_tunnels, session)

    def _ensure_tunnels(self, session):
        """Apply the latest wanted mesh to one node, one transaction at a time
        (a transaction's result is in the session's view when it returns)."""
        state = self.node_state(session)
        try:
            while True:
                wanted = state.mesh_wanted
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
                if state.mesh_wanted is wanted:
                    return
        finally:
            state.mesh_running = False

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
        if self.revoked.intersection(pair.split("|")):   # (revoked since it was asked for)
            self.keys_asked.discard(pair)
            return
        try:
            self.nb.transact([self.nb.api.db_create("TunnelKey", nodes=pair, psk=secrets.token_hex(32), version=1)])
        except Exception as exc:  # another dvn made it first, or the store is away: asked again later
            LOG.warning("IPsec key of nodes %s not created: %s", pair, type(exc).__name__)
            self.keys_asked.discard(pair)

    # ---- revocation ------------------------------------------------------------
    def _revocations_changed(self):
        """The store's record of node certificates changed (or was read): a
        node that is revoked now is ended at once (_revoke); one admitted
        again by a new token is a node like any other, whose pairs get new
        keys (the revocation deleted the old ones, controller/api/trust.py)."""
        revoked = trust.revoked_nodes(self.nb.rows("NodeCertificate"))
        if revoked == self.revoked:
            return
        new, self.revoked = revoked - self.revoked, revoked
        for system_id in sorted(new):
            self._revoke(system_id)
        self.mesh_dirty = True   # tunnels to revoked nodes go, to admitted ones come
        self._kick()

    def _revoke(self, system_id):
        """End a revoked node's OVSDB session and OpenFlow connections (main
        and lanes) now, and take its tunnels out of every other node's view:
        their switches recompile without its ports (its VMs are unreachable)
        and the mesh removes the tunnel ports to it. Its certificate (and,
        in node_update, its name) is refused when it comes back."""
        ended = []
        session = self.sessions.get(system_id)
        if session is not None:
            session.close()
            eventlet.spawn_n(self.node_closed, session)  # (not live; its state is written off the store's thread)
            ended.append("OVSDB")
        dpids = {dpid for dpid, node in self.dpid_node.items() if node == system_id}
        switch = self.switches.get(system_id)
        if switch is not None and switch.conn is not None:
            dpids.add(switch.conn.dpid)
            self._end_openflow(switch.conn.datapath)
            ended.append("OpenFlow")
        lanes = [dp for dpid in dpids for dp in list(self.lanes.get(dpid, {}))]
        for datapath in lanes:
            self._end_openflow(datapath)
        if lanes:
            ended.append("%d lane%s" % (len(lanes), "s" if len(lanes) > 1 else ""))
        peers = set()
        for known in (self.tunnel_ofports, self.secure_ofports):
            known.pop(system_id, None)
            for node, tunnels in list(known.items()):
                if system_id in tunnels:
                    known[node] = {p: o for p, o in tunnels.items() if p != system_id}
                    self.dirty.add((node, ALL))
                    peers.add(node)
        self.keys_asked = {pair for pair in self.keys_asked if system_id not in pair.split("|")}
        # (A node revoked while away, or found revoked when dvn starts, has nothing to end.)
        LOG.log(logging.WARNING if ended or peers else logging.DEBUG,
                "node %s revoked: %s; its tunnels leave %d peer%s", system_id,
                "sessions ended (%s)" % ", ".join(ended) if ended else "no session was up",
                len(peers), "" if len(peers) == 1 else "s")

    def _end_openflow(self, datapath):
        """Close one OpenFlow connection and forget it now (os-ken's own
        notice of the close comes later and finds nothing left to do)."""
        end_connection(datapath)
        self.switch_disconnected(datapath)


def _address(session):
    address = getattr(session, "address", None)
    return "%s:%s" % tuple(address[:2]) if isinstance(address, tuple) else str(address)
