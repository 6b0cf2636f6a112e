"""Desired state, as the compiler sees it."""

from typing import Mapping, NamedTuple, Optional


class Network(NamedTuple):
    id: str
    name: str
    tenant: str
    vni: int
    cidrs: tuple = ()


class Port(NamedTuple):
    id: str
    name: str
    tenant: str
    network_id: str
    mac: str
    ips: tuple = ()
    tags: tuple = ()
    node: Optional[str] = None
    security_groups: tuple = ()   # security group ids the port is in (named or selected)
    port_security: bool = True
    named_groups: tuple = ()      # the groups the port names itself
    allowed_pairs: tuple = ()     # (mac, ip or cidr) it may also send from


class Topology(NamedTuple):
    """Everything the L2 compiler needs.

    ``bindings``: port id -> (system id, ofport or None): the node a port is
    plugged into and, when known, its ofport there (only the node itself needs
    the ofport). ``tunnels``: system id -> {peer system id: tunnel ofport}.
    ``net_ports``: network id -> port ids (an index, so one network is planned
    without looking at the others). ``groups``: security group id -> its
    rules (flows.acl.Rule).
    """
    networks: Mapping
    ports: Mapping
    bindings: Mapping
    tunnels: Mapping
    net_ports: Mapping
    groups: Mapping = {}
