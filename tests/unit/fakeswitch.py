"""A fake OpenFlow switch for the reconciler's unit tests: it takes the bytes
dvn sends (flow_mods, group_mods, bundle controls and adds, barriers) and
applies them to a table model, as Open vSwitch does for the parts dvn uses
(after Faucet's fakeoftable, not copied from it). Pure Python; no root, no
Open vSwitch.

What it holds it reports as the switch would (ofwire.FlowDesc, and
ofwire.GroupDesc through the same decoder), so the reconciler is fed what it
would read from a real switch.

Like OVS it refuses, and then applies nothing of the bundle:
- a flow that names a group the switch does not have (at that point of the
  bundle: OFPBAC_BAD_OUT_GROUP);
- a group add of a group it has, a change of a group it lacks;
- any message ``refuse`` picks (a switch that refuses a flow dvn made).
A group deleted while a flow names it takes that flow away (as OVS does),
and is recorded in ``violations``: dvn must never do it.
"""

import struct

from controller.ofconn import SwitchError
from flows import ofwire

OFPET_BAD_ACTION, OFPBAC_BAD_OUT_GROUP = 2, 9
OFPET_GROUP_MOD_FAILED, OFPGMFC_GROUP_EXISTS, OFPGMFC_UNKNOWN_GROUP = 6, 0, 8
OFPET_BUNDLE_FAILED = 17


class Refused(Exception):
    """The switch refused a message (``index``: its place in the bundle)."""

    def __init__(self, index, err_type, code):
        super().__init__("message %d refused (type %d code %d)" % (index, err_type, code))
        self.index, self.err_type, self.code = index, err_type, code


def _actions_groups(data):
    """Group ids the actions in ``data`` name (clone's nested actions too)."""
    out, pos = set(), 0
    while pos + 4 <= len(data):
        atype, alen = struct.unpack_from("!HH", data, pos)
        if alen == 0:
            break
        if atype == 22:
            out.add(struct.unpack_from("!I", data, pos + 4)[0])
        elif atype == 0xFFFF:
            vendor, subtype = struct.unpack_from("!IH", data, pos + 4)
            if vendor == ofwire.NX_VENDOR and subtype == ofwire.NXAST_CLONE:
                out |= _actions_groups(data[pos + 16:pos + alen])
        pos += alen
    return out


class Entry:
    """One flow as the switch holds it."""

    def __init__(self, desc, groups, body):
        self.desc, self.groups, self.body = desc, groups, body


def decode_flow_mod(msg):
    """(command, FlowDesc, the groups it names, its instructions' bytes) of a flow_mod."""
    (_v, _t, length, _xid, cookie, _cmask, table_id, command, _idle, _hard, priority,
     _buf, _oport, _ogroup, _flags, _imp) = ofwire._FLOW_MOD_HEAD.unpack_from(msg)
    pos = ofwire._FLOW_MOD_HEAD.size
    _mtype, mlen = struct.unpack_from("!HH", msg, pos)
    padded = (mlen + 7) // 8 * 8
    raw_match = bytes(msg[pos:pos + padded])
    oxms = msg[pos + 4:pos + mlen]
    instructions = bytes(msg[pos + padded:length])
    groups, ipos = set(), 0
    while ipos + 4 <= len(instructions):
        itype, ilen = struct.unpack_from("!HH", instructions, ipos)
        if ilen == 0:
            break
        if itype == 4:   # apply-actions
            groups |= _actions_groups(instructions[ipos + 8:ipos + ilen])
        ipos += ilen
    match_key = b"".join(sorted(ofwire._tlvs(oxms)))
    desc = ofwire.FlowDesc(table_id, priority, cookie, match_key, raw_match, 0)
    return command, desc, groups, instructions


