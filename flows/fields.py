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
REG_IN_PORT = RegField("reg6", "The ofport of the local port a packet came from (also its conntrack zone).")
REG_OUT_PORT = RegField("reg7", "The ofport of the local port a packet is delivered to (also its conntrack zone).")
METADATA_DOC = "The network of the packet: its VNI."

FROM_TUNNEL = RegMark(REG_FLAGS, 1, 1, "Set: the packet came from a tunnel (so it is never "
                      "tunnelled again: only local ports get it).")
FROM_LOCAL = RegMark(REG_FLAGS, 0, 1, "Clear: the packet came from a local port.")
INGRESS_TRACKED = RegMark(REG_FLAGS, 2, 2, "Set: the packet went through conntrack in the receiving "
                          "port's zone (out_acl tracks it once).")

REGISTERS = (REG_FLAGS, REG_IN_PORT, REG_OUT_PORT)
MARKS = (FROM_TUNNEL, FROM_LOCAL, INGRESS_TRACKED)
