"""The scheduler: changes marked as (node, unit) pairs, compiled and sent by
one green thread per switch, so a slow or dead switch never holds up the
others; a burst of changes is taken together.

Those threads share one process and its hub: a hundred switches compiling at
once would each get a 50 ms slice in turn (units.Breather), the node
sessions' echoes would wait seconds between turns and their inactivity
probes would cut them. So the heavy steps take slots: a compile takes one of
COMPILE_SLOTS; reading a switch back (a resync) or sending it a large change
takes one of HEAVY_SLOTS. A switch that has compiled sends while the next
compiles, and a small change never waits behind a large one's send.
"""

import logging

import eventlet
from eventlet import event as ev_event
from eventlet import semaphore

from controller.switch import State
from controller.units import ALL, COMPILE_SLOTS, HEAVY_SLOTS

LOG = logging.getLogger(__name__)


class Scheduler:
    """The worker and the switch loops (a part of Core)."""

    def _init_scheduler(self):
        self.dirty = set()                             # (system id, unit) to recompile
        self._wake = ev_event.Event()
        self._compile_slots = semaphore.Semaphore(COMPILE_SLOTS)  # FIFO: the first to wait goes first
        self._heavy_slots = semaphore.Semaphore(HEAVY_SLOTS)

    def _kick(self):
        if not self._wake.ready():
            self._wake.send(True)

    def _queued(self, system_id):
        """Changes for the node's switch wait to be compiled."""
        switch = self.switches.get(system_id)
        return bool((switch is not None and switch.pending) or any(s == system_id for s, _u in self.dirty))

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
                try:
                    self._sync_node(switch)
                except Exception:
                    LOG.exception("switch of node %s: unexpected error; full resync in 1 s",
                                  switch.system_id)
                    switch.state = State.FAILED
                    eventlet.spawn_after(1, self._retry_sync, switch.system_id)
        finally:
            switch.running = False

    def switch_state(self, system_id):
        """A node's br-int as dvn sees it: connected, its state (switch.State),
        synced (it holds what dvn last sent), pending (changes not sent yet,
        its tunnel mesh included, or its ports' bindings not yet in the store,
        which the other nodes' flows go by),
        and how many flows and groups dvn has put there."""
        switch = self.switches.get(system_id)
        if switch is None:
            return {"connected": False, "state": State.CONNECTING.value, "synced": False, "pending": False,
                    "flows": 0, "groups": 0, "lanes": 0}
        node = self.node_states.get(system_id)  # its tunnel ports are on br-int too
        pending = bool(switch.running or self._wake.ready() or self.sg_dirty or self.lb_dirty
                       or self._queued(system_id) or self.mesh_dirty or (node is not None and node.mesh_running)
                       or system_id in self.bindings_wanted or system_id in self.bindings_in_write)
        return {"connected": switch.conn is not None, "state": switch.state.value, "synced": switch.synced,
                "pending": pending,
                "flows": switch.table.flow_count(), "groups": len(switch.table.groups),
                "lanes": len(self._lanes_of(switch))}
