"""A NodeListener in its own eventlet process, driven over stdin/stdout (for tests).

Prints one JSON line per session update: {"system_id", "encap_ip", "dpid",
"tunnels", "bindings"}; reads JSON commands: {"tunnels": {peer: ip}} applies a
tunnel mesh to the last session and prints {"ops": n} or {"error": text}.
"""

import eventlet
import eventlet.tpool

eventlet.monkey_patch()

import json  # noqa: E402
import sys  # noqa: E402

from ovsdb.node import NodeListener, OvsdbError  # noqa: E402

sessions = []


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def on_update(session):
    if session not in sessions:
        sessions.append(session)
    emit({"system_id": session.system_id, "encap_ip": session.encap_ip, "dpid": session.datapath_id,
          "tunnels": session.tunnels(), "bindings": session.bindings()})


def on_close(session):
    emit({"closed": session.system_id})


def main():
    listener = NodeListener("127.0.0.1", 0, on_update, on_close)
    emit({"port": listener.start()})
    while True:
        # stdin is not green: read it in a real thread so the hub keeps running.
        line = eventlet.tpool.execute(sys.stdin.readline)
        if not line:
            return
        cmd = json.loads(line)
        try:
            emit({"ops": sessions[-1].ensure_tunnels(cmd["tunnels"])})
        except OvsdbError as exc:
            emit({"error": str(exc)})


if __name__ == "__main__":
    main()
