"""python-ovs's Idl on a passive remote never gets the database: a real ovsdb-server dials it and it stays empty.

Run: .venv/bin/python tests/repro/idl_passive.py [--nonblocking]   (ovsdb-server and ovsdb-tool on PATH)

PassiveStream.open("ptcp:IP:PORT") leaves its listening socket blocking
(python-ovs 4.0.0; its punix: one is non-blocking), and jsonrpc.Session.run()
calls accept() on every run: the Idl sends its first request (get_schema of
_Server), then blocks in accept() and never reads the answer, until the
server drops the silent session and dials again. Prints "no rows after 10 s".
With --nonblocking (the listening socket made non-blocking) it prints
"monitoring: 1 Open_vSwitch row(s)". PassiveStream has no pssl: either way.
"""
import os, socket, subprocess, sys, tempfile, time
import ovs.db.idl, ovs.socket_util, ovs.stream

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
if "--nonblocking" in sys.argv:
    _open = ovs.stream.PassiveStream.open
    def _nonblocking_open(name):
        error, pstream = _open(name)
        if pstream is not None:
            ovs.socket_util.set_nonblocking(pstream.socket)
        return error, pstream
    ovs.stream.PassiveStream.open = staticmethod(_nonblocking_open)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
d = tempfile.mkdtemp()
subprocess.run(["ovsdb-tool", "create", d + "/conf.db", SCHEMA], check=True)
helper = ovs.db.idl.SchemaHelper(SCHEMA); helper.register_all()
idl = ovs.db.idl.Idl("ptcp:127.0.0.1:%d" % port, helper)   # (python-ovs: ptcp:IP:PORT)
srv = subprocess.Popen(["ovsdb-server", d + "/conf.db", "--remote=punix:%s/db.sock" % d, "--unixctl=%s/ctl" % d,
                        "--remote=tcp:127.0.0.1:%d" % port, "-vconsole:off", "--log-file=%s/log" % d])
try:
    subprocess.run(["ovs-vsctl", "--db=unix:%s/db.sock" % d, "--retry", "--no-wait", "init"], check=True)
    deadline = time.monotonic() + 10
    while not idl.tables["Open_vSwitch"].rows and time.monotonic() < deadline:
        idl.run()
        time.sleep(0.05)
    rows = len(idl.tables["Open_vSwitch"].rows)
    print("monitoring: %d Open_vSwitch row(s)" % rows if rows else "no rows after 10 s (see %s/log)" % d)
finally:
    srv.terminate()
