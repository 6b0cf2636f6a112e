"""Port ranges as bitmask matches: the fewest (value, mask) pairs that cover
exactly the ports lo..hi (OpenFlow matches tp_dst with a mask, not a range)."""


def range_to_masks(lo, hi, width=16):
    """[(value, mask)] covering exactly lo..hi inclusive; a full mask is the
    whole field (an exact match)."""
    if not 0 <= lo <= hi < (1 << width):
        raise ValueError("bad port range %d-%d" % (lo, hi))
    full = (1 << width) - 1
    out = []
    while lo <= hi:
        # The largest aligned block starting at lo that does not pass hi.
        size = lo & -lo if lo else 1 << width
        while lo + size - 1 > hi:
            size >>= 1
        out.append((lo, full & ~(size - 1)))
        lo += size
    return out
