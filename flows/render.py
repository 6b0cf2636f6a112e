"""ovs-ofctl text of flows, as `ovs-ofctl -O OpenFlow15 dump-flows --no-stats` prints them."""

from flows import pipeline


# The order in which ovs-ofctl prints match fields.
ORDER = ("tun_id", "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "metadata",
         "in_port", "eth_src", "eth_dst", "eth_type")
_RANK = {f: i for i, f in enumerate(ORDER)}


def _num(value):
    return "0x%x" % value if value else "0"


def _match_item(field, value, mask):
    if field in ("eth_dst", "eth_src"):
        name = {"eth_dst": "dl_dst", "eth_src": "dl_src"}[field]
        return "%s=%s" % (name, value) + ("/%s" % mask if mask else "")
    if field == "eth_type":
        return "dl_type=0x%04x" % value
    if field in ("in_port",):
        return "in_port=%d" % value
    if field == "metadata":
        return "metadata=" + _num(value) + ("/%s" % _num(mask) if mask is not None else "")
    if field == "tun_id":
        return "tun_id=" + _num(value) + ("/%s" % _num(mask) if mask is not None else "")
    if mask is not None:
        return "%s=%s/%s" % (field, _num(value), _num(mask))
    return "%s=%s" % (field, _num(value))


def _action(action):
    kind = action[0]
    if kind == "output":
        return "output:%d" % action[1]
    if kind == "set_field":
        _, field, value, mask = action
        text = _num(value) if isinstance(value, int) else value
        if mask is not None:
            text += "/" + _num(mask)
        return "set_field:%s->%s" % (text, field)
    if kind == "resubmit":
        return "resubmit(,%d)" % pipeline.table_id(action[1])
    raise ValueError(action)


def render_flow(flow):
    parts = ["cookie=%s" % _num(flow.cookie)]
    tid = pipeline.table_id(flow.table)
    head = "table=%d, " % tid if tid else ""
    fields = [_match_item(*item) for item in sorted(flow.match, key=lambda i: _RANK[i[0]])]
    parts_match = ["priority=%d" % flow.priority] + fields
    acts = [_action(a) for a in flow.actions]
    if flow.metadata is not None:
        acts.append("write_metadata:%s" % _num(flow.metadata))
    if flow.goto is not None:
        acts.append("goto_table:%d" % pipeline.table_id(flow.goto))
    return "%s, %s%s actions=%s" % (parts[0], head, ",".join(parts_match), ",".join(acts) or "drop")


def render_flowset(flowset):
    """Sorted text of a whole flow set (golden files, docs)."""
    flows = sorted(flowset, key=lambda f: (pipeline.table_id(f.table), -f.priority,
                                           render_flow(f)))
    return "\n".join(render_flow(f) for f in flows) + "\n"
