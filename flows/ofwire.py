"""OpenFlow 1.5 bytes for flow values, and flow-desc replies back to keys.

A flow_mod is serialized when it is sent, with its xid; the pieces that
repeat across flows (a field with a value, an action) are cached, by the
values the flows share. Pure: struct and bytes only.
"""

import dataclasses
import functools
import ipaddress
import struct
from typing import NamedTuple

from flows import pipeline
from flows.flow import DVN_COOKIE, DVN_COOKIE_MASK

VERSION = 6
OFPT_EXPERIMENTER = 4
OFPT_FLOW_MOD = 14
OFPT_MULTIPART_REQUEST = 18
OFPT_BARRIER_REQUEST = 20
OFPT_SET_ASYNC = 28
OFPT_BUNDLE_CONTROL = 33
OFPT_BUNDLE_ADD_MESSAGE = 34
ADD, DELETE_STRICT = 0, 4
OFPMP_FLOW_DESC = 1
NO_BUFFER = 0xFFFFFFFF
ANY = 0xFFFFFFFF
OFPTT_ALL = 0xFF
OFPP_IN_PORT = 0xFFF8
BUNDLE_FLAGS = 3  # ATOMIC | ORDERED
BUNDLE_OPEN, BUNDLE_COMMIT, BUNDLE_DISCARD = 0, 4, 6
NX_VENDOR = 0x00002320
NXAST_RESUBMIT_TABLE = 14
NXAST_OUTPUT_REG = 15
NXAST_CONJUNCTION = 34
NXAST_CT = 35
NXAST_CT_CLEAR = 43
NXAST_CLONE = 42
OFPAT_COPY_FIELD = 28
OFPP_CONTROLLER = 0xFFFFFFFD
OFPT_METER_MOD = 29
NX_CT_F_COMMIT = 1

# field -> (oxm class, field number, width in bytes), as OVS reports them in OF1.5.
OXM = {
    "in_port": (0x8000, 0, 4),
    "nx_in_port": (0x0000, 0, 2),  # NXM_OF_IN_PORT: may be set to 0 (OXM's may not)
    "metadata": (0x8000, 2, 8),
    "eth_dst": (0x8000, 3, 6),
    "eth_src": (0x8000, 4, 6),
    "eth_type": (0x8000, 5, 2),
    "ip_proto": (0x8000, 10, 1),
    "ipv4_src": (0x8000, 11, 4), "ipv4_dst": (0x8000, 12, 4),
    "tcp_src": (0x8000, 13, 2), "tcp_dst": (0x8000, 14, 2),
    "udp_src": (0x8000, 15, 2), "udp_dst": (0x8000, 16, 2),
    "icmpv4_type": (0x8000, 19, 1), "icmpv4_code": (0x8000, 20, 1),
    "arp_op": (0x8000, 21, 2), "arp_spa": (0x8000, 22, 4), "arp_tpa": (0x8000, 23, 4),
    "arp_sha": (0x8000, 24, 6), "arp_tha": (0x8000, 25, 6),
    "ipv6_src": (0x8000, 26, 16), "ipv6_dst": (0x8000, 27, 16),
    "icmpv6_type": (0x8000, 29, 1), "icmpv6_code": (0x8000, 30, 1),
    "nd_target": (0x8000, 31, 16), "nd_sll": (0x8000, 32, 6),
    "tun_id": (0x8000, 38, 8),
    "tun_metadata0": (0x0001, 40, 8),  # NXM_NX_TUN_METADATA0 mapped to an 8-byte option (fields.IDENTITY)
    "xreg1": (0x8001, 1, 8),           # OXM_OF_PKT_REG1 (reg2:reg3), as OVS reports a match on both
    "conj_id": (0x0001, 37, 4),
    "ct_state": (0x0001, 105, 4), "ct_zone": (0x0001, 106, 2), "ct_mark": (0x0001, 107, 4),
    "ct_nw_dst": (0x0001, 121, 4),     # NXM_NX_CT_NW_DST
}
for _i in range(8):
    OXM["reg%d" % _i] = (0x0001, _i, 4)


class EncodeError(Exception):
    pass


