"""controller/packets.py: the packets dvn builds and parses, IPv4 and IPv6.
Checked against bytes built here by hand (struct), and checksums summed here."""

import ipaddress
import struct

import pytest

from benchmarks import bench_packet
from controller import packets

A, B, DVN = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:99"


def _sum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _l4_checksum_ok(frame):
    """Whether the transport checksum (with its pseudo-header) of a frame's IP packet adds up."""
    if frame[12:14] == b"\x08\x00":
        ihl = (frame[14] & 0x0F) * 4
        total, = struct.unpack_from("!H", frame, 16)
        ip = frame[14:14 + total]
        if _sum(ip[:ihl]) != 0xFFFF:
            return False
        proto, l4 = ip[9], ip[ihl:]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, proto, len(l4)) if proto != 1 else b""
    else:
        plen, = struct.unpack_from("!H", frame, 18)
        ip = frame[14:54 + plen]
        proto, l4 = ip[6], ip[40:]
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(l4), proto)
    return _sum(pseudo + l4) == 0xFFFF


def _ip_header(src, dst, proto, length, hop_by_hop=False):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0, 64, proto, 0, s.packed, d.packed)
    if hop_by_hop:   # a Hop-by-Hop header of 8 bytes (PadN) before the transport
        ext = struct.pack("!BB", proto, 0) + b"\x01\x04\0\0\0\0"
        return b"\x86\xdd" + struct.pack("!IHBB16s16s", 6 << 28, length + 8, 0, 64, s.packed, d.packed) + ext
    return b"\x86\xdd" + struct.pack("!IHBB16s16s", 6 << 28, length, proto, 64, s.packed, d.packed)


def _mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def _udp(src, sport, dst, dport, payload=b"hello", hop_by_hop=False):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return _mac(B) + _mac(A) + _ip_header(src, dst, 17, len(udp), hop_by_hop) + udp


def _tcp(src, sport, dst, dport, flags, payload=b"", seq=1000, ack=0, hop_by_hop=False):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 1000, 0, 0) + payload
    return _mac(B) + _mac(A) + _ip_header(src, dst, 6, len(tcp), hop_by_hop) + tcp


