"""The os-ken application: switch connections in, to the controller core."""

import logging

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_5

LOG = logging.getLogger(__name__)


class DvnOpenFlow(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_5.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        self.core = kwargs.pop("dvn_core")
        super().__init__(*args, **kwargs)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        # No table-miss flow here: br-int runs fail_mode=secure and dvn owns
        # every flow; the core reconciles the switch once it knows its node.
        self.core.switch_connected(ev.msg.datapath)

    @set_ev_cls(ofp_event.EventOFPStateChange, [DEAD_DISPATCHER])
    def _state_change(self, ev):
        if ev.datapath.id is not None:
            self.core.switch_disconnected(ev.datapath)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev):
        msg = ev.msg
        LOG.error("switch %016x: OpenFlow error type %d code %d for xid %d (no dvn request waits for it)",
                  msg.datapath.id or 0, msg.type, msg.code, msg.xid)
