"""The API's schemas: the fast validator (jsonschema-rs) and the reference
(jsonschema, which names the field at fault) agree on what is valid, and the
document says what the server sends."""

import hypothesis.strategies as st
from hypothesis import given, settings

from controller import openapi
from controller.api import schemas
from controller.switch import State

NAMES = ("NetworkCreate", "NetworkUpdate", "PortCreate", "PortUpdate", "RuleCreate", "SecurityGroupCreate",
         "LoadBalancerCreate", "MemberCreate", "MemberUpdate", "ImportPort", "ImportRule")
STRINGS = ["", "x", "web-1", "10.0.0.0/24", "10.0.0.1/24", "10.0.0.5", "010.0.0.5", "fd00:1::/64", "fd00::1",
           "::/0", "0.0.0.0/0", "02:00:00:00:00:01", "ingress", "egress", "tcp", "udp", "icmp", "IPv4", "IPv6",
           "allow", "deny", "ROUND_ROBIN", "TCP", "HTTP", "a" * 300, "10.0.0.0/33", " 10.0.0.0/24", "10.0.0.0/24\n"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.sampled_from(STRINGS),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.sampled_from(STRINGS), inner, max_size=2)),
                      max_leaves=6)


def bodies(name):
    keys = sorted(schemas.SCHEMAS[name].get("properties", {})) + ["junk"]
    return st.dictionaries(st.sampled_from(keys), VALUES, max_size=len(keys))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_the_fast_validator_and_the_reference_agree(data, name):
    body = data.draw(bodies(name))
    reference = not list(schemas.validator(name).iter_errors(body))
    assert schemas._fast(name).is_valid(body) == reference, (name, body)


def test_the_document_lists_every_state_a_switch_can_be_in():
    switch = openapi.VIEWS["Node"]["properties"]["switch"]["properties"]
    assert set(switch["state"]["enum"]) == {s.value for s in State}


def test_a_whole_import_document_is_valid_to_both():
    from benchmarks.workload import Workload
    doc = Workload(100).document()
    items = [("ImportPort", p) for p in doc["ports"]] + [("ImportNetwork", n) for n in doc["networks"]]
    items += [("ImportSecurityGroup", g) for g in doc["security_groups"]]
    items += [("ImportLoadBalancer", b) for b in doc["load_balancers"]]
    for name, body in items:
        assert schemas._fast(name).is_valid(body) and not list(schemas.validator(name).iter_errors(body)), body
