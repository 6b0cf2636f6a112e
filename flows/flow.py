"""Flows as values: matches, actions, flows, flow sets and their difference.

A flow's identity is (table, priority, match), as for OpenFlow itself. Values
are tuples, so they hash and compare fast and can key the encoder's cache.
"""

import ipaddress
import operator
import zlib
from typing import NamedTuple, Optional

# Match fields: name -> (width in bits, kind). The order is the order they are written.
FIELD_SPECS = {
    "proto": (0, "shorthand"),  # rendering only: tcp, arp, ...
    "in_port": (32, "int"), "nx_in_port": (16, "int"), "tun_id": (64, "int"), "tun_metadata0": (64, "int"), "metadata": (64, "int"),
    **{"reg%d" % i: (32, "int") for i in range(8)}, "xreg1": (64, "int"),  # xreg1 is reg2:reg3
    "conj_id": (32, "int"), "ct_state": (32, "int"), "ct_zone": (16, "int"), "ct_mark": (32, "int"),
    "ct_nw_dst": (32, "ipv4"),  # the connection's original destination (before its DNAT)
    "eth_dst": (48, "mac"), "eth_src": (48, "mac"), "eth_type": (16, "int"),
    "arp_op": (16, "int"), "arp_spa": (32, "ipv4"), "arp_tpa": (32, "ipv4"), "arp_sha": (48, "mac"), "arp_tha": (48, "mac"),
    "ip_proto": (8, "int"),
    "ipv4_src": (32, "ipv4"), "ipv4_dst": (32, "ipv4"), "ipv6_src": (128, "ipv6"), "ipv6_dst": (128, "ipv6"),
    "tcp_src": (16, "int"), "tcp_dst": (16, "int"), "udp_src": (16, "int"), "udp_dst": (16, "int"),
    "icmpv4_type": (8, "int"), "icmpv4_code": (8, "int"), "icmpv6_type": (8, "int"), "icmpv6_code": (8, "int"),
    "nd_target": (128, "ipv6"), "nd_sll": (48, "mac"),
}
FIELDS = tuple(f for f in FIELD_SPECS if f != "proto")
_ORDER = {f: i for i, f in enumerate(FIELDS)}

# ct_state bits (as OVS numbers them).
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK, CT_SNAT, CT_DNAT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
IN_PORT = 0xFFFFFFF8  # output: the port the packet came in on


# Cookies: 1 (dvn's mark) | category (3 bits) | owner (28 bits) | digest (32 bits).
# dvn's cookie space is every cookie with the top bit set: dvn reads, keeps and
# deletes only flows in it, so other os-ken apps on the same switch keep their
# flows by giving them cookies whose top bit is 0 (docs/architecture.md).
DVN_COOKIE = 1 << 63
DVN_COOKIE_MASK = 1 << 63
_CATEGORY_SHIFT, _CATEGORY_BITS = 60, 0x7
_OWNER_SHIFT, _OWNER_BITS = 32, 0x0FFFFFFF

# Cookie categories: what kind of object owns a flow. MARK: the switch's
# mark (flows/reconcile.py), whose owner and digest bits carry one digest.
PIPELINE, NODE, NETWORK, PORT, GROUP, LB, MARK = 1, 2, 3, 4, 5, 6, 7
CATEGORY_NAMES = {PIPELINE: "pipeline", NODE: "node", NETWORK: "network", PORT: "port", GROUP: "security group",
                  LB: "load balancer", MARK: "switch mark"}


def is_dvn_cookie(cookie):
    """Whether a flow with this cookie is dvn's (in dvn's cookie space)."""
    return cookie & DVN_COOKIE_MASK == DVN_COOKIE


class FlowError(Exception):
    """Two different flows with one identity, or a malformed flow."""


_ITEMS = {}           # (field, value, mask) as given -> the item, normalized
MAX_ITEMS = 1 << 17   # then the cache starts again (items made before stay shared by their flows)


def _item(field, value, mask):
    """One item of a match, ``(field, value, mask)`` normalized. Cached, so
    flows that match one field alike (an ethertype, a port's register) share
    one item: a node with 10,000 ports keeps 100,000 flows of about six
    items each, of 110,000 distinct items. A dict, not an lru_cache: an
    item given normalized is its own key, where lru_cache kept a tuple of
    the arguments and a list node besides (25 MiB at 10,000 ports)."""
    key = (field, value, mask)
    item = _ITEMS.get(key)
    if item is None:
        item = _normalized(field, value, mask)
        if len(_ITEMS) >= MAX_ITEMS:
            _ITEMS.clear()
        _ITEMS[item if item == key else key] = item
    return item


