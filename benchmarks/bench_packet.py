"""Packets on the packet-in path: os-ken's packet library against hand-written struct code.

dvn parses every packet-in it gets (a logged rule's packet, a health probe's
answer, a connection to a VIP with no usable member) and builds a few
(probes, resets, ICMP port unreachable). controller/packets.py does both
with os_ken.lib.packet, IPv4 and IPv6 alike. The baseline here is the struct
code it replaced (IPv4 only, and a five-tuple that reads IPv6's next header
without its extension headers). Prints, per approach, how many per second
of: a TCP segment parsed, a logged packet's five-tuple, a TCP SYN built, a
reset built for a SYN.

What it has to keep up with: the switches' meters let at most 1,000
rejects and 5,000 probe answers a second per node come to dvn, and the
firewall log's rate (dvn serve --log-rate, default in controller/serve.py).

Run: .venv/bin/python -m benchmarks.bench_packet [--seconds 0.5]
"""

import argparse
import ipaddress
import struct
import sys
import time

from controller import packets

SYN = dict(eth_src="02:00:00:00:00:01", eth_dst="02:00:00:00:00:02", src="10.0.0.1", sport=40000,
           dst="10.0.0.2", dport=80, seq=12345, ack=0, flags=packets.TCP_SYN)


# ---- the baseline: hand-written struct code (IPv4) -------------------------
def _mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def struct_tcp_frame(eth_src, eth_dst, src, sport, dst, dport, seq, ack, flags, payload=b"", window=29200):
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0) + payload
    pseudo = (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
              + struct.pack("!BBH", 0, 6, len(segment)))
    segment = segment[:16] + struct.pack("!H", _checksum(pseudo + segment)) + segment[18:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, 6, 0,
                         ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    ip = header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + segment
    return _mac(eth_dst) + _mac(eth_src) + b"\x08\x00" + ip


def struct_parse(frame):
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
        return packets.Segment(macs[0], macs[1], src, dst, 6, sport, dport, seq, ack, flags,
                               l4[(off >> 4) * 4:], ip)
    return None


def struct_five_tuple(frame):
    eth_type, = struct.unpack_from("!H", frame, 12)
    if eth_type != 0x0800:
        return {"eth_type": eth_type}
    ihl = (frame[14] & 0x0F) * 4
    proto, src, dst, l4 = frame[23], frame[26:30], frame[30:34], 14 + ihl
    out = {"src": str(ipaddress.ip_address(src)), "dst": str(ipaddress.ip_address(dst)), "protocol": proto}
    if proto in (6, 17) and len(frame) >= l4 + 4:
        out["src_port"], out["dst_port"] = struct.unpack_from("!HH", frame, l4)
    return out


def struct_reset(frame, eth_src):
    seg = struct_parse(frame)
    return struct_tcp_frame(eth_src, seg.eth_src, seg.dst, seg.dport, seg.src, seg.sport, 0,
                            (seg.seq + 1) & 0xFFFFFFFF, packets.TCP_RST | packets.TCP_ACK, window=0)


# ---- the measure ------------------------------------------------------------
def _rate(fn, arg, seconds):
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(100):
            fn(arg)
        n += 100
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def run(seconds=0.5):
    """{approach: {operation: per second}}, printed as a table."""
    frame = packets.tcp_frame(**SYN)
    assert struct_parse(frame)[:11] == packets.parse(frame)[:11]   # the same answer, or the race is void
    assert struct_five_tuple(frame) == packets.five_tuple(frame)
    ops = {
        "os-ken": {"parse": (packets.parse, frame), "five-tuple": (packets.five_tuple, frame),
                   "build SYN": (lambda kw: packets.tcp_frame(**kw), SYN),
                   "reset for a SYN": (lambda f: packets.reject(f, "02:00:00:00:00:99"), frame)},
        "struct": {"parse": (struct_parse, frame), "five-tuple": (struct_five_tuple, frame),
                   "build SYN": (lambda kw: struct_tcp_frame(**kw), SYN),
                   "reset for a SYN": (lambda f: struct_reset(f, "02:00:00:00:00:99"), frame)},
    }
    out = {name: {op: _rate(fn, arg, seconds) for op, (fn, arg) in table.items()} for name, table in ops.items()}
    print("%-16s %12s %12s %8s" % ("per second", "os-ken", "struct", "ratio"))
    for op in ops["os-ken"]:
        a, b = out["os-ken"][op], out["struct"][op]
        print("%-16s %12.0f %12.0f %7.1fx" % (op, a, b, b / a))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time spent on each measure")
    run(ap.parse_args().seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
