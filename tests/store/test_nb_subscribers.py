"""A northbound subscriber that raises is not left silently stale: the error
is logged with its traceback, counted, and its on_error hook runs once the
update is in, so it can recompute from the store. Against a real ovsdb-server."""

import logging
import threading


def _network(nb, name, vni):
    nb.transact([nb.api.db_create("Network", name=name, tenant="t", vni=vni)])


class _Model:
    """A subscriber that keeps the networks' names, with a bug on one name."""

    def __init__(self, nb):
        self.nb, self.names, self.reloads, self.seen = nb, set(), [], []
        self.reloaded = threading.Event()

    def changed(self, table, kind, row):
        if table != "Network":
            return
        if row.name.startswith("bad"):
            raise RuntimeError("a bug on %s" % row.name)
        self.seen.append(row.name)
        self.names.add(row.name)

    def reload(self, exc):
        self.reloads.append(exc)
        self.names = {row.name for row in self.nb.rows("Network")}
        self.reloaded.set()


def _wait(predicate, timeout=10):
    event = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        event.wait(0.05)
    return predicate()


def test_a_failing_subscriber_is_logged_counted_and_recomputes(nb, caplog):
    model = _Model(nb)
    others = []
    nb.subscribe(model.changed, on_error=model.reload)
    nb.subscribe(lambda table, kind, row: others.append(row.name) if table == "Network" else None)
    _network(nb, "good1", 1)
    assert _wait(lambda: "good1" in model.names)
    assert nb.subscriber_errors == 0 and not model.reloads
    with caplog.at_level(logging.ERROR, logger="ovsdb.nb"):
        _network(nb, "bad1", 2)
        assert model.reloaded.wait(10)
    assert model.names == {"good1", "bad1"}            # recomputed from the store
    assert nb.subscriber_errors == 1
    assert len(model.reloads) == 1 and "a bug on bad1" in str(model.reloads[0])
    assert "bad1" in others                              # the other subscriber still got the change
    record = next(r for r in caplog.records if "subscriber" in r.getMessage())
    assert record.exc_info and "a bug on bad1" in str(record.exc_info[1])   # with its traceback
    _network(nb, "good2", 3)                             # and it goes on after
    assert _wait(lambda: "good2" in model.names)
    assert len(model.reloads) == 1


def test_one_recovery_for_a_batch_of_failures(nb):
    model = _Model(nb)
    nb.subscribe(model.changed, on_error=model.reload)
    nb.transact([nb.api.db_create("Network", name="bad%d" % i, tenant="t", vni=10 + i) for i in range(5)])
    assert model.reloaded.wait(10)
    assert _wait(lambda: nb.subscriber_errors == 5)
    assert len(model.reloads) == 1 and model.names == {"bad%d" % i for i in range(5)}


def test_without_a_hook_the_error_is_counted_and_a_failing_hook_too(nb):
    calls = []
    nb.subscribe(lambda table, kind, row: 1 / 0)
    nb.subscribe(lambda table, kind, row: 1 / 0, on_error=lambda exc: calls.append(exc) or [][1])
    _network(nb, "net", 1)
    assert _wait(lambda: nb.subscriber_errors == 3)     # two callbacks, one hook
    assert len(calls) == 1 and isinstance(calls[0], ZeroDivisionError)


def test_a_subscriber_may_be_told_which_columns_an_update_changed(nb):
    seen = []
    nb.subscribe(lambda table, kind, row, changed: seen.append((table, kind, row.name, changed))
                 if table == "Network" else None, columns=True)
    _network(nb, "n1", 7)
    assert _wait(lambda: seen)
    assert seen[0] == ("Network", "create", "n1", None)
    row = next(r for r in nb.rows("Network") if r.name == "n1")
    nb.transact([nb.api.db_set("Network", row.uuid, ("vni", 8))])
    assert _wait(lambda: len(seen) == 2)
    assert seen[1] == ("Network", "update", "n1", frozenset({"vni"}))
