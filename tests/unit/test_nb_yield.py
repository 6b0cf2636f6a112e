"""ovsdb.nb: the IDL lets other green threads in while it parses a large update, not at every row."""

from ovsdb import nb


def test_the_idl_yields_once_every_yield_s(monkeypatch):
    clock, slept = [100.0], []
    monkeypatch.setattr(nb.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(nb.time, "sleep", slept.append)
    idl = nb._Idl.__new__(nb._Idl)   # (no connection: only its yield is tried)
    idl._yielded = clock[0]
    for _ in range(1000):            # rows parsed in less than YIELD_S: no yield
        idl.cooperative_yield()
    assert slept == []
    clock[0] += 1.5 * nb.YIELD_S
    idl.cooperative_yield()
    idl.cooperative_yield()
    assert slept == [0]
