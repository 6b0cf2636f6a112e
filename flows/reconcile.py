"""The reconciler: what a switch is to have and what it has, in; the ordered
OpenFlow messages that take it there, and how they are bundled, out. Pure:
no sockets, no threads, no clock. The controller only sends what it returns.

What dvn wants on one switch is kept in compile *units* (the node's base,
each network it hosts, each load balancer, the firewall's parts: see
docs/architecture.md). Each unit has a view (what it was compiled from),
its flows and its select groups. Units may want a flow at one identity
(a conjunction clause that several security groups share): the switch gets
their merge.

The order within a change is what keeps the switch consistent at every
point: group adds and changes first, then the flow changes, then the group
deletes, so no flow ever names a group the switch lacks. A large change may
be spread over the switch's lanes (more connections to it, each its own
bundle committed before the main one): only flows that act on nothing until
the main bundle commits go there (``may_go_early``, ``acl.unreached``).

Every change also rewrites the switch's *mark*: one flow whose cookie
carries a digest of every other flow dvn put there (``digest_item``). A
resync that finds the mark it expects and as many of dvn's flows as it
expects confirms the switch without reading its flows back
(``plan_resync``): the restart of a controller over a fleet costs a compile
and a few small reads per switch.
"""

import zlib
from typing import NamedTuple

from flows import acl, ofwire, pipeline
from flows.flow import DVN_COOKIE, MARK, Flow, FlowSet, Group, diff, is_dvn_cookie, match_value
from flows.lb import is_dvn_group

LANE_MIN = 1000    # messages in a change from which it is spread over a switch's lanes


_FIREWALL_IDS = {pipeline.table_id(t) for t in pipeline.FIREWALL}
MARK_TABLE = pipeline.table_id("mark")
_DIGEST_BITS = (1 << 60) - 1   # below the cookie's dvn mark and category


def digest_item(wkey, cookie):
    """One flow's share of a switch's digest: its identity (wire key) and
    what it does (the cookie's digest of its actions), stable across
    processes (crc32, not hash())."""
    table_id, priority, match_key = wkey
    return (zlib.crc32(match_key, (table_id << 16) | priority) << 28) ^ (cookie & 0xFFFFFFFFF)


def mark_flow(digest):
    """The switch's mark for a digest (the sum of its flows' items)."""
    return Flow("mark", 0, (), (), None, None, DVN_COOKIE | (MARK << 60) | (digest & _DIGEST_BITS))


class Mark(NamedTuple):
    """What a switch says of dvn's flows, cheaply: the cookie of its mark
    (None: it has none) and how many flows it has in dvn's cookie space."""
    cookie: object
    count: int


class Unit(NamedTuple):
    """One compile unit as a switch has it: what it was compiled from, its
    flows and its select groups ({group id: Group})."""
    view: object
    flows: FlowSet
    groups: dict


NO_UNIT = Unit(None, FlowSet(()), {})


class Conflict(NamedTuple):
    """Units that want different flows at one identity (which the compiler
    never makes): the switch gets one (``fail_closed``), and the controller
    says so."""
    key: tuple
    flows: tuple


def fail_closed(flows):
    """Of conflicting flows, the one that drops, if one does, else the first."""
    return next((f for f in flows if not f.actions and f.goto is None), flows[0])


def names_group(actions):
    for a in actions:   # (a loop, not any() of a generator: asked of every flow of a change)
        kind = a[0]
        if kind == "group" or (kind == "clone" and names_group(a[1])):
            return True
    return False


def may_go_early(flow):
    """Whether a flow new to the switch may take effect before the rest of its
    change. Not a flow of a table that takes packets to a port's or a
    network's flows: a new port or network is reached only once those
    commit, with the rest. Not a firewall verdict: a new allow must not act
    before a new deny that outranks it, unless no packet reaches it yet
    (``is_verdict``, then ``bundles``). A clause decides nothing alone, and a
    new rule's state flow passes only connections its verdict committed. Not
    a flow naming a group, which may come with the rest."""
    if flow.table in pipeline.DISPATCH or names_group(flow.actions):
        return False
    return flow.table not in pipeline.FIREWALL or acl.is_clause(flow) or acl.is_state(flow)


