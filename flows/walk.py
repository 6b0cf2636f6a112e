"""A packet's walk through a compiled flow set: which flow matches in each
table, what the actions do, where copies of the packet go. Pure; for tests.

The walk follows OpenFlow as OVS does for the fields and actions dvn uses:
the highest-priority matching flow of a table wins, `set_field` (with mask)
changes the packet's registers and tunnel id, `resubmit` runs a table and
comes back, `write_metadata` and `goto_table` apply after the actions, and an
output to the port the packet came in on is dropped.
"""

from flows import pipeline


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
        elif mask is None:
            if have != value:
                return False
        elif have & mask != value:
            return False
    return True


def _lookup(index, table, pkt):
    best = None
    for flow in index.get(table, ()):
        if (best is None or flow.priority > best.priority) and _matches(flow, pkt):
            best = flow
    return best


def walk(flowset, packet, max_depth=64):
    """Outputs of ``packet`` (a dict of match fields, in_port required):
    a list of (ofport, tun_id at the output)."""
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
            return
        for action in flow.actions:
            kind = action[0]
            if kind == "output":
                if action[1] != pkt["in_port"]:
                    outputs.append((action[1], pkt.get("tun_id")))
            elif kind == "set_field":
                _, field, value, mask = action
                if mask is None:
                    pkt[field] = value
                else:
                    pkt[field] = (pkt.get(field, 0) & ~mask) | value
            elif kind == "resubmit":
                run(action[1], depth + 1)
        if flow.metadata is not None:
            pkt["metadata"] = flow.metadata
        if flow.goto is not None:
            if pipeline.table_id(flow.goto) <= pipeline.table_id(table):
                raise pipeline.PipelineViolation("goto backwards")
            run(flow.goto, depth + 1)

    run(pipeline.TABLES[0].name, 0)
    return outputs
