"""The running controller: northbound + nodes in, flows on every br-int out.

Three sources of truth meet here:

- the northbound store (networks, ports, nodes, and each port's node binding);
- each node's own database (which VM interface has which ofport, which tunnel
  port leads to which peer), over the connection the node opened;
- each switch's flow table, over OpenFlow.

The compiler (``flows/``) turns the first two into desired flows in compile
units, per node: its base, each network it hosts, each load balancer of
those, the firewall's shared flows, each local port's firewall flows and
each security group's rules. A change marks the units it
touches; a single worker recompiles only those, diffs each against the unit's
previous flows and sends each switch its difference in one bundle. A switch
that (re)connects is read back, diffed against the whole desired set and
corrected in one bundle: flows that are right are never touched.
"""

import collections
import logging

import eventlet
from eventlet import event as ev_event

from controller.health import Prober
from controller.model import Model
from controller.nodes import Nodes
from controller.packetin import PacketIn
from controller.scheduler import Scheduler
from controller.stats import Stats
from controller.switch import Switches
from flows import fields

LOG = logging.getLogger(__name__)


class Core(Model, Nodes, Switches, Scheduler, PacketIn, Stats):
    """The running controller. Its parts, one concern a module: the model
    (controller/model.py), the nodes (nodes.py), the switches (switch.py),
    the scheduler (scheduler.py), packet-ins (packetin.py) and statistics
    (stats.py); this class holds the state they share and starts them."""

    def __init__(self, nb, tunnel_options=None, log_rate=100, log_burst=100, identity_option=fields.IDENTITY,
                 ca=None, lane_ports=()):
        self.nb = nb
        self.lane_ports = set(lane_ports)              # local OpenFlow ports whose connections are lanes
        self.lanes = {}                                # datapath id -> {os-ken Datapath: SwitchConn}
        self.ca = ca                                   # controller.pki.Ca: IPsec by certificates, where both nodes have one
        self.certified = set()                         # nodes whose certificate request dvn has signed
        self.signing = set()
        self.recording = set()                         # nodes whose certification is being written to the store
        self.node_states = {}                          # system id -> nodes.NodeState of its session
        self.log_rate, self.log_burst = log_rate, log_burst
        self.identity_option = identity_option         # the GENEVE option of identities (TLV map)
        self.events = collections.deque(maxlen=10000)  # firewall log events, newest last
        self.tunnel_options = tunnel_options or {}
        self.networks = {}
        self.ports = {}
        self.groups = {}                               # security group id -> rules
        self.group_ports = collections.defaultdict(set)  # security group id -> port ids (named or selected)
        self.criteria = {}                             # dynamic group id -> (tenant, criteria)
        self.explicit = {}                             # port id -> the groups the port names
        self.net_ports = collections.defaultdict(set)  # network id -> port ids
        self.port_node = {}                            # port id -> system id (northbound)
        self.nodes = {}                                # system id -> encap ip (northbound)
        self.sessions = {}                             # system id -> NodeSession
        self.local_ofports = {}                        # system id -> {port id: ofport}
        self.tunnel_ofports = {}                       # system id -> {peer: ofport}
        self.secure_ofports = {}                       # system id -> {peer: ofport} of the IPsec mesh
        self.tunnel_keys = {}                          # "a|b" (sorted system ids) -> pre-shared key
        self.keys_asked = set()                        # node pairs whose key is being created
        self.own_encrypt = {}                          # port id -> its own encrypt flag
        self.encrypt_groups = set()                    # groups all of whose members' traffic is encrypted
        self.encrypt_pairs = frozenset()               # (group a, group b), a < b: traffic between is encrypted
        self.encrypt_with = {}                         # group id -> the groups it encrypts its traffic with
        self.iface_bindings = {}                       # system id -> {iface-id: ofport}, all of them
        self.switches = {}                             # system id -> Switch
        self.dpid_node = {}                            # dpid -> system id
        self.dirty = set()                             # (system id, unit)
        self.mesh_dirty = False
        self._wake = ev_event.Event()
        self._loaded = False
        self.owners = {}                               # cookie owner hash -> object id
        self.rule_index = {}                           # cookie owner hash -> (group id, Rule)
        self.lbs = {}                                  # load balancer id -> LoadBalancer
        self.net_lbs = collections.defaultdict(set)    # network id -> load balancer ids
        self.member_lb = {}                            # member id -> load balancer id
        self.lb_dirty = set()                          # load balancers to read again from the store
        self.sg_dirty = set()                          # security groups to read again from the store
        self.compiling = 0                             # switches whose units are being compiled now
        self.lb_owner = {}                             # cookie owner hash -> load balancer id
        self.prober = Prober(lambda: self.lbs, self.member_target, self.packet_out, self.set_member_status)
        self.merge_conflicts = 0                       # identities units want different flows at (logged)

    # ---- start-up ---------------------------------------------------------
    def start(self):
        self.nb.subscribe(self._nb_changed)
        for row in self.nb.rows("SecurityGroup"):
            self._nb_changed("SecurityGroup", "create", row)
        self._refresh_groups()
        for row in self.nb.rows("Network"):
            self._nb_changed("Network", "create", row)
        for row in self.nb.rows("Port"):
            self._nb_changed("Port", "create", row)
        for row in self.nb.rows("Node"):
            self._nb_changed("Node", "create", row)
        for row in self.nb.rows("TunnelKey"):
            self._nb_changed("TunnelKey", "create", row)
        self.lb_dirty.update(str(r.uuid) for r in self.nb.rows("LoadBalancer"))
        self._refresh_lbs()
        self._loaded = True
        eventlet.spawn_n(self._worker)
        self.prober.start()
