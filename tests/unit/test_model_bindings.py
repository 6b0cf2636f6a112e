"""controller.model.Bindings: the topology's bindings, read through the model's dicts."""

from hypothesis import given, strategies as st

from controller.model import Bindings


def copied(port_node, local_ofports, system_id):
    """The bindings as the model built them before: a copy of every port's."""
    out = {p: (node, local_ofports.get(node, {}).get(p)) for p, node in port_node.items()}
    for p, ofport in (local_ofports.get(system_id, {}).items() if system_id else ()):
        out[p] = (system_id, ofport)
    return out


ports = st.sampled_from(["p%d" % i for i in range(8)])
nodes = st.sampled_from(["hv1", "hv2", "hv3"])


@given(st.dictionaries(ports, nodes), st.dictionaries(nodes, st.dictionaries(ports, st.integers(1, 9))),
       st.one_of(st.none(), nodes))
def test_bindings_read_through_equal_the_copy(port_node, local_ofports, system_id):
    view = Bindings(port_node, local_ofports, system_id)
    want = copied(port_node, local_ofports, system_id)
    assert dict(view.items()) == want
    assert len(view) == len(want) and set(view) == set(want)
    for p in ["p%d" % i for i in range(9)]:
        assert view.get(p) == want.get(p)
        assert (p in view) == (p in want)
        assert view.get(p, (None, None)) == want.get(p, (None, None))


def test_bindings_follow_the_store_but_keep_the_nodes_report():
    port_node, local = {"p1": "hv2"}, {"hv1": {"p2": 5}, "hv2": {"p1": 7}}
    view = Bindings(port_node, local, "hv1")
    port_node["p3"] = "hv3"
    assert view["p3"] == ("hv3", None) and view["p1"] == ("hv2", 7) and view["p2"] == ("hv1", 5)
