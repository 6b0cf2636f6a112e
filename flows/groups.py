"""Dynamic groups: membership by criteria over a port's name, tags and network.

A criteria value is one of
    {"name": "web-*"}                 the port's name matches a shell glob
    {"tags_any": ["pci", "gold"]}     the port has at least one of the tags
    {"tags_all": ["pci", "gold"]}     the port has all of them
    {"network": "<network id>"}       the port is on that network
    {"and": [c, ...]}, {"or": [c, ...]}, {"not": c}
"""

import fnmatch

MAX_DEPTH = 8
MAX_ITEMS = 32


class CriteriaError(Exception):
    def __init__(self, path, detail):
        super().__init__(detail)
        self.path, self.detail = path, detail


def check(criteria, path="criteria", depth=0):
    """Raise CriteriaError (naming the place) unless ``criteria`` is well formed."""
    if depth > MAX_DEPTH:
        raise CriteriaError(path, "criteria nest at most %d deep" % MAX_DEPTH)
    if not isinstance(criteria, dict) or len(criteria) != 1:
        raise CriteriaError(path, "a criterion is an object with exactly one of: name, tags_any, "
                                  "tags_all, network, and, or, not")
    (key, value), = criteria.items()
    where = "%s.%s" % (path, key)
    if key in ("name", "network"):
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise CriteriaError(where, "%s is a string of 1 to 64 characters" % key)
    elif key in ("tags_any", "tags_all"):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_ITEMS or \
                not all(isinstance(t, str) and 1 <= len(t) <= 64 for t in value):
            raise CriteriaError(where, "%s is a list of 1 to %d tags" % (key, MAX_ITEMS))
    elif key in ("and", "or"):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_ITEMS:
            raise CriteriaError(where, "%s is a list of 1 to %d criteria" % (key, MAX_ITEMS))
        for i, sub in enumerate(value):
            check(sub, "%s[%d]" % (where, i), depth + 1)
    elif key == "not":
        check(value, where, depth + 1)
    else:
        raise CriteriaError(where, "unknown criterion %r" % key)


def matches(criteria, port):
    """Whether ``port`` (flows.model.Port) satisfies ``criteria``."""
    (key, value), = criteria.items()
    if key == "name":
        return fnmatch.fnmatchcase(port.name, value)
    if key == "tags_any":
        return bool(set(value) & set(port.tags))
    if key == "tags_all":
        return set(value) <= set(port.tags)
    if key == "network":
        return port.network_id == value
    if key == "and":
        return all(matches(c, port) for c in value)
    if key == "or":
        return any(matches(c, port) for c in value)
    if key == "not":
        return not matches(value, port)
    raise ValueError(key)
