"""The reconciler (flows/reconcile.py) against a fake switch that applies the
bytes dvn sends (tests/unit/fakeswitch.py). No root, no Open vSwitch.

Desired states are drawn at random from a small world built like dvn's own
pipeline: ports (their classify, l2_lookup and delivery flows come and go
together), security groups whose conjunction clauses several groups share at
one identity, firewall verdicts, and load balancers whose VIP flows name
their select groups."""

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from flows import ofwire, reconcile
from flows.flow import (DVN_COOKIE, DVN_COOKIE_MASK, GROUP, LB, NETWORK, PIPELINE, PORT, Bucket, FlowSet, Group,
                        conjunction, group, make_flow, match, output, set_field)
from flows.lb import GROUP_ID_MAX
from flows.walk import walk
from tests.unit.fakeswitch import BundleRefused, FakeConn, FakeSwitch

PORTS = range(1, 6)
VIPS = ("10.0.0.100", "10.0.0.101")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mac(p):
    return "02:00:00:00:00:%02x" % p


def base_unit():
    flows = FlowSet([
        make_flow("in_port_security", 0, match(), PIPELINE, "base", goto="in_acl"),
        make_flow("in_acl", 1, match(), PIPELINE, "base", goto="vip_lb"),
        make_flow("vip_lb", 0, match(), PIPELINE, "base", goto="l2_lookup"),
        make_flow("out_acl", 1, match(), PIPELINE, "base", goto="out_deliver"),
    ])
    return reconcile.Unit("base", flows, {})


def port_unit(p, version):
    """A port: packets reach its flows only through classify and l2_lookup,
    which only it sets reg6 and reg7 to its ofport in."""
    owner = "port%d" % p
    flows = FlowSet([
        make_flow("classify", 100, match(in_port=p), PORT, owner, (set_field("reg6", p),), goto="in_port_security"),
        make_flow("l2_lookup", 100, match(eth_dst=mac(p)), PORT, owner, (set_field("reg7", p),), goto="out_acl"),
        make_flow("out_deliver", 100, match(reg7=p), PORT, owner, (output(p + 10 * version),)),
    ])
    return reconcile.Unit((p, version), flows, {})


def group_unit(g, members, allow, ports_in):
    """A security group: clause 1 on the sender (a flow per member port,
    shared with other groups at one identity), clause 2 on the destination,
    and the verdict; ``allow``: an allow (else a deny, a higher priority)."""
    owner = "sg%d" % g
    prio = 1500 if allow else 1501
    flows = [make_flow("in_acl", 1400, match(reg6=p), GROUP, owner, (conjunction(g, 1, 2),)) for p in members]
    flows += [make_flow("in_acl", 1400, match(eth_type=0x800, ipv4_dst="10.0.0.%d" % p), GROUP, owner,
                        (conjunction(g, 2, 2),)) for p in ports_in]
    flows.append(make_flow("in_acl", prio, match(conj_id=g), GROUP, owner, goto="vip_lb" if allow else None))
    for p in members:   # the receiver's side: a verdict per member
        flows.append(make_flow("out_acl", 1500 + g, match(reg7=p), GROUP, owner, goto="out_deliver" if allow else None))
    return reconcile.Unit((g, tuple(members), allow, tuple(ports_in)), FlowSet(flows), {})


def lb_unit(i, backends):
    gid = 10 + i
    grp = Group(gid, tuple(Bucket(b, 1, (output(b),)) for b in sorted(backends)))
    flows = FlowSet([make_flow("vip_lb", 200, match(eth_type=0x800, ipv4_dst=VIPS[i]), LB, "lb%d" % i, (group(gid),)),
                     make_flow("vip_lb", 150, match(eth_type=0x800, ipv4_dst=VIPS[i]), NETWORK, "net",
                               goto="l2_lookup")])
    return reconcile.Unit((i, tuple(sorted(backends))), flows, {gid: grp})


