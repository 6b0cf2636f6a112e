"""A fast stand-in for python-ovs's JSON-RPC parser.

python-ovs parses JSON-RPC messages with its C extension when it was built
against libopenvswitch, else with a pure-Python parser that reads one
character at a time: about 1 MB/s. Debian 12 has no libopenvswitch-dev to
build the extension with, and dvn's northbound IDL takes in whole tables at
once: a bulk import of 10,000 ports is 18,700 rows in one update, and a
restart reads them all again.

``install()`` replaces ``ovs.json.Parser`` (only when the C one is missing)
with ``Parser``: it finds where the message ends by scanning only for
quotes, backslashes and brackets, then hands the message to the standard
library's C-accelerated ``json``. Its interface is the one
``ovs.jsonrpc.Connection`` uses: ``feed(text)`` returns how many characters
it took (a message ends inside a chunk, the next one starts there),
``is_done()``, ``finish()`` returns the value or an error string. A parser
that must check for trailing input (``ovs.json.from_string``) stays the
original.
"""

import json
import re

import ovs.json

_TOKEN = re.compile(r'["\\{}\[\]]')
_SPACE = " \t\r\n"


class Parser(ovs.json.Parser):
    """One JSON-RPC message: a JSON object or array, fed in chunks. (A
    subclass: python-ovs's parser names its class by its module's global,
    which install() rebinds; a parser that checks for trailing input is the
    original's code.)"""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, check_trailer=False):
        self._original = check_trailer
        if check_trailer:
            super().__init__(check_trailer=True)
            return
        self._parts = []
        self._depth = 0
        self._in_string = False
        self._skip = 0          # characters to skip at the start of the next chunk (an escape's)
        self._started = False
        self._done = False
        self._error = None

    def feed(self, s):
        if self._original:
            return super().feed(s)
        if self._done:
            return 0
        start = 0
        if not self._started:
            start = len(s) - len(s.lstrip(_SPACE))
            if start == len(s):
                return len(s)
            if s[start] not in "{[":
                self._error = "a JSON-RPC message must be an object or an array (got %r)" % s[start]
                self._done = True
                return start
            self._started = True
        skip = start + self._skip
        self._skip = 0
        depth, in_string = self._depth, self._in_string
        for m in _TOKEN.finditer(s, start):
            k = m.start()
            if k < skip:
                continue
            c = s[k]
            if in_string:
                if c == "\\":
                    skip = k + 2
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "{" or c == "[":
                depth += 1
            elif c == "}" or c == "]":
                depth -= 1
                if depth == 0:
                    self._parts.append(s[start:k + 1])
                    self._done = True
                    return k + 1
        self._skip = max(0, skip - len(s))
        self._depth, self._in_string = depth, in_string
        self._parts.append(s[start:])
        return len(s)

    def is_done(self):
        return super().is_done() if self._original else self._done

    def finish(self):
        if self._original:
            return super().finish()
        if self._error is not None:
            return self._error
        if not self._done:
            return "unexpected end of input" if self._started else "empty input stream"
        try:
            return json.loads("".join(self._parts))
        except ValueError as exc:
            return "syntax error: %s" % exc


def install():
    """Use Parser for python-ovs's JSON-RPC, unless its C parser is there."""
    if ovs.json.PARSER != ovs.json.PARSER_C:
        ovs.json.Parser = Parser