@pytest.mark.parametrize("src,dst", [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")])
def test_a_tcp_frame_reads_back_with_good_checksums(src, dst):
    frame = packets.tcp_frame(A, B, src, 40000, dst, 80, 7, 9, packets.TCP_PSH | packets.TCP_ACK, b"GET / HTTP/1.0")
    seg = packets.parse(frame)
    assert seg[:11] == (A, B, src, dst, 6, 40000, 80, 7, 9, packets.TCP_PSH | packets.TCP_ACK, b"GET / HTTP/1.0")
    assert frame[:6] == _mac(B) and frame[12:14] == (b"\x08\x00" if ":" not in src else b"\x86\xdd")
    assert _l4_checksum_ok(frame)


def test_an_ipv4_tcp_frame_is_what_the_struct_code_wrote():
    kw = dict(eth_src=A, eth_dst=B, src="10.0.0.1", sport=40000, dst="10.0.0.2", dport=80, seq=5, ack=0,
              flags=packets.TCP_SYN)
    ours, theirs = packets.tcp_frame(**kw), bench_packet.struct_tcp_frame(**kw)
    assert ours[:len(theirs)] == theirs and not ours[len(theirs):].strip(b"\0")   # padded to 60 bytes at most


@pytest.mark.parametrize("src,dst,hbh", [("10.0.0.1", "10.0.0.2", False), ("fd00::1", "fd00::2", False),
                                         ("fd00::1", "fd00::2", True)])
def test_udp_and_tcp_segments_are_parsed(src, dst, hbh):
    seg = packets.parse(_udp(src, 5353, dst, 53, b"query", hop_by_hop=hbh))
    assert (seg.src, seg.dst, seg.proto, seg.sport, seg.dport, seg.payload) == (src, dst, 17, 5353, 53, b"query")
    seg = packets.parse(_tcp(src, 1234, dst, 80, packets.TCP_SYN, hop_by_hop=hbh))
    assert (seg.proto, seg.sport, seg.dport, seg.seq, seg.flags) == (6, 1234, 80, 1000, packets.TCP_SYN)


def test_the_parse_stops_at_the_transport():
    # os-ken's Packet would parse port 179 as BGP (and fail on this payload)
    seg = packets.parse(_tcp("10.0.0.1", 179, "10.0.0.2", 40000, packets.TCP_ACK, b"\xff" * 19 + b"garbage"))
    assert seg.payload == b"\xff" * 19 + b"garbage"
    seg = packets.parse(_udp("10.0.0.1", 67, "10.0.0.2", 68, b"\0" * 3))   # DHCP's ports, and zeros
    assert seg.payload == b"\0" * 3


def test_what_is_not_a_segment_is_none():
    arp = _mac(B) + _mac(A) + b"\x08\x06" + b"\0" * 28
    assert packets.parse(arp) is None
    assert packets.parse(_tcp("10.0.0.1", 1, "10.0.0.2", 2, packets.TCP_SYN)[:30]) is None     # cut in the IP header
    icmp = _mac(B) + _mac(A) + _ip_header("10.0.0.1", "10.0.0.2", 1, 8) + b"\x08\0\0\0\0\0\0\0"
    assert packets.parse(icmp) is None


def test_five_tuple():
    assert packets.five_tuple(_tcp("10.0.0.1", 1234, "10.0.0.2", 80, packets.TCP_SYN)) == {
        "src": "10.0.0.1", "dst": "10.0.0.2", "protocol": 6, "src_port": 1234, "dst_port": 80}
    # IPv6 past a Hop-by-Hop header: the struct code this replaced read protocol 0 and no ports here
    assert packets.five_tuple(_udp("fd00::1", 5353, "fd00::2", 53, hop_by_hop=True)) == {
        "src": "fd00::1", "dst": "fd00::2", "protocol": 17, "src_port": 5353, "dst_port": 53}
    icmp = _mac(B) + _mac(A) + _ip_header("10.0.0.1", "10.0.0.2", 1, 8) + b"\x08\0\0\0\0\0\0\0"
    assert packets.five_tuple(icmp) == {"src": "10.0.0.1", "dst": "10.0.0.2", "protocol": 1}
    assert packets.five_tuple(_mac(B) + _mac(A) + b"\x08\x06" + b"\0" * 28) == {"eth_type": 0x0806}
    with pytest.raises(ValueError):
        packets.five_tuple(_tcp("fd00::1", 1, "fd00::2", 2, packets.TCP_SYN)[:40])


@pytest.mark.parametrize("src,dst", [("10.0.0.1", "10.0.0.100"), ("fd00::1", "fd00::100")])
def test_a_syn_gets_a_reset_that_acknowledges_it(src, dst):
    answer = packets.reject(_tcp(src, 40000, dst, 80, packets.TCP_SYN, seq=1000), DVN)
    seg = packets.parse(answer)
    assert (seg.eth_src, seg.eth_dst, seg.src, seg.dst, seg.sport, seg.dport) == (DVN, A, dst, src, 80, 40000)
    assert (seg.flags, seg.seq, seg.ack) == (packets.TCP_RST | packets.TCP_ACK, 0, 1001)
    assert _l4_checksum_ok(answer)


def test_a_segment_with_ack_gets_a_reset_at_its_ack_and_a_reset_gets_nothing():
    seg = packets.parse(packets.reject(_tcp("10.0.0.1", 40000, "10.0.0.100", 80, packets.TCP_ACK | packets.TCP_PSH,
                                            b"data", seq=5, ack=777), DVN))
    assert (seg.flags, seg.seq, seg.ack) == (packets.TCP_RST, 777, 0)
    assert packets.reject(_tcp("10.0.0.1", 40000, "10.0.0.100", 80, packets.TCP_RST), DVN) is None
    assert packets.reject(_mac(B) + _mac(A) + b"\x08\x06" + b"\0" * 28, DVN) is None


def test_udp_gets_icmp_port_unreachable_quoting_the_header_and_8_bytes():
    frame = _udp("10.0.0.1", 5353, "10.0.0.100", 53, b"a long query")
    answer = packets.reject(frame, DVN)
    assert answer[:12] == _mac(A) + _mac(DVN) and answer[12:14] == b"\x08\x00"
    ip = answer[14:]
    assert ip[9] == 1 and ipaddress.ip_address(ip[12:16]) == ipaddress.ip_address("10.0.0.100")
    icmp = ip[20:struct.unpack_from("!H", ip, 2)[0]]
    assert icmp[:2] == b"\x03\x03" and icmp[8:] == frame[14:14 + 28]
    assert _sum(icmp) == 0xFFFF and _sum(ip[:20]) == 0xFFFF


def test_udp_over_ipv6_gets_icmpv6_port_unreachable_quoting_the_packet():
    frame = _udp("fd00::1", 5353, "fd00::100", 53, b"x" * 2000)
    answer = packets.reject(frame, DVN)
    assert answer[12:14] == b"\x86\xdd" and answer[20] == 58
    plen, = struct.unpack_from("!H", answer, 18)
    assert 40 + plen == packets.IPV6_MIN_MTU          # as much as fits in the minimum MTU
    icmp = answer[54:54 + plen]
    assert icmp[:2] == b"\x01\x04" and icmp[8:] == frame[14:14 + plen - 8]
    assert ipaddress.ip_address(answer[22:38]) == ipaddress.ip_address("fd00::100")
    assert _l4_checksum_ok(answer)