@st.composite
def states(draw):
    """{unit: Unit}: a desired state of one switch."""
    units = {"base": base_unit()}
    ports = draw(st.sets(st.sampled_from(PORTS)))
    for p in ports:
        units[("port", p)] = port_unit(p, draw(st.integers(0, 1)))
    for g in (1, 2):
        if draw(st.booleans()):
            members = draw(st.lists(st.sampled_from(PORTS), unique=True, max_size=4))
            targets = draw(st.lists(st.sampled_from(PORTS), unique=True, min_size=1, max_size=3))
            units[("grp", g)] = group_unit(g, sorted(members), g == 1, sorted(targets))
    for i in (0, 1):
        if draw(st.booleans()):
            units[("lb", i)] = lb_unit(i, draw(st.sets(st.integers(1, 40), min_size=1, max_size=6)))
    return units


def filler_unit(version, n=40):
    """Flows no packet of this world reaches, changed in a change: enough
    messages that must go last that the lanes get every early one (the main
    connection takes early ones up to an even share first)."""
    flows = FlowSet(make_flow("out_deliver", 100, match(reg7=1000 + i), PORT, "filler", (output(version + i),))
                    for i in range(n))
    return reconcile.Unit(version, flows, {})


@st.composite
def pairs(draw):
    """(before, after): a state and a neighbour of it, each unit kept or drawn again."""
    before, other = draw(states()), draw(states())
    after = {}
    for unit in set(before) | set(other):
        pick = draw(st.sampled_from([before, other]))
        if unit in pick:
            after[unit] = pick[unit]
    return before, after


def changes(before, after):
    out = {u: None for u in before if u not in after}
    out.update((u, e) for u, e in after.items() if before.get(u) != e)
    return out


def send(conn, plan, lanes=0, between=None):
    """Send a plan as the controller does: one flow and the switch's mark
    without a bundle, the mark once the flow is in; else the lanes' bundles
    first, then the main one; ``between()`` runs when only the lanes' are in."""
    single = reconcile.alone(plan.change)
    if single is not None:
        conn.apply([single])
        conn.send(plan.change.messages()[-1][0])   # (FakeConn.send encodes it)
        return
    shares = reconcile.bundles(plan.change, lanes, plan.state, lane_min=1)
    for share in shares[1:]:
        if share:
            conn.bundle(share)
    if between is not None:
        between()
    if shares[0]:
        conn.bundle(shares[0])


def synced(units, fake=None):
    """A switch (fake) brought to ``units`` by a resync from empty."""
    fake = fake or FakeSwitch()
    table = reconcile.SwitchTable()
    plan = table.plan_resync(units, fake.read_flows(), fake.read_groups())
    send(FakeConn(fake), plan)
    table.commit(plan, units)
    return table, fake


def resync_plan(table, fake):
    return table.plan_resync({}, fake.read_flows(), fake.read_groups())


def mark_of(fake):
    """What the controller reads of a switch before a resync: its mark and its count of dvn's flows."""
    marks = [e.desc.cookie for k, e in fake.flows.items() if k[0] == reconcile.MARK_TABLE]
    return reconcile.Mark(marks[0] if marks else None, len(fake.read_flows(DVN_COOKIE, DVN_COOKIE_MASK)))


def must_not_read():
    raise AssertionError("the switch's flows were read although its mark confirms it")


@SETTINGS
@given(pair=st.one_of(pairs(), st.tuples(states(), states())), lanes=st.sampled_from([0, 3]))
def test_a_change_applied_then_resynced_sends_nothing(pair, lanes):
    before, after = pair
    table, fake = synced(before)
    assert not resync_plan(table, fake).change
    plan = table.plan_change(changes(before, after))
    send(FakeConn(fake), plan, lanes)
    table.commit(plan, changes(before, after))
    assert fake.violations == []
    assert not resync_plan(table, fake).change
    # and a controller that starts afresh with the same wishes finds nothing to do
    fresh = reconcile.SwitchTable()
    assert not fresh.plan_resync(after, fake.read_flows(), fake.read_groups()).change


