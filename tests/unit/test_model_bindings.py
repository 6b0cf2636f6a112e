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


class _Model(__import__("controller.model", fromlist=["Model"]).Model):
    """The model alone: the parts of Core it touches, stubbed."""

    def __init__(self):
        self._init_model()
        self.dirty, self.switches, self.sessions, self.iface_bindings = set(), {"hv1": None, "hv2": None}, {}, {}
        self.local_ofports, self.mesh_dirty = {}, False

    def _kick(self):
        pass


class _Row:
    """A store row that fails the test when a column it was not given is read."""

    def __init__(self, uuid, **columns):
        self.__dict__.update(columns, uuid=uuid)

    def __getattr__(self, name):
        raise AssertionError("column %s read" % name)


def _port_row(node):
    from types import SimpleNamespace
    return _Row("p1", network=SimpleNamespace(uuid="n1"), node=[node] if node else [], security_groups=[],
                encrypt=[], name="vm1", tenant="t", mac="02:00:00:00:00:01", ips=["10.0.0.5"], tags=[],
                port_security=[], allowed_address_pairs=[])


def test_a_port_whose_binding_alone_changed_is_moved_without_reading_its_row_again():
    m = _Model()
    m._nb_changed("Port", "create", _port_row(None))
    before = m.ports["p1"]
    m.dirty.clear()
    m._nb_changed("Port", "update", _Row("p1", node=["hv1"]), frozenset({"node"}))
    assert m.ports["p1"] == before._replace(node="hv1") and m.port_node == {"p1": "hv1"}
    assert ("hv1", "n1") in m.dirty and ("hv1", "acl") in m.dirty and ("hv2", "acl") not in m.dirty
    # any other change reads the row whole
    m._nb_changed("Port", "update", _port_row("hv2"), frozenset({"node", "name"}))
    assert m.ports["p1"] == before._replace(node="hv2")
