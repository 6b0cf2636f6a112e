"""`dvn join` and `dvn leave`, run on a node against its own Open_vSwitch database.

Join is one transaction: the node's identity (system-id, tunnel IP), br-int
(fail_mode=secure, OpenFlow 1.5, in-band control off) with dvn as its OpenFlow
controller, and dvn as an OVSDB manager of the node. Both connections are
opened by the node, so a node behind NAT joins as well as any other. With
fail_mode=secure the flows stay when dvn is away.

With a join token (`--token T --ca-hash sha256:H`, ovsdb/enroll.py) the
node first gets its certificate from dvn's CA, and its OpenFlow
connections and its OVSDB manager are `ssl:` targets with that certificate
(`ovs-vsctl set-ssl`; the node's ovsdb-server takes it from the SSL table,
as Debian's ovs-ctl starts it: ``--private-key=db:Open_vSwitch,SSL,private_key``...).
Then `dvn join` waits, bounded, until ovs-vswitchd has applied the change,
br-int's controller and the OVSDB manager are connected and (with a token)
dvn has taken the node's session; else it says in one line what is missing.
"""

import hashlib
import logging
import os
import socket
import sys
import time

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.backend.ovs_idl import transaction as idl_transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from ovsdb.node import BRIDGE, ENCAP_IP_KEY, PEER_KEY, PUBLIC_IP_KEY

OPENFLOW_PORT = 6653
OVSDB_PORT = 6640
# Reconnect within a second after dvn comes back (OVS's default backs off to 8 s).
MAX_BACKOFF_MS = 1000
LANES = 3                  # more OpenFlow connections, for large changes (dvn serve --openflow-lanes)
LANE_KEY = "dvn-lane"      # Controller external_ids: which lane
INACTIVITY_PROBE_MS = 5000
VSWITCHD_WAIT_S = 10       # `--wait 0` still waits this long for ovs-vswitchd to apply the join
PROTOCOLS = ["OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"]


class JoinError(Exception):
    pass


def default_db():
    rundir = os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")
    return "unix:%s/db.sock" % rundir


def default_datapath_type():
    """`system` where the kernel datapath exists, `netdev` (userspace) elsewhere."""
    return "system" if os.path.exists("/sys/module/openvswitch") else "netdev"


def datapath_id(system_id):
    """A stable datapath id for br-int, so a restarted vswitchd keeps its identity.

    16 hex digits from the system-id; the top byte is 0xd0 so it never looks
    like a MAC-derived id."""
    digest = hashlib.sha256(system_id.encode()).hexdigest()
    return "d0" + digest[:14]


class _Transaction(idl_transaction.Transaction):
    """Asks ovs-vswitchd to apply the change (next_cfg), without waiting for
    it inside the commit as ovsdbapp's does: a node whose vswitchd is not
    running gets its configuration, and `dvn join` says that vswitchd is
    missing (wait_joined), not a timeout with a traceback."""

    def pre_commit(self, txn):
        self.api._ovs.increment("next_cfg")
        txn.expected_ifaces = set()   # (ovsdbapp's add_br records the interfaces it expects there)


class _NodeDb(impl_idl.OvsdbIdl):
    """ovsdbapp keeps its connection on the class (one per process); dvn keeps
    it on the instance, so two joins in one process talk to their own nodes."""

    ovsdb_connection = None

    def create_transaction(self, check_error=False, log_errors=True, **kwargs):
        return _Transaction(self, self.ovsdb_connection, check_error=check_error, log_errors=log_errors)


def _api(db, timeout=10):
    idl = connection.OvsdbIdl.from_server(db, "Open_vSwitch")
    return _NodeDb(connection.Connection(idl, timeout=timeout))


def _target(controller, port, scheme="tcp"):
    host = controller
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host  # IPv6 literal
    return "%s:%s:%d" % (scheme, host, port)


def _check_ip(option, value):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
    except OSError:
        raise JoinError("%s %r is not an IP address" % (option, value))


