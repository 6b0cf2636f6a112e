"""The nodes' Open_vSwitch databases, reached over connections the nodes open.

A node that ran ``dvn join`` has ``ovs-vsctl set-manager tcp:DVN:6640``
(``ssl:DVN:6640`` when it joined with a token): its ovsdb-server dials dvn
and keeps the connection up. Over each such connection dvn monitors the few
tables it needs (the node's identity, br-int, its ports and interfaces) and
writes the node's tunnel ports.

With TLS (``dvn serve --tls``) the listener speaks TLS only and the node
must present a certificate of dvn's CA. The session's view reaches dvn
(``on_update``) only once ``admit(session)`` has accepted the certificate
for the system-id the node's database states; a session it refuses is
closed and nothing of it is taken.

python-ovs's ``Idl`` on a passive remote (``ptcp:``) never gets the
database: its listening socket is blocking, so after its first request it
waits in accept() for another peer and never reads the answer
(tests/repro/idl_passive.py shows it, and that a non-blocking listening
socket cures it); its PassiveStream has no ``pssl:`` at all. os-ken's OVSDB
manager avoids both by handing an accepted socket to ``ovs.stream.Stream``;
until the sessions move onto that, this module speaks the small part of
RFC 7047 it needs over an accepted socket: ``monitor``, ``update``,
``transact`` and ``echo``. It runs in green threads (eventlet) and never
blocks the hub.
"""

import errno
import json
import logging
import socket
import zlib

import eventlet
from eventlet import event as ev_event

LOG = logging.getLogger(__name__)

DB = "Open_vSwitch"
BRIDGE = "br-int"
TUNNEL_PREFIX = "dvn-"
SECURE_PREFIX = "dvs-"
PEER_KEY = "dvn-peer"
MESH_KEY = "dvn-mesh"      # external_ids of a tunnel port: "plain" or "ipsec"
# ovs-monitor-ipsec protects GENEVE on udp/6081 between two hosts, whatever a
# port's dst_port: the IPsec mesh is on 6081 and the plain mesh elsewhere,
# so that the policy of one never covers the other (docs/encryption.md).
PLAIN_GENEVE_PORT = 6082
ENCAP_IP_KEY = "dvn-encap-ip"
PUBLIC_IP_KEY = "dvn-public-ip"   # behind a 1:1 NAT: the address peers tunnel to (dvn join --public-ip)

MONITORED = {
    "Open_vSwitch": ["external_ids", "bridges"],
    "Bridge": ["name", "datapath_id", "ports"],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": ["name", "type", "ofport", "options", "external_ids"],
}


class OvsdbError(Exception):
    """A transaction the node's ovsdb-server refused, or a lost session."""


def tunnel_port_name(peer_system_id, mesh="plain"):
    """The name of the tunnel port of ``mesh`` towards ``peer_system_id`` (<= 15 chars)."""
    return "%s%08x" % (TUNNEL_PREFIX if mesh == "plain" else SECURE_PREFIX, zlib.crc32(peer_system_id.encode()))


def _redacted(text, secrets):
    for secret in secrets:
        text = text.replace(secret, "<secret>")
    return text


def _from_json(value):
    """An OVSDB datum in JSON form -> str, int, bool, list or dict."""
    if isinstance(value, list) and len(value) == 2:
        kind, body = value
        if kind == "uuid" or kind == "named-uuid":
            return body
        if kind == "set":
            return [_from_json(v) for v in body]
        if kind == "map":
            return {_from_json(k): _from_json(v) for k, v in body}
    return value


def _scalar(value):
    """An optional scalar (OVSDB "min": 0) is an empty set when absent."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _set(value):
    """A set column: one element comes as the bare element, more as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _map(d):
    return ["map", [[k, v] for k, v in sorted(d.items())]]


class Interface:
    __slots__ = ("uuid", "name", "type", "ofport", "options", "external_ids")

    def __init__(self, uuid, row):
        self.uuid = uuid
        self.name = row.get("name", "")
        self.type = row.get("type", "")
        ofport = _scalar(row.get("ofport"))
        self.ofport = ofport if isinstance(ofport, int) and ofport > 0 else None
        self.options = row.get("options") or {}
        self.external_ids = row.get("external_ids") or {}


