"""The embedded northbound store: a standalone ovsdb-server in dvn's state directory.

The database file is OVSDB's journal on disk: a write that was acknowledged is
there after any crash. A controller killed with SIGKILL finds its store still
running (pidfile) and reuses it; a stopped store is started again on the same
file.
"""

import os
import signal
import subprocess
import time

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dvn_nb.ovsschema")


class StoreError(Exception):
    pass


def _paths(state_dir):
    return {"db": os.path.join(state_dir, "nb.db"), "sock": os.path.join(state_dir, "nb.sock"),
            "pid": os.path.join(state_dir, "nb.pid"), "log": os.path.join(state_dir, "nb.log")}


def _running_pid(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/status" % pid) as f:
            if "\nState:\tZ" in f.read():
                return None
        return pid
    except (OSError, ValueError):
        return None


def _tool(*args):
    res = subprocess.run(("ovsdb-tool",) + args, capture_output=True, text=True)
    if res.returncode != 0:
        raise StoreError("ovsdb-tool %s: %s" % (" ".join(args), res.stderr.strip()))
    return res.stdout.strip()


def start(state_dir, timeout=10):
    """Start (or find) the store; returns its OVSDB remote."""
    p = _paths(state_dir)
    remote = "unix:" + p["sock"]
    if _running_pid(p["pid"]) and os.path.exists(p["sock"]):
        return remote
    if not os.path.exists(p["db"]):
        _tool("create", p["db"], SCHEMA)
    elif _tool("needs-conversion", p["db"], SCHEMA) == "yes":
        _tool("convert", p["db"], SCHEMA)
    res = subprocess.run(["ovsdb-server", p["db"], "--remote=punix:" + p["sock"],
                          "--pidfile=" + p["pid"], "--log-file=" + p["log"], "-vconsole:off",
                          "--unixctl=" + os.path.join(state_dir, "nb.ctl"),
                          "--detach", "--no-chdir"], capture_output=True, text=True)
    if res.returncode != 0:
        raise StoreError("ovsdb-server: %s" % res.stderr.strip())
    deadline = time.monotonic() + timeout
    while not os.path.exists(p["sock"]):
        if time.monotonic() > deadline:
            raise StoreError("ovsdb-server did not open %s" % p["sock"])
        time.sleep(0.05)
    return remote


def stop(state_dir, timeout=5):
    pid = _running_pid(_paths(state_dir)["pid"])
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running_pid(_paths(state_dir)["pid"]) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
