"""Compile units: what a switch's desired flows are kept and recompiled in
(docs/architecture.md), and the breather that long compiles yield with."""

import time

import eventlet

BASE = "base"
ACL = "acl"
ALL = "*"
LB_UNIT = "lb"     # ("lb", load balancer id): one load balancer on a node
PORT_UNIT = "port"  # ("port", port id): one local port's firewall flows
GROUP_UNIT = "grp"  # ("grp", security group id): one group's rules on a node
BREATHE_S = 0.05   # the longest a compile or an encoding runs before it lets the other green threads in
COMPILE_SLOTS = 2   # switches compiled at once (two: one long compile never holds up every other)
HEAVY_SLOTS = 16    # switches read back, or sent a large change, at once
HEAVY_CHANGE = 1000  # flow and group changes from which a send is large (controller/scheduler.py)


class Breather:
    """Yields to the hub's other green threads (node sessions' echoes, the
    API, other switches) at most every BREATHE_S: a full compile of a node
    with thousands of ports takes seconds, more than an inactivity probe."""

    def __init__(self):
        self.last = time.monotonic()

    def __call__(self):
        now = time.monotonic()
        if now - self.last > BREATHE_S:
            eventlet.sleep(0)
            self.last = time.monotonic()
