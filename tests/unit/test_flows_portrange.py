from hypothesis import given, strategies as st

from flows.portrange import range_to_masks


def covered(pairs, port):
    return [(v, m) for v, m in pairs if port & m == v]


def test_known_ranges():
    assert range_to_masks(80, 80) == [(80, 0xFFFF)]
    assert range_to_masks(0, 65535) == [(0, 0)]
    assert range_to_masks(1024, 2047) == [(1024, 0xFC00)]
    assert len(range_to_masks(1, 65535)) == 16  # the worst case is 2 * 16 - 2 at most
    assert range_to_masks(8000, 8003) == [(8000, 0xFFFC)]


@given(st.integers(0, 65535), st.integers(0, 65535), st.lists(st.integers(0, 65535), max_size=50))
def test_every_port_in_the_range_matches_exactly_one_pair_and_no_other_port_matches(a, b, probes):
    lo, hi = min(a, b), max(a, b)
    pairs = range_to_masks(lo, hi)
    assert len(pairs) <= 30
    for port in probes + [lo, hi, max(lo - 1, 0), min(hi + 1, 65535)]:
        hits = covered(pairs, port)
        assert len(hits) == (1 if lo <= port <= hi else 0), (lo, hi, port, pairs)
    for v, m in pairs:
        assert v & ~m & 0xFFFF == 0
