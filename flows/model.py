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
    encrypt: bool = False         # its traffic to and from other nodes crosses the IPsec mesh only


class Member(NamedTuple):
    id: str
    address: str
    port: int
    weight: int = 1
    admin_up: bool = True
    status: str = "ONLINE"        # ONLINE, OFFLINE (health checks) or NO_MONITOR


class Monitor(NamedTuple):
    type: str                     # "TCP" or "HTTP"
    delay: float                  # seconds between probes
    timeout: float                # seconds a probe may take
    rise: int                     # successes in a row that bring a member back
    fall: int                     # failures in a row that take it out
    url_path: str = "/"
    expected_codes: str = "200"


class LoadBalancer(NamedTuple):
    id: str
    tenant: str
    network_id: str
    vip: str
    protocol: str                 # "tcp" or "udp"
    port: int
    group_id: int
    members: tuple = ()           # Member, sorted
    affinity: int = 0             # session persistence by client IP: its timeout (0: off)
    monitor: Optional[Monitor] = None


class Topology(NamedTuple):
    """Everything the L2 compiler needs.

    ``bindings``: port id -> (system id, ofport or None): the node a port is
    plugged into and, when known, its ofport there (only the node itself needs
    the ofport). ``tunnels``: system id -> {peer system id: tunnel ofport},
    the plain mesh; ``secure_tunnels`` the same for the IPsec mesh.
    ``net_ports``: network id -> port ids (an index, so one network is planned
    without looking at the others). ``groups``: security group id -> its
    rules (flows.acl.Rule). ``lbs``/``net_lbs``: load balancers, and the
    index of them by network.
    """
    networks: Mapping
    ports: Mapping
    bindings: Mapping
    tunnels: Mapping
    net_ports: Mapping
    groups: Mapping = {}
    lbs: Mapping = {}             # load balancer id -> LoadBalancer
    net_lbs: Mapping = {}         # network id -> load balancer ids
    secure_tunnels: Mapping = {}  # system id -> {peer system id: IPsec tunnel ofport}
    encrypt_pairs: frozenset = frozenset()   # (group a, group b): traffic between their members is encrypted
    group_ports: Mapping = {}     # security group id -> the ids of the ports in it (an index; made if empty)