def join(controller, encap_ip, system_id=None, db=None, datapath_type=None,
         of_port=OPENFLOW_PORT, db_port=OVSDB_PORT, lanes=LANES, tls=None, public_ip=None):
    """Configure this node to be managed by the dvn at ``controller``: br-int's
    controller on ``of_port``, and ``lanes`` more OpenFlow connections on the
    ports after it (dvn spreads large changes over them). ``tls``: (key,
    certificate, CA) paths: the OpenFlow connections and the OVSDB manager
    are ssl: targets with them. ``public_ip``: behind a 1:1 NAT, the
    address peers tunnel to (the node's own tunnel ports keep sending from
    ``encap_ip``); a join without it drops one a former join gave."""
    _check_ip("--encap-ip", encap_ip)
    if public_ip:
        _check_ip("--public-ip", public_ip)
    api = _api(db or default_db())
    of_scheme = "ssl" if tls else "tcp"
    of_target, db_target = _target(controller, of_port, of_scheme), _target(controller, db_port, of_scheme)
    ovs = api.db_list("Open_vSwitch", columns=["_uuid", "external_ids", "manager_options"]).execute(check_error=True)[0]
    ext = {ENCAP_IP_KEY: encap_ip, "hostname": socket.gethostname()}
    if public_ip:
        ext[PUBLIC_IP_KEY] = public_ip
    if system_id:
        ext["system-id"] = system_id
    elif not ovs["external_ids"].get("system-id"):
        raise JoinError("this node has no external_ids:system-id; give --system-id")
    managers = api.db_find("Manager", ("target", "=", db_target), columns=["_uuid"]).execute(check_error=True)
    with api.transaction(check_error=True) as txn:
        txn.add(api.db_set("Open_vSwitch", ovs["_uuid"], ("external_ids", ext)))
        if not public_ip and PUBLIC_IP_KEY in ovs["external_ids"]:
            txn.add(api.db_remove("Open_vSwitch", ovs["_uuid"], "external_ids", PUBLIC_IP_KEY))
        txn.add(api.add_br(BRIDGE, may_exist=True, datapath_type=datapath_type or default_datapath_type()))
        txn.add(api.db_set("Bridge", BRIDGE,
                           ("fail_mode", "secure"), ("protocols", PROTOCOLS),
                           ("other_config", {"disable-in-band": "true",
                                             "datapath-id": datapath_id(ext.get("system-id")
                                                                        or ovs["external_ids"]["system-id"])})))
        ctls = [txn.add(api.db_create("Controller", target=of_target, max_backoff=MAX_BACKOFF_MS,
                                      inactivity_probe=INACTIVITY_PROBE_MS))]
        for lane in range(1, lanes + 1):
            ctls.append(txn.add(api.db_create("Controller", target=_target(controller, of_port + lane, of_scheme),
                                              max_backoff=MAX_BACKOFF_MS, inactivity_probe=INACTIVITY_PROBE_MS,
                                              external_ids={LANE_KEY: str(lane)})))
        txn.add(api.db_set("Bridge", BRIDGE, ("controller", ctls)))
        if tls:
            key, cert, ca = tls
            ssl_row = txn.add(api.db_create("SSL", private_key=key, certificate=cert, ca_cert=ca))
            txn.add(api.db_set("Open_vSwitch", ovs["_uuid"], ("ssl", ssl_row)))
        if not managers:
            mgr = txn.add(api.db_create("Manager", target=db_target, max_backoff=MAX_BACKOFF_MS,
                                        inactivity_probe=INACTIVITY_PROBE_MS))
            txn.add(api.db_add("Open_vSwitch", ovs["_uuid"], "manager_options", mgr))
    api.ovsdb_connection.stop()
    return of_target, db_target


