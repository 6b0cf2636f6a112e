"""Health checks of load balancer members, without an appliance.

Each probe starts on the member's own node: dvn hands that node's br-int a
TCP SYN from the VIP address (packet-out, straight to the member's port) and
the member's answer comes back to dvn through a metered flow of that node
(flows.lb, PROBE_PORT_BASE and up). So a probe never crosses the underlay,
needs no address or route of its own and no agent on the node, and a member
is probed by exactly one node: the one that hosts it. A TCP monitor wants
the SYN-ACK; an HTTP monitor then sends its GET and reads the status line.
Either way the probe ends with a reset.

``max_retries`` successes in a row bring a member back, ``max_retries_down``
failures in a row take it out; the verdict is written to the store
(Member.operating_status), which every node's group follows. While dvn is
down the last verdicts stay in force on the switches.

The Prober knows the controller only by what it is given: the load
balancers, where a member is plugged in, a way to send a frame out of a
node's port and a way to record a verdict.
"""

import logging
import random
import time

import eventlet

from controller import packets
from flows import lb

LOG = logging.getLogger(__name__)
TICK = 0.05


class _Probe:
    __slots__ = ("key", "system_id", "ofport", "mac", "vmac", "vip", "address", "port", "sport", "isn",
                 "deadline", "monitor", "stage")


class Prober:
    """``balancers()``: the load balancers now ({id: flows.model.LoadBalancer});
    ``target(balancer, member)``: (system id, ofport, MAC, VNI) of the port
    with the member's address, or None while it is not plugged in;
    ``send(system_id, ofport, frame)``: the frame into that node's br-int,
    out of that port (it may raise: the probe then times out);
    ``record(member_id, status)``: a verdict, "ONLINE" or "OFFLINE", to the store."""

    def __init__(self, balancers, target, send, record):
        self.balancers, self.target, self.send, self.record = balancers, target, send, record
        self.runs = {}        # (lb id, member id) -> [successes in a row, failures in a row, next probe at]
        self.pending = {}     # (system id, probe source port) -> _Probe
        self.inflight = set()
        self._port = lb.PROBE_PORT_BASE

    def start(self):
        eventlet.spawn_n(self._loop)

    def _loop(self):
        while True:
            try:
                self.tick(time.monotonic())
            except Exception:
                LOG.exception("health checks: unexpected error")
            eventlet.sleep(TICK)

    def _next_port(self):
        self._port = self._port + 1 if self._port < 0xFFFF else lb.PROBE_PORT_BASE
        return self._port

    def tick(self, now):
        for key, probe in list(self.pending.items()):
            if now > probe.deadline:
                self._done(probe, False, "no answer in %.1f s" % probe.monitor.timeout)
        wanted = set()
        for balancer in list(self.balancers().values()):
            if balancer.monitor is None:
                continue
            for member in balancer.members:
                key = (balancer.id, member.id)
                wanted.add(key)
                run = self.runs.setdefault(key, [0, 0, now + random.uniform(0, balancer.monitor.delay)])
                if not member.admin_up or key in self.inflight or now < run[2]:
                    continue
                target = self.target(balancer, member)
                if target is None:
                    continue
                run[2] = now + balancer.monitor.delay
                self._send_syn(key, balancer, member, target, now)
        for key in set(self.runs) - wanted:
            del self.runs[key]

    def _send_syn(self, key, balancer, member, target, now):
        system_id, ofport, mac, vni = target
        probe = _Probe()
        probe.key, probe.system_id, probe.ofport, probe.mac = key, system_id, ofport, mac
        probe.vmac, probe.vip, probe.address, probe.port = lb.vip_mac(vni), balancer.vip, member.address, member.port
        probe.sport, probe.isn = self._next_port(), random.getrandbits(32)
        probe.deadline, probe.monitor, probe.stage = now + balancer.monitor.timeout, balancer.monitor, "syn"
        old = self.pending.pop((system_id, probe.sport), None)
        if old is not None:
            self.inflight.discard(old.key)
        self.pending[(system_id, probe.sport)] = probe
        self.inflight.add(key)
        self._send(probe, probe.isn, 0, packets.TCP_SYN)

    def _send(self, probe, seq, ack, flags, payload=b""):
        frame = packets.tcp_frame(probe.vmac, probe.mac, probe.vip, probe.sport, probe.address, probe.port,
                                  seq, ack, flags, payload)
        try:
            self.send(probe.system_id, probe.ofport, frame)
        except Exception as exc:  # a switch that went away: the probe times out
            LOG.debug("probe to %s not sent: %s", probe.address, exc)

    def packet_in(self, system_id, frame):
        seg = packets.parse(frame)
        if seg is None or seg.proto != 6:
            return
        probe = self.pending.get((system_id, seg.dport))
        if probe is None or seg.src != probe.address or seg.sport != probe.port:
            return
        if seg.flags & packets.TCP_RST:
            self._done(probe, False, "connection refused")
            return
        if probe.stage == "syn" and seg.flags & packets.TCP_SYN and seg.flags & packets.TCP_ACK:
            if seg.ack != (probe.isn + 1) & 0xFFFFFFFF:
                return
            if probe.monitor.type == "TCP":
                self._send(probe, seg.ack, 0, packets.TCP_RST)
                self._done(probe, True, "connected")
                return
            request = ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: dvn-health\r\n\r\n" % (
                probe.monitor.url_path, probe.vip)).encode()
            probe.stage = "http"
            self._send(probe, seg.ack, (seg.seq + 1) & 0xFFFFFFFF, packets.TCP_ACK | packets.TCP_PSH, request)
            return
        if probe.stage == "http" and seg.payload:
            line = seg.payload.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            self._send(probe, seg.ack, 0, packets.TCP_RST)
            if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
                ok = expected(probe.monitor.expected_codes, int(parts[1]))
                self._done(probe, ok, "HTTP %s" % parts[1])
            else:
                self._done(probe, False, "not an HTTP answer")

    def _done(self, probe, ok, why):
        if self.pending.get((probe.system_id, probe.sport)) is probe:
            del self.pending[(probe.system_id, probe.sport)]
        self.inflight.discard(probe.key)
        run = self.runs.get(probe.key)
        if run is None:
            return
        if ok:
            run[0], run[1] = run[0] + 1, 0
        else:
            run[0], run[1] = 0, run[1] + 1
        balancer = self.balancers().get(probe.key[0])
        member = next((m for m in balancer.members if m.id == probe.key[1]), None) if balancer else None
        if member is None:
            return
        if member.status != "OFFLINE" and run[1] >= probe.monitor.fall:
            self._record(member, "OFFLINE", why)
        elif member.status == "OFFLINE" and run[0] >= probe.monitor.rise:
            self._record(member, "ONLINE", why)

    def _record(self, member, status, why):
        LOG.info("load balancer member %s (%s:%d): %s (%s)", member.id, member.address, member.port, status, why)
        self.record(member.id, status)


def expected(codes, status):
    """Whether ``status`` is among ``codes`` ("200", "200,202", "200-204")."""
    if "-" in codes:
        lo, hi = codes.split("-")
        return int(lo) <= status <= int(hi)
    return status in {int(c) for c in codes.split(",")}
