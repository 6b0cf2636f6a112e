"""acl.merge_all: the one flow a switch gets for the flows units want at one
identity; MergeConflict when no one flow can stand for them."""

import pytest
from hypothesis import given, settings, strategies as st

from flows import acl
from flows.acl import ICMP, IPV4, TCP, UDP, GroupOnNode, MergeConflict, Rule, compile_group, is_clause, merge_all
from flows.flow import GROUP, PORT, conjunction, ct, make_flow, match, output

ADDRS = {"g1": ("10.0.0.10", "10.0.0.11"), "g2": ("10.0.1.5",)}
IDENTS = {"g1": (0x1111,), "g2": (0x2222, 0x3333)}
LOG = acl._LOG_ACTION


def _allow(owner, mark, log=False):
    return make_flow("out_acl", 300, match(reg7=10, eth_type=IPV4), GROUP, owner,
                     actions=((LOG,) if log else ()) + (ct(None, "reg7", commit=True, mark=mark),), goto="out_deliver")


def _deny(owner):
    return make_flow("out_acl", 300, match(reg7=10, eth_type=IPV4), GROUP, owner)


def _clause(owner, *conj):
    return make_flow("out_acl", 300, match(reg7=10, eth_type=IPV4), GROUP, owner,
                     actions=tuple(conjunction(*c) for c in conj))


def test_plain_flows_with_different_verdicts_conflict():
    allow, deny = _allow("g1/r1", 7), _deny("g2/r2")
    with pytest.raises(MergeConflict) as info:
        merge_all([allow, deny])
    assert info.value.flows == tuple(sorted([allow, deny]))
    assert "different verdicts" in str(info.value) and "out_acl" in str(info.value)


def test_flows_that_do_different_things_conflict():
    a = make_flow("l2_lookup", 100, match(eth_dst="02:00:00:00:00:01"), PORT, "p1", actions=(output(1),))
    b = make_flow("l2_lookup", 100, match(eth_dst="02:00:00:00:00:01"), PORT, "p2", actions=(output(2),))
    with pytest.raises(MergeConflict):
        merge_all([a, b])
    assert merge_all([a, a]) == a


def test_one_conjunction_in_two_clauses_conflicts():
    with pytest.raises(MergeConflict) as info:
        merge_all([_clause("g1/r1", (5, 1, 2)), _clause("g1/r1", (5, 2, 2))])
    assert "conjunction 5" in str(info.value)


def test_allows_of_several_rules_are_one_and_the_logged_one_stands():
    flows = [_allow("g1/r1", 7), _allow("g2/r2", 9, log=True), _allow("g3/r3", 11)]
    merged = merge_all(flows)
    assert merged == flows[1]
    assert merge_all([flows[0], flows[2]]) == min(flows[0], flows[2])


def test_clauses_are_one_flow_with_every_conjunction_and_the_least_owner():
    a, b = _clause("g1/r1", (5, 1, 2)), _clause("g2/r2", (9, 2, 3), (5, 1, 2))
    merged = merge_all([b, a])
    assert is_clause(merged) and merged.actions == (conjunction(5, 1, 2), conjunction(9, 2, 3))
    assert merged.cookie >> 32 == min(a.cookie, b.cookie) >> 32
    assert merge_all([a, b]) == merged
    assert merge_all([a, _allow("g3/r3", 4)]) == _allow("g3/r3", 4)    # a plain flow covers a clause


rules_st = st.lists(st.builds(
    Rule,
    id=st.sampled_from(["r1", "r2", "r3", "r4"]),
    direction=st.sampled_from(["ingress", "egress"]),
    ethertype=st.just(IPV4),
    protocol=st.sampled_from([None, None, None, TCP, UDP, ICMP]),
    port_min=st.sampled_from([None, 80]),
    port_max=st.just(None),
    icmp_type=st.sampled_from([None, 8]),
    icmp_code=st.just(None),
    remote_cidr=st.sampled_from([None, "0.0.0.0/0", "10.0.0.0/16"]),
    remote_group=st.sampled_from([None, None, "g1", "g2"]),
    action=st.sampled_from(["allow", "allow", "deny"]),
    priority=st.sampled_from([100, 100, 100, 200]),
    log=st.booleans(),
), max_size=4, unique_by=lambda r: r.id).map(lambda rs: tuple(sorted(
    r._replace(remote_cidr=None) if r.remote_group else r for r in rs)))

groups_st = st.lists(st.tuples(rules_st, st.sampled_from([(10,), (11,), (10, 11)])), min_size=1, max_size=3)


def _verdict(flow):
    return flow.goto is not None  # an allow goes on, a deny stops


@settings(max_examples=300, deadline=None)
@given(groups=groups_st, data=st.data())
def test_rules_of_any_groups_always_merge_whatever_the_order(groups, data):
    contrib = {}
    for n, (rules, members) in enumerate(groups):
        group = GroupOnNode("g%d" % (n + 1), members, rules)
        for flow in compile_group(group, ADDRS, IDENTS):
            contrib.setdefault(flow.key, []).append(flow)
    for same in contrib.values():
        merged = merge_all(same)          # rules never conflict
        assert merge_all(data.draw(st.permutations(same))) == merged
        plain = [f for f in same if not is_clause(f)]
        if plain:
            assert merged in plain and {_verdict(f) for f in plain} == {_verdict(merged)}
            assert (LOG in merged.actions) == any(LOG in f.actions for f in plain)
        else:
            assert set(merged.actions) == {a for f in same for a in f.actions}
