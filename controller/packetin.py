"""Packet-ins: a logged firewall rule's packet becomes an event; a load
balancer's is a health probe's answer or a connection to reject."""

import collections
import json
import logging
import time

from controller import packets
from controller.alerts import Alerts
from flows import lb, ofwire
from flows.flow import LB, category_of, cookie_owner, output

LOG = logging.getLogger(__name__)


class PacketIn:
    """Packet-ins from the switches (a part of Core)."""

    def _init_packet_in(self):
        self.events = collections.deque(maxlen=10000)  # firewall log events, newest last
        self.alerts = Alerts(self._webhook_of)         # rules with alert: to their tenant's webhook

    def _webhook_of(self, tenant):
        return next((r.url for r in self.nb.rows("AlertWebhook") if r.tenant == tenant), None)

    def _packet_in(self, switch, buf):
        """A logged rule's packet (rate-limited by the switch's meter): an event;
        or a load balancer's: a health probe's answer, or a connection to reject."""
        try:
            cookie, fields, frame = ofwire.decode_packet_in(buf)
            if category_of(cookie) == LB:
                lb_id = self.lb_owner.get(cookie_owner(cookie))
                if lb_id is None:
                    self.prober.packet_in(switch.system_id, frame)
                else:
                    self._reject(switch, lb_id, fields, frame)
                return
            gid, rule = self.rule_index.get(cookie_owner(cookie), (None, None))
            event = {"time": round(time.time(), 3), "node": switch.system_id, "security_group": gid,
                     "rule": rule.id if rule else None, "verdict": rule.action if rule else "?"}
            port_ofport = fields.get("reg7") or fields.get("reg6")
            event["direction"] = "ingress" if fields.get("reg7") else "egress"
            local = self.local_ofports.get(switch.system_id, {})
            event["port"] = next((p for p, o in local.items() if o == port_ofport), None)
            event.update(packets.five_tuple(frame))
        except Exception as exc:  # a malformed packet-in must not hurt the switch's thread
            LOG.warning("packet-in from node %s not understood: %s", switch.system_id, exc)
            return
        if rule is not None and rule.alert:
            event["alert"] = True
            group = self.nb.get("SecurityGroup", gid)
            if group is not None:
                self.alerts.event(event, group.tenant)
        self.events.append(event)
        self.metrics.firewall_events.labels(event["verdict"]).inc()
        LOG.info("firewall: %s", json.dumps(event, sort_keys=True))

    def packet_out(self, system_id, ofport, frame):
        """A frame into a node's br-int, out of its port ``ofport`` (nothing while the switch is away)."""
        switch = self.switches.get(system_id)
        if switch is not None and switch.conn is not None:
            switch.conn.send(ofwire.packet_out(frame, (output(ofport),), switch.conn.next_xid()))

    def _reject(self, switch, lb_id, fields, frame):
        balancer = self.lbs.get(lb_id)
        network = self.networks.get(balancer.network_id) if balancer else None
        answer = packets.reject(frame, lb.vip_mac(network.vni)) if network else None
        if answer is None or "in_port" not in fields or switch.conn is None:
            return
        switch.conn.send(ofwire.packet_out(answer, (output(fields["in_port"]),), switch.conn.next_xid()))
