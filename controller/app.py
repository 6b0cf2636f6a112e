"""The os-ken application: switch connections in, to the controller core.

Two ways in:

- `dvn serve` builds dvn (controller.serve.start) and hands it over as the
  ``dvn`` context;
- loaded by module name, beside other os-ken apps
  (``osken-manager --config-file dvn.conf controller.app other_app``), the
  app builds dvn itself, through the same function, from the ``[dvn]``
  options of os-ken's configuration (controller/options.py), and stops it
  when os-ken closes the app.

Either way the app opens dvn's OpenFlow lanes, if any, once os-ken runs.
"""

import logging

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_5

from controller import options
from controller.ofconn import end_connection

LOG = logging.getLogger(__name__)

options.register(cfg.CONF)


class DvnOpenFlow(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_5.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        dvn = kwargs.pop("dvn", None)
        super().__init__(*args, **kwargs)
        self.owns_dvn = dvn is None
        if dvn is None:  # loaded by name: dvn from os-ken's configuration
            from controller import serve
            dvn = serve.start(options.settings(self.CONF))
        self.dvn = dvn
        self.core = dvn.core
        self.lane_threads = []

    def start(self):
        thread = super().start()
        self._open_lanes()
        return thread

    def stop(self):
        for thread in self.lane_threads:
            thread.kill()
        super().stop()

    def close(self):
        if self.owns_dvn:
            self.dvn.stop()

    def _open_lanes(self):
        """Lanes: more connections from each switch, for large changes (see
        ofconn.bundle_across), on the ports after the OpenFlow listener's;
        `dvn join --openflow-lanes` points them here."""
        from os_ken.controller import controller as of_controller
        from os_ken.lib import hub

        host = self.CONF.ofp_listen_host
        ssl_args = {}
        if self.CONF.ctl_privkey and self.CONF.ctl_cert:   # OpenFlow over TLS: the lanes too, as os-ken's listener
            import ssl
            ssl_args = {"ssl_ctx": ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), "keyfile": self.CONF.ctl_privkey,
                        "certfile": self.CONF.ctl_cert}
            if self.CONF.ca_certs:
                ssl_args.update(cert_reqs=ssl.CERT_REQUIRED, ca_certs=self.CONF.ca_certs)
        for port in sorted(self.core.lane_ports):
            try:
                server = hub.StreamServer((host, port), of_controller.datapath_connection_factory, **ssl_args)
            except OSError as exc:  # a lane is only faster: dvn works without it
                LOG.warning("OpenFlow lane port %s:%d not opened (%s): switches get one lane fewer",
                            host, port, exc)
                self.core.lane_ports.discard(port)
                continue
            self.lane_threads.append(hub.spawn(server.serve_forever))
        if self.core.lane_ports:
            LOG.info("OpenFlow lanes on %s: ports %s", host, ", ".join(map(str, sorted(self.core.lane_ports))))

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        # No table-miss flow here: br-int runs fail_mode=secure and dvn owns
        # every flow in its cookie space; the core reconciles the switch once
        # it knows its node.
        datapath = ev.msg.datapath
        why = self._refusal(datapath)
        if why is not None:
            LOG.warning("OpenFlow connection from %s refused: %s", datapath.address, why)
            datapath.dvn_refused = True
            end_connection(datapath)
            return
        self.core.switch_connected(datapath)

    def _refusal(self, datapath):
        """Why a switch on a TLS connection may not be dvn's (None: it may): its
        certificate must be one dvn admitted and has not revoked, and name the
        node whose datapath id the switch has (`dvn join` derives it from the name)."""
        trust = getattr(self.dvn, "trust", None)
        getpeercert = getattr(datapath.socket, "getpeercert", None)
        if trust is None or getpeercert is None:
            return None
        from ovsdb.join import datapath_id
        name, why = trust.allowed(getpeercert(binary_form=True) or b"")
        if name is None:
            return why
        if datapath.id != int(datapath_id(name), 16):
            return "the certificate of node %s on a switch with another node's datapath id %016x" % (
                name, datapath.id)
        return None

    @set_ev_cls(ofp_event.EventOFPStateChange, [DEAD_DISPATCHER])
    def _state_change(self, ev):
        if ev.datapath.id is not None and not getattr(ev.datapath, "dvn_refused", False):
            self.core.switch_disconnected(ev.datapath)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev):
        msg = ev.msg
        LOG.error("switch %016x: OpenFlow error type %d code %d for xid %d (no dvn request waits for it)",
                  msg.datapath.id or 0, msg.type, msg.code, msg.xid)
