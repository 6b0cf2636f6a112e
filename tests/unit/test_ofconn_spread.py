"""How a large change is shared out over a switch's main connection and its
lanes (flows.reconcile.spread), and which flows may go early
(flows.reconcile.may_go_early, and acl.unreached for firewall verdicts)."""

from hypothesis import given, settings, strategies as st

from flows.reconcile import may_go_early as _may_go_early
from flows.reconcile import spread
from flows.flow import CT_INV, CT_TRK, Flow, clone, conjunction, group, match, resubmit
from flows import acl, ofwire, pipeline


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(0, 8))
def test_every_message_once_rest_on_main_and_shares_even(n_early, n_rest, lanes):
    early = [("e", i) for i in range(n_early)]
    rest = [("r", i) for i in range(n_rest)]
    shares = spread(early, rest, lanes)
    assert len(shares) == lanes + 1
    flat = [m for share in shares for m in share]
    assert sorted(flat) == sorted(early + rest)
    # The main connection has all of rest, in its order, after any early ones it took.
    main = shares[0]
    assert [m for m in main if m[0] == "r"] == rest
    assert main[len(main) - n_rest:] == rest
    assert all(m[0] == "e" for share in shares[1:] for m in share)
    if lanes and n_early:
        # Even: no connection has more than an even share, unless rest alone is more.
        even = -(-(n_early + n_rest) // (lanes + 1))
        assert max(len(s) for s in shares[1:]) <= even
        assert len(main) <= max(even, n_rest)
        # The lanes are within one message of each other.
        lane_sizes = [len(s) for s in shares[1:]]
        assert max(lane_sizes) - min(lane_sizes) <= 1


def test_no_lanes_is_one_bundle_early_first():
    assert spread([1, 2], [3], 0) == [[1, 2, 3]]


def test_only_flows_no_packet_reaches_first_go_early():
    def flow(table, actions=()):
        return Flow(table, 100, (), actions)
    # A port's or a network's dispatch waits for the last bundle...
    for table in pipeline.DISPATCH:
        assert not _may_go_early(flow(table, (resubmit("out_acl"),)))
    # ...and so does a flow naming a group that may come in the same change.
    assert not _may_go_early(flow("vip_lb", (group(7),)))
    assert not _may_go_early(flow("vip_lb", (clone(group(7)),)))
    # A firewall verdict (an allow, a deny) waits: a new allow must not act before a new deny.
    assert not _may_go_early(flow("in_acl", (resubmit("vip_lb"),)))
    assert not _may_go_early(flow("out_acl"))
    # A conjunction clause decides nothing alone; port security and VIP answers only allow
    # what the new state allows.
    assert _may_go_early(flow("out_acl", (conjunction(5, 1, 2),)))
    # A new rule's state flow passes only connections that rule's verdict committed (its mark).
    assert _may_go_early(Flow("in_acl", acl.P_STATE, match(ct_state=(CT_TRK, CT_TRK | CT_INV), ct_mark=0x1234,
                                                           eth_type=0x0800), (), goto="vip_lb"))
    assert not _may_go_early(Flow("in_acl", acl.P_STATE, match(ct_state=(CT_TRK, CT_TRK | CT_INV)), ()))
    assert _may_go_early(flow("in_port_security", (resubmit("in_acl"),)))
    assert _may_go_early(flow("vip_lb", (resubmit("lb_nat"),)))


def _fw(table, priority, actions=(), **m):
    return Flow(table, priority, match(**m), actions)


def test_a_verdict_is_unreached_only_behind_ports_new_to_the_switch():
    # Conjunction 5: clause 1 is its members (ports 7 and 8), clause 2 a remote prefix.
    desired = [_fw("out_acl", 2000, (conjunction(5, 1, 2),), reg7=7),
               _fw("out_acl", 2000, (conjunction(5, 1, 2), conjunction(6, 1, 1)), reg7=8),
               _fw("out_acl", 2000, (conjunction(5, 2, 2),), eth_type=0x0800, ipv4_src=("10.0.0.0", "255.0.0.0"))]
    conj5 = _fw("out_acl", 2000, (resubmit("out_deliver"),), conj_id=5)
    conj6 = _fw("out_acl", 2000, (resubmit("out_deliver"),), conj_id=6)
    own7 = _fw("in_acl", 2100, (resubmit("vip_lb"),), reg6=7, eth_type=0x0800)
    shared = _fw("in_acl", 0)
    verdicts = [conj5, conj6, own7, shared]
    # Nothing is new: every verdict may be reached, so waits for the last bundle.
    assert acl.unreached(verdicts, desired, set()) == []
    assert acl.unreached(verdicts, desired, {None}) == []
    # Port 7 new: its own verdict waits for nothing; conjunction 5 still has member 8.
    assert acl.unreached(verdicts, desired, {7}) == [own7]
    # Both members new: no packet completes conjunction 5 (or 6) before their
    # classify and l2_lookup flows commit. The shared default deny always waits.
    assert acl.unreached(verdicts, desired, {7, 8}) == [conj5, conj6, own7]


def test_in_port_of_a_switch_match():
    key = ofwire.match_key_of(match(in_port=809, eth_src="02:00:00:00:00:01"))
    assert ofwire.in_port_of(key) == 809
    assert ofwire.in_port_of(ofwire.match_key_of(match(eth_type=0x0800))) is None


def test_the_tap_takes_only_packet_ins_from_dvns_flows():
    # Another os-ken app beside dvn gets the packet-ins of its own flows.
    import struct
    from controller.ofconn import OFPT_PACKET_IN, SwitchConn
    from flows.flow import PIPELINE, owner_cookie

    class Datapath:
        xid = 0

    got = []
    conn = SwitchConn(Datapath())
    conn.on_packet_in = got.append

    def packet_in(cookie):  # header, buffer id, total length, reason, table, cookie, an empty match
        return struct.pack("!BBHIIHBBQHH4x", 6, OFPT_PACKET_IN, 40, 7, 0xFFFFFFFF, 0, 1, 0, cookie, 1, 4)

    mine = packet_in(owner_cookie(PIPELINE, "pipeline")[0])
    assert conn.tap(OFPT_PACKET_IN, 7, mine) is True and got == [mine]
    assert conn.tap(OFPT_PACKET_IN, 8, packet_in(0x0B7E5000000000A1)) is False and got == [mine]