def _value_bytes(field, value, width):
    if isinstance(value, str):
        if "." in value and ":" not in value:   # IPv4, as flows.flow.match writes it
            return bytes(map(int, value.split(".")))
        if "." in value or (":" in value and len(value) != 17):
            return ipaddress.ip_address(value).packed
        return bytes(int(b, 16) for b in value.split(":"))
    return value.to_bytes(width, "big")


def oxm_tlv(field, value, mask=None):
    """One OXM TLV (not cached here: its callers keep what they make, by
    match item or by action)."""
    cls, num, width = OXM[field]
    body = _value_bytes(field, value, width)
    if mask is not None:
        body += _value_bytes(field, mask, width)
    return struct.pack("!HBB", cls, (num << 1) | (mask is not None), len(body)) + body


def nxm_header(field):
    """The 32-bit header naming a whole field in NXM/OXM actions."""
    cls, num, width = OXM[field]
    return (cls << 16) | (num << 9) | width


def _pad8(data):
    return data + b"\0" * (-len(data) % 8)


XREG_CLASS = 0x8001


_PIECES = {}            # match item -> _piece(item)
MAX_PIECES = 1 << 17    # then the cache starts again


def _piece(item):
    """What one match item adds to a match's TLVs: its TLV, or for a 32-bit
    register (xreg index, value, mask) shifted into its half of the 64-bit
    register. Cached per item: items are shared by many flows
    (flows.flow.match), matches mostly are not, so a match's TLVs are made
    again when asked (a few microseconds) rather than kept for each of a
    switch's 100,000 flows. A dict keyed by the item itself, which its flows
    hold anyway (an lru_cache kept a tuple of the arguments and a list node
    besides, and oxm_tlv's own cache a second copy: 27 MiB at 10,000 ports)."""
    piece = _PIECES.get(item)
    if piece is None:
        field, value, mask = item
        if field.startswith("reg"):
            n = int(field[3:])
            shift = 0 if n % 2 else 32
            m = 0xFFFFFFFF if mask is None else mask
            piece = n // 2, value << shift, m << shift
        else:
            piece = oxm_tlv(field, value, mask)
        if len(_PIECES) >= MAX_PIECES:
            _PIECES.clear()
        _PIECES[item] = piece
    return piece


def match_tlvs(match):
    """The OXM TLVs of a match, as OVS reports them in OpenFlow 1.5.

    OVS reports the 32-bit registers as halves of the 64-bit packet registers
    (OXM_OF_PKT_REG: reg0 is the high half of xreg0, reg1 the low half), so
    they are encoded that way too and the reported match compares equal."""
    tlvs, xregs = [], None
    pieces = _PIECES
    for item in match:
        piece = pieces.get(item) or _piece(item)
        if piece.__class__ is bytes:
            tlvs.append(piece)
            continue
        x, value, mask = piece
        if xregs is None:
            xregs = {}
        v0, m0 = xregs.get(x, (0, 0))
        xregs[x] = (v0 | value, m0 | mask)
    if xregs:
        for x, (value, mask) in sorted(xregs.items()):
            if mask == 0xFFFFFFFFFFFFFFFF:
                tlvs.append(struct.pack("!HBBQ", XREG_CLASS, x << 1, 8, value))
            else:
                tlvs.append(struct.pack("!HBBQQ", XREG_CLASS, x << 1 | 1, 16, value, mask))
    return tlvs


def encode_match(match):
    oxms = b"".join(match_tlvs(match))
    return _pad8(struct.pack("!HH", 1, 4 + len(oxms)) + oxms)


def match_key_of(match):
    """The canonical key of a match: the same as decode gives for the switch's
    copy (its TLVs in sorted order, as one bytes: TLVs delimit themselves)."""
    return b"".join(sorted(match_tlvs(match)))


_ACTIONS = {}           # action -> its bytes
MAX_ACTIONS = 1 << 16   # then the cache starts again


def encode_action(action):
    """An action's bytes, cached by the action (which its flows hold): many
    flows do alike (a tunnel's output, a group's conjunction clause)."""
    data = _ACTIONS.get(action)
    if data is None:
        data = _encode_action(action)
        if len(_ACTIONS) >= MAX_ACTIONS:
            _ACTIONS.clear()
        _ACTIONS[action] = data
    return data


