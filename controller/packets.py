"""The few packets dvn writes itself: TCP segments (health probes, resets),
ICMP and ICMPv6 port unreachable; and the parse of the packets that come
back (TCP and UDP segments, a logged packet's addresses and ports). IPv4
and IPv6 alike, through os-ken's packet library (benchmarks/bench_packet.py
measures it against hand-written struct code: fast enough for packet-ins,
which the switches' meters limit)."""

import ipaddress
import struct
from typing import NamedTuple

from os_ken.lib.packet import ether_types, ethernet, icmp, icmpv6, in_proto, ipv4, ipv6, packet, tcp, udp

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ICMPV6_PORT_UNREACH = 4   # a code of ICMPv6's destination unreachable (os-ken names none)
IPV6_MIN_MTU = 1280   # an ICMPv6 error quotes as much of the packet as fits in it (RFC 4443)


def _ip(src, dst, proto):
    """The IP header from ``src`` to ``dst`` (version from the addresses) and the Ethernet type."""
    if ipaddress.ip_address(src).version == 6:
        return ipv6.ipv6(nxt=proto, hop_limit=64, src=src, dst=dst), ether_types.ETH_TYPE_IPV6
    return ipv4.ipv4(flags=2, ttl=64, proto=proto, src=src, dst=dst), ether_types.ETH_TYPE_IP   # DF


def _frame(eth_src, eth_dst, src, dst, proto, l4, payload=b""):
    header, eth_type = _ip(src, dst, proto)
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=eth_type))
    pkt.add_protocol(header)
    pkt.add_protocol(l4)
    if payload:
        pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def tcp_frame(eth_src, eth_dst, src, sport, dst, dport, seq, ack, flags, payload=b"", window=29200):
    """An Ethernet frame with one TCP segment, over IPv4 or IPv6 (as the addresses are)."""
    segment = tcp.tcp(src_port=sport, dst_port=dport, seq=seq, ack=ack, bits=flags, window_size=window)
    return _frame(eth_src, eth_dst, src, dst, in_proto.IPPROTO_TCP, segment, payload)


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
    ip_packet: bytes   # the IP packet, header first


class _Parsed(NamedTuple):
    eth: ethernet.ethernet
    ip: object           # ipv4.ipv4, ipv6.ipv6, or None: not IP
    proto: int           # the transport protocol (after IPv6's extension headers)
    l4: object           # tcp.tcp, udp.udp, or None
    payload: bytes       # what follows the TCP or UDP header
    ip_packet: bytes


def _parse(frame):
    """A frame's headers, down to TCP or UDP and no further (os-ken's
    Packet would go on and parse what it guesses from the ports, BGP on
    179...); None if the frame is too short for its Ethernet and IP headers."""
    frame = bytes(frame)
    try:
        eth, _next, rest = ethernet.ethernet.parser(frame)
        if eth.ethertype == ether_types.ETH_TYPE_IP:
            ip, _next, rest = ipv4.ipv4.parser(rest)
            proto, ip_packet = ip.proto, frame[len(eth):len(eth) + ip.total_length]
        elif eth.ethertype == ether_types.ETH_TYPE_IPV6:
            ip, _next, _rest = ipv6.ipv6.parser(rest)
            proto = ip.ext_hdrs[-1].nxt if ip.ext_hdrs else ip.nxt
            ip_packet = frame[len(eth):len(eth) + ipv6.ipv6._MIN_LEN + ip.payload_length]
            rest = ip_packet[ipv6.ipv6._MIN_LEN + sum(len(h) for h in ip.ext_hdrs):]
        else:
            return _Parsed(eth, None, 0, None, b"", b"")
    except struct.error:
        return None
    l4, payload = None, b""
    try:
        if proto == in_proto.IPPROTO_TCP:
            l4, _next, payload = tcp.tcp.parser(rest)
        elif proto == in_proto.IPPROTO_UDP:
            l4, _next, payload = udp.udp.parser(rest)
    except struct.error:   # a transport header cut short: the addresses are still good
        l4, payload = None, b""
    return _Parsed(eth, ip, proto, l4, bytes(payload), ip_packet)


def parse(frame):
    """An Ethernet frame carrying a TCP or UDP segment over IPv4 or IPv6, or None."""
    p = _parse(frame)
    if p is None or p.l4 is None:
        return None
    eth, ip, l4 = p.eth, p.ip, p.l4
    if p.proto == in_proto.IPPROTO_TCP:
        return Segment(eth.src, eth.dst, ip.src, ip.dst, p.proto, l4.src_port, l4.dst_port,
                       l4.seq, l4.ack, l4.bits, p.payload, p.ip_packet)
    return Segment(eth.src, eth.dst, ip.src, ip.dst, p.proto, l4.src_port, l4.dst_port, 0, 0, 0,
                   p.payload, p.ip_packet)


def five_tuple(frame):
    """Addresses, protocol and ports of an Ethernet frame (IPv4 or IPv6,
    past its extension headers), as a logged packet's event shows them; a
    frame that is not IP: its Ethernet type only. ValueError if the frame
    is too short for its headers."""
    p = _parse(frame)
    if p is None:
        raise ValueError("a truncated frame (%d bytes)" % len(frame))
    if p.ip is None:
        return {"eth_type": p.eth.ethertype}
    out = {"src": p.ip.src, "dst": p.ip.dst, "protocol": p.proto}
    if p.l4 is not None:
        out["src_port"], out["dst_port"] = p.l4.src_port, p.l4.dst_port
    return out


def reject(frame, eth_src):
    """The answer to a packet no member can take: a TCP reset for a TCP
    segment (not for a reset), an ICMP (ICMPv6) port unreachable for UDP; or None."""
    seg = parse(frame)
    if seg is None:
        return None
    if seg.proto == in_proto.IPPROTO_TCP:
        if seg.flags & TCP_RST:
            return None
        if seg.flags & TCP_ACK:
            return tcp_frame(eth_src, seg.eth_src, seg.dst, seg.dport, seg.src, seg.sport, seg.ack, 0, TCP_RST,
                             window=0)
        length = len(seg.payload) + (1 if seg.flags & TCP_SYN else 0) + (1 if seg.flags & TCP_FIN else 0)
        return tcp_frame(eth_src, seg.eth_src, seg.dst, seg.dport, seg.src, seg.sport, 0,
                         (seg.seq + length) & 0xFFFFFFFF, TCP_RST | TCP_ACK, window=0)
    if ipaddress.ip_address(seg.src).version == 6:
        # 40 (IPv6) + 8 (ICMPv6) bytes of headers before the quote
        quoted = seg.ip_packet[:IPV6_MIN_MTU - 48]
        answer = icmpv6.icmpv6(type_=icmpv6.ICMPV6_DST_UNREACH, code=ICMPV6_PORT_UNREACH,
                               data=b"\0\0\0\0" + quoted)   # 4 bytes unused, then the quote
        return _frame(eth_src, seg.eth_src, seg.dst, seg.src, in_proto.IPPROTO_ICMPV6, answer)
    quoted = seg.ip_packet[:(seg.ip_packet[0] & 0x0F) * 4 + 8]    # the header and 8 bytes (RFC 792)
    answer = icmp.icmp(type_=icmp.ICMP_DEST_UNREACH, code=icmp.ICMP_PORT_UNREACH_CODE,
                       data=icmp.dest_unreach(data=quoted))
    return _frame(eth_src, seg.eth_src, seg.dst, seg.src, in_proto.IPPROTO_ICMP, answer)
