"""A trivial os-ken app that shares br-int with dvn under osken-manager
(tests/lab/test_osken_manager_lab.py), as an app author would write one by
docs/architecture.md ("Sharing a switch with other os-ken apps").

It appends every switch event it sees to a file (``[other_app] record``),
and the first time it sees a switch (by that file) installs two flows of
its own, with a cookie outside dvn's cookie space (top bit 0): one in a
table dvn does not use, and one in dvn's first table, above dvn's
priorities, that sends its packets (an experimental EtherType) to the
controller. It never installs them again, so they are still there after a
later connection only if dvn's resyncs left them alone.
"""


from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_5

OTHER_COOKIE = 0x0B7E5000000000A1   # top bit 0: not dvn's
OTHER_TABLE = 200                     # after dvn's pipeline tables
OTHER_PRIORITY = 1234
OTHER_ETH_TYPE = 0x88B5               # IEEE local experimental: matches nothing dvn sends
PUNT_PRIORITY = 2000                  # table 0, above dvn's classify flows

cfg.CONF.register_opts([cfg.StrOpt("record", help="the file this app appends switch events to")],
                       group="other_app")


class OtherApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_5.OFP_VERSION]

    def _record(self, line):
        with open(self.CONF.other_app.record, "a") as f:
            f.write(line + "\n")

    def _seen(self, dpid):
        try:
            with open(self.CONF.other_app.record) as f:
                return ("features %016x" % dpid) in f.read().split("\n")
        except FileNotFoundError:
            return False

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        first = not self._seen(dp.id)
        if first:
            ofp, parser = dp.ofproto, dp.ofproto_parser
            dp.send_msg(parser.OFPFlowMod(dp, cookie=OTHER_COOKIE, table_id=OTHER_TABLE, priority=OTHER_PRIORITY,
                                          match=parser.OFPMatch(eth_type=OTHER_ETH_TYPE), instructions=[]))
            to_me = parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
                parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])
            dp.send_msg(parser.OFPFlowMod(dp, cookie=OTHER_COOKIE, table_id=0, priority=PUNT_PRIORITY,
                                          match=parser.OFPMatch(eth_type=OTHER_ETH_TYPE), instructions=[to_me]))
        self._record("features %016x" % dp.id)
        if first:
            self._record("flow installed %016x" % dp.id)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        self._record("packet-in %016x cookie %#x table %d" % (msg.datapath.id, msg.cookie, msg.table_id))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _gone(self, ev):
        if ev.datapath.id is not None:
            self._record("dead %016x" % ev.datapath.id)
