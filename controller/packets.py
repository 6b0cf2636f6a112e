"""The few IPv4 packets dvn writes itself: TCP segments (health probes, resets)
and ICMP port unreachable; and the parse of the segments that come back."""

import ipaddress
import struct
from typing import NamedTuple

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src, dst, proto, payload, ttl=64):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl, proto, 0,
                         ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


def tcp_frame(eth_src, eth_dst, src, sport, dst, dport, seq, ack, flags, payload=b"", window=29200):
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0) + payload
    pseudo = (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
              + struct.pack("!BBH", 0, 6, len(segment)))
    segment = segment[:16] + struct.pack("!H", _checksum(pseudo + segment)) + segment[18:]
    return _mac(eth_dst) + _mac(eth_src) + b"\x08\x00" + _ipv4(src, dst, 6, segment)


class Segment(NamedTuple):
    eth_src: str
    eth_dst: str
    src: str
    dst: str
    proto: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    ip_packet: bytes   # the IPv4 packet, header first


def parse(frame):
    """An Ethernet frame carrying IPv4 TCP or UDP, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    total, = struct.unpack_from("!H", frame, 16)
    proto = frame[23]
    ip = frame[14:14 + total]
    src = str(ipaddress.ip_address(frame[26:30]))
    dst = str(ipaddress.ip_address(frame[30:34]))
    l4 = ip[ihl:]
    macs = [":".join("%02x" % b for b in frame[i:i + 6]) for i in (6, 0)]
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", l4)
        return Segment(macs[0], macs[1], src, dst, 6, sport, dport, seq, ack, flags, l4[(off >> 4) * 4:], ip)
    if proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack_from("!HH", l4)
        return Segment(macs[0], macs[1], src, dst, 17, sport, dport, 0, 0, 0, l4[8:], ip)
    return None


def reject(frame, eth_src):
    """The answer to a packet no member can take: a TCP reset for a TCP
    segment (not for a reset), an ICMP port unreachable for UDP; or None."""
    seg = parse(frame)
    if seg is None:
        return None
    if seg.proto == 6:
        if seg.flags & TCP_RST:
            return None
        length = len(seg.payload) + (1 if seg.flags & TCP_SYN else 0) + (1 if seg.flags & TCP_FIN else 0)
        if seg.flags & TCP_ACK:
            return tcp_frame(eth_src, seg.eth_src, seg.dst, seg.dport, seg.src, seg.sport, seg.ack, 0, TCP_RST, window=0)
        return tcp_frame(eth_src, seg.eth_src, seg.dst, seg.dport, seg.src, seg.sport, 0,
                         (seg.seq + length) & 0xFFFFFFFF, TCP_RST | TCP_ACK, window=0)
    quoted = seg.ip_packet[:(seg.ip_packet[0] & 0x0F) * 4 + 8]
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    return _mac(seg.eth_src) + _mac(eth_src) + b"\x08\x00" + _ipv4(seg.dst, seg.src, 1, icmp)