def _encode_action(action):
    kind = action[0]
    if kind == "output":
        return struct.pack("!HHIH6x", 0, 16, action[1], 0xFFFF)
    if kind == "set_field":
        _, field, value, mask = action
        tlv = oxm_tlv(field, value, mask)
        return _pad8(struct.pack("!HH", 25, (4 + len(tlv) + 7) // 8 * 8) + tlv)
    if kind == "resubmit":
        return struct.pack("!HHIHHB3x", 0xFFFF, 16, NX_VENDOR, NXAST_RESUBMIT_TABLE, OFPP_IN_PORT,
                           pipeline.table_id(action[1]))
    if kind == "ct":
        _, commit, zone, table, mark, nat = action
        if isinstance(zone, str):  # the low 16 bits of a register
            cls, num, _w = OXM[zone]
            zone_src = (cls << 16) | (num << 9) | 4
            zone_val = 15  # ofs 0, n_bits 16 -> (ofs << 6) | (n_bits - 1)
        else:
            zone_src, zone_val = 0, zone or 0
        recirc = 0xFF if table is None else pipeline.table_id(table)
        if isinstance(mark, str):  # a register's value
            nested = encode_action(("move", mark, "ct_mark"))
        elif mark is not None:
            nested = encode_action(("set_field", "ct_mark", mark, None))
        else:
            nested = b""
        if nat is not None:
            nested += _encode_nat(nat)
        return struct.pack("!HHIHHIHB3xH", 0xFFFF, 24 + len(nested), NX_VENDOR, NXAST_CT,
                           NX_CT_F_COMMIT if commit else 0, zone_src, zone_val, recirc, 0) + nested
    if kind == "move":
        _, src, dst = action
        n_bits = OXM[src][2] * 8
        # OpenFlow 1.5 copy_field (OVS takes NXAST_REG_MOVE only up to 1.4)
        return struct.pack("!HHHHH2xII4x", OFPAT_COPY_FIELD, 24, n_bits, 0, 0, nxm_header(src), nxm_header(dst))
    if kind == "output_reg":
        n_bits = OXM[action[1]][2] * 8
        return struct.pack("!HHIHHIH6x", 0xFFFF, 24, NX_VENDOR, NXAST_OUTPUT_REG, n_bits - 1,
                           nxm_header(action[1]), 0)
    if kind == "group":
        return struct.pack("!HHI", 22, 8, action[1])
    if kind == "conjunction":
        _, conj_id, clause, n_clauses = action
        return struct.pack("!HHIHBBI", 0xFFFF, 16, NX_VENDOR, NXAST_CONJUNCTION, clause - 1,
                           n_clauses, conj_id)
    if kind == "ct_clear":
        return struct.pack("!HHIH6x", 0xFFFF, 16, NX_VENDOR, NXAST_CT_CLEAR)
    if kind == "meter":
        return struct.pack("!HHI", 29, 8, action[1])
    if kind == "controller":
        return struct.pack("!HHIH6x", 0, 16, OFPP_CONTROLLER, 0xFFFF)
    if kind == "clone":
        nested = b"".join(encode_action(a) for a in action[1])
        return struct.pack("!HHIH6x", 0xFFFF, 16 + len(nested), NX_VENDOR, NXAST_CLONE) + nested
    raise EncodeError("unknown action %r" % (action,))


NXAST_NAT = 36
NX_NAT_F_SRC, NX_NAT_F_DST = 1, 2
NX_NAT_RANGE_IPV4_MIN, NX_NAT_RANGE_IPV6_MIN, NX_NAT_RANGE_PROTO_MIN = 1, 4, 16


def _encode_nat(nat):
    """NXAST_NAT: () re-applies the connection's NAT; ("dst"|"src", ip, port) sets it."""
    flags = present = 0
    ranges = b""
    if nat:
        kind, ip, port = nat
        flags = NX_NAT_F_DST if kind == "dst" else NX_NAT_F_SRC
        addr = ipaddress.ip_address(ip)
        present |= NX_NAT_RANGE_IPV4_MIN if addr.version == 4 else NX_NAT_RANGE_IPV6_MIN
        ranges += addr.packed
        if port:
            present |= NX_NAT_RANGE_PROTO_MIN
            ranges += struct.pack("!H", port)
    body = struct.pack("!HHIH2xHH", 0xFFFF, 0, NX_VENDOR, NXAST_NAT, flags, present) + ranges
    body = _pad8(body)
    return body[:2] + struct.pack("!H", len(body)) + body[4:]


OFPT_GROUP_MOD = 15
OFPGT_SELECT = 1
OFPGC_ADD, OFPGC_MODIFY, OFPGC_DELETE, OFPGC_INSERT_BUCKET = 0, 1, 2, 3
OFPG_BUCKET_ALL, OFPG_BUCKET_LAST = 0xFFFFFFFF, 0xFFFFFFFE
MAX_GROUP_MOD = 60000  # bytes of buckets per group mod: a message is at most 64 KiB
NTR_VENDOR = 0x0000154D


def _selection_method(fields):
    oxms = b""
    for field in fields:
        cls, num, width = OXM[field]
        oxms += struct.pack("!HBB", cls, num << 1, width) + b"\xff" * width
    body = struct.pack("!HHII4x16sQ", 0xFFFF, 40 + len(oxms), NTR_VENDOR, 1, b"hash", 0) + oxms
    return _pad8(body)


@functools.lru_cache(maxsize=1 << 16)
def encode_bucket(bucket):
    acts = b"".join(encode_action(a) for a in bucket.actions)
    prop = struct.pack("!HHH2x", 0, 8, bucket.weight)
    return struct.pack("!HHI", 8 + len(acts) + len(prop), len(acts), bucket.bucket_id) + acts + prop


def encode_group_mod(group, command=OFPGC_ADD, xid=0, buckets=None, bucket_id=OFPG_BUCKET_ALL):
    """OFPT_GROUP_MOD (OpenFlow 1.5) of a select group hashing ``group.fields``
    (``buckets``: the buckets to send, default all of the group's)."""
    data = b""
    if command != OFPGC_DELETE:
        data = b"".join(encode_bucket(b) for b in (group.buckets if buckets is None else buckets))
    props = _selection_method(group.fields) if command in (OFPGC_ADD, OFPGC_MODIFY) else b""
    body = struct.pack("!HBxIH2xI", command, OFPGT_SELECT, group.group_id, len(data), bucket_id)
    body += data + props
    return _header(OFPT_GROUP_MOD, 8 + len(body), xid) + body


def _chunks(buckets):
    chunk, size = [], 0
    for bucket in buckets:
        n = len(encode_bucket(bucket))
        if chunk and size + n > MAX_GROUP_MOD:
            yield chunk
            chunk, size = [], 0
        chunk.append(bucket)
        size += n
    yield chunk


def group_install(group, command=OFPGC_ADD):
    """Messages that add (or replace, ``OFPGC_MODIFY``) ``group`` whole, however
    many buckets it has: the first message with what fits, the rest inserted
    at the end (send them in one bundle: the switch applies them together)."""
    chunks = list(_chunks(group.buckets))
    msgs = [encode_group_mod(group, command, buckets=chunks[0])]
    for chunk in chunks[1:]:
        msgs.append(encode_group_mod(group, OFPGC_INSERT_BUCKET, buckets=chunk, bucket_id=OFPG_BUCKET_LAST))
    return msgs


def group_change(old, new):
    """Messages that turn the switch's ``old`` group into ``new``: only the
    added buckets when nothing else changed (a member joins), else the whole
    group again (OVS 3.1 refuses OpenFlow 1.5 bucket removals by id)."""
    olds = set(old.buckets)
    if old.fields == new.fields and olds <= set(new.buckets):
        added = [b for b in new.buckets if b not in olds]
        return [encode_group_mod(new, OFPGC_INSERT_BUCKET, buckets=chunk, bucket_id=OFPG_BUCKET_LAST)
                for chunk in _chunks(added)] if added else []
    return group_install(new, OFPGC_MODIFY)


def after_change(old, new):
    """The group as the switch holds it after group_change(old, new)."""
    olds = set(old.buckets)
    if old.fields == new.fields and olds <= set(new.buckets):
        return new._replace(buckets=old.buckets + tuple(b for b in new.buckets if b not in olds))
    return new


def group_stats_request(xid):
    body = struct.pack("!HH4xI4x", 6, 0, 0xFFFFFFFC)  # OFPMP_GROUP_STATS, all groups
    return _header(OFPT_MULTIPART_REQUEST, 8 + len(body), xid) + body


def decode_group_stats_reply(msg):
    """{group id: (packets, bytes, [(packets, bytes) per bucket, in the switch's order])}."""
    out, pos = {}, 16
    while pos + 40 <= len(msg):
        length, gid = struct.unpack_from("!H2xI", msg, pos)
        packets, nbytes = struct.unpack_from("!QQ", msg, pos + 16)
        buckets = [struct.unpack_from("!QQ", msg, at) for at in range(pos + 40, pos + length, 16)]
        out[gid] = (packets, nbytes, buckets)
        if length == 0:
            break
        pos += length
    return out


OFPT_PACKET_OUT = 13
OFPP_CONTROLLER_IN = 0xFFFFFFFD


def packet_out(frame, actions, xid=0):
    """OFPT_PACKET_OUT (OpenFlow 1.5) of ``frame`` with ``actions``."""
    acts = b"".join(encode_action(a) for a in actions)
    match = _pad8(struct.pack("!HH", 1, 12) + struct.pack("!HBBI", 0x8000, 0, 4, OFPP_CONTROLLER_IN))
    body = struct.pack("!IH2x", NO_BUFFER, len(acts)) + match + acts + frame
    return _header(OFPT_PACKET_OUT, 8 + len(body), xid) + body


def group_desc_request(xid):
    body = struct.pack("!HH4xI4x", 7, 0, 0xFFFFFFFC)  # OFPMP_GROUP_DESC, all groups
    return _header(OFPT_MULTIPART_REQUEST, 8 + len(body), xid) + body


@dataclasses.dataclass(frozen=True)
class GroupDesc:
    """A group as a switch describes it, compared without its buckets' order:
    a select group's order chooses nothing (a bucket is picked by its id and
    weight), and a switch keeps inserted buckets where they were inserted.
    ``order`` (bucket ids as the switch holds them) is what its bucket
    counters follow."""
    type: int
    buckets: tuple            # each bucket's bytes, sorted
    properties: bytes
    order: tuple = dataclasses.field(default=(), compare=False)


def split_buckets(data):
    """Each bucket's bytes, in order, of a bucket array."""
    buckets, pos = [], 0
    while pos + 8 <= len(data):
        length = struct.unpack_from("!H", data, pos)[0]
        if length == 0:
            break
        buckets.append(bytes(data[pos:pos + length]))
        pos += length
    return buckets


def _group_desc(gtype, body):
    """The GroupDesc of a group's body (bucket_array_len, 6 pad bytes, buckets, properties)."""
    end = 8 + struct.unpack_from("!H", body)[0]
    buckets = split_buckets(body[8:end])
    order = tuple(struct.unpack_from("!I", b, 4)[0] for b in buckets)
    return GroupDesc(gtype, tuple(sorted(buckets)), bytes(body[end:]), order)


def decode_group_desc_reply(msg):
    """{group id: GroupDesc} of a group-desc reply: enough to tell whether a
    switch's group equals a desired one (group_desc_of)."""
    out, pos = {}, 16
    while pos + 16 <= len(msg):
        length, gtype, gid = struct.unpack_from("!HBxI", msg, pos)
        out[gid] = _group_desc(gtype, msg[pos + 8:pos + length])
        if length == 0:
            break
        pos += length
    return out


def group_desc_of(group):
    """What decode_group_desc_reply gives for ``group`` once a switch has it."""
    mod = encode_group_mod(group)
    return _group_desc(OFPGT_SELECT, mod[16:18] + b"\0" * 6 + mod[24:])


def in_switch_order(group, desc):
    """``group`` with its buckets in the order the switch (``desc``) holds them."""
    rank = {bid: i for i, bid in enumerate(desc.order)}
    return group._replace(buckets=tuple(sorted(group.buckets, key=lambda b: rank.get(b.bucket_id, len(rank)))))


def encode_instructions(flow):
    out = b""
    if flow.actions:
        acts = b"".join(encode_action(a) for a in flow.actions)
        out += struct.pack("!HH4x", 4, 8 + len(acts)) + acts
    if flow.metadata is not None:
        out += struct.pack("!HH4xQQ", 2, 24, flow.metadata, 0xFFFFFFFFFFFFFFFF)
    if flow.goto is not None:
        out += struct.pack("!HHB3x", 1, 8, pipeline.table_id(flow.goto))
    return out


_FLOW_MOD_HEAD = struct.Struct("!BBHIQQBBHHHIIIHH")


def encode_flow_mod(flow, command, xid=0):
    """OFPT_FLOW_MOD bytes for ``flow``. Not cached: a flow_mod is sent once
    (a full sync sends a switch's whole table once, a change its new flows
    once); a cache of the last 32,768 kept 8 MiB that nothing asked for
    again. What repeats across flows (match items, actions) is cached."""
    body = encode_match(flow.match)
    if command != DELETE_STRICT:
        body += encode_instructions(flow)
    return _FLOW_MOD_HEAD.pack(VERSION, OFPT_FLOW_MOD, _FLOW_MOD_HEAD.size + len(body), xid, flow.cookie,
                               0xFFFFFFFFFFFFFFFF if command == DELETE_STRICT else 0,
                               pipeline.table_id(flow.table), command, 0, 0, flow.priority,
                               NO_BUFFER, ANY, ANY, 0, 0) + body


class FlowMod(NamedTuple):
    """A flow_mod of ``flow`` not encoded yet (``command``: ADD or
    DELETE_STRICT). A change to a switch is a list of these: each is encoded
    when it is sent (``bundle_add``), so a change of 100,000 flows is never
    held encoded all at once, and its encoding goes on while the switch takes
    in what was sent before."""
    flow: object
    command: int


def message_bytes(msg):
    """A message's bytes: ``msg`` itself, or a FlowMod encoded."""
    return encode_flow_mod(msg.flow, msg.command) if msg.__class__ is FlowMod else msg


def encode_delete_strict_raw(table_id, priority, raw_match):
    """Delete exactly the flow a switch reported (its match bytes as they came),
    if its cookie is still in dvn's space: should another app have put a flow
    of its own at that identity since, it stays."""
    body = raw_match
    return _FLOW_MOD_HEAD.pack(VERSION, OFPT_FLOW_MOD, _FLOW_MOD_HEAD.size + len(body), 0,
                               DVN_COOKIE, DVN_COOKIE_MASK,
                               table_id, DELETE_STRICT, 0, 0, priority, NO_BUFFER, ANY, ANY,
                               0, 0) + body


def wire_key(flow):
    """(table id, priority, match key): a flow's identity as a switch reports it."""
    return (pipeline.table_id(flow.table), flow.priority, match_key_of(flow.match))


def _header(msg_type, length, xid):
    return struct.pack("!BBHI", VERSION, msg_type, length, xid)


def meter_mod(meter_id, rate_pps, burst, xid, command=0):
    """Add (0) or modify (1) a meter that drops packets over ``rate_pps``."""
    band = struct.pack("!HHII4x", 1, 16, rate_pps, burst)
    body = struct.pack("!HHI", command, 0x2 | 0x4, meter_id) + band  # PKTPS | BURST
    return _header(OFPT_METER_MOD, 8 + len(body), xid) + body


def packet_in_cookie(msg):
    """The cookie of an OF1.5 packet-in: its flow's."""
    return struct.unpack_from("!Q", msg, 16)[0]


def decode_packet_in(msg):
    """(cookie, {field: value} of the packet's metadata, frame bytes) of an OF1.5 packet-in."""
    cookie = packet_in_cookie(msg)
    _mtype, mlen = struct.unpack_from("!HH", msg, 24)
    fields = {}
    for tlv in _tlvs(msg[28:24 + mlen]):
        cls, fld, length = struct.unpack_from("!HBB", tlv)
        num = fld >> 1
        if cls == 0x8000 and num == 0:
            fields["in_port"], = struct.unpack_from("!I", tlv, 4)
        elif cls == XREG_CLASS and length >= 8:
            value, = struct.unpack_from("!Q", tlv, 4)
            fields["reg%d" % (2 * num)] = value >> 32
            fields["reg%d" % (2 * num + 1)] = value & 0xFFFFFFFF
        elif cls == 0x0001 and num < 8 and length >= 4:
            fields["reg%d" % num], = struct.unpack_from("!I", tlv, 4)
    data_at = 24 + (mlen + 7) // 8 * 8 + 2
    return cookie, fields, bytes(msg[data_at:])


NXT_TLV_TABLE_MOD, NXT_TLV_TABLE_REQUEST = 24, 25
NXTTMC_ADD = 0


def _nicira(subtype, body, xid):
    return _header(OFPT_EXPERIMENTER, 16 + len(body), xid) + struct.pack("!II", NX_VENDOR, subtype) + body


def tlv_table_request(xid):
    """Ask for the switch's GENEVE TLV map (NXT_TLV_TABLE_REQUEST)."""
    return _nicira(NXT_TLV_TABLE_REQUEST, b"", xid)


def decode_tlv_table_reply(msg):
    """[(class, type, length, index)] of an NXT_TLV_TABLE_REPLY."""
    out = []
    for pos in range(32, len(msg) - 7, 8):
        opt_class, opt_type, length, index = struct.unpack_from("!HBBH", msg, pos)
        out.append((opt_class, opt_type, length, index))
    return out


def tlv_table_add(mappings, xid):
    """Map GENEVE options to tun_metadata fields: [(class, type, length, index)]."""
    body = struct.pack("!H6x", NXTTMC_ADD) + b"".join(struct.pack("!HBBH2x", *m) for m in mappings)
    return _nicira(NXT_TLV_TABLE_MOD, body, xid)


def set_async_none(xid):
    """Ask for no asynchronous messages on this connection (OFPT_SET_ASYNC with
    every mask 0: no packet-ins, port status, flow removals, role or table
    status, forwarded requests, for either role)."""
    body = b"".join(struct.pack("!HHI", prop, 8, 0) for prop in range(12))
    return _header(OFPT_SET_ASYNC, 8 + len(body), xid) + body


def barrier_request(xid):
    return _header(OFPT_BARRIER_REQUEST, 8, xid)


def _bundle_ctrl(bundle_id, ctrl_type, xid):
    return _header(OFPT_BUNDLE_CONTROL, 16, xid) + struct.pack("!IHH", bundle_id, ctrl_type, BUNDLE_FLAGS)


def bundle_open(bundle_id, xid):
    return _bundle_ctrl(bundle_id, BUNDLE_OPEN, xid)


def bundle_commit(bundle_id, xid):
    return _bundle_ctrl(bundle_id, BUNDLE_COMMIT, xid)


def bundle_discard(bundle_id, xid):
    return _bundle_ctrl(bundle_id, BUNDLE_DISCARD, xid)


def with_xid(msg, xid):
    """A message (bytes, or a FlowMod: encoded now) with its xid patched to ``xid``."""
    if msg.__class__ is FlowMod:
        return encode_flow_mod(msg.flow, msg.command, xid)
    return msg[:4] + xid.to_bytes(4, "big") + msg[8:]


_BUNDLE_ADD_HEAD = struct.Struct("!BBHIIHH")


def bundle_add(bundle_id, inner, xid):
    """Wrap ``inner`` (bytes, or a FlowMod: encoded now), its xid patched to ``xid``, as OVS requires."""
    inner = with_xid(inner, xid)
    return _BUNDLE_ADD_HEAD.pack(VERSION, OFPT_BUNDLE_ADD_MESSAGE, 16 + len(inner), xid, bundle_id, 0,
                                 BUNDLE_FLAGS) + inner


def flow_desc_request(xid, cookie=0, cookie_mask=0, table_id=OFPTT_ALL):
    """Read every flow, or those whose cookie matches ``cookie``/``cookie_mask``
    (of one table, if given)."""
    body = struct.pack("!HH4xB3xII4xQQ", OFPMP_FLOW_DESC, 0, table_id, ANY, ANY, cookie, cookie_mask)
    body += struct.pack("!HH4x", 1, 4)  # empty OXM match
    return _header(OFPT_MULTIPART_REQUEST, 8 + len(body), xid) + body


OFPMP_AGGREGATE_STATS = 2


def aggregate_request(xid, cookie=0, cookie_mask=0):
    """Count the flows whose cookie matches (OFPMP_AGGREGATE_STATS)."""
    body = struct.pack("!HH4xB3xII4xQQ", OFPMP_AGGREGATE_STATS, 0, OFPTT_ALL, ANY, ANY, cookie, cookie_mask)
    body += struct.pack("!HH4x", 1, 4)  # empty OXM match
    return _header(OFPT_MULTIPART_REQUEST, 8 + len(body), xid) + body


def decode_aggregate_reply(msg):
    """The flow count of an OFPMP_AGGREGATE_STATS reply (OpenFlow 1.5: OXS fields)."""
    _res, slen = struct.unpack_from("!HH", msg, 16)
    for tlv in _tlvs(msg[20:16 + slen]):
        cls, fld = struct.unpack_from("!HB", tlv)
        if cls == 0x8002 and fld >> 1 == 3:   # OXS flow_count
            return struct.unpack_from("!I", tlv, 4)[0]
    raise ValueError("an aggregate reply without a flow count")


class FlowDesc(NamedTuple):
    table_id: int
    priority: int
    cookie: int
    match_key: bytes
    raw_match: bytes
    duration_sec: int
    packets: int = 0
    bytes: int = 0


def _tlvs(oxms):
    out, i = [], 0
    while i + 4 <= len(oxms):
        length = oxms[i + 3]
        out.append(bytes(oxms[i:i + 4 + length]))
        i += 4 + length
    return out



def field_of(match_key, field):
    """The value a switch flow's match (FlowDesc.match_key) pins ``field`` to
    (exactly, with no mask), or None."""
    cls, num, width = OXM[field]
    header = struct.pack("!HBB", cls, num << 1, width)   # no mask
    for tlv in _tlvs(match_key):
        if tlv[:4] == header:
            return int.from_bytes(tlv[4:], "big")
    return None


def in_port_of(match_key):
    """The in_port a switch flow's match (FlowDesc.match_key) pins, or None."""
    return field_of(match_key, "in_port")


def decode_flow_desc_reply(msg):
    """The flows of one OFPMP_FLOW_DESC reply message (header included)."""
    found = []
    pos = 16
    while pos + 24 <= len(msg):
        (length,) = struct.unpack_from("!H", msg, pos)
        table_id = msg[pos + 4]
        priority, = struct.unpack_from("!H", msg, pos + 6)
        cookie, = struct.unpack_from("!Q", msg, pos + 16)
        mtype, mlen = struct.unpack_from("!HH", msg, pos + 24)
        match_end = pos + 24 + mlen
        raw_match = bytes(msg[pos + 24:pos + 24 + (mlen + 7) // 8 * 8])
        oxms = msg[pos + 28:match_end]
        stats = pos + 24 + (mlen + 7) // 8 * 8
        duration = packets = nbytes = 0
        _res, slen = struct.unpack_from("!HH", msg, stats)
        for tlv in _tlvs(msg[stats + 4:stats + slen]):
            cls, fld = struct.unpack_from("!HB", tlv)
            if cls == 0x8002:  # OXS: duration 0, packet_count 4, byte_count 5
                if fld >> 1 == 0:
                    duration = struct.unpack_from("!I", tlv, 4)[0]
                elif fld >> 1 == 4:
                    packets = struct.unpack_from("!Q", tlv, 4)[0]
                elif fld >> 1 == 5:
                    nbytes = struct.unpack_from("!Q", tlv, 4)[0]
        found.append(FlowDesc(table_id, priority, cookie, b"".join(sorted(_tlvs(oxms))), raw_match, duration,
                              packets, nbytes))
        if length == 0:
            break
        pos += length
    return found


def describe_desc(desc):
    return "table %d priority %d cookie %#x (on the switch, not desired)" % (
        desc.table_id, desc.priority, desc.cookie)