@SETTINGS
@given(pair=st.one_of(pairs(), st.tuples(states(), states())), lanes=st.sampled_from([0, 3]))
def test_a_switch_whose_mark_is_right_is_confirmed_without_reading_its_flows(pair, lanes):
    before, after = pair
    table, fake = synced(before)
    plan = table.plan_change(changes(before, after))
    send(FakeConn(fake), plan, lanes)
    table.commit(plan, changes(before, after))
    # a controller that starts afresh: the mark confirms the switch as it is
    fresh = reconcile.SwitchTable()
    plan = fresh.plan_resync(after, must_not_read, fake.read_groups(), mark=mark_of(fake))
    assert not plan.read and not plan.change
    fresh.commit(plan, after)
    assert fresh.installed == table.installed and fresh.flow_count() == len(fake.flows)
    # and goes on from there as the first one would have
    assert not fresh.plan_resync({}, fake.read_flows(), fake.read_groups()).change


@SETTINGS
@given(pair=pairs(), data=st.data())
def test_a_switch_changed_behind_dvns_back_is_read_and_corrected(pair, data):
    before, after = pair
    table, fake = synced(before)
    plan = table.plan_change(changes(before, after))
    send(FakeConn(fake), plan)
    table.commit(plan, changes(before, after))
    others = sorted(k for k in fake.flows if k[0] != reconcile.MARK_TABLE)
    if not others:
        return
    del fake.flows[data.draw(st.sampled_from(others))]   # (ovs-ofctl del-flows of one of dvn's flows)
    fresh = reconcile.SwitchTable()
    plan = fresh.plan_resync(after, fake.read_flows, fake.read_groups(), mark=mark_of(fake))
    assert plan.read and plan.change
    send(FakeConn(fake), plan)
    fresh.commit(plan, after)
    assert not resync_plan(fresh, fake).change
    assert fresh.installed == table.installed


@SETTINGS
@given(pair=pairs())
def test_lanes_in_but_not_the_main_bundle_the_mark_does_not_confirm(pair):
    before, after = dict(pair[0], filler=filler_unit(0)), dict(pair[1], filler=filler_unit(1))
    table, fake = synced(before)
    plan = table.plan_change(changes(before, after))
    shares = reconcile.bundles(plan.change, 3, plan.state, lane_min=1)
    for share in shares[1:]:
        if share:
            FakeConn(fake).bundle(share)
    table.forget()          # (the main bundle was refused)
    plan = table.plan_resync(changes(before, after), fake.read_flows, fake.read_groups(), mark=mark_of(fake))
    if any(shares[1:]):     # the switch holds flows of a change its mark does not name
        assert plan.read
    send(FakeConn(fake), plan)
    table.commit(plan, changes(before, after))
    assert not resync_plan(table, fake).change
    assert mark_of(fake).cookie == reconcile.mark_flow(table.digest).cookie


@SETTINGS
@given(pair=st.one_of(pairs(), st.tuples(states(), states())))
def test_no_flow_ever_names_a_group_the_switch_lacks(pair):
    before, after = pair
    # The fake switch refuses a flow naming a group it lacks at that point of
    # a bundle, and records a group deleted under a flow that names it.
    table, fake = synced(before)
    plan = table.plan_change(changes(before, after))
    send(FakeConn(fake), plan)
    table.commit(plan, changes(before, after))
    assert fake.violations == []
    named = {g for e in fake.flows.values() for g in e.groups}
    assert named <= set(fake.groups)


