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

import logging

import eventlet

from controller.health import Prober
from controller.metrics import Metrics
from controller.model import Model
from controller.nodes import Nodes
from controller.packetin import PacketIn
from controller.scheduler import Scheduler
from controller.stats import Stats
from controller.switch import Switches
from controller.trace import Tracing
from flows import fields

LOG = logging.getLogger(__name__)


class Core(Model, Nodes, Switches, Scheduler, PacketIn, Stats, Tracing):
    """The running controller. Its parts, one concern a module: the model
    (controller/model.py), the nodes (nodes.py), the switches (switch.py),
    the scheduler (scheduler.py), packet-ins (packetin.py) and statistics
    (stats.py), and dvn trace (trace.py). Each part sets up the state it owns (its ``_init_*``); the
    parts read each other's through this object."""

    def __init__(self, nb, tunnel_options=None, log_rate=100, log_burst=100, identity_option=fields.IDENTITY,
                 ca=None, lane_ports=()):
        self.nb = nb
        self.log_rate, self.log_burst = log_rate, log_burst
        self.identity_option = identity_option         # the GENEVE option of identities (TLV map)
        self.tunnel_options = tunnel_options or {}
        self.ca = ca                                   # controller.pki.Ca: IPsec by certificates, where both nodes have one
        self._loaded = False                           # the store's rows are in
        self.model_reloads = 0                         # times the model was read again after it missed a change
        self.metrics = Metrics()                       # GET /metrics (controller/metrics.py)
        self.metrics.watch(self)
        self._init_model()
        self._init_nodes()
        self._init_switches(lane_ports)
        self._init_scheduler()
        self._init_packet_in()
        self.prober = Prober(lambda: self.lbs, self.member_target, self.packet_out, self.set_member_status)

    # ---- start-up ---------------------------------------------------------
    def start(self):
        self.nb.subscribe(self._nb_changed, on_error=self._reload, columns=True)
        self._load()
        self._loaded = True
        eventlet.spawn_n(self._worker)
        self.prober.start()