def _normalized(field, value, mask):
    width, kind = FIELD_SPECS[field]
    if kind == "mac":
        low = value.lower()
        value = value if low == value else low   # (the port's own string, not a copy of it)
        if mask is not None:
            mask = mask.lower()
            if mask == "ff:ff:ff:ff:ff:ff":
                mask = None
    elif kind in ("ipv4", "ipv6"):
        text = str(ipaddress.ip_address(value))
        value = value if text == value else text
        if mask is not None:
            m = int(ipaddress.ip_address(mask))
            if m == (1 << width) - 1:
                mask = None
            else:
                if int(ipaddress.ip_address(value)) & ~m:
                    raise FlowError("%s=%s has bits outside its mask %s" % (field, value, mask))
                mask = str(ipaddress.ip_address(mask))
    elif mask is not None:
        if mask == (1 << width) - 1:
            mask = None
        elif value & ~mask:
            raise FlowError("%s=%#x has bits outside its mask %#x" % (field, value, mask))
    return field, value, mask


def match(**fields):
    """A match: ``match(in_port=5, eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00"))``."""
    items, last, ordered, cache = [], -1, True, _ITEMS
    for field, spec in fields.items():
        rank = _ORDER.get(field)
        if rank is None:
            raise FlowError("unknown match field %r" % field)
        if rank < last:
            ordered = False
        last = rank
        key = (field,) + spec if spec.__class__ is tuple else (field, spec, None)
        item = cache.get(key)   # (_item's lookup, inline: a call per item cost more than the lookup)
        items.append(item if item is not None else _item(*key))
    if not ordered:   # (the compilers mostly name fields in their order already)
        items.sort(key=_rank)
    return tuple(items)


def _rank(item):
    return _ORDER[item[0]]


def match_value(match_, field):
    """The value ``match_`` requires of ``field`` exactly, or None (not
    matched, or only under a mask)."""
    for name, value, mask in match_:
        if name == field and mask is None:
            return value
    return None


# Actions (applied in order).
def output(port):
    return ("output", port)


def output_reg(field):
    """Output to the port whose number is in a register."""
    return ("output_reg", field)


def set_field(field, value, mask=None):
    return ("set_field", field, value, mask)


def resubmit(table):
    return ("resubmit", table)


def move(src, dst):
    """Copy the whole field ``src`` into ``dst`` (same width)."""
    return ("move", src, dst)


def group(group_id):
    return ("group", group_id)


def ct(table=None, zone=None, commit=False, mark=None, nat=None):
    """Send the packet through conntrack; ``zone`` is an int or a register name
    (its low 16 bits), ``table`` where the packet continues, recirculated;
    ``mark`` is written to the connection's ct_mark when it is committed (an
    int, or a register name: its value); ``nat`` is ``()`` (apply the
    connection's NAT) or ``("dst"|"src", ip, port or 0)``."""
    return ("ct", bool(commit), zone, table, mark, nat)


def conjunction(conj_id, clause, n_clauses):
    """Clause ``clause`` (1-based, as ovs-ofctl writes it) of ``n_clauses``."""
    return ("conjunction", conj_id, clause, n_clauses)


def ct_clear():
    return ("ct_clear",)


def meter(meter_id):
    return ("meter", meter_id)


def controller():
    """The packet, whole, to the controller (a packet-in with the flow's cookie)."""
    return ("controller",)


def clone(*actions):
    """Run ``actions`` on a copy: nothing they do (a meter's drop) touches the packet."""
    return ("clone", tuple(actions))


class Flow(NamedTuple):
    table: str
    priority: int
    match: tuple
    actions: tuple = ()
    metadata: Optional[int] = None   # write_metadata instruction
    goto: Optional[str] = None       # goto_table instruction
    cookie: int = 0

    # (table, priority, match): the flow's identity (a C getter: asked for
    # every flow of every unit that changes)
    key = property(operator.itemgetter(0, 1, 2))

    def jumps(self):
        targets = [a[1] for a in self.actions if a[0] == "resubmit"]
        if self.goto is not None:
            targets.append(self.goto)
        return targets

    def recirculates(self):
        return [a[3] for a in self.actions if a[0] == "ct" and a[3] is not None]

    def describe(self):
        """The flow in a line, for error messages (flows.render writes ovs-ofctl text)."""
        fields = " ".join("%s=%s" % (f, v if m is None else "%s/%s" % (v, m)) for f, v, m in self.match)
        text = "table=%s priority=%d %s actions=%s" % (self.table, self.priority, fields, list(self.actions))
        return text + (" goto=%s" % self.goto if self.goto is not None else "")


def owner_hash(owner_id):
    return zlib.crc32(owner_id.encode()) & _OWNER_BITS


def owner_cookie(category, owner_id):
    """(cookie, mask) that select every flow of one owner, whatever it does
    (a flow read or statistics by cookie)."""
    cookie = DVN_COOKIE | (category << _CATEGORY_SHIFT) | (owner_hash(owner_id) << _OWNER_SHIFT)
    return cookie, DVN_COOKIE_MASK | (_CATEGORY_BITS << _CATEGORY_SHIFT) | (_OWNER_BITS << _OWNER_SHIFT)