@SETTINGS
@given(pair=pairs(), data=st.data())
def test_a_refusal_mid_bundle_leaves_the_switch_as_it_was(pair, data):
    before, after = pair
    table, fake = synced(before)
    plan = table.plan_change(changes(before, after))
    if not plan.change:
        return
    victim_msg, victim_ctx = data.draw(st.sampled_from(plan.change.messages()))
    victim = ofwire.message_bytes(victim_msg)
    fake.refuse = lambda msg: msg[8:] == victim[8:]   # (its xid is the bundle's)
    was = fake.snapshot()
    if reconcile.alone(plan.change) is not None and victim_ctx.table == "mark":
        # The mark that follows a lone flow is refused (no switch does that,
        # but the mark may be lost with the connection): the flow is in, the
        # switch's mark is the old one, and a resync reads the switch back.
        send(FakeConn(fake), plan)
        table.commit(plan, changes(before, after))
        fake.refuse = None
        plan = reconcile.SwitchTable().plan_resync(after, fake.read_flows, fake.read_groups(), mark=mark_of(fake))
        assert plan.read
        return
    try:
        send(FakeConn(fake), plan)
    except BundleRefused:
        pass
    else:
        raise AssertionError("the switch took a bundle it refused")
    assert fake.snapshot() == was
    assert mark_of(fake).cookie == reconcile.mark_flow(table.digest).cookie   # (its mark too)
    table.forget()
    # the controller then resyncs: the switch ends as wanted
    fake.refuse = None
    plan = table.plan_resync(changes(before, after), fake.read_flows(), fake.read_groups())
    send(FakeConn(fake), plan)
    table.commit(plan, changes(before, after))
    assert not resync_plan(table, fake).change
    assert not reconcile.SwitchTable().plan_resync(after, fake.read_flows(), fake.read_groups()).change


def packets():
    out = []
    for p in PORTS:
        for dst in PORTS:
            for vip in (None,) + VIPS:
                pkt = {"in_port": p, "eth_dst": mac(dst), "eth_type": 0x800, "ipv4_src": "10.0.0.%d" % p,
                       "ipv4_dst": vip or "10.0.0.%d" % dst}
                out.append(pkt)
    return out


def behaviour(flows, groups):
    seen = []
    for pkt in packets():
        pkt = dict(pkt)
        outs = walk(FlowSet(flows), pkt, groups=groups)
        seen.append((tuple(outs), tuple(pkt.get("commits", ())), tuple(pkt.get("logged", ()))))
    return seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs())
def test_lanes_never_carry_a_flow_that_acts_before_the_main_bundle(pair):
    before, after = dict(pair[0], filler=filler_unit(0)), dict(pair[1], filler=filler_unit(1))
    table, fake = synced(before)
    old_flows = list(table.installed.values())
    old_groups = dict(table.groups)
    old_behaviour = behaviour(old_flows, old_groups)
    plan = table.plan_change(changes(before, after))
    by_key = {(ofwire.wire_key(f), f.cookie): f for f in old_flows + [f for f in plan.flows.values() if f]}

    def between():
        flows = [by_key[(k, e.desc.cookie)] for k, e in fake.flows.items() if k[0] != reconcile.MARK_TABLE]
        assert behaviour(flows, old_groups) == old_behaviour

    send(FakeConn(fake), plan, lanes=3, between=between)
    table.commit(plan, changes(before, after))
    assert not resync_plan(table, fake).change


def test_lanes_take_the_early_flows_and_the_main_bundle_the_rest():
    table, _fake = synced({"base": base_unit()})
    after = {"base": base_unit(), ("port", 1): port_unit(1, 0), ("lb", 0): lb_unit(0, {1, 2}),
             ("grp", 1): group_unit(1, [1], True, [2])}
    plan = table.plan_change(changes({"base": base_unit()}, after))
    main, *lanes = reconcile.bundles(plan.change, 2, plan.state, lane_min=1)
    lane_flows = [ctx for share in lanes for _m, ctx in share]
    assert lane_flows and all(reconcile.may_go_early(f) or f.table in ("in_acl", "out_acl") for f in lane_flows)
    # the port's classify flow, the VIP flow naming its group and the group go last, together
    main_tables = {getattr(ctx, "table", None) for _m, ctx in main}
    assert {"classify", "l2_lookup", "vip_lb"} <= main_tables
    assert isinstance(main[0][1], Group)


def test_a_small_change_is_one_bundle():
    table, _fake = synced({"base": base_unit()})
    plan = table.plan_change({("port", 1): port_unit(1, 0)})
    assert len(reconcile.bundles(plan.change, 3, plan.state)) == 1


