"""Packet-ins: a logged firewall rule's packet becomes an event; a load
balancer's is a health probe's answer or a connection to reject."""

import collections
import json
import logging
import time

from controller import packets
from flows import lb, ofwire
from flows.flow import LB, category_of, cookie_owner, output

LOG = logging.getLogger(__name__)


def _five_tuple(frame):
    """Addresses, protocol and ports of an Ethernet frame (IPv4 or IPv6)."""
    import ipaddress
    import struct
    eth_type, = struct.unpack_from("!H", frame, 12)
    if eth_type == 0x0800:
        ihl = (frame[14] & 0x0F) * 4
        proto, src, dst = frame[23], frame[26:30], frame[30:34]
        l4 = 14 + ihl
    elif eth_type == 0x86DD:
        proto, src, dst = frame[20], frame[22:38], frame[38:54]
        l4 = 54
    else:
        return {"eth_type": eth_type}
    out = {"src": str(ipaddress.ip_address(bytes(src))), "dst": str(ipaddress.ip_address(bytes(dst))),
           "protocol": proto}
    if proto in (6, 17) and len(frame) >= l4 + 4:
        out["src_port"], out["dst_port"] = struct.unpack_from("!HH", frame, l4)
    return out


class PacketIn:
    """Packet-ins from the switches (a part of Core)."""

    def _init_packet_in(self):
        self.events = collections.deque(maxlen=10000)  # firewall log events, newest last

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
            event.update(_five_tuple(frame))
        except Exception as exc:  # a malformed packet-in must not hurt the switch's thread
            LOG.warning("packet-in from node %s not understood: %s", switch.system_id, exc)
            return
        self.events.append(event)
        LOG.info("firewall: %s", json.dumps(event, sort_keys=True))

    def _reject(self, switch, lb_id, fields, frame):
        balancer = self.lbs.get(lb_id)
        network = self.networks.get(balancer.network_id) if balancer else None
        answer = packets.reject(frame, lb.vip_mac(network.vni)) if network else None
        if answer is None or "in_port" not in fields or switch.conn is None:
            return
        switch.conn.send(ofwire.packet_out(answer, (output(fields["in_port"]),), switch.conn.next_xid()))
