"""ovsdb.nb: transactions of creates and plain sets go as OVSDB operations built by dvn."""

import pytest

from ovsdb import nb as nbmod
from ovsdb.nb import Conflict


def test_creates_and_sets_are_in_the_idl_when_the_transaction_returns(nb):
    api = nb.api
    net = api.db_create("Network", name="n1", tenant="t", vni=5001, cidrs=["10.0.0.0/24"])
    port = api.db_create("Port", name="p1", tenant="t", network=net, mac="02:00:00:00:00:01", ips=["10.0.0.5"],
                         port_security=[False])
    group = api.db_create("SecurityGroup", name="g1", tenant="t")
    rule = api.db_create("Rule", direction="ingress", ethertype="IPv4", protocol=[6], remote_group=[group],
                         action="allow", priority=100)
    commands = [net, port, group, rule, api.db_set("SecurityGroup", group, ("rules", (rule,))),
                api.db_set("Port", port, ("security_groups", (group,)))]
    assert nbmod._plain(commands)
    net_id, port_id, group_id, rule_id, _, _ = nb.transact(commands)
    p = nb.get("Port", port_id)
    assert p.name == "p1" and p.network.uuid == net_id and list(p.ips) == ["10.0.0.5"]
    assert p.port_security == [False] and [g.uuid for g in p.security_groups] == [group_id]
    g = nb.get("SecurityGroup", group_id)
    assert [r.uuid for r in g.rules] == [rule_id] and g.rules[0].remote_group[0].uuid == group_id
    assert g.rules[0].protocol == [6]
    # a set of a row already there, by its uuid
    nb.transact([api.db_set("Port", port_id, ("node", ["hv1"])), api.db_set("Network", net_id, ("vni", 5002))])
    assert nb.get("Port", port_id).node == ["hv1"] and nb.get("Network", net_id).vni == 5002


def test_a_refusal_of_the_store_is_a_conflict_and_nothing_is_made(nb):
    api = nb.api
    nb.transact([api.db_create("Network", name="n1", tenant="t", vni=5001)])
    with pytest.raises(Conflict):
        nb.transact([api.db_create("Network", name="n2", tenant="t", vni=5002),
                     api.db_create("Network", name="n1", tenant="t", vni=5003)])
    assert sorted(r.name for r in nb.rows("Network")) == ["n1"]


def test_other_commands_go_through_ovsdbapp(nb):
    api = nb.api
    net_id, = nb.transact([api.db_create("Network", name="n1", tenant="t", vni=5001)])
    merge = api.db_set("Network", net_id, ("external_ids", {"a": "1"}))   # a map merged into the row's
    assert not nbmod._plain([merge])
    nb.transact([merge])
    nb.transact([api.db_set("Network", net_id, ("external_ids", {"b": "2"}))])
    assert nb.get("Network", net_id).external_ids == {"a": "1", "b": "2"}
    assert not nbmod._plain([api.db_destroy("Network", net_id)])