def test_units_that_want_one_identity_get_one_merged_flow():
    both = {"base": base_unit(), ("grp", 1): group_unit(1, [1], True, [2]),
            ("grp", 2): group_unit(2, [1], False, [3])}
    table, fake = synced(both)
    shared = [e for e in fake.flows.values() if e.desc.priority == 1400 and e.desc.table_id == 3
              and len(e.body) == 8 + 2 * 16]   # apply-actions with two conjunctions
    assert shared, "the clause on port 1 carries both groups' conjunctions"
    # one group leaves: the shared flow keeps the other's conjunction only
    plan = table.plan_change({("grp", 2): None})
    send(FakeConn(fake), plan)
    table.commit(plan, {("grp", 2): None})
    assert not reconcile.SwitchTable().plan_resync(
        {"base": base_unit(), ("grp", 1): both[("grp", 1)]}, fake.read_flows(), fake.read_groups()).change


def test_a_group_that_only_gains_members_is_sent_as_bucket_inserts():
    table, fake = synced({"base": base_unit(), ("lb", 0): lb_unit(0, {1})})
    plan = table.plan_change({("lb", 0): lb_unit(0, {1, 2})})
    group_msgs = [ofwire.message_bytes(m) for m, ctx in plan.change.messages() if isinstance(ctx, Group)]
    assert [m[8:10] for m in group_msgs] == [ofwire.OFPGC_INSERT_BUCKET.to_bytes(2, "big")]
    send(FakeConn(fake), plan)
    table.commit(plan, {("lb", 0): lb_unit(0, {1, 2})})
    assert not resync_plan(table, fake).change


def test_a_flow_of_another_cookie_on_the_switch_is_deleted_by_a_resync():
    table, fake = synced({"base": base_unit()})
    stray = make_flow("classify", 5, match(in_port=9), PORT, "gone", (output(1),))
    fake.receive(ofwire.encode_flow_mod(stray, ofwire.ADD))
    plan = resync_plan(table, fake)
    assert len(plan.change) == 1
    send(FakeConn(fake), plan)
    assert not resync_plan(table, fake).change


def test_a_resync_leaves_other_apps_flows_and_groups_alone():
    # Another os-ken app on br-int: its cookie is outside dvn's space, its
    # group above dvn's range, even in a table and at an identity near dvn's.
    table, fake = synced({"base": base_unit(), ("lb", 0): lb_unit(0, {1})})
    theirs = make_flow("vip_lb", 7, match(in_port=9), PORT, "theirs", (output(1),))._replace(cookie=0x42)
    fake.receive(ofwire.encode_flow_mod(theirs, ofwire.ADD))
    for msg in ofwire.group_install(Group(GROUP_ID_MAX + 1, (Bucket(0, 1, (output(2),)),))):
        fake.receive(msg)
    stray = make_flow("vip_lb", 8, match(in_port=9), PORT, "gone", (output(1),))
    fake.receive(ofwire.encode_flow_mod(stray, ofwire.ADD))
    for have_flows in (fake.read_flows(), fake.read_flows(DVN_COOKIE, DVN_COOKIE_MASK)):
        plan = table.plan_resync({}, have_flows, fake.read_groups())
        assert len(plan.change) == 1   # the stray dvn flow only
    send(FakeConn(fake), plan)
    assert ofwire.wire_key(theirs) in fake.flows and ofwire.wire_key(stray) not in fake.flows
    assert set(fake.groups) == {10, GROUP_ID_MAX + 1}
    assert not resync_plan(table, fake).change


def test_a_new_clause_of_a_conjunction_the_switch_decides_waits_for_the_main_bundle():
    # A deny whose sender clause is on the switch gets a new destination:
    # its new clause completes the conjunction, so it must not go early (a
    # new allow clause on one lane could act before a deny on another).
    before = {"base": base_unit(), ("port", 1): port_unit(1, 0), ("port", 2): port_unit(2, 0),
              ("grp", 2): group_unit(2, [1], False, [3]), "filler": filler_unit(0)}
    after = dict(before)
    after[("grp", 2)] = group_unit(2, [1], False, [2, 3])
    after["filler"] = filler_unit(1)
    table, fake = synced(before)
    plan = table.plan_change(changes(before, after))
    main, *lanes = reconcile.bundles(plan.change, 3, plan.state, lane_min=1)
    new_clause = make_flow("in_acl", 1400, match(eth_type=0x800, ipv4_dst="10.0.0.2"), GROUP, "sg2",
                           (conjunction(2, 2, 2),))
    assert new_clause in [ctx for _m, ctx in main]
    assert new_clause not in [ctx for share in lanes for _m, ctx in share]