def system_id_of(db=None, given=None):
    """The node's name: ``given`` (--system-id), else its external_ids:system-id."""
    if given:
        return given
    api = _api(db or default_db())
    try:
        ovs = api.db_list("Open_vSwitch", columns=["external_ids"]).execute(check_error=True)[0]
    finally:
        api.ovsdb_connection.stop()
    if not ovs["external_ids"].get("system-id"):
        raise JoinError("this node has no external_ids:system-id; give --system-id")
    return ovs["external_ids"]["system-id"]


def join_status(api, of_target, db_target, sessions=True):
    """What is still missing on this node for the join, in one line (None:
    nothing): ovs-vswitchd's applying the change, and (``sessions``) br-int's
    controller session and the OVSDB manager session."""
    ovs = api.db_list("Open_vSwitch", columns=["next_cfg", "cur_cfg"]).execute(check_error=True)[0]
    if ovs["cur_cfg"] < ovs["next_cfg"]:
        return ("ovs-vswitchd has not applied the configuration: is it running? (the configuration is written "
                "and applies when it runs)")
    if not sessions:
        return None
    missing = []
    ctl = [c for c in api.db_list("Controller", columns=["target", "is_connected", "status"]).execute(
        check_error=True) if c["target"] == of_target]
    if not ctl or not ctl[0]["is_connected"]:
        status = ctl[0]["status"] if ctl else {}
        missing.append("br-int's OpenFlow controller %s is not connected (%s)" % (
            of_target, status.get("last_error") or status.get("state") or "no session"))
    mgr = [m for m in api.db_list("Manager", columns=["target", "is_connected", "status"]).execute(
        check_error=True) if m["target"] == db_target]
    if not mgr or not mgr[0]["is_connected"]:
        status = mgr[0]["status"] if mgr else {}
        if not status:
            missing.append("the OVSDB manager %s is not connected, and this node's ovsdb-server says nothing of "
                           "it: does it serve its Manager table (--remote=db:Open_vSwitch,Open_vSwitch,"
                           "manager_options)?" % db_target)
        else:
            missing.append("the OVSDB manager %s is not connected (%s)" % (
                db_target, status.get("last_error") or status.get("state") or "no session"))
    return "; ".join(missing) or None


def wait_joined(of_target, db_target, db=None, timeout=30.0, admitted=None, sessions=True):
    """Wait until join_status finds nothing missing and ``admitted()`` (if
    given) says (True, _); JoinError naming what is still missing after
    ``timeout`` seconds."""
    api = _api(db or default_db())
    try:
        deadline = time.monotonic() + timeout
        while True:
            missing = join_status(api, of_target, db_target, sessions)
            if missing is None and admitted is not None:
                ok, why = admitted()
                missing = None if ok else why
            if missing is None:
                return
            if time.monotonic() > deadline:
                raise JoinError("not joined after %.0f s: %s" % (timeout, missing))
            time.sleep(0.2)
    finally:
        api.ovsdb_connection.stop()


def enroll(cert_dir, db=None, timeout=60.0):
    """Get this node a certificate from dvn's CA for its IPsec tunnels: make
    its key (which stays here, readable by root only) and a request for its
    system-id, hand dvn the request through this node's own database, wait
    for the signed certificate, and point ovs-monitor-ipsec at the files.
    Returns the certificate's path."""
    import time
    from ovsdb.pki import node_request
    api = _api(db or default_db())
    try:
        ovs = api.db_list("Open_vSwitch", columns=["_uuid", "external_ids"]).execute(check_error=True)[0]
        system_id = ovs["external_ids"].get("system-id")
        if not system_id:
            raise JoinError("this node has no external_ids:system-id; join first")
        key, csr = node_request(cert_dir, system_id)
        api.db_set("Open_vSwitch", ovs["_uuid"], ("external_ids", {"dvn-csr": csr})).execute(check_error=True)
        want = hashlib.sha256(csr.encode()).hexdigest()[:16]
        deadline = time.monotonic() + timeout
        while True:
            ext = api.db_list("Open_vSwitch", columns=["external_ids"]).execute(check_error=True)[0]["external_ids"]
            if ext.get("dvn-cert-for") == want and ext.get("dvn-cert") and ext.get("dvn-ca"):
                break
            if time.monotonic() > deadline:
                raise JoinError("no certificate from dvn in %.0f s (is it running with --ipsec-auth ca?)" % timeout)
            time.sleep(0.2)
        paths = {"certificate": os.path.join(cert_dir, "node-cert.pem"),
                 "ca_cert": os.path.join(cert_dir, "dvn-ca.pem")}
        for name, value in (("certificate", ext["dvn-cert"]), ("ca_cert", ext["dvn-ca"])):
            with open(paths[name], "w") as f:
                f.write(value)
        api.db_set("Open_vSwitch", ovs["_uuid"],
                   ("other_config", dict(paths, private_key=key))).execute(check_error=True)
        return paths["certificate"]
    finally:
        api.ovsdb_connection.stop()


