import pytest
from hypothesis import given, strategies as st

from flows.groups import CriteriaError, check, matches
from flows.model import Port


def port(name="web-1", tags=("pci",), net="n1"):
    return Port(name, name, "t", net, "02:00:00:00:00:01", (), tuple(tags))


def test_criteria():
    assert matches({"name": "web-*"}, port())
    assert not matches({"name": "db-*"}, port())
    assert matches({"tags_any": ["gold", "pci"]}, port())
    assert not matches({"tags_all": ["gold", "pci"]}, port())
    assert matches({"network": "n1"}, port())
    c = {"and": [{"name": "web-*"}, {"not": {"tags_any": ["quarantine"]}}]}
    assert matches(c, port()) and not matches(c, port(tags=("quarantine",)))
    assert matches({"or": [{"name": "db-*"}, {"network": "n1"}]}, port())


@pytest.mark.parametrize("bad,path", [
    ([], "criteria"), ({}, "criteria"), ({"name": "a", "network": "b"}, "criteria"),
    ({"colour": "red"}, "criteria.colour"), ({"name": ""}, "criteria.name"),
    ({"tags_any": []}, "criteria.tags_any"), ({"and": [{"name": 1}]}, "criteria.and[0].name"),
    ({"not": {"or": [{"bad": 1}]}}, "criteria.not.or[0].bad"),
])
def test_malformed_criteria_name_the_place(bad, path):
    with pytest.raises(CriteriaError) as err:
        check(bad)
    assert err.value.path == path


def test_depth_is_bounded():
    c = {"name": "x"}
    for _ in range(9):
        c = {"not": c}
    with pytest.raises(CriteriaError):
        check(c)


leaf = st.one_of(st.builds(lambda g: {"name": g}, st.sampled_from(["web-*", "db-?", "*"])),
                 st.builds(lambda t: {"tags_any": t}, st.lists(st.sampled_from("abc"), min_size=1, max_size=2)),
                 st.builds(lambda t: {"tags_all": t}, st.lists(st.sampled_from("abc"), min_size=1, max_size=2)))
crit = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda c: {"not": c}, inner),
    st.builds(lambda cs: {"and": cs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda cs: {"or": cs}, st.lists(inner, min_size=1, max_size=3))), max_leaves=6)


@given(c=crit, tags=st.lists(st.sampled_from("abc"), max_size=3), name=st.sampled_from(["web-1", "db-2", "x"]))
def test_not_and_de_morgan(c, tags, name):
    p = port(name=name, tags=tags)
    assert matches({"not": c}, p) is (not matches(c, p))
    assert matches({"not": {"and": [c, {"name": "web-*"}]}}, p) == \
        matches({"or": [{"not": c}, {"not": {"name": "web-*"}}]}, p)
