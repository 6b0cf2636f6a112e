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
REG_OUT_PORT = RegField("reg7", "The ofport of the local port a packet is delivered to.")
METADATA_DOC = "The network of the packet: its VNI."

FROM_TUNNEL = RegMark(REG_FLAGS, 1, 1, "Set: the packet came from a tunnel (so it is never "
                      "tunnelled again: only local ports get it).")
FROM_LOCAL = RegMark(REG_FLAGS, 0, 1, "Clear: the packet came from a local port.")

REGISTERS = (REG_FLAGS, REG_OUT_PORT)
MARKS = (FROM_TUNNEL, FROM_LOCAL)