def leave(controller=None, db=None, db_port=OVSDB_PORT):
    """Disconnect this node from dvn and remove what dvn put on it.

    br-int and the VM ports stay (so does their traffic until flows are
    removed); dvn's tunnel ports, its controller and its manager go.
    """
    api = _api(db or default_db())
    ovs = api.db_list("Open_vSwitch", columns=["_uuid"]).execute(check_error=True)[0]
    tunnels = api.db_find("Interface", ("type", "=", "geneve"),
                          columns=["name", "external_ids"]).execute(check_error=True)
    managers = api.db_list("Manager", columns=["_uuid", "target"]).execute(check_error=True)
    with api.transaction(check_error=True) as txn:
        for iface in tunnels:
            if PEER_KEY in iface["external_ids"]:
                txn.add(api.del_port(iface["name"], bridge=BRIDGE, if_exists=True))
        txn.add(api.del_controller(BRIDGE))
        for mgr in managers:
            if controller is None or mgr["target"].endswith(":%s:%d" % (controller, db_port)):
                txn.add(api.db_remove("Open_vSwitch", ovs["_uuid"], "manager_options", mgr["_uuid"]))
        txn.add(api.db_remove("Open_vSwitch", ovs["_uuid"], "external_ids", ENCAP_IP_KEY, PUBLIC_IP_KEY))
    api.ovsdb_connection.stop()


def _cmd_join(args):
    """One line, whatever happens: what was joined, or why not (exit 2)."""
    from ovsdb import enroll as token_enroll
    logging.getLogger().addHandler(logging.NullHandler())   # ovsdbapp's own logs are not for this terminal
    try:
        _check_ip("--encap-ip", args.encap_ip)     # (before a token is used up)
        if args.public_ip:
            _check_ip("--public-ip", args.public_ip)
        tls = admitted = None
        if args.token or args.ca_hash:
            if not (args.token and args.ca_hash):
                raise JoinError("--token and --ca-hash go together")
            url = args.api_url or "https://%s:8080" % (
                "[%s]" % args.controller if ":" in args.controller else args.controller)
            name = system_id_of(args.db, args.system_id)

            def waiting(why):   # a node may boot before dvn: said once, on stderr (stdout keeps its one line)
                print("dvn join: %s" % why, file=sys.stderr, flush=True)
            ca_pem = token_enroll.fetch_ca_waiting(url, args.ca_hash, args.wait, waiting)
            tls = token_enroll.enroll(url, ca_pem, args.token, name, args.pki_dir or token_enroll.default_dir())

            def admitted():
                return token_enroll.admission(url, tls)
        of_target, db_target = join(args.controller, args.encap_ip, args.system_id, args.db,
                                    args.datapath_type, args.openflow_port, args.ovsdb_port,
                                    args.openflow_lanes, tls=tls, public_ip=args.public_ip)
        if args.wait > 0:
            wait_joined(of_target, db_target, args.db, args.wait, admitted)
        else:   # as join always did: until ovs-vswitchd has applied it (br-int exists)
            wait_joined(of_target, db_target, args.db, VSWITCHD_WAIT_S, sessions=False)
        print("joined: OpenFlow %s, OVSDB manager %s%s%s" % (
            of_target, db_target, ", certificate %s" % tls[1] if tls else "",
            "" if args.wait > 0 else " (not waited for)"))
        if args.ipsec_pki:
            print("IPsec certificate from dvn's CA: %s" % enroll(args.ipsec_pki, args.db, args.pki_timeout))
    except (JoinError, token_enroll.EnrollError) as exc:
        print("dvn join: %s" % exc)
        return 2
    except Exception as exc:  # (ovsdbapp's and python-ovs's: one line, not a traceback)
        print("dvn join: %s: %s" % (type(exc).__name__, " ".join(str(exc).split())[:300] or "no detail"))
        return 2
    return 0


