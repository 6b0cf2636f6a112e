"""A packet's walk through a compiled flow set: which flow matches in each
table, what the actions do, where copies of the packet go. Pure; for tests.

The walk follows OpenFlow as OVS does for the fields and actions dvn uses:
the highest-priority matching flow of a table wins, `set_field` (with mask)
changes the packet's registers and tunnel id, `resubmit` runs a table and
comes back, `write_metadata` and `goto_table` apply after the actions, and an
output to the port the packet came in on is dropped.
"""

import ipaddress

from flows import pipeline
from flows.flow import CT_DNAT, CT_SNAT, FIELD_SPECS, IN_PORT


def _matches(flow, pkt):
    for field, value, mask in flow.match:
        have = pkt.get(field, 0)
        if field in ("eth_dst", "eth_src"):
            if mask is None:
                if have != value:
                    return False
            else:
                hb = bytes(int(x, 16) for x in have.split(":"))
                vb = bytes(int(x, 16) for x in value.split(":"))
                mb = bytes(int(x, 16) for x in mask.split(":"))
                if any((h & m) != (v & m) for h, v, m in zip(hb, vb, mb)):
                    return False
        elif FIELD_SPECS[field][1] in ("ipv4", "ipv6"):
            if have == 0:
                return False  # the packet has no such field
            h = int(ipaddress.ip_address(have))
            v = int(ipaddress.ip_address(value))
            m = int(ipaddress.ip_address(mask)) if mask is not None else (1 << FIELD_SPECS[field][0]) - 1
            if h & m != v:
                return False
        elif mask is None:
            if have != value:
                return False
        elif have & mask != value:
            return False
    return True


def _lookup(index, table, pkt):
    """The flow that handles ``pkt``, with OpenFlow's conjunctive matches: a
    conjunction whose every clause has a matching flow (at one priority) makes
    its conj_id flow match."""
    clauses = {}
    best = None
    plain = []
    for flow in index.get(table, ()):
        conj = [a for a in flow.actions if a[0] == "conjunction"]
        if conj:
            if _matches(flow, pkt):
                for _, cid, clause, n in conj:
                    clauses.setdefault((cid, flow.priority), (n, set()))[1].add(clause)
        else:
            plain.append(flow)
    done = {cid for (cid, _prio), (n, seen) in clauses.items() if len(seen) == n}
    for flow in plain:
        items = dict((f, v) for f, v, _m in flow.match)
        if "conj_id" in items:
            if items["conj_id"] not in done:
                continue
            probe = dict(pkt, conj_id=items["conj_id"])
        else:
            probe = pkt
        if (best is None or flow.priority > best.priority) and _matches(flow, probe):
            best = flow
    return best


def walk(flowset, packet, max_depth=64, conntrack=None, start=None, groups=None, pick=None, trace=None):
    """Outputs of ``packet`` (a dict of match fields, in_port required):
    a list of (ofport, tun_id at the output). ``conntrack(zone, packet)``
    gives the ct_state bits a ct() action finds (default: a new connection);
    commits are listed in ``packet["commits"]`` after the walk. ``groups``
    ({group id: Group}) are run with the bucket ``pick(group)`` chooses (the
    first by default); a bucket's NAT to a destination is applied.

    ``trace`` (a list) gets the walk's steps, in order: ("flow", table,
    flow) for the flow that handled the packet in a table, ("miss", table)
    where none did, ("group", group id, bucket) and ("output", ofport, the
    packet's fields then)."""
    note = trace.append if trace is not None else (lambda step: None)
    index = {}
    for flow in flowset:
        index.setdefault(flow.table, []).append(flow)
    pkt = dict(packet)
    outputs = []

    def run(table, depth):
        if depth > max_depth:
            raise RecursionError("the walk does not end")
        flow = _lookup(index, table, pkt)
        if flow is None:
            note(("miss", table))
            return
        note(("flow", table, flow))
        if not apply(flow.actions, depth, flow.cookie):
            return
        if flow.metadata is not None:
            pkt["metadata"] = flow.metadata
        if flow.goto is not None:
            if pipeline.table_id(flow.goto) <= pipeline.table_id(table):
                raise pipeline.PipelineViolation("goto backwards")
            run(flow.goto, depth + 1)

    def out(port):
        outputs.append((port, pkt.get("tun_id")))
        note(("output", port, dict(pkt)))

    def apply(actions, depth, cookie):
        """Run ``actions``; False if the packet was recirculated (the rest is done)."""
        for action in actions:
            kind = action[0]
            if kind == "output":
                if action[1] == IN_PORT:
                    out(pkt["in_port"])
                elif action[1] != pkt["in_port"]:
                    out(action[1])
            elif kind == "output_reg":
                port = pkt.get(action[1], 0)
                if port and port != pkt["in_port"]:
                    out(port)
            elif kind == "move":
                pkt[action[2]] = pkt.get(action[1], 0)
            elif kind == "group":
                grp = (groups or {}).get(action[1])
                if grp is None or not grp.buckets:
                    return False
                bucket = pick(grp) if pick else grp.buckets[0]
                note(("group", action[1], bucket))
                return apply(bucket.actions, depth, cookie)
            elif kind == "set_field":
                _, field, value, mask = action
                field = "in_port" if field == "nx_in_port" else field
                if mask is None:
                    pkt[field] = value
                else:
                    pkt[field] = (pkt.get(field, 0) & ~mask) | value
            elif kind == "resubmit":
                run(action[1], depth + 1)
            elif kind == "clone":
                if ("controller",) in action[1]:
                    packet.setdefault("logged", []).append(cookie)
            elif kind == "controller":
                packet.setdefault("logged", []).append(cookie)
            elif kind == "meter":
                pass  # the rate is the switch's business
            elif kind == "ct_clear":
                pkt["ct_state"] = 0
            elif kind == "ct":
                _, commit, zone, table_next, mark, nat = action
                zone_id = pkt.get(zone, 0) & 0xFFFF if isinstance(zone, str) else (zone or 0)
                if commit:
                    if isinstance(mark, str):
                        mark = pkt.get(mark, 0)
                    packet.setdefault("commits", []).append((zone_id, mark))
                if table_next is not None:
                    state = conntrack(zone_id, pkt) if conntrack else 0x21  # +trk+new
                    if nat:
                        kind_, ip, port = nat
                        side = "dst" if kind_ == "dst" else "src"
                        if side == "dst":   # the connection's original destination
                            pkt["ct_nw_dst"] = pkt.get("ipv4_dst")
                        pkt["ipv4_" + side] = ip
                        if port:
                            proto = "tcp_" if pkt.get("ip_proto") == 6 else "udp_"
                            pkt[proto + side] = port
                        state |= CT_DNAT if kind_ == "dst" else CT_SNAT
                    pkt["ct_state"] = state | 0x20
                    pkt["ct_zone"] = zone_id
                    run(table_next, depth + 1)
                    return False
        return True

    run(start or pipeline.TABLES[0].name, 0)
    return outputs
