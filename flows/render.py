"""ovs-ofctl text of flows, as `ovs-ofctl -O OpenFlow15 dump-flows --no-stats` prints them."""

from flows import pipeline


import ipaddress

from flows.flow import FIELD_SPECS, IN_PORT

# The order in which ovs-ofctl prints match fields ("proto" is the shorthand
# such as tcp or arp that stands for eth_type and ip_proto).
ORDER = ("conj_id", "ct_state", "ct_zone", "ct_mark", "ct_nw_dst", "proto", "tun_id",
         "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "tun_metadata0", "metadata",
         "in_port", "eth_src", "eth_dst", "eth_type", "ipv6_src", "ipv6_dst", "ipv4_src", "ipv4_dst",
         "arp_spa", "arp_tpa", "ip_proto", "arp_op", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
         "icmpv4_type", "icmpv4_code", "icmpv6_type", "icmpv6_code", "nd_target", "nd_sll", "arp_sha", "arp_tha")
_RANK = {f: i for i, f in enumerate(ORDER)}
NAMES = {"nx_in_port": "in_port", "eth_dst": "dl_dst", "eth_src": "dl_src", "ipv4_src": "nw_src", "ipv4_dst": "nw_dst",
         "tcp_src": "tp_src", "tcp_dst": "tp_dst", "udp_src": "tp_src", "udp_dst": "tp_dst",
         "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code", "icmpv6_type": "icmp_type",
         "icmpv6_code": "icmp_code", "ip_proto": "nw_proto"}
SHORTHAND = {(0x0800, None): "ip", (0x0800, 6): "tcp", (0x0800, 17): "udp", (0x0800, 1): "icmp",
             (0x86DD, None): "ipv6", (0x86DD, 6): "tcp6", (0x86DD, 17): "udp6", (0x86DD, 58): "icmp6",
             (0x0806, None): "arp"}
CT_FLAGS = ("new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat")
DECIMAL = ("in_port", "nx_in_port", "conj_id", "ct_zone", "arp_op", "ip_proto", "icmpv4_type", "icmpv4_code",
           "icmpv6_type", "icmpv6_code")


# Field names in move actions, as ovs-ofctl prints them.
NXM_NAMES = {"eth_src": "NXM_OF_ETH_SRC", "eth_dst": "NXM_OF_ETH_DST", "arp_sha": "NXM_NX_ARP_SHA",
             "arp_tha": "NXM_NX_ARP_THA", "arp_spa": "NXM_OF_ARP_SPA", "arp_tpa": "NXM_OF_ARP_TPA",
             "ct_mark": "NXM_NX_CT_MARK", **{"reg%d" % i: "NXM_NX_REG%d" % i for i in range(8)},
             "tun_metadata0": "NXM_NX_TUN_METADATA0", "xreg1": "OXM_OF_PKT_REG1"}


def _whole(field):
    """A whole field in a move, as ovs-ofctl prints it: a tun_metadata field
    is variable in width, so its mapped width is shown as a slice."""
    if field.startswith("tun_metadata"):
        return "%s[0..%d]" % (NXM_NAMES[field], FIELD_SPECS[field][0] - 1)
    return "%s[]" % NXM_NAMES[field]


def _num(value):
    return "0x%x" % value if value else "0"


def _match_item(field, value, mask):
    name = NAMES.get(field, field)
    kind = FIELD_SPECS[field][1]
    if field == "proto":
        return value
    if kind == "mac":
        return "%s=%s" % (name, value) + ("/%s" % mask if mask else "")
    if kind in ("ipv4", "ipv6"):
        if mask is None:
            return "%s=%s" % (name, value)
        m = int(ipaddress.ip_address(mask))
        width = FIELD_SPECS[field][0]
        inverted = ~m & ((1 << width) - 1)
        if inverted & (inverted + 1) == 0:  # a prefix: ones, then zeros
            return "%s=%s/%d" % (name, value, width - inverted.bit_length())
        return "%s=%s/%s" % (name, value, mask)
    if field == "eth_type":
        return "dl_type=0x%04x" % value
    if field == "ct_state":
        return "ct_state=" + "".join(("+" if value & (1 << i) else "-") + flag
                                     for i, flag in enumerate(CT_FLAGS) if mask & (1 << i))
    if mask is None and (field in DECIMAL or field in ("tcp_src", "tcp_dst", "udp_src", "udp_dst")):
        return "%s=%d" % (name, value)
    if mask is not None:
        return "%s=%s/%s" % (name, _num(value), _num(mask))
    return "%s=%s" % (name, _num(value))


