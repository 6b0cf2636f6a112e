"""br-int's pipeline, declared once. Table numbers come from the order here
and appear nowhere else: flows name their table, the encoder looks it up."""

from dataclasses import dataclass


class PipelineViolation(Exception):
    """A flow that does not fit the declared pipeline."""


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    miss: str  # "drop" or "next": what a packet that matches no flow does; "none": no packet comes there


TABLES = (
    Table("classify", "Where a packet comes from: a local VM port (its network goes to metadata) "
          "or a tunnel from a peer (flagged in reg0).", "drop"),
    Table("tunnel_classify", "Packets from a tunnel: the GENEVE VNI (tun_id) names the network.", "drop"),
    Table("in_port_security", "Anti-spoofing for packets from local ports; health-probe replies to dvn; "
          "a load-balancer member's hairpin replies un-NATed.", "next"),
    Table("in_acl", "The sending port's egress firewall: tracked (with NAT) in the port's zone; "
          "an allowed new connection gets its rule's mark in reg5.", "next"),
    Table("vip_lb", "Load balancer VIPs, answered here: ARP for VIPs, new connections to a select "
          "group whose buckets pick a member (reg4), members' MACs after NAT, hairpin replies; "
          "other allowed new connections committed.", "next"),
    Table("lb_nat", "A load-balanced connection's member (reg4, set by the VIP group's bucket): "
          "committed with DNAT in the client's zone; a member's connection to its own VIP also SNATed "
          "to the VIP.", "next"),
    Table("l2_lookup", "Destination MAC within the network: a local port (reg7), a tunnel to the "
          "port's node, or flooding for broadcast and unknown unicast.", "drop"),
    Table("out_acl", "The receiving port's ingress firewall: tracked (with NAT, so replies of "
          "load-balanced connections are un-NATed) in the port's zone.", "next"),
    Table("out_deliver", "Output to the local port named by reg7 (one flow for all).", "drop"),
    Table("mark", "No packet comes here. One flow, the switch's mark: its cookie carries a digest "
          "of every other flow dvn put on the switch, rewritten in each change, so a restarted dvn "
          "confirms an unchanged switch without reading its flows back.", "none"),
)

# The tables that take a packet to the flows of a port or a network: where it
# comes from (a local port, a tunnel's VNI) and where it goes (a MAC). A flow
# new in another table is reached only through one of these.
DISPATCH = ("classify", "tunnel_classify", "l2_lookup")
# The firewall's tables: the sending port's egress rules, the receiving port's ingress rules.
FIREWALL = ("in_acl", "out_acl")

_IDS = {t.name: i for i, t in enumerate(TABLES)}


def table_id(name):
    try:
        return _IDS[name]
    except KeyError:
        raise PipelineViolation("unknown table %r" % (name,)) from None


def next_table(name):
    i = table_id(name)
    if i + 1 >= len(TABLES):
        raise PipelineViolation("table %r is the last one" % name)
    return TABLES[i + 1].name


def check(flowset):
    """Raise PipelineViolation unless every flow's table exists and every goto
    and resubmit goes forward to a declared table."""
    for flow in flowset:
        here = table_id(flow.table)
        for target in flow.jumps():
            if table_id(target) <= here:
                raise PipelineViolation("flow %s jumps back from %s to %s" % (
                    flow.describe(), flow.table, target))
        for target in flow.recirculates():
            # conntrack may send the packet back to its own table (then +trk)
            if table_id(target) < here:
                raise PipelineViolation("flow %s recirculates back from %s to %s" % (
                    flow.describe(), flow.table, target))