def test_a_change_of_one_flow_goes_without_a_bundle_and_its_mark_after_it():
    table, fake = synced({"base": base_unit()})
    plan = table.plan_change({("port", 1): port_unit(1, 0)})
    assert reconcile.alone(plan.change) is None          # a port's flows act together: a bundle
    send(FakeConn(fake), plan)
    table.commit(plan, {("port", 1): port_unit(1, 0)})
    extra = make_flow("l2_lookup", 90, match(metadata=7), NETWORK, "n7", actions=(output(9),))
    unit = reconcile.Unit("n7", FlowSet([extra]), {})
    plan = table.plan_change({"n7": unit})
    single = reconcile.alone(plan.change)
    assert single is not None and single[1] == extra
    refused = ofwire.message_bytes(single[0])
    fake.refuse = lambda msg: msg[8:] == refused[8:]
    try:
        send(FakeConn(fake), plan)
    except BundleRefused:
        pass
    else:
        raise AssertionError("the switch took a flow it refused")
    assert mark_of(fake).cookie == reconcile.mark_flow(table.digest).cookie   # the mark did not go
    fake.refuse = None
    send(FakeConn(fake), plan)
    table.commit(plan, {"n7": unit})
    assert mark_of(fake).cookie == reconcile.mark_flow(table.digest).cookie
    assert not resync_plan(table, fake).change


def test_units_that_want_two_verdicts_at_one_identity_are_a_conflict_sent_once():
    allow = make_flow("in_acl", 1500, match(reg6=1), GROUP, "sgA", goto="vip_lb")
    deny = make_flow("in_acl", 1500, match(reg6=1), GROUP, "sgB")
    table, fake = synced({"base": base_unit()})
    units = {("grp", 1): reconcile.Unit(1, FlowSet([allow]), {}), ("grp", 2): reconcile.Unit(2, FlowSet([deny]), {})}
    plan = table.plan_change(units)
    sent = [ctx for _m, ctx in plan.change.messages() if ctx.table != "mark"]
    assert sent == [deny]   # the switch fails closed
    conflicts = table.take_conflicts()
    assert [set(c.flows) for c in conflicts] == [{allow, deny}]
    assert table.take_conflicts() == []


def test_flow_messages_are_encoded_as_they_are_sent_not_when_planned():
    table = reconcile.SwitchTable()
    plan = table.plan_change({"base": base_unit()})
    msgs = [m for m, ctx in plan.change.messages() if not isinstance(ctx, Group)]
    assert msgs and all(isinstance(m, ofwire.FlowMod) for m in msgs)
    for m in msgs:
        assert ofwire.bundle_add(7, m, 42) == ofwire.bundle_add(7, ofwire.encode_flow_mod(m.flow, m.command), 42)


def test_a_flow_one_unit_wants_is_kept_as_a_pair_and_shared_ones_as_a_dict():
    flow = make_flow("out_deliver", 100, match(reg7=5), PORT, "x", (output(5),))
    one = reconcile.Unit(1, FlowSet([flow]), {})
    table = reconcile.SwitchTable()
    table.commit(table.plan_change({"a": one}), {"a": one})
    wkey = ofwire.wire_key(flow)
    assert table.contrib[wkey] == ("a", flow)
    table.commit(table.plan_change({"b": one}), {"b": one})
    assert table.contrib[wkey] == {"a": flow, "b": flow}
    plan = table.plan_change({"a": None})
    assert not plan.change            # "b" still wants it
    table.commit(plan, {"a": None})
    assert table.contrib[wkey] == ("b", flow)
    plan = table.plan_change({"b": None})
    sent = [ctx for _m, ctx in plan.change.messages() if ctx.table != "mark"]   # (and the switch's mark)
    assert sent == [flow] and wkey not in table.contrib
