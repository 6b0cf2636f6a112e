"""Regular expressions (ECMA-262 and Python alike) for IP networks as the API takes them.

JSON Schema has formats for addresses (ipv4, ipv6) but none for a network
with a prefix, so the API's schemas say it with a pattern, and the patterns
are strict: a string matches only if ``ipaddress.ip_network(s, strict=True)``
takes it (no host bits set), so the document refuses what the server would.

An IPv4 network is dotted decimal without leading zeros. An IPv6 network is
written as its network part then ``::`` (``fd00:1::/64``, ``::/0``), or,
when the prefix is longer than 112 bits, in eight groups
(``fd00:0:0:0:0:0:0:100/120``); the bits past the prefix are zero.
"""

OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
GROUP = r"[0-9a-fA-F]{1,4}"


def _prefix(lo, hi):
    return "(?:%s)" % "|".join(str(p) for p in range(hi, lo - 1, -1))


def _octet_masked(bits):
    """An octet whose low 8 - ``bits`` bits are zero."""
    if bits == 8:
        return OCTET
    step = 1 << (8 - bits)
    return "(?:%s)" % "|".join(str(n) for n in range(255 - 255 % step, -1, -step))


def ipv4_network(lo, hi):
    """An IPv4 network with a prefix from ``lo`` to ``hi`` and no host bits."""
    branches = []
    for p in range(hi, lo - 1, -1):
        full, bits = divmod(p, 8)
        octets = [OCTET] * full
        if full < 4:
            octets.append(_octet_masked(bits) if bits else "0")
        octets += ["0"] * (4 - len(octets))
        branches.append(r"\.".join(octets) + "/" + str(p))
    return "^(?:%s)$" % "|".join(branches)


def _group_masked(bits):
    """A group (1 to 4 hex digits) whose low 16 - ``bits`` bits are zero."""
    if bits == 16:
        return GROUP
    nibbles, rest = divmod(bits, 4)
    if rest:
        partial = "[%s]" % "".join("%x" % n for n in range(0, 16, 1 << (4 - rest)))
        partial = partial.replace("a", "aA").replace("c", "cC").replace("e", "eE")
        masked = "[0-9a-fA-F]{0,%d}%s%s" % (nibbles, partial, "0" * (3 - nibbles))
    else:
        masked = "[0-9a-fA-F]{1,%d}%s" % (nibbles, "0" * (4 - nibbles)) if nibbles else "0"
    return "(?:0{1,4}|%s)" % masked


def ipv6_network(lo, hi):
    """An IPv6 network with a prefix from ``lo`` to ``hi`` and no host bits,
    as ``<network groups>::/p`` (up to /112) or in eight groups (longer)."""
    branches = []
    for p in range(hi, lo - 1, -1):
        if p == 0:
            branches.append("::/0")
            continue
        groups, bits = divmod(p, 16)
        last = groups + (1 if bits else 0)  # the groups the prefix reaches into
        if last <= 7:  # the network part, then ::
            if bits and last > 1:  # fewer groups, all in the prefix, or as many with the last masked
                form = "(?:(?:%s:){0,%d}%s|(?:%s:){%d}%s)" % (
                    GROUP, last - 2, GROUP, GROUP, last - 1, _group_masked(bits))
            elif bits:
                form = _group_masked(bits)
            else:
                form = "%s(?::%s){0,%d}" % (GROUP, GROUP, last - 1)
            branches.append("%s::/%d" % (form, p))
            continue
        eight = [GROUP] * groups + ([_group_masked(bits)] if bits else [])
        eight += ["0{1,4}"] * (8 - len(eight))
        branches.append(":".join(eight) + "/" + str(p))
    return "^(?:%s)$" % "|".join(branches)


def _ipv6_address_forms():
    forms = [":".join([GROUP] * 8)]
    for left in range(0, 8):
        for right in range(0, 8 - left):
            forms.append(":".join([GROUP] * left) + "::" + ":".join([GROUP] * right))
    return forms


def ipv4_loose():
    """An IPv4 address with a prefix (host bits allowed)."""
    return r"^%s(?:\.%s){3}/%s$" % (OCTET, OCTET, _prefix(0, 32))


def ipv6_loose():
    """An IPv6 address with a prefix (host bits allowed)."""
    return "^(?:%s)/%s$" % ("|".join(_ipv6_address_forms()), _prefix(0, 128))
