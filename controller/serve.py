"""`dvn serve`: the controller process, and the wiring it shares with osken-manager.

One process, one eventlet hub: the northbound client, the REST API, the node
OVSDB listener and the OpenFlow listener (os-ken). ``eventlet.monkey_patch()``
must run before anything else is imported: os-ken's own ``hub.patch()``
patches only threads, and then SSL hangs and every blocking call stalls all
switches. The CLI does it for `serve` before it imports this module's
dependencies.

``start(Settings)`` builds everything but os-ken's own part. `dvn serve` calls
it with its options and hands the result to controller.app; under
osken-manager (controller/osken_manager.py) controller.app calls it with the
``[dvn]`` options of os-ken's configuration (controller/options.py).
"""

import argparse
import dataclasses
import logging
import os
import signal
import sys
from typing import Optional

from flows import fields

LOG = logging.getLogger("dvn")

DEFAULT_STATE_DIR = "/var/lib/dvn"
# A switch's OpenFlow connections are probed with an echo every 5 s and
# dropped after 3 unanswered: a switch that goes silent without closing its
# connections (its host gone, or, in the lab, its vswitchd, which also carries
# the node's underlay) is seen gone at most (3 + 1) * 5 s later. One that
# closes them (a vswitchd killed on a host whose management traffic does not
# go through it) is seen gone at once.
ECHO_INTERVAL_S, ECHO_UNANSWERED = 5, 3
PROBE_BOUND_S = (ECHO_UNANSWERED + 1) * ECHO_INTERVAL_S


