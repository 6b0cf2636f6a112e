"""Statistics read from the switches: a rule's packets (by its flows'
cookies) and a load balancer's new connections (its group's counters)."""

import logging

from controller.ofconn import SwitchError
from flows import acl, lb
from flows.flow import GROUP, owner_cookie

LOG = logging.getLogger(__name__)


class Stats:
    """Counters over every switch (a part of Core)."""

    def rule_stats(self, group_id, rule_id):
        """Packets and bytes of one rule's flows, summed over every connected switch
        (read by cookie: category and owner)."""
        cookie, mask = owner_cookie(GROUP, "%s/%s" % (group_id, rule_id))
        total = {"packets": 0, "bytes": 0, "established_packets": 0, "switches": 0}
        for switch in list(self.switches.values()):
            if switch.conn is None:
                continue
            try:
                descs = switch.conn.read_flows(cookie, mask)
            except SwitchError as exc:
                LOG.warning("statistics of node %s not read: %s", switch.system_id, exc)
                continue
            total["switches"] += 1
            for desc in descs:
                if desc.priority == acl.P_STATE:
                    total["established_packets"] += desc.packets
                else:
                    total["packets"] += desc.packets
                    total["bytes"] += desc.bytes
        return total

    def lb_stats(self, lb_id):
        """New connections the VIP's group took, in all and per member, over every switch."""
        balancer = self.lbs.get(lb_id)
        out = {"connections": 0, "members": {}, "switches": 0}
        if balancer is None:
            return out
        slot_member = {slot: mid for mid, slot in lb.slots(balancer.members).items()}
        out["members"] = {m.id: 0 for m in balancer.members}
        for switch in list(self.switches.values()):
            group = switch.table.groups.get(balancer.group_id)
            if switch.conn is None or group is None:
                continue
            try:
                stats = switch.conn.read_group_stats().get(balancer.group_id)
            except SwitchError as exc:
                LOG.warning("statistics of node %s not read: %s", switch.system_id, exc)
                continue
            if stats is None:
                continue
            out["switches"] += 1
            out["connections"] += stats[0]
            for bucket, (packets_, _bytes) in zip(group.buckets, stats[2]):
                member_id = slot_member.get(bucket.actions[0][2] & 0xFFFF)
                if member_id in out["members"]:
                    out["members"][member_id] += packets_
        return out
