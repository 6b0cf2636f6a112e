"""A Core on a real northbound store, in its own eventlet process (for tests):
its model misses one change (a bug that raises once) and must not stay stale.

Prints one JSON line: the ports the model holds, the store's subscriber
errors and the model's reloads."""

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import sys  # noqa: E402

from controller.core import Core  # noqa: E402
from ovsdb.nb import Northbound  # noqa: E402


def main(remote):
    nb = Northbound(remote).start()
    core = Core(nb)
    changed, failed = core._nb_changed, []

    def buggy(table, event, row, columns=None):
        if table == "Port" and row.name == "bad" and not failed:
            failed.append(row.name)
            raise RuntimeError("a bug that misses this change")
        changed(table, event, row, columns)
    core._nb_changed = buggy
    core.start()
    net = nb.rows("Network")[0]
    for name, mac in (("bad", "02:00:00:00:00:01"), ("good", "02:00:00:00:00:02")):
        nb.transact([nb.api.db_create("Port", name=name, tenant="t", network=net.uuid, mac=mac)])
    for _ in range(200):   # the reload runs in the store client's thread once the update is in
        if core.model_reloads and len(core.ports) == 2:
            break
        eventlet.sleep(0.05)
    print(json.dumps({"ports": sorted(p.name for p in core.ports.values()), "errors": nb.subscriber_errors,
                      "reloads": core.model_reloads}))


if __name__ == "__main__":
    main(sys.argv[1])
