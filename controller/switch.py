"""Switches: each node's br-int over OpenFlow, brought to what dvn wants.

Every switch goes through explicit states (as OVN's ofctrl does):
``CONNECTING`` (no connection), ``WAITING`` (connected; dvn waits for the
node's OVSDB view), ``RESYNCING`` (its flows and groups read back and
corrected), ``IN_SYNC`` (it holds what dvn last sent; changes go as
incremental bundles) and ``FAILED`` (a change was refused or timed out: a
resync follows, after a back-off). The diff and the order of the messages
are flows/reconcile.py's; this module compiles the units and sends.
"""

import contextlib
import enum
import logging
import time

import eventlet

from controller.ofconn import SwitchConn, SwitchError, bundle_across
from controller.units import ACL, ALL, BASE, GROUP_UNIT, HEAVY_CHANGE, LB_UNIT, PORT_UNIT, Breather
from flows import acl, l2, lb, ofwire, reconcile
from flows.flow import DVN_COOKIE, DVN_COOKIE_MASK, Flow, cookie_category, cookie_owner
from flows.render import render_flow

LOG = logging.getLogger(__name__)


class State(enum.Enum):
    CONNECTING = "connecting"
    WAITING = "waiting for node"
    RESYNCING = "resyncing"
    IN_SYNC = "in sync"
    FAILED = "failed"


class Switch:
    """One node's br-int as dvn sees it."""

    def __init__(self, system_id):
        self.system_id = system_id
        self.conn = None          # SwitchConn while connected
        self.state = State.CONNECTING
        self.table = reconcile.SwitchTable()  # what dvn wants there, and what it put there
        self.pending = set()      # units to recompile
        self.running = False      # a green thread is syncing this switch
        self.failures = 0
        self.lanes_failed = False  # the last change over the lanes failed: the next goes in one bundle
        self.last_compile_s = 0.0  # for the log

    @property
    def synced(self):
        """The switch holds ``table.installed``."""
        return self.state is State.IN_SYNC


