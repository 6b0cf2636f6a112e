"""ovsdb.fastjson: the JSON-RPC parser dvn gives python-ovs, against the standard library."""

import json

import ovs.json
from hypothesis import given, settings, strategies as st

from ovsdb import fastjson
from ovsdb.fastjson import Parser

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1),
                    st.text(alphabet=st.sampled_from('ab"\\{}[]/\n\té€𝄞 '), max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=30)
messages = st.one_of(st.lists(values, max_size=5), st.dictionaries(st.text(max_size=6), values, max_size=5))


def feed_chunks(parser, text, cuts):
    """Feed ``text`` cut at ``cuts``, as ovs.jsonrpc does: until the parser is
    done; returns what it did not take."""
    pieces, last = [], 0
    for cut in sorted(set(c % (len(text) + 1) for c in cuts)) + [len(text)]:
        pieces.append(text[last:cut])
        last = cut
    rest = ""
    for i, piece in enumerate(pieces):
        taken = parser.feed(piece)
        if parser.is_done():
            rest = piece[taken:] + "".join(pieces[i + 1:])
            break
    return rest


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.integers(0, 10 ** 6), max_size=6), st.sampled_from(["", " ", "\n  "]))
def test_a_message_cut_anywhere_parses_as_the_standard_library_does(value, cuts, space):
    text = space + json.dumps(value, ensure_ascii=False) + '{"next":1}'
    parser = Parser()
    rest = feed_chunks(parser, text, cuts)
    assert parser.is_done()
    assert parser.finish() == value
    assert rest == '{"next":1}'


def test_broken_input_is_an_error_string_as_python_ovs_gives():
    for text in ('{"a": 1,}', '[1, 2', '"a string"', "  "):
        parser = Parser()
        parser.feed(text)
        assert isinstance(parser.finish(), str)


def test_installed_only_without_the_c_parser_and_from_string_unchanged():
    before = ovs.json.Parser
    try:
        fastjson.install()
        if ovs.json.PARSER == ovs.json.PARSER_C:
            assert ovs.json.Parser is before      # python-ovs's own C parser stays
        else:
            assert ovs.json.Parser is Parser
        assert ovs.json.from_string('{"a": ["x\\"y", 1.5]}') == {"a": ['x"y', 1.5]}
        assert isinstance(ovs.json.from_string('{"a": 1} trailing'), str)
    finally:
        ovs.json.Parser = before