def is_verdict(flow):
    """A firewall verdict: early only if it is for ports new to the switch
    (acl.unreached)."""
    return flow.table in pipeline.FIREWALL and not names_group(flow.actions)


def classified_port(flow):
    """The ofport a classify flow is for, or None."""
    return match_value(flow.match, "in_port") if flow.table == "classify" else None


class Change:
    """The messages of one change to a switch, each an (OpenFlow message,
    context) pair (the message: bytes, or an ofwire.FlowMod, encoded as it
    is sent), by when they may take effect: ``early``, ``verdicts``
    (early if unreached), and ``rest`` (last, in order: group adds and
    changes, flow changes, group deletes). ``classified``: the ofports that
    get a classify flow the switch does not have."""

    def __init__(self, first=()):
        self.early, self.verdicts, self.rest, self.classified = [], [], list(first), set()

    def add(self, flow, new):
        """An add of ``flow``; ``new``: the switch has no flow with its key."""
        msg = (ofwire.FlowMod(flow, ofwire.ADD), flow)
        if not new:
            self.rest.append(msg)
        elif may_go_early(flow):
            self.early.append(msg)
        elif is_verdict(flow):
            self.verdicts.append(msg)
        else:
            self.rest.append(msg)
            port = classified_port(flow)
            if port is not None:
                self.classified.add(port)

    def __len__(self):
        return len(self.early) + len(self.verdicts) + len(self.rest)

    def messages(self):
        return self.early + self.verdicts + self.rest


class Plan(NamedTuple):
    """A change and what the switch holds once it is committed: ``flows``
    and ``groups`` give the entries it changes (None: deleted), or the
    whole table (``whole``). ``state``: what ``bundles`` asks of it."""
    change: Change
    flows: dict       # wire key -> Flow, or None
    groups: dict      # group id -> Group, or None
    state: object     # () -> (every flow the switch is to have, the ofports it has classify flows for)
    whole: bool = False
    digest: int = 0   # of the flows it holds then (its mark says so)
    read: bool = True  # (a resync) its flows were read back, not confirmed by its mark


def alone(change):
    """The one flow message of a change that is that and the switch's mark,
    or None. Such a change needs no bundle: one flow_mod takes effect
    atomically on its own, and the mark may follow once the flow is in (a
    mark that never came is caught at the next resync, by its digest)."""
    msgs = change.messages()
    if len(msgs) == 2 and isinstance(msgs[0][1], Flow) and msgs[0][1].table != "mark" \
            and isinstance(msgs[1][1], Flow) and msgs[1][1].table == "mark":
        return msgs[0]
    return None