def _fields(match):
    """Match items in print order, with eth_type/ip_proto folded into a shorthand."""
    items = dict((f, (v, m)) for f, v, m in match)
    out = list(match)
    if "xreg1" in items:  # ovs-ofctl prints a 64-bit register as its two halves
        value, mask = items["xreg1"]
        out.remove(("xreg1", value, mask))
        for name, shift in (("reg2", 32), ("reg3", 0)):
            half = None if mask is None else (mask >> shift) & 0xFFFFFFFF
            out.append((name, (value >> shift) & 0xFFFFFFFF, half))
    if "eth_type" in items:
        proto = items.get("ip_proto", (None, None))[0]
        short = SHORTHAND.get((items["eth_type"][0], proto))
        if short is None and "ip_proto" in items:
            short = SHORTHAND.get((items["eth_type"][0], None))
            drop = ("eth_type",)
        else:
            drop = ("eth_type", "ip_proto")
        if short is not None:
            out = [i for i in out if i[0] not in drop] + [("proto", short, None)]
    return sorted(out, key=lambda i: _RANK[i[0]])


def _action(action):
    kind = action[0]
    if kind == "output":
        return "IN_PORT" if action[1] == IN_PORT else "output:%d" % action[1]
    if kind == "set_field":
        _, field, value, mask = action
        if isinstance(value, int):
            text = "%d" % value if field in DECIMAL else _num(value)
        else:
            text = value
        if mask is not None:
            text += "/" + _num(mask)
        return "set_field:%s->%s" % (text, NAMES.get(field, field) if field == "nx_in_port" else field)
    if kind == "resubmit":
        return "resubmit(,%d)" % pipeline.table_id(action[1])
    if kind == "ct":
        _, commit, zone, table, mark, nat = action
        parts = ["commit"] if commit else []
        if table is not None:
            parts.append("table=%d" % pipeline.table_id(table))
        if isinstance(zone, str):
            parts.append("zone=NXM_NX_%s[0..15]" % zone.upper())
        elif zone:
            parts.append("zone=%d" % zone)
        nested = []
        if isinstance(mark, str):
            nested.append(_action(("move", mark, "ct_mark")))
        elif mark is not None:
            nested.append("set_field:%s->ct_mark" % _num(mark))
        if nat is not None:
            if nat:
                kind, ip, port = nat
                where = ("[%s]" % ip if ":" in ip else ip) + (":%d" % port if port else "")
                nested.append("nat(%s=%s)" % (kind, where))
            else:
                nested.append("nat")
        # OVS prints a lone nat bare, and everything in exec() once there is more.
        if mark is not None:
            parts.append("exec(%s)" % ",".join(nested))
        else:
            parts += nested
        return "ct(%s)" % ",".join(parts)
    if kind == "move":
        return "move:%s->%s" % (_whole(action[1]), _whole(action[2]))
    if kind == "output_reg":
        return "output:%s" % _whole(action[1])
    if kind == "group":
        return "group:%d" % action[1]
    if kind == "conjunction":
        return "conjunction(%d,%d/%d)" % action[1:]
    if kind == "ct_clear":
        return "ct_clear"
    if kind == "meter":
        return "meter:%d" % action[1]
    if kind == "controller":
        return "CONTROLLER:65535"
    if kind == "clone":
        return "clone(%s)" % ",".join(_action(a) for a in action[1])
    raise ValueError(action)


def render_flow(flow):
    parts = ["cookie=%s" % _num(flow.cookie)]
    tid = pipeline.table_id(flow.table)
    head = "table=%d, " % tid if tid else ""
    fields = [_match_item(*item) for item in _fields(flow.match)]
    parts_match = ["priority=%d" % flow.priority] + fields
    acts = [_action(a) for a in flow.actions]
    if flow.metadata is not None:
        acts.append("write_metadata:%s" % _num(flow.metadata))
    if flow.goto is not None:
        acts.append("goto_table:%d" % pipeline.table_id(flow.goto))
    return "%s, %s%s actions=%s" % (parts[0], head, ",".join(parts_match), ",".join(acts) or "drop")


GROUP_FIELD_NAMES = {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst", "ip_proto": "nw_proto",
                     "tcp_src": "tcp_src", "tcp_dst": "tcp_dst", "udp_src": "udp_src", "udp_dst": "udp_dst"}


def render_group(group):
    """A group as `ovs-ofctl -O OpenFlow15 dump-groups` prints it."""
    fields = ",".join(GROUP_FIELD_NAMES[f] for f in group.fields)
    buckets = ",".join("bucket=bucket_id:%d,%sactions=%s" % (
        b.bucket_id, "weight:%d," % b.weight if b.weight != 1 else "",  # OVS leaves out the default
        ",".join(_action(a) for a in b.actions) or "drop") for b in group.buckets)
    return "group_id=%d,type=select,selection_method=hash,fields(%s),%s" % (group.group_id, fields, buckets)


def render_flowset(flowset):
    """Sorted text of a whole flow set (golden files, docs)."""
    flows = sorted(flowset, key=lambda f: (pipeline.table_id(f.table), -f.priority,
                                           render_flow(f)))
    return "\n".join(render_flow(f) for f in flows) + "\n"
