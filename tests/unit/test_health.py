"""The health checker against callbacks: no switch, no store, no clock."""

from controller import packets
from controller.health import Prober, expected
from flows import lb
from flows.model import LoadBalancer, Member, Monitor

VIP, MEMBER = "10.0.0.100", "10.0.0.5"
MEMBER_MAC = "02:00:00:00:00:05"


def _balancer(status="ONLINE", kind="TCP"):
    monitor = Monitor(kind, 1.0, 0.5, 2, 2, "/", "200")
    member = Member("m1", MEMBER, 80, 1, True, status)
    return LoadBalancer("lb1", "t", "net1", VIP, "TCP", 80, 7, (member,), 0, monitor)


class _World:
    def __init__(self, balancer):
        self.lbs = {balancer.id: balancer}
        self.sent, self.verdicts = [], []

    def prober(self):
        return Prober(lambda: self.lbs, lambda b, m: ("hv1", 5, MEMBER_MAC, 42),
                      lambda sid, ofport, frame: self.sent.append((sid, ofport, frame)),
                      lambda member_id, status: self.verdicts.append((member_id, status)))


def _syn_ack(syn, flags=packets.TCP_SYN | packets.TCP_ACK):
    seg = packets.parse(syn)
    return packets.tcp_frame(MEMBER_MAC, seg.eth_src, MEMBER, seg.dport, seg.src, seg.sport,
                             1000, (seg.seq + 1) & 0xFFFFFFFF, flags)


def test_a_probe_is_a_syn_from_the_vip_to_the_members_port():
    world = _World(_balancer())
    prober = world.prober()
    prober.tick(100.0)    # the first probe comes at a random time within the delay
    prober.tick(102.0)
    (sid, ofport, frame), = world.sent
    seg = packets.parse(frame)
    assert (sid, ofport) == ("hv1", 5)
    assert (seg.src, seg.dst, seg.dport, seg.flags) == (VIP, MEMBER, 80, packets.TCP_SYN)
    assert (seg.eth_src, seg.eth_dst) == (lb.vip_mac(42), MEMBER_MAC)


def test_failures_in_a_row_take_a_member_out_and_answers_bring_it_back():
    world = _World(_balancer())
    prober = world.prober()
    now = 100.0
    for _ in range(2):    # no answers: two timeouts
        prober.tick(now)
        now += 1.01
        prober.tick(now)
        now += 1.01
    assert world.verdicts == [("m1", "OFFLINE")]
    world.lbs = {"lb1": _balancer("OFFLINE")}
    for _ in range(2):
        world.sent.clear()
        prober.tick(now)
        now += 1.01
        prober.tick(now)
        syn = world.sent[-1][2]
        prober.packet_in("hv1", _syn_ack(syn))
        assert packets.parse(world.sent[-1][2]).flags == packets.TCP_RST   # the probe ends with a reset
    assert world.verdicts == [("m1", "OFFLINE"), ("m1", "ONLINE")]


def test_a_reset_is_a_failure_and_strangers_are_ignored():
    world = _World(_balancer())
    prober = world.prober()
    prober.tick(100.0)
    prober.tick(102.0)
    syn = world.sent[-1][2]
    prober.packet_in("hv2", _syn_ack(syn))            # another node
    assert prober.pending
    prober.packet_in("hv1", _syn_ack(syn, packets.TCP_RST | packets.TCP_ACK))
    assert not prober.pending and prober.runs[("lb1", "m1")][1] == 1


def test_a_send_that_fails_leaves_the_probe_to_time_out():
    world = _World(_balancer())
    prober = Prober(lambda: world.lbs, lambda b, m: ("hv1", 5, MEMBER_MAC, 42),
                    lambda *_: (_ for _ in ()).throw(OSError("gone")), lambda *_: None)
    prober.tick(100.0)
    prober.tick(102.0)
    assert len(prober.pending) == 1


def test_expected_codes():
    assert expected("200", 200) and not expected("200", 404)
    assert expected("200,202", 202) and expected("200-204", 203) and not expected("200-204", 301)