class Switches:
    """Switch connections, lanes, compiles and sends (a part of Core)."""

    def _init_switches(self, lane_ports):
        self.switches = {}                             # system id -> Switch
        self.lane_ports = set(lane_ports)              # local OpenFlow ports whose connections are lanes
        self.lanes = {}                                # datapath id -> {os-ken Datapath: SwitchConn}
        self.merge_conflicts = 0                       # identities units wanted different flows at (logged)

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
        switch.state = State.WAITING
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
            switch.state = State.CONNECTING
            LOG.info("switch of node %s disconnected", system_id)

    def _ready(self, system_id):
        """A switch is synced once dvn knows its node (ports, tunnels); after
        that a passing loss of the node's OVSDB session does not stop updates."""
        switch = self.switches.get(system_id)
        if not self._loaded or switch is None or switch.conn is None:
            return False
        session = self.sessions.get(system_id)
        return switch.synced or (session is not None and self.node_state(session).known)

    def _compile_units(self, switch, units):
        """Recompile ``units`` of one switch; returns {unit: reconcile.Unit, or None: gone} of those that changed."""
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
            for unit in switch.table.units:
                if isinstance(unit, tuple) and unit[0] in (PORT_UNIT, GROUP_UNIT) and unit not in views:
                    views[unit] = None
        if ALL in units:
            for unit in set(switch.table.units) - set(views):
                views[unit] = None
        changed = {}
        breathe = Breather()
        for unit, view in views.items():
            breathe()
            if view == switch.table.units.get(unit, reconcile.NO_UNIT).view:
                continue
            if view is None:
                changed[unit] = None
                continue
            groups_ = {}
            if unit == BASE:
                new_flows = l2.compile_base(view)
            elif unit == ACL:
                new_flows = acl.compile_base(*view)
            elif isinstance(unit, tuple) and unit[0] == LB_UNIT:
                new_flows = lb.compile_lb(view)
                groups_ = lb.compile_groups(view)
            elif isinstance(unit, tuple) and unit[0] == PORT_UNIT:
                new_flows = acl.compile_port(view)
            elif isinstance(unit, tuple):
                new_flows = acl.compile_group_unit(*view)
            else:
                old = switch.table.units.get(unit)
                new_flows = l2.compile_network_change(old.view, old.flows, view) if old is not None else None
                if new_flows is None:
                    new_flows = l2.compile_network(view)
            changed[unit] = reconcile.Unit(view, new_flows, groups_)
        return changed

    def _sync_node(self, switch):
        """Compile the switch's pending units and send the difference. The
        units are taken once a compile slot is had: what is marked while the
        switch waits for one (the other nodes' bindings, in an import) joins
        the same compile and the same bundle."""
        system_id = switch.system_id
        if not self._ready(system_id):
            switch.pending = set()   # (a switch that becomes ready is synced whole)
            return
        self.bindings_settled(system_id)
        with self._compile_slots:
            units, switch.pending = switch.pending, set()
            if not switch.synced:
                units = {ALL}
                switch.state = State.RESYNCING
            started = time.monotonic()
            changed = self._compile_units(switch, units)
            switch.last_compile_s = time.monotonic() - started
        if switch.conn is None:   # it went while its units compiled: its reconnect resyncs it whole
            return
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
            switch.state = State.FAILED
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

    def _apply(self, switch, changed):
        """Send the difference of the changed units (flows.reconcile)."""
        table = switch.table
        plan = table.plan_change(changed, Breather())
        self._conflicts(switch)
        if plan.change:
            started = time.monotonic()
            slot = self._heavy_slots if len(plan.change) >= HEAVY_CHANGE else contextlib.nullcontext()
            try:
                with slot:
                    over = self._send(switch, plan)
            except SwitchError:
                table.forget()
                raise
            sent_s = time.monotonic() - started
            LOG.info("switch of node %s: %d flow changes in %s (%d units, compile %.4f s, "
                     "bundle %.3f s)", switch.system_id, len(plan.change), over, len(changed),
                     switch.last_compile_s, sent_s)
            self.metrics.changed("change", len(plan.change), switch.last_compile_s + sent_s)
        table.commit(plan, changed)

    def _conflicts(self, switch):
        for conflict in switch.table.take_conflicts():
            self.merge_conflicts += 1
            LOG.error("switch of node %s: units want different flows at one identity; the least is sent: %s",
                      switch.system_id, " | ".join(render_flow(f) for f in conflict.flows))

    def _lanes_of(self, switch):
        if switch.conn is None:
            return []
        return [c for dp, c in list(self.lanes.get(switch.conn.dpid, {}).items()) if dp.is_active]

    def _send(self, switch, plan):
        """Send a plan's change: one bundle, or, when it is large and the
        switch has lanes, bundles over all its connections
        (reconcile.bundles). Says which, for the log."""
        conn = switch.conn
        if conn is None:
            raise SwitchError("switch of node %s went before its change was sent" % switch.system_id)
        single = reconcile.alone(plan.change)
        if single is not None:   # one round trip, where a bundle takes two
            conn.apply([single])
            conn.send(ofwire.message_bytes(plan.change.messages()[-1][0]))   # the mark, once its flow is in
            return "one flow_mod"
        lanes = [] if switch.lanes_failed else self._lanes_of(switch)
        switch.lanes_failed = False
        shares = reconcile.bundles(plan.change, len(lanes), plan.state)
        if len(shares) == 1:
            conn.bundle(shares[0])
            return "one bundle"
        try:
            bundle_across(conn, lanes, shares)
        except SwitchError:
            switch.lanes_failed = True  # the resync that follows goes in one bundle
            raise
        return "bundles over %d connections" % (len(lanes) + 1)

    def _resync(self, switch, changed):
        """Bring the switch to the whole desired set: confirmed by its mark,
        or read back and corrected (flows.reconcile.plan_resync)."""
        t0 = time.monotonic()
        conn = switch.conn   # (if it goes meanwhile, its requests fail at once: SwitchError)
        # Flows set and match the identity option: it is mapped first, on
        # every (re)connect; a switch that maps it otherwise gets nothing.
        if conn.ensure_tlv_map(self.identity_option):
            LOG.info("switch of node %s: GENEVE option class 0x%x type 0x%x mapped to %s", switch.system_id,
                     self.identity_option.opt_class, self.identity_option.opt_type, self.identity_option.field)
        # Logged rules, rejects and health probes send packets to dvn through
        # these meters: they must exist first.
        conn.ensure_meter(acl.LOG_METER, self.log_rate, self.log_burst)
        conn.ensure_meter(lb.REJECT_METER, 1000, 1000)
        conn.ensure_meter(lb.PROBE_METER, 5000, 5000)
        have_groups = conn.read_groups()
        marks = conn.read_flows(DVN_COOKIE, DVN_COOKIE_MASK, reconcile.MARK_TABLE)
        mark = reconcile.Mark(marks[0].cookie if marks else None, conn.count_flows(DVN_COOKIE, DVN_COOKIE_MASK))
        table = switch.table
        with self._heavy_slots:   # (the flow read, if the mark does not confirm the switch, and the send)
            plan = table.plan_resync(changed, lambda: conn.read_flows(DVN_COOKIE, DVN_COOKIE_MASK),  # dvn's only
                                     have_groups, Breather(), mark)
            self._conflicts(switch)
            t1 = time.monotonic()
            try:
                over = self._send(switch, plan) if plan.change else "nothing"
            except SwitchError:
                table.forget()
                raise
        t2 = time.monotonic()
        table.commit(plan, changed)
        switch.state = State.IN_SYNC
        self.metrics.changed("resync", len(plan.change), switch.last_compile_s + t2 - t0)
        LOG.info("switch of node %s in sync: %d flows, %d changed "
                 "(compile %.3f s, %s %.3f s, bundle %.3f s) in %s", switch.system_id,
                 table.flow_count(), len(plan.change), switch.last_compile_s,
                 "read+diff" if plan.read else "confirmed by its mark", t1 - t0, t2 - t1, over)