class FakeSwitch:
    def __init__(self):
        self.flows = {}        # (table id, priority, match key) -> Entry
        self.groups = {}       # group id -> (type, bucket bytes in the switch's order, properties)
        self.bundles = {}      # bundle id -> [inner messages]
        self.violations = []   # groups deleted while flows named them
        self.refuse = None     # (inner message bytes) -> True: refuse it
        self.received = 0      # messages taken in (bundle adds count one each)
        self.commits = 0

    # ---- what dvn reads ---------------------------------------------------
    def read_flows(self, cookie=0, cookie_mask=0):
        return [e.desc for e in self.flows.values() if e.desc.cookie & cookie_mask == cookie & cookie_mask]

    def read_groups(self):
        out = {}
        for gid, (gtype, buckets, props) in self.groups.items():
            data = b"".join(buckets)
            out[gid] = ofwire._group_desc(gtype, struct.pack("!H6x", len(data)) + data + props)
        return out

    def snapshot(self):
        """The switch's tables, to compare states."""
        return ({k: (e.desc.cookie, e.body) for k, e in self.flows.items()},
                {gid: (g[0], tuple(sorted(g[1])), g[2]) for gid, g in self.groups.items()})

    # ---- what dvn sends ---------------------------------------------------
    def receive(self, data):
        """Take in OpenFlow messages (one or more, back to back)."""
        pos = 0
        while pos < len(data):
            length, = struct.unpack_from("!H", data, pos + 2)
            self._message(bytes(data[pos:pos + length]))
            pos += length

    def _message(self, msg):
        mtype = msg[1]
        self.received += 1
        if mtype == ofwire.OFPT_BUNDLE_CONTROL:
            bid, ctrl, _flags = struct.unpack_from("!IHH", msg, 8)
            if ctrl == ofwire.BUNDLE_OPEN:
                self.bundles[bid] = []
            elif ctrl == ofwire.BUNDLE_COMMIT:
                self._commit(self.bundles.pop(bid))
            elif ctrl == ofwire.BUNDLE_DISCARD:
                self.bundles.pop(bid, None)
        elif mtype == ofwire.OFPT_BUNDLE_ADD_MESSAGE:
            bid, = struct.unpack_from("!I", msg, 8)
            self.bundles[bid].append(msg[16:])
        elif mtype in (ofwire.OFPT_FLOW_MOD, ofwire.OFPT_GROUP_MOD):
            self._commit([msg])
        elif mtype != ofwire.OFPT_BARRIER_REQUEST:
            raise AssertionError("the fake switch does not know message type %d" % mtype)

    def _commit(self, messages):
        """Apply messages in order, atomically: a refusal leaves the switch as it was."""
        flows, groups = dict(self.flows), dict(self.groups)
        violations = []
        for i, msg in enumerate(messages):
            if self.refuse is not None and self.refuse(msg):
                raise Refused(i, OFPET_BUNDLE_FAILED, 0)
            if msg[1] == ofwire.OFPT_FLOW_MOD:
                command, desc, named, body = decode_flow_mod(msg)
                key = (desc.table_id, desc.priority, desc.match_key)
                if command == ofwire.DELETE_STRICT:  # the flow at that identity, if its cookie matches
                    cookie, cookie_mask = struct.unpack_from("!QQ", msg, 8)
                    have = flows.get(key)
                    if have is not None and have.desc.cookie & cookie_mask == cookie & cookie_mask:
                        del flows[key]
                    continue
                if command != ofwire.ADD:
                    raise AssertionError("dvn sends flow adds and strict deletes only")
                missing = named - set(groups)
                if missing:
                    raise Refused(i, OFPET_BAD_ACTION, OFPBAC_BAD_OUT_GROUP)
                flows[key] = Entry(desc, named, body)
            else:
                command, gtype, gid, blen = struct.unpack_from("!HBxIH", msg, 8)
                buckets = ofwire.split_buckets(msg[24:24 + blen])
                props = bytes(msg[24 + blen:])
                if command == ofwire.OFPGC_ADD:
                    if gid in groups:
                        raise Refused(i, OFPET_GROUP_MOD_FAILED, OFPGMFC_GROUP_EXISTS)
                    groups[gid] = (gtype, buckets, props)
                elif command == ofwire.OFPGC_MODIFY:
                    if gid not in groups:
                        raise Refused(i, OFPET_GROUP_MOD_FAILED, OFPGMFC_UNKNOWN_GROUP)
                    groups[gid] = (gtype, buckets, props)
                elif command == ofwire.OFPGC_INSERT_BUCKET:
                    if gid not in groups:
                        raise Refused(i, OFPET_GROUP_MOD_FAILED, OFPGMFC_UNKNOWN_GROUP)
                    old = groups[gid]
                    groups[gid] = (old[0], old[1] + buckets, old[2])
                elif command == ofwire.OFPGC_DELETE:
                    groups.pop(gid, None)
                    naming = [k for k, e in flows.items() if gid in e.groups]
                    if naming:
                        violations.append((gid, len(naming)))
                        for k in naming:
                            del flows[k]
        self.flows, self.groups = flows, groups
        self.violations += violations
        self.commits += 1


class FakeConn:
    """The part of controller.ofconn.SwitchConn the reconciler's sends use,
    over a FakeSwitch: the same bundle bytes (open, adds, barrier, commit),
    and a refusal discards the bundle and raises, as SwitchConn does."""

    def __init__(self, switch):
        self.switch = switch
        self._bid = 0

    def stage(self, messages):
        self._bid += 1
        data = [ofwire.bundle_open(self._bid, 1)]
        data += [ofwire.bundle_add(self._bid, inner, 2 + i) for i, (inner, _ctx) in enumerate(messages)]
        data.append(ofwire.barrier_request(3 + len(messages)))
        self.switch.receive(b"".join(data))
        return self._bid, messages

    def commit(self, staged):
        try:
            self.switch.receive(ofwire.bundle_commit(staged[0], 1))
        except Refused as exc:
            raise BundleRefused(staged[1][exc.index][1], exc) from exc

    def discard(self, staged):
        self.switch.receive(ofwire.bundle_discard(staged[0], 1))

    def bundle(self, messages):
        self.commit(self.stage(messages))

    def apply(self, messages):
        """Messages one by one, not bundled (SwitchConn.apply)."""
        for inner, context in messages:
            try:
                self.switch.receive(ofwire.message_bytes(inner))
            except Refused as exc:
                raise BundleRefused(context, exc) from exc

    def send(self, data):
        """A message no one waits for (the switch's mark after its flow): a
        refusal is an error message the controller does not wait for either."""
        try:
            self.switch.receive(ofwire.message_bytes(data))
        except Refused:
            pass


class BundleRefused(SwitchError):
    def __init__(self, context, refusal):
        super().__init__("refused: %r (%s)" % (context, refusal))
        self.context, self.refusal = context, refusal