class NodeSession:
    """One node's database, over a connection that node opened.

    ``on_update(session)`` is called (in this session's green thread) after the
    first complete view and after every change; ``on_close(session)`` once,
    unless the session was refused before dvn saw it.

    ``tls``: an SSL context (green, server side, requiring a client
    certificate): the handshake happens in ``run()``, and ``peer_cert`` is
    then the node's certificate (DER). ``admit(session)``: None if the
    certificate may be the node's that the session's database names
    (``system_id``), else why not.
    """

    def __init__(self, sock, address, on_update, on_close, idle_timeout=15.0, tls=None, admit=None):
        self.sock = sock
        self.address = address
        self.on_update = on_update
        self.on_close = on_close
        self.idle_timeout = idle_timeout
        self.tls, self.admit = tls, admit
        self.peer_cert = None     # the node's TLS certificate (DER)
        self.admitted = None      # the system-id admit() accepted
        self.refused = False
        self.seen = False         # on_update has been called
        self.rows = {table: {} for table in MONITORED}
        self.ready = False
        self.closed = False
        self._next_id = 0
        self._waiting = {}
        self._send_lock = eventlet.semaphore.Semaphore()
        self._txn_lock = eventlet.semaphore.Semaphore()

    # ---- what the node has -------------------------------------------
    def _open_vswitch(self):
        for row in self.rows["Open_vSwitch"].values():
            return row
        return {}

    @property
    def system_id(self):
        """The node's name: once admitted, the one its certificate was accepted for."""
        return self.admitted or self.claimed_id

    @property
    def claimed_id(self):
        """The system-id the node's database states."""
        return (self._open_vswitch().get("external_ids") or {}).get("system-id")

    @property
    def external_ids(self):
        return dict(self._open_vswitch().get("external_ids") or {})

    @property
    def encap_ip(self):
        return self.external_ids.get(ENCAP_IP_KEY)

    @property
    def public_ip(self):
        return self.external_ids.get(PUBLIC_IP_KEY)

    @property
    def tunnel_ip(self):
        """The address peers tunnel to: the public one of a node behind a 1:1
        NAT, else its encap IP (its own tunnel ports send from the address
        its route to the peer gives, the private one)."""
        return self.public_ip or self.encap_ip

    @property
    def hostname(self):
        return self.external_ids.get("hostname", "")

    def _bridge(self):
        for uuid, row in self.rows["Bridge"].items():
            if row.get("name") == BRIDGE:
                return uuid, row
        return None, None

    @property
    def datapath_id(self):
        """br-int's datapath id as an int, or None before vswitchd sets it."""
        _, row = self._bridge()
        dpid = _scalar(row.get("datapath_id")) if row else None
        return int(dpid, 16) if dpid else None

    def interfaces(self):
        """Interfaces of ports on br-int, by name."""
        _, bridge = self._bridge()
        if bridge is None:
            return {}
        found = {}
        for port_uuid in _set(bridge.get("ports")):
            port = self.rows["Port"].get(port_uuid)
            if port is None:
                continue
            for iface_uuid in _set(port.get("interfaces")):
                row = self.rows["Interface"].get(iface_uuid)
                if row is not None:
                    iface = Interface(iface_uuid, row)
                    found[iface.name] = iface
        return found

    def bindings(self):
        """{iface-id: ofport} of the VM interfaces on br-int that have an ofport."""
        return {i.external_ids["iface-id"]: i.ofport
                for i in self.interfaces().values()
                if "iface-id" in i.external_ids and i.ofport}

    def tunnels(self, mesh="plain"):
        """{peer system-id: ofport or None} of dvn's tunnel ports of ``mesh`` on br-int."""
        return {i.external_ids[PEER_KEY]: i.ofport
                for i in self.interfaces().values()
                if PEER_KEY in i.external_ids and i.external_ids.get(MESH_KEY, "plain") == mesh}

    # ---- writing --------------------------------------------------------
    def ensure_tunnels(self, peers, options=None, ipsec=None):
        """Make br-int's dvn tunnel ports exactly the wanted ones, in one transaction:
        one plain port per peer, and one IPsec port per peer that ``ipsec``
        names, with the options ovs-monitor-ipsec authenticates it by
        (``{"psk": key}`` or ``{"remote_name": peer}`` for certificates).

        ``peers`` maps a peer's system-id to its tunnel IP. Returns the number
        of operations sent (0 when the node already matches). No error names
        a key.
        """
        bridge_uuid, _ = self._bridge()
        if bridge_uuid is None:
            raise OvsdbError("node %s has no %s" % (self.system_id, BRIDGE))
        ipsec = ipsec or {}
        keys = [o["psk"] for o in ipsec.values() if "psk" in o]
        base = {"key": "flow"}
        base.update(options or {})
        have = {}
        for iface in self.interfaces().values():
            peer = iface.external_ids.get(PEER_KEY)
            if peer is not None:
                have[(peer, iface.external_ids.get(MESH_KEY, "plain"))] = iface
        wanted = {}
        for peer, remote_ip in peers.items():
            wanted[(peer, "plain")] = dict(base, remote_ip=remote_ip, dst_port=str(PLAIN_GENEVE_PORT))
            if peer in ipsec:
                wanted[(peer, "ipsec")] = dict(base, remote_ip=remote_ip, **ipsec[peer])
        ops, add_ports, del_ports = [], [], []
        for (peer, mesh), want in sorted(wanted.items()):
            iface = have.get((peer, mesh))
            ids = _map({PEER_KEY: peer, MESH_KEY: mesh})
            if iface is None:
                name = tunnel_port_name(peer, mesh)
                n = len(add_ports)
                ops.append({"op": "insert", "table": "Interface", "uuid-name": "i%d" % n,
                            "row": {"name": name, "type": "geneve", "options": _map(want), "external_ids": ids}})
                ops.append({"op": "insert", "table": "Port", "uuid-name": "p%d" % n,
                            "row": {"name": name, "interfaces": ["named-uuid", "i%d" % n], "external_ids": ids}})
                add_ports.append(["named-uuid", "p%d" % n])
            elif (iface.options != want or iface.type != "geneve"
                  or iface.external_ids.get(MESH_KEY) != mesh):
                ops.append({"op": "update", "table": "Interface",
                            "where": [["_uuid", "==", ["uuid", iface.uuid]]],
                            "row": {"type": "geneve", "options": _map(want), "external_ids": ids}})
        for key, iface in have.items():
            if key not in wanted:
                for port_uuid, port in self.rows["Port"].items():
                    if iface.uuid in _set(port.get("interfaces")):
                        del_ports.append(["uuid", port_uuid])
        mutations = []
        if add_ports:
            mutations.append(["ports", "insert", ["set", add_ports]])
        if del_ports:
            mutations.append(["ports", "delete", ["set", del_ports]])
        if mutations:
            ops.append({"op": "mutate", "table": "Bridge",
                        "where": [["_uuid", "==", ["uuid", bridge_uuid]]],
                        "mutations": mutations})
        if ops:
            ops.append({"op": "comment", "comment": "dvn: tunnel mesh"})
            try:
                self.transact(ops)
            except OvsdbError as exc:
                raise OvsdbError(_redacted(str(exc), keys)) from None
        return len(ops)

    def set_external_ids(self, values):
        """Merge ``values`` into Open_vSwitch external_ids (None removes a key)."""
        for uuid in self.rows["Open_vSwitch"]:
            ops = [{"op": "mutate", "table": "Open_vSwitch",
                    "where": [["_uuid", "==", ["uuid", uuid]]],
                    "mutations": [["external_ids", "delete", ["set", sorted(values)]]]}]
            keep = {k: v for k, v in values.items() if v is not None}
            if keep:
                ops[0]["mutations"].append(["external_ids", "insert", _map(keep)])
            self.transact(ops)
            return

    def transact(self, ops, timeout=10.0):
        """Run ``ops`` in one transaction; raise OvsdbError if any op failed."""
        with self._txn_lock:
            result = self._request("transact", [DB] + ops, timeout)
        for i, res in enumerate(result or []):
            if isinstance(res, dict) and res.get("error"):
                raise OvsdbError("node %s: %s: %s (op %d)" % (
                    self.system_id, res["error"], res.get("details", ""), i))
        return result

    # ---- the protocol ---------------------------------------------------
    def _send(self, msg):
        data = json.dumps(msg).encode()
        with self._send_lock:
            self.sock.sendall(data)

    def _request(self, method, params, timeout):
        if self.closed:
            raise OvsdbError("session to %s is closed" % (self.address,))
        self._next_id += 1
        rid = self._next_id
        waiter = ev_event.Event()
        self._waiting[rid] = waiter
        try:
            self._send({"method": method, "params": params, "id": rid})
            with eventlet.Timeout(timeout, OvsdbError("%s to %s timed out" % (method, self.address))):
                error, result = waiter.wait()
        finally:
            self._waiting.pop(rid, None)
        if error is not None:
            raise OvsdbError("%s: %s" % (method, error))
        return result

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        for waiter in list(self._waiting.values()):
            if not waiter.ready():
                waiter.send(("connection closed", None))

    def run(self):
        """Read and dispatch until the connection ends."""
        try:
            if self.tls is not None:
                self._handshake()
            self.sock.settimeout(self.idle_timeout)
            self._next_id += 1
            self._monitor_id = self._next_id
            self._send({"method": "monitor", "id": self._monitor_id,
                        "params": [DB, None, {t: {"columns": c} for t, c in MONITORED.items()}]})
            for msg in self._messages():
                self._dispatch(msg)
        except (OSError, socket.timeout, ValueError, EOFError) as exc:   # (EOFError: closed by dvn meanwhile)
            if not self.closed:
                LOG.info("node session %s ended: %s", self.address, exc)
        finally:
            self.close()
            if self.seen or not self.refused:
                self.on_close(self)

    def _handshake(self):
        """TLS, in this session's green thread (the accept loop never waits for it)."""
        why = OSError(errno.ETIMEDOUT, "no TLS handshake in %.0f s" % self.idle_timeout)
        with eventlet.Timeout(self.idle_timeout, why):
            self.sock = self.tls.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
            self.sock.do_handshake()
        self.peer_cert = self.sock.getpeercert(binary_form=True)

    def _messages(self):
        decoder = json.JSONDecoder()
        buf = ""
        pending = b""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise OSError(errno.ETIMEDOUT, "no message for %.0f s" % self.idle_timeout)
            if not chunk:
                return
            pending += chunk
            try:
                text = pending.decode()
            except UnicodeDecodeError:
                continue  # a multi-byte character split across reads
            pending = b""
            buf += text
            # A message ends with '}'; only then is a decode worth trying.
            if not text.rstrip().endswith("}"):
                continue
            pos = 0
            while True:
                while pos < len(buf) and buf[pos].isspace():
                    pos += 1
                if pos == len(buf):
                    break
                try:
                    msg, pos = decoder.raw_decode(buf, pos)
                except ValueError:
                    break  # the rest is a message still on its way
                yield msg
            buf = buf[pos:]

    def _dispatch(self, msg):
        method = msg.get("method")
        if method == "echo":
            self._send({"result": msg.get("params", []), "error": None, "id": msg.get("id")})
        elif method == "update":
            self._apply(msg["params"][1])
            self._notify()
        elif "id" in msg and method is None:
            if msg["id"] == self._monitor_id:
                if msg.get("error"):
                    raise OSError("monitor refused: %s" % (msg["error"],))
                self._apply(msg.get("result") or {})
                self.ready = True
                self._notify()
                return
            waiter = self._waiting.get(msg["id"])
            if waiter is not None and not waiter.ready():
                waiter.send((msg.get("error"), msg.get("result")))

    def _apply(self, table_updates):
        for table, rows in table_updates.items():
            store = self.rows.setdefault(table, {})
            for uuid, change in rows.items():
                new = change.get("new")
                if new is None:
                    store.pop(uuid, None)
                else:
                    store[uuid] = {col: _from_json(v) for col, v in new.items()}

    def _notify(self):
        if not self.ready or not self._admitted():
            return
        self.seen = True
        try:
            self.on_update(self)
        except Exception:  # a bug upstream must not kill the session
            LOG.exception("node session %s: update handler failed", self.address)

    def _admitted(self):
        """Whether dvn may see this session: always without ``admit``; else
        once the node states a system-id that ``admit`` accepts its
        certificate for, and as long as it keeps that one. A refused session
        is closed (its reads end)."""
        if self.admit is None:
            return True
        claimed = self.claimed_id
        if claimed and claimed == self.admitted:
            return True
        if self.refused or not claimed:
            return False   # (the node has not said who it is yet)
        if self.admitted is not None:
            why = "the node admitted as %s now says it is %s" % (self.admitted, claimed)
        else:
            why = self.admit(self)
        if why is None:
            self.admitted = claimed
            return True
        self.refused = True
        LOG.warning("OVSDB connection from %s:%s refused: %s", self.address[0], self.address[1], why)
        self.close()
        return False


class NodeListener:
    """Accepts the OVSDB connections of nodes and runs a NodeSession for each
    (with ``tls``, over TLS only, each session checked by ``admit``: see NodeSession)."""

    def __init__(self, host, port, on_update, on_close, tls=None, admit=None):
        self.host, self.port = host, port
        self.on_update, self.on_close = on_update, on_close
        self.tls, self.admit = tls, admit
        self.server = None

    def start(self):
        self.server = eventlet.listen((self.host, self.port))
        self.port = self.server.getsockname()[1]
        eventlet.spawn_n(self._accept_loop)
        return self.port

    def _accept_loop(self):
        while True:
            try:
                sock, address = self.server.accept()
            except OSError as exc:
                if self.server is None:
                    return
                LOG.warning("OVSDB accept failed: %s", exc)
                eventlet.sleep(0.1)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = NodeSession(sock, address, self.on_update, self.on_close, tls=self.tls, admit=self.admit)
            LOG.info("node OVSDB connection from %s:%s%s", address[0], address[1], " (TLS)" if self.tls else "")
            eventlet.spawn_n(session.run)

    def stop(self):
        server, self.server = self.server, None
        if server is not None:
            server.close()
