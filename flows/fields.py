"""Registers and bits used by the pipeline, named once."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RegField:
    name: str     # the register as OVS names it
    doc: str


@dataclass(frozen=True)
class RegMark:
    field: RegField
    value: int
    mask: int
    doc: str


REG_FLAGS = RegField("reg0", "Flags about the packet's origin.")
REG_LB = RegField("reg4", "The member a VIP's group picked for a new connection: group id << 16 | "
                  "the member's slot (lb_nat NATs to it).")
REG_MARK = RegField("reg5", "The ct_mark of the egress allow rule that let a new connection out "
                    "(committed with it once the load balancer has had its say).")
REG_IN_PORT = RegField("reg6", "The ofport of the local port a packet came from (also its conntrack zone).")
REG_OUT_PORT = RegField("reg7", "The ofport of the local port a packet is delivered to (also its conntrack zone).")
METADATA_DOC = "The network of the packet: its VNI."

FROM_TUNNEL = RegMark(REG_FLAGS, 1, 1, "Set: the packet came from a tunnel (so it is never "
                      "tunnelled again: only local ports get it).")
FROM_LOCAL = RegMark(REG_FLAGS, 0, 1, "Clear: the packet came from a local port.")
INGRESS_TRACKED = RegMark(REG_FLAGS, 2, 2, "Set: the packet went through conntrack in the receiving "
                          "port's zone (out_acl tracks it once).")
COMMIT = RegMark(REG_FLAGS, 4, 4, "Set: an egress allow rule let a new connection out; vip_lb commits "
                "it (with reg5 as its mark) unless a VIP's bucket commits it with NAT.")
HAIRPIN = RegMark(REG_FLAGS, 8, 8, "Set: a member's connection to its own VIP, on its way back to it "
                  "(it skips the firewall tables its own connection went through).")

REGISTERS = (REG_FLAGS, REG_LB, REG_MARK, REG_IN_PORT, REG_OUT_PORT)
MARKS = (FROM_TUNNEL, FROM_LOCAL, INGRESS_TRACKED, COMMIT, HAIRPIN)