def spread(early, rest, lanes):
    """Share a change out over a switch's main connection and ``lanes`` more:
    [messages of the main connection, then those of each lane]. ``rest``
    stays on the main connection; ``early`` fills it up to an even share and
    the lanes take the others, evenly."""
    if not lanes:
        return [list(early) + list(rest)]
    share = -(-(len(early) + len(rest)) // (lanes + 1))
    own = max(0, min(len(early), share - len(rest)))
    main = list(early[:own]) + list(rest)
    others = early[own:]
    return [main] + [others[i::lanes] for i in range(lanes)]


class SwitchState(NamedTuple):
    """What ``bundles`` asks of a switch for a large change."""
    desired: object    # every flow the switch is to have
    classified: set    # the ofports it has classify flows for
    decided: set       # the conjunction ids it has a verdict for


def _conjunctions(flow):
    return {a[1] for a in flow.actions if a[0] == "conjunction"}


def bundles(change, lanes, state, lane_min=LANE_MIN):
    """The bundles of a change: [the main connection's, then each lane's].
    The lanes' bundles commit first, the main one last; one bundle when the
    change is small or there are no lanes.

    Early messages may act before the rest, but for clauses of conjunctions
    the switch already decides (a new clause completes them: a new allow
    clause could act before the deny that outranks it, on another lane);
    verdicts may too when they are for ports new to the switch (``state()``,
    a SwitchState, asked only when it matters)."""
    early, verdicts, rest = change.early, change.verdicts, change.rest
    if len(change) < lane_min or not lanes or not (early or verdicts):
        return [early + verdicts + rest]
    now = state()
    if any(acl.is_clause(f) for _m, f in early):
        live = [m for m in early if acl.is_clause(m[1]) and _conjunctions(m[1]) & now.decided]
        if live:
            held = {id(m) for m in live}
            early = [m for m in early if id(m) not in held]
            rest = live + rest
    if verdicts:
        new_ports = change.classified - set(now.classified)
        unreached = {id(f) for f in acl.unreached([f for _m, f in verdicts], now.desired, new_ports)}
        early = early + [m for m in verdicts if id(m[1]) in unreached]
        rest = [m for m in verdicts if id(m[1]) not in unreached] + rest
    return spread(early, rest, lanes)


def _state_of(flows, desired=None):
    """The SwitchState of a switch that holds ``flows``."""
    classified, decided = set(), set()
    for flow in flows:
        classified.add(classified_port(flow))
        decided.add(match_value(flow.match, "conj_id"))
    return SwitchState(flows if desired is None else desired, classified, decided)


def _want(contrib, wkey, unit, flow):
    """Record in ``contrib`` (SwitchTable.contrib) that ``unit`` wants
    ``flow`` at ``wkey``. Most identities are wanted by one unit: a pair,
    not a dict, for each of a switch's 100,000 flows."""
    have = contrib.get(wkey)
    if have is None or (have.__class__ is tuple and have[0] == unit):
        contrib[wkey] = (unit, flow)
    elif have.__class__ is tuple:
        contrib[wkey] = {have[0]: have[1], unit: flow}
    else:
        have[unit] = flow


def _unwant(contrib, wkey, unit):
    """``unit`` no longer wants a flow at ``wkey``."""
    have = contrib.get(wkey)
    if have is None:
        return
    if have.__class__ is tuple:
        if have[0] == unit:
            del contrib[wkey]
        return
    have.pop(unit, None)
    if len(have) == 1:
        contrib[wkey] = next(iter(have.items()))
    elif not have:
        del contrib[wkey]


def _group_delete(gid, context):
    return ofwire.encode_group_mod(Group(gid, ()), ofwire.OFPGC_DELETE), context


class SwitchTable:
    """What dvn wants on one switch (its units) and what dvn put there
    (``installed``: wire key -> Flow; ``groups``: group id -> Group, as the
    switch holds it). It changes only when a plan is committed."""

    def __init__(self):
        self.units = {}       # unit -> Unit
        self.installed = {}   # wire key -> Flow
        self.groups = {}      # group id -> Group
        self.contrib = {}     # wire key -> what units want there: (unit, Flow) if one does, else {unit: Flow}
        self.conflicts = []   # Conflicts met since the controller last took them
        self.digest = None    # the digest the switch's mark carries (None: no mark yet)

    def flow_count(self):
        """The flows dvn put on the switch, its mark with them."""
        return len(self.installed) + (self.digest is not None)

    def merged(self, key, contributions):
        """The one flow the switch gets for the flows units want at one
        identity (``contributions``: a value of ``contrib``)."""
        if not contributions:
            return None
        if contributions.__class__ is tuple:
            return contributions[1]
        values = iter(contributions.values())
        first = next(values)
        if all(flow == first for flow in values):  # the usual case: units that share a flow (VIPs of a network)
            return first
        try:
            return acl.merge_all(list(contributions.values()))
        except acl.MergeConflict as exc:
            # (a bug of the compiler's: logged and counted by the controller)
            self.conflicts.append(Conflict(key, exc.flows))
            return fail_closed(exc.flows)

    # ---- a change of some units -------------------------------------------
    def plan_change(self, changed, breathe=lambda: None):
        """The plan for ``changed`` ({unit: Unit, or None when the unit goes})
        on a switch that holds ``installed``. Records what the units want;
        ``commit`` (once the switch has taken the change) or ``forget`` (when
        it has not) must follow."""
        touched = set()
        for unit, new in changed.items():
            old = self.units.get(unit, NO_UNIT)
            d = diff(old.flows, new.flows if new is not None else FlowSet(()))
            for flow in d.delete:
                wkey = ofwire.wire_key(flow)
                _unwant(self.contrib, wkey, unit)
                touched.add(wkey)
            for flow in d.add + d.modify:
                wkey = ofwire.wire_key(flow)
                _want(self.contrib, wkey, unit, flow)
                touched.add(wkey)
        first, last, groups = self._group_changes(changed)
        change, flows = Change(first), {}
        digest = self.digest or 0
        for wkey in touched:
            breathe()
            want = self.merged(wkey, self.contrib.get(wkey))
            have = self.installed.get(wkey)
            if want is None:
                self.contrib.pop(wkey, None)
                if have is not None:
                    change.rest.append((ofwire.FlowMod(have, ofwire.DELETE_STRICT), have))
                    flows[wkey] = None
                    digest -= digest_item(wkey, have.cookie)
            elif have is None or have.cookie != want.cookie:
                change.add(want, have is None)
                flows[wkey] = want
                if have is not None:
                    digest -= digest_item(wkey, have.cookie)
                digest += digest_item(wkey, want.cookie)
        digest &= _DIGEST_BITS
        if digest != self.digest:
            change.rest.append(self._mark_message(digest))
        change.rest += last
        return Plan(change, flows, groups, self._state, digest=digest)

    @staticmethod
    def _mark_message(digest):
        mark = mark_flow(digest)
        return ofwire.FlowMod(mark, ofwire.ADD), mark

    def _group_changes(self, changed):
        """Group messages for the changed units: (before the flows: adds and
        changes; after them: deletes; {group id: the group as the switch will
        hold it, or None})."""
        first, last, state = [], [], {}
        wanted = {}
        for unit, new in changed.items():
            if new is not None:
                wanted.update(new.groups)
        for unit, new in changed.items():
            old = self.units.get(unit, NO_UNIT).groups
            for gid, group in (new.groups if new is not None else {}).items():
                have = self.groups.get(gid)
                if have is None:
                    first += [(m, group) for m in ofwire.group_install(group)]
                    state[gid] = group
                elif have.fields != group.fields or set(have.buckets) != set(group.buckets):
                    first += [(m, group) for m in ofwire.group_change(have, group)]
                    state[gid] = ofwire.after_change(have, group)
            for gid in set(old) - set(wanted):
                if gid in self.groups and gid not in state:
                    last.append(_group_delete(gid, old[gid]))
                    state[gid] = None
        return first, last, state

    def desired_flows(self):
        """Every flow the switch is to have."""
        return [f for c in self.contrib.values() for f in ((c[1],) if c.__class__ is tuple else c.values())]

    def _state(self):
        """The SwitchState of the switch as dvn left it, and what it is to have."""
        return _state_of(self.installed.values(), self.desired_flows())

    # ---- a whole switch, read back -----------------------------------------
    def plan_resync(self, changed, have_flows, have_groups, breathe=lambda: None, mark=None):
        """The plan that corrects a switch read back (``have_flows``: the
        FlowDescs of dvn's flows on it, or a function that reads them;
        ``have_groups``: {group id: GroupDesc} of dvn's groups) to every
        unit, ``changed`` ones as given. Flows that are right are never
        touched, and neither are flows or groups outside dvn's cookie space
        and group-id range, whichever the caller read: they are other apps'
        (flow.is_dvn_cookie, lb.is_dvn_group).

        With the switch's ``mark`` (a Mark), a switch whose mark carries the
        digest of every desired flow and that has as many of dvn's flows as
        that (and its mark) is confirmed as it is, its flows not read. (What
        that cannot see: someone who changed one of dvn's flows' actions
        behind its back, keeping its cookie.)"""
        have_groups = {gid: g for gid, g in have_groups.items() if is_dvn_group(gid)}
        units = dict(self.units)
        units.update(changed)
        contrib = {}
        want_groups = {}
        for unit, entry in units.items():
            if entry is None:
                continue
            for flow in entry.flows:
                _want(contrib, ofwire.wire_key(flow), unit, flow)
            want_groups.update(entry.groups)
        self.contrib = contrib
        desired = {wkey: self.merged(wkey, c) for wkey, c in contrib.items()}
        first, last = [], []
        for gid, group in want_groups.items():
            if gid not in have_groups:
                first += [(m, group) for m in ofwire.group_install(group)]
            elif have_groups[gid] != ofwire.group_desc_of(group):
                first += [(m, group) for m in ofwire.group_install(group, ofwire.OFPGC_MODIFY)]
            else:  # kept as it is: its bucket counters come in the switch's order
                want_groups[gid] = ofwire.in_switch_order(group, have_groups[gid])
        for gid in set(have_groups) - set(want_groups):
            last.append(_group_delete(gid, "group %d (on the switch, not desired)" % gid))
        digest = 0
        for wkey, flow in desired.items():
            digest += digest_item(wkey, flow.cookie)
        digest &= _DIGEST_BITS
        change = Change(first)
        want_mark = mark_flow(digest)
        if mark is not None and mark.cookie == want_mark.cookie and mark.count == len(desired) + 1:
            change.rest += last
            return Plan(change, desired, want_groups, lambda: _state_of(desired.values()),
                        whole=True, digest=digest, read=False)
        if callable(have_flows):
            have_flows = have_flows()
        have, have_mark = {}, None
        for d in have_flows:
            if not is_dvn_cookie(d.cookie):
                continue
            if d.table_id == MARK_TABLE and d.priority == 0 and d.match_key == b"":
                have_mark = d.cookie
                continue
            have[(d.table_id, d.priority, d.match_key)] = d
        for wkey, desc in have.items():
            if wkey not in desired:
                change.rest.append((ofwire.encode_delete_strict_raw(desc.table_id, desc.priority, desc.raw_match),
                                    ofwire.describe_desc(desc)))
        for wkey, flow in desired.items():
            breathe()
            desc = have.get(wkey)
            if desc is None or desc.cookie != flow.cookie:
                change.add(flow, desc is None)
        if have_mark != want_mark.cookie:
            change.rest.append(self._mark_message(digest))
        change.rest += last
        classify = pipeline.table_id("classify")
        return Plan(change, desired, want_groups, lambda: SwitchState(
            desired.values(), {ofwire.in_port_of(d.match_key) for d in have.values() if d.table_id == classify},
            {ofwire.field_of(d.match_key, "conj_id") for d in have.values() if d.table_id in _FIREWALL_IDS}),
            whole=True, digest=digest)

    # ---- after the switch took it, or did not --------------------------------
    def commit(self, plan, changed):
        """The switch has taken ``plan``: it holds what the plan says, and the
        ``changed`` units are dvn's."""
        self.digest = plan.digest
        if plan.whole:
            self.installed = {k: f for k, f in plan.flows.items() if f is not None}
            self.groups = {g: grp for g, grp in plan.groups.items() if grp is not None}
        else:
            for wkey, flow in plan.flows.items():
                if flow is None:
                    self.installed.pop(wkey, None)
                else:
                    self.installed[wkey] = flow
            for gid, group in plan.groups.items():
                if group is None:
                    self.groups.pop(gid, None)
                else:
                    self.groups[gid] = group
        for unit, entry in changed.items():
            if entry is None:
                self.units.pop(unit, None)
            else:
                self.units[unit] = entry

    def forget(self):
        """The switch did not take a change: what the units want is rebuilt
        from the committed units at the resync that follows."""
        self.contrib = {}

    def take_conflicts(self):
        out, self.conflicts = self.conflicts, []
        return out