def make_flow(table, priority, match_, category, owner_id, actions=(), metadata=None, goto=None):
    """A flow with its cookie: dvn's mark | category | owner | digest of what it does."""
    actions = tuple(actions)
    owner = DVN_COOKIE | (category << _CATEGORY_SHIFT) | (owner_hash(owner_id) << _OWNER_SHIFT)
    return Flow(table, priority, match_, actions, metadata, goto, owner | _digest(actions, metadata, goto))


_DIGESTS = {}         # (actions, metadata, goto) -> digest: the flows made just before
MAX_DIGESTS = 4096    # (a rule's clause for each member, a network's flows): then it starts again


def _digest(actions, metadata, goto):
    key = (actions, metadata, goto)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = zlib.crc32(repr(key).encode())
        if len(_DIGESTS) >= MAX_DIGESTS:
            _DIGESTS.clear()
        _DIGESTS[key] = digest
    return digest


def with_actions(flow, actions, metadata=None, goto=None):
    """``flow`` doing something else: same owner, new digest."""
    actions = tuple(actions)
    cookie = (flow.cookie & ~0xFFFFFFFF) | _digest(actions, metadata, goto)
    return Flow(flow.table, flow.priority, flow.match, actions, metadata, goto, cookie)


def category_of(cookie):
    """The category of a dvn cookie (PIPELINE ... LB); None for another app's."""
    return (cookie >> _CATEGORY_SHIFT) & _CATEGORY_BITS if is_dvn_cookie(cookie) else None


def cookie_category(cookie):
    return CATEGORY_NAMES.get(category_of(cookie), "unknown")


def cookie_owner(cookie):
    return (cookie >> _OWNER_SHIFT) & _OWNER_BITS


class Bucket(NamedTuple):
    bucket_id: int
    weight: int
    actions: tuple


class Group(NamedTuple):
    """An OpenFlow select group: the packet goes to one bucket, chosen by a hash
    of ``fields`` and weighted."""
    group_id: int
    buckets: tuple                                    # Bucket, by bucket_id
    fields: tuple = ("ipv4_src", "ipv4_dst", "ip_proto", "tcp_src", "tcp_dst")
    cookie: int = 0                                   # the owner, as for flows (not sent)


class FlowSet:
    """An immutable set of flows, indexed by identity.

    The flows are kept as a tuple; the index by identity is made when first
    asked (``get``, ``keys``, ``items``, a diff against the set): a switch
    keeps one FlowSet per compile unit (10,000s of them), most never asked
    again, and an index per unit (a dict, a key tuple per flow) cost 14 MiB
    at 10,000 ports."""

    __slots__ = ("_flows", "_index")

    def __init__(self, flows=()):
        index = {}
        for flow in flows:
            have = index.get(flow.key)
            if have is not None and have != flow:
                raise FlowError("two flows with one identity: %s / %s" % (have.describe(), flow.describe()))
            index[flow.key] = flow
        self._flows = tuple(index.values())
        self._index = None

    @classmethod
    def of_index(cls, index):
        """A FlowSet of {identity: flow} as it is (identities known distinct)."""
        out = cls.__new__(cls)
        out._flows = tuple(index.values())
        out._index = None
        return out

    def _indexed(self):
        index = self._index
        if index is None:
            index = self._index = {flow.key: flow for flow in self._flows}
        return index

    def items(self):
        return self._indexed().items()

    def __iter__(self):
        return iter(self._flows)

    def __len__(self):
        return len(self._flows)

    def __contains__(self, flow):
        return self._indexed().get(flow.key) == flow

    def __eq__(self, other):
        # (identities are distinct in each: equal as sets is equal as indexes)
        return isinstance(other, FlowSet) and len(self._flows) == len(other._flows) and \
            set(self._flows) == set(other._flows)

    def get(self, key):
        return self._indexed().get(key)

    def keys(self):
        return self._indexed().keys()

    def union(self, *others):
        flows = list(self)
        for other in others:
            flows.extend(other)
        return FlowSet(flows)


class FlowDiff(NamedTuple):
    add: list
    modify: list
    delete: list

    def __bool__(self):
        return bool(self.add or self.modify or self.delete)


def diff(old, new):
    """What turns ``old`` into ``new``: flows to add, to modify (same identity,
    other actions or cookie) and to delete. (``new``'s index is made for
    the diff only: ``new`` is what a switch keeps, ``old`` what it drops.)"""
    add, modify, delete = [], [], []
    if not len(old):
        return FlowDiff(list(new), modify, delete)
    have_index = old._indexed()
    for flow in new:
        have = have_index.get(flow.key)
        if have is None:
            add.append(flow)
        elif have != flow:
            modify.append(flow)
    keys = {flow.key for flow in new}
    for flow in old:
        if flow.key not in keys:
            delete.append(flow)
    return FlowDiff(add, modify, delete)
