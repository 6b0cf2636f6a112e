"""How a large change is shared out over a switch's main connection and its
lanes (controller.ofconn.spread), and which flows may go early
(controller.core._may_go_early)."""

from hypothesis import given, settings, strategies as st

from controller.core import _may_go_early
from controller.ofconn import spread
from flows.flow import Flow, clone, conjunction, group, resubmit
from flows import pipeline


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
    assert _may_go_early(flow("in_port_security", (resubmit("in_acl"),)))
    assert _may_go_early(flow("vip_lb", (resubmit("lb_nat"),)))