def _cmd_leave(args):
    leave(args.controller, args.db)
    print("left: dvn's tunnels, controller and manager removed")
    return 0


def register(subparsers):
    p = subparsers.add_parser("join", help="join this node to a dvn controller (run on the node)")
    p.add_argument("--controller", required=True, help="address of the dvn controller")
    p.add_argument("--encap-ip", required=True, help="this node's tunnel (underlay) IP")
    p.add_argument("--public-ip", metavar="IP",
                   help="behind a 1:1 NAT: the public address the NAT maps to --encap-ip; peers tunnel to it "
                        "(docs/join.md)")
    p.add_argument("--system-id", help="this node's id (default: external_ids:system-id)")
    p.add_argument("--db", help="this node's OVSDB (default: unix:$OVS_RUNDIR/db.sock)")
    p.add_argument("--datapath-type", choices=["system", "netdev"],
                   help="br-int datapath (default: system if the kernel module is loaded)")
    p.add_argument("--openflow-port", type=int, default=OPENFLOW_PORT)
    p.add_argument("--openflow-lanes", type=int, default=LANES, choices=range(0, 9), metavar="N",
                   help="N more OpenFlow connections to dvn, on the ports after --openflow-port "
                        "(default %d; dvn serve --openflow-lanes must say the same)" % LANES)
    p.add_argument("--ovsdb-port", type=int, default=OVSDB_PORT)
    p.add_argument("--token", help="a join token from `dvn token create` (docs/join.md): the node gets its "
                                   "certificate from dvn's CA and joins over TLS")
    p.add_argument("--ca-hash", metavar="sha256:HEX",
                   help="the pin of dvn's CA (sha256 of its SubjectPublicKeyInfo, `dvn ca-hash`); with --token")
    p.add_argument("--api-url", metavar="URL", help="dvn's REST API (default https://CONTROLLER:8080)")
    p.add_argument("--pki-dir", metavar="DIR",
                   help="where this node's key, certificate and dvn's CA go (default $OVS_SYSCONFDIR/dvn, "
                        "/etc/openvswitch/dvn)")
    p.add_argument("--wait", type=float, default=30.0, metavar="S",
                   help="seconds to wait for the node's sessions to dvn to be up (and, with a token, for dvn "
                        "to take the node; and before that, as long again, for dvn's API while it does not "
                        "answer); 0: wait only for ovs-vswitchd to apply the change, at most %d s "
                        "(default 30)" % VSWITCHD_WAIT_S)
    p.add_argument("--ipsec-pki", metavar="DIR",
                   help="get a certificate from dvn's CA for the IPsec mesh; this node's key stays in DIR")
    p.add_argument("--pki-timeout", type=float, default=60.0, metavar="S")
    p.set_defaults(func=_cmd_join)
    q = subparsers.add_parser("leave", help="disconnect this node from dvn (run on the node)")
    q.add_argument("--controller", help="only the manager of this controller")
    q.add_argument("--db", help="this node's OVSDB (default: unix:$OVS_RUNDIR/db.sock)")
    q.set_defaults(func=_cmd_leave)
    return p
