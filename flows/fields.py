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
REG_IDENTITY = RegField("xreg1", "The sending port's security identity (reg2:reg3, 64 bits): set in "
                        "classify for a local port, copied from the GENEVE option (IDENTITY) in "
                        "tunnel_classify for a packet from a tunnel (0: none), before any conntrack "
                        "recirculation; ingress rules whose remote side is a group match it.")
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
ENCRYPT = RegMark(REG_FLAGS, 0x10, 0x10, "Set: the packet came from a local port whose traffic must be "
                  "encrypted: to another node it leaves only through the IPsec mesh.")
SECURE = RegMark(REG_FLAGS, 0x20, 0x20, "Set: the packet came through the IPsec mesh (only such packets "
                 "from other nodes reach a port whose traffic must be encrypted).")
SOURCE_MAC = RegMark(REG_FLAGS, 0x40, 0x40, "Set: the packet came from a local port, from a MAC it may "
                     "send from (classify checked it; in_port_security's shared flows rely on it).")


@dataclass(frozen=True)
class GeneveOption:
    opt_class: int
    opt_type: int
    length: int   # bytes of the option's value
    field: str    # the tun_metadata field it is mapped to (index 0..63)
    doc: str

    @property
    def index(self):
        return int(self.field[len("tun_metadata"):])


IDENTITY = GeneveOption(
    0xFFF1, 0x01, 8, "tun_metadata0",
    "The sending port's security identity (flows.acl.identity: a hash of the set of security groups "
    "the port is in), set by the sender's node in classify and carried in a GENEVE option "
    "across tunnels; the receiver copies it into REG_IDENTITY, which rules match. Class 0xFFF1 is in "
    "RFC 8926's experimental range and the type has the critical bit clear (a receiver that does "
    "not know the option ignores it); both can be changed with `dvn serve --identity-option "
    "CLASS:TYPE`. A packet without the option has no identity and matches no group rule.")

REGISTERS = (REG_FLAGS, REG_IDENTITY, REG_LB, REG_MARK, REG_IN_PORT, REG_OUT_PORT)

MARKS = (FROM_TUNNEL, FROM_LOCAL, INGRESS_TRACKED, COMMIT, HAIRPIN, ENCRYPT, SECURE, SOURCE_MAC)