def _hostport(text, default_host):
    host, _, port = text.rpartition(":")
    return (host.strip("[]") or default_host), int(port)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What dvn's parts are built from: `dvn serve`'s options, or the ``[dvn]``
    group of os-ken's configuration when osken-manager loads controller.app
    (controller/options.py)."""
    state_dir: str = DEFAULT_STATE_DIR
    nb: Optional[str] = None                 # the northbound remote; None: the embedded store in state_dir
    api_listen: Optional[str] = "127.0.0.1:8080"   # None: no REST API
    ovsdb_listen: str = "0.0.0.0:6640"       # where nodes' OVSDB servers connect (set-manager)
    openflow_port: int = 6653                # the OpenFlow listener's port: lanes are on the ports after it
    openflow_lanes: int = 0
    log_rate: int = 100                      # packets per second per switch for logged firewall rules
    identity_option: fields.GeneveOption = fields.IDENTITY
    ipsec_auth: str = "psk"                  # "psk" or "ca"
    stop_nb: bool = False                    # stop the embedded store when dvn stops
    tls: bool = False                        # the REST API, OpenFlow and OVSDB over TLS, certificates from dvn's CA
    tls_cert: Optional[str] = None           # the REST API's certificate and key (default: one from dvn's CA)
    tls_key: Optional[str] = None
    tls_names: tuple = ()                    # more names and addresses for dvn's own certificate


class Dvn:
    """dvn's running parts around one Core: the northbound client, the core
    (with its health checker), the node OVSDB listener and the REST API.
    The OpenFlow side is controller.app, which os-ken runs."""

    def __init__(self, settings, nb, core, listener, api_address=None, api_thread=None):
        self.settings = settings
        self.nb, self.core, self.listener = nb, core, listener
        self.api_address, self.api_thread = api_address, api_thread
        self.trust = None         # controller.trust.Trust: is a node's certificate allowed (with TLS)
        self.openflow_tls = None  # (key, certificate, CA certificate) paths of OpenFlow over TLS, or None

    def stop(self):
        """Stop listening and talking to the store; switches keep their flows."""
        if self.api_thread is not None:
            self.api_thread.kill()
        self.listener.stop()
        self.nb.stop()
        self.stop_store()

    def stop_store(self, wait=True):
        """Stop the embedded store (with ``stop_nb``, `dvn serve`'s default): it
        holds nothing its file does not, and starts again on that file with dvn.
        ``wait=False``: SIGTERM it and return (from the OS thread that ends a
        dvn whose stopping took too long)."""
        if not self.settings.nb and self.settings.stop_nb:
            from ovsdb import nbserver
            nbserver.stop(os.path.abspath(self.settings.state_dir), timeout=5 if wait else 0)


def start(settings):
    """Build and start dvn from ``settings``: the one wiring that `dvn serve`
    and osken-manager (controller.app loaded by name) share. Needs the
    eventlet hub, monkey-patched, with os-ken's modules importable."""
    import eventlet
    import eventlet.wsgi

    from controller import api as api_mod
    from controller.core import Core
    from controller.ofconn import install_tap
    from ovsdb import nbserver
    from ovsdb.nb import Northbound
    from ovsdb.node import NodeListener

    state_dir = os.path.abspath(settings.state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    remote = settings.nb
    if not remote:
        remote = nbserver.start(state_dir)
        LOG.info("northbound store: %s (state in %s)", remote, state_dir)
    nb = Northbound(remote)
    nb.start()
    api_mod.ensure_admin_token(nb, os.path.join(state_dir, "admin.token"))

    ca = None
    if settings.ipsec_auth == "ca":
        from controller.pki import Ca
        ca = Ca(state_dir).ensure()
    admit_ca = tls = None
    if settings.tls or settings.tls_cert:
        from controller.pki import Ca
        admit_ca = ca or Ca(state_dir).ensure()
        tls = admit_ca.server_certificate(state_dir, tls_names(settings))
    port = settings.openflow_port
    lane_ports = [port + i for i in range(1, settings.openflow_lanes + 1)] if port else []
    core = Core(nb, log_rate=settings.log_rate, log_burst=settings.log_rate,
                identity_option=settings.identity_option, ca=ca, lane_ports=lane_ports)
    core.start()
    install_tap()  # before any switch connects: dvn's replies bypass os-ken's parser

    trust = node_tls = None
    if tls is not None:
        from controller.trust import Trust
        trust = Trust(nb, admit_ca)
        node_tls = node_tls_context(tls[0], tls[1], admit_ca.cert)

    def admit(session):
        """A node is who its certificate says, not what its database states."""
        return trust.allowed(session.peer_cert or b"", session.claimed_id)[1]
    ovsdb_host, ovsdb_port = _hostport(settings.ovsdb_listen, "0.0.0.0")
    listener = NodeListener(ovsdb_host, ovsdb_port, core.node_update, core.node_closed, tls=node_tls,
                            admit=admit if trust else None)
    listener.start()
    LOG.info("node OVSDB listener on %s:%d%s", ovsdb_host, ovsdb_port, " (TLS)" if node_tls else "")
    dvn = Dvn(settings, nb, core, listener)
    if tls is not None:
        dvn.trust = trust
        dvn.openflow_tls = (tls[1], tls[0], admit_ca.cert)
        LOG.info("dvn's CA: %s (join with --ca-hash %s)", admit_ca.cert, admit_ca.hash())

    if settings.api_listen:
        api_host, api_port = _hostport(settings.api_listen, "127.0.0.1")
        api_sock = eventlet.listen((api_host, api_port))
        protocol = eventlet.wsgi.HttpProtocol
        if tls is not None:
            ctx = api_tls_context(settings.tls_cert or tls[0], settings.tls_key or tls[1], admit_ca.cert)
            # The handshake happens in each connection's own green thread, not in the accept loop.
            api_sock = ctx.wrap_socket(api_sock, server_side=True, do_handshake_on_connect=False)
            protocol = _peer_cert_protocol()
        app = api_mod.make_app(nb, stats=core.rule_stats, events=core.events, lb_stats=core.lb_stats,
                               switch_state=core.switch_state, plugged=core.plugged_addresses, ca=admit_ca,
                               metrics=core.metrics, tracer=core.trace_packet)
        dvn.api_address = (api_host, api_sock.getsockname()[1])
        dvn.api_thread = eventlet.spawn(eventlet.wsgi.server, api_sock, app, log=logging.getLogger("dvn.http"),
                                        log_output=False, protocol=protocol)
        LOG.info("REST API on %s://%s:%d/v1", "https" if tls else "http", *dvn.api_address)
    return dvn


def tls_names(settings):
    """The names and addresses dvn's own certificate is for: this host's name,
    the loopback, the listeners' addresses and ``settings.tls_names``."""
    import socket
    names = {"localhost", "127.0.0.1", socket.gethostname()} | set(settings.tls_names)
    for listen in (settings.api_listen, settings.ovsdb_listen):
        host = _hostport(listen, "")[0] if listen else ""
        if host and host not in ("0.0.0.0", "::"):
            names.add(host)
    return sorted(names)


def api_tls_context(cert, key, ca_cert):
    """The REST API's TLS: dvn's certificate; a client may present one of dvn's
    CA (a node asking for its own enrollment), and needs none otherwise."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(ca_cert)
    return ctx


def node_tls_context(cert, key, ca_cert):
    """The node OVSDB listener's TLS: dvn's certificate, and the node must
    present one of dvn's CA (whose name is checked once the node states it).
    A green context: the handshake waits in the session's green thread."""
    from eventlet.green import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca_cert)
    return ctx


def _peer_cert_protocol():
    """eventlet.wsgi's protocol, handing the app the TLS client's certificate (DER), if any."""
    import eventlet.wsgi
    from controller.api.trust import PEER_CERT

    class PeerCertProtocol(eventlet.wsgi.HttpProtocol):
        def get_environ(self, *args, **kwargs):
            env = super().get_environ(*args, **kwargs)
            try:
                der = self.connection.getpeercert(binary_form=True)
            except (AttributeError, ValueError):
                der = None
            if der:
                env[PEER_CERT] = der
            return env
    return PeerCertProtocol


def serve(args):
    os.environ.setdefault("OSKEN_HUB_TYPE", "eventlet")
    import eventlet

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=args.log_file)
    # os-ken logs every echo at DEBUG; keep its chatter at INFO unless asked.
    logging.getLogger("os_ken").setLevel(max(logging.INFO, LOG.getEffectiveLevel()))

    _trace_memory(os.environ.get("DVN_TRACEMALLOC"))
    of_host, of_port = _hostport(args.openflow_listen, "0.0.0.0")
    if bool(args.tls_cert) != bool(args.tls_key):
        print("dvn serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    dvn = start(Settings(state_dir=args.state_dir, nb=args.nb, api_listen=args.api_listen,
                         ovsdb_listen=args.ovsdb_listen, openflow_port=of_port,
                         openflow_lanes=args.openflow_lanes, log_rate=args.log_rate,
                         identity_option=args.identity_option, ipsec_auth=args.ipsec_auth, stop_nb=not args.keep_nb,
                         tls=args.tls, tls_cert=args.tls_cert, tls_key=args.tls_key,
                         tls_names=tuple(args.tls_name or ()) + ((of_host,) if of_host not in ("0.0.0.0", "::")
                                                                 else ())))

    from os_ken import cfg  # os-ken keeps its own ConfigOpts
    from os_ken.base import app_manager
    from os_ken.controller import controller as _of_controller  # noqa: F401 (registers options)

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", of_host)
    cfg.CONF.set_override("ofp_tcp_listen_port", of_port)
    cfg.CONF.set_override("echo_request_interval", ECHO_INTERVAL_S)
    cfg.CONF.set_override("maximum_unreplied_echo_requests", ECHO_UNANSWERED)
    if dvn.openflow_tls is not None:
        # os-ken then listens with TLS only, and requires a certificate of dvn's CA.
        key, cert, ca_cert = dvn.openflow_tls
        cfg.CONF.set_override("ofp_ssl_listen_port", of_port)
        cfg.CONF.set_override("ctl_privkey", key)
        cfg.CONF.set_override("ctl_cert", cert)
        cfg.CONF.set_override("ca_certs", ca_cert)
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(["controller.app"])
    contexts = manager.create_contexts()
    contexts["dvn"] = dvn  # controller.app then uses this dvn, not one from os-ken's configuration
    manager.instantiate_apps(**contexts)
    tls = dvn.openflow_tls is not None
    LOG.info("OpenFlow listener on %s:%d%s", of_host, of_port, " (TLS)" if tls else "")
    api = "API %s://%s:%d/v1, " % (("https" if tls else "http",) + dvn.api_address) if dvn.api_address else ""
    ovsdb_host, ovsdb_port = _hostport(args.ovsdb_listen, "0.0.0.0")
    print("dvn: serving (%sOpenFlow%s %s:%d, OVSDB%s %s:%d)" % (api, " over TLS" if tls else "", of_host, of_port,
                                                                " over TLS" if tls else "", ovsdb_host, ovsdb_port),
          flush=True)

    done = eventlet.event.Event()
    install_stop_signals(done, on_deadline=lambda: dvn.stop_store(wait=False))
    done.wait()
    dvn.stop()
    return 0


def install_stop_signals(done, on_deadline=None):
    """SIGTERM and SIGINT send ``done`` (the main green thread waits on it);
    SIGUSR1 logs every green thread's stack. ``on_deadline()`` runs before
    the process ends when stopping takes too long."""
    def _stop(signum, _frame):
        LOG.info("signal %d: stopping (flows stay on the switches)", signum)
        if not done.ready():
            done.send(signum)
            # A hub busy compiling may not come back to the main green thread
            # soon: an OS thread ends the process if stopping takes too long.
            # Nothing is lost (the store is on disk; switches keep their flows).
            _deadline(STOP_GRACE_S, on_deadline)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGUSR1, lambda *_: _dump_green_threads())


STOP_GRACE_S = 5


def _deadline(seconds, last=None):
    import eventlet.patcher
    threading = eventlet.patcher.original("threading")
    time_ = eventlet.patcher.original("time")

    def expire():
        time_.sleep(seconds)
        LOG.warning("not stopped within %d s: exiting now", seconds)
        if last is not None:
            last()
        logging.shutdown()
        os._exit(0)
    threading.Thread(target=expire, daemon=True).start()


def _trace_memory(path):
    """DVN_TRACEMALLOC=FILE (benchmarks): trace Python's allocations from
    here on (several times slower, and more memory); SIGUSR2 writes what is
    still allocated, by the line that allocated it, to FILE as JSON."""
    if not path:
        return
    import json
    import tracemalloc
    tracemalloc.start()

    def dump(*_):
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        stats = snapshot.statistics("lineno")
        top = [{"where": "%s:%d" % (s.traceback[0].filename, s.traceback[0].lineno), "bytes": s.size,
                "blocks": s.count} for s in stats[:60]]
        with open(path + ".tmp", "w") as f:
            json.dump({"traced": sum(s.size for s in stats), "top": top}, f)
        os.replace(path + ".tmp", path)
    signal.signal(signal.SIGUSR2, dump)


def _dump_green_threads():
    """SIGUSR1: log the stack of every green thread (for a controller that seems stuck)."""
    import gc
    import traceback
    import greenlet
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            LOG.warning("green thread %r:\n%s", obj, "".join(traceback.format_stack(obj.gr_frame)))


def identity_option(text):
    """CLASS:TYPE (decimal or 0x hex) -> fields.GeneveOption; ValueError if it is not one."""
    try:
        opt_class, opt_type = (int(x, 0) for x in text.split(":"))
    except ValueError:
        raise ValueError("%r: give CLASS:TYPE, e.g. 0xfff1:0x01" % text) from None
    if not (0 <= opt_class <= 0xFFFF and 0 <= opt_type <= 0xFF):
        raise ValueError("%r: the class is 16 bits, the type 8" % text)
    return dataclasses.replace(fields.IDENTITY, opt_class=opt_class, opt_type=opt_type)


def _identity_option(text):
    try:
        return identity_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers):
    p = subparsers.add_parser("serve", help="run the dvn controller")
    p.add_argument("--state-dir", default=os.environ.get("DVN_STATE_DIR", DEFAULT_STATE_DIR),
                   help="where the embedded northbound store and the admin token live")
    p.add_argument("--nb", help="use this northbound OVSDB remote instead of the embedded one")
    p.add_argument("--api-listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.add_argument("--openflow-listen", default="0.0.0.0:6653", metavar="HOST:PORT")
    p.add_argument("--openflow-lanes", type=int, default=3, choices=range(0, 9), metavar="N",
                   help="listen for N more OpenFlow connections from each switch, on the ports after "
                        "--openflow-listen's, for large changes (default 3; `dvn join --openflow-lanes` "
                        "must say the same)")
    p.add_argument("--ovsdb-listen", default="0.0.0.0:6640", metavar="HOST:PORT")
    p.add_argument("--log-file")
    p.add_argument("--log-rate", type=int, default=100, metavar="PPS",
                   help="packets per second each switch may send for logged firewall rules")
    p.add_argument("--identity-option", type=_identity_option, default=fields.IDENTITY, metavar="CLASS:TYPE",
                   help="the GENEVE option class and type that carry the sender's security identity "
                        "(default 0x%x:0x%x)" % (fields.IDENTITY.opt_class, fields.IDENTITY.opt_type))
    p.add_argument("--ipsec-auth", choices=["psk", "ca"], default="psk",
                   help="how IPsec tunnels authenticate: pre-shared keys dvn makes per node pair, or "
                        "certificates dvn's CA signs for nodes that joined with --ipsec-pki (pairs where "
                        "a node has none use a key)")
    p.add_argument("--tls", action="store_true",
                   help="serve the REST API over HTTPS, and OpenFlow and the node OVSDB listener over TLS only, "
                        "with certificates from dvn's CA (made in --state-dir); nodes join with a token "
                        "(docs/join.md)")
    p.add_argument("--tls-cert", metavar="PEM", help="the REST API's certificate (implies --tls; default: one "
                                                      "from dvn's CA for this host's names and --tls-name)")
    p.add_argument("--tls-key", metavar="PEM", help="the key of --tls-cert")
    p.add_argument("--tls-name", action="append", metavar="NAME",
                   help="one more host name or address for dvn's own certificate (repeat)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--keep-nb", action="store_true",
                   help="leave the embedded northbound store running when dvn exits (default: stop it; it is "
                        "started again, on the same file, with dvn). A store given with --nb is never stopped")
    p.add_argument("--stop-nb", action="store_true", help=argparse.SUPPRESS)   # the default now
    p.set_defaults(func=serve, monkey_patch=True)
    return p


if __name__ == "__main__":
    from controller import hub
    hub.patch()
    import argparse
    parser = argparse.ArgumentParser(prog="dvn")
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(["serve"] + sys.argv[1:])
    sys.exit(args.func(args))
