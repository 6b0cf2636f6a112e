"""Request/reply work with one switch, on top of an os-ken Datapath.

os-ken accepts the connection, negotiates OpenFlow 1.5 and answers echoes.
Flow messages are dvn's own bytes (``flows.ofwire``: each flow value is
serialized once), and so are the replies dvn waits for: a tap in front of
os-ken's parser hands barrier, bundle-control, error and flow-desc replies
whose xid dvn is waiting for straight to the waiting green thread, without
building os-ken objects for twenty thousand flows, and packet-ins from dvn's
flows (by cookie) to the core; everything else goes on to os-ken's apps.

Everything here runs in green threads; nothing blocks the os-ken event loop.
"""

import contextlib
import functools
import itertools
import logging
import struct

import eventlet
from eventlet import event as ev_event

from flows import ofwire
from flows.flow import is_dvn_cookie

LOG = logging.getLogger(__name__)

OFP_VERSION = 6  # OpenFlow 1.5
OFPT_ERROR = 1
OFPT_EXPERIMENTER = 4
OFPT_PACKET_IN = 10
OFPT_MULTIPART_REPLY = 19
OFPT_BARRIER_REPLY = 21
OFPT_BUNDLE_CONTROL = 33
OFPMPF_REPLY_MORE = 1
SEND_CHUNK = 256 * 1024
MIN_INTAKE = 250   # messages a second a switch takes in at the least, before dvn gives up on a bundle
READ_FACTOR = 4    # a switch's whole flow table (100,000s of flows) may take that many timeouts to read


class SwitchError(Exception):
    """The switch refused something, or did not answer in time."""

    def __init__(self, message, errors=()):
        super().__init__(message)
        self.errors = list(errors)  # [(xid, type, code, offending bytes)]


def install_tap():
    """Route replies that a SwitchConn waits for past os-ken's parser (idempotent)."""
    from os_ken.ofproto import ofproto_parser

    parsers = ofproto_parser._MSG_PARSERS
    original = parsers[OFP_VERSION]
    if getattr(original, "dvn_tap", False):
        return

    def tapped(datapath, version, msg_type, msg_len, xid, buf):
        conn = getattr(datapath, "dvn_conn", None)
        if conn is not None and conn.tap(msg_type, xid, bytes(buf[:msg_len])):
            return None
        return original(datapath, version, msg_type, msg_len, xid, buf)

    tapped.dvn_tap = True
    parsers[OFP_VERSION] = tapped


def end_connection(datapath):
    """End an os-ken switch connection from any green thread, without the
    traceback os-ken's Datapath.close() leads to on a TLS connection: its
    SSL socket's shutdown unwraps the socket under the green thread that
    reads it, whose next read then fails (ValueError). Here the
    connection's state goes to DEAD (os-ken's reader stops and tells the
    apps) and the kernel socket is shut down both ways: the reader sees its
    end, the switch a closed connection. os-ken's sender shuts the socket
    down again as it stops: on an SSL socket, that too is the kernel's."""
    import _socket
    from os_ken.controller.handler import DEAD_DISPATCHER
    datapath.set_state(DEAD_DISPATCHER)
    sock = datapath.socket
    raw = sock if isinstance(sock, _socket.socket) else sock.fd   # (eventlet's plain green socket holds one)
    if raw is sock and hasattr(sock, "_sslobj"):
        sock.shutdown = functools.partial(_socket.socket.shutdown, sock)
    try:
        _socket.socket.shutdown(raw, _socket.SHUT_RDWR)
    except OSError:   # already gone
        pass


class _Waiter:
    __slots__ = ("event", "parts")

    def __init__(self):
        self.event = ev_event.Event()
        self.parts = []


class _Watch:
    __slots__ = ("first", "count", "errors", "refused")

    def __init__(self, first, count):
        self.first, self.count, self.errors, self.refused = first, count, [], []

    def xids(self):
        return ((self.first + i) & 0xFFFFFFFF for i in range(self.count))


class SwitchConn:
    """Requests to one switch, and the replies to them."""

    def __init__(self, datapath, timeout=30.0):
        self.datapath = datapath
        self.timeout = timeout
        self._waiters = {}
        self._watched = {}  # xid -> error list, for messages without a reply of their own
        self._bundles = []  # _Watch of each block of messages being sent (_watching): their xids, their errors
        self.gone = False   # the connection closed: requests fail at once
        self._bundle_id = 0
        self.on_packet_in = None  # called with the raw message, in the receive thread
        datapath.dvn_conn = self

    @property
    def dpid(self):
        return self.datapath.id

    def next_xid(self):
        dp = self.datapath
        dp.xid = (dp.xid + 1) & 0xFFFFFFFF
        return dp.xid

    # ---- the tap (runs in os-ken's receive green thread: never blocks) ----
    def tap(self, msg_type, xid, buf):
        if msg_type == OFPT_PACKET_IN:
            if not is_dvn_cookie(ofwire.packet_in_cookie(buf)):
                return False  # another os-ken app's flow sent it: os-ken hands it to the apps
            if self.on_packet_in is not None:
                self.on_packet_in(buf)
            return True
        if msg_type == OFPT_ERROR:
            err_type, code = struct.unpack_from("!HH", buf, 8)
            record = (xid, err_type, code, buf[12:])
            if xid in self._watched:
                self._watched[xid].append(record)
                return True
            for watch in self._bundles:
                if (xid - watch.first) & 0xFFFFFFFF < watch.count:
                    watch.errors.append(record)
                    return True
            waiter = self._waiters.get(xid)
            if waiter is not None:
                waiter.parts.append(record)
                waiter.event.send("error")
                return True
            return False
        waiter = self._waiters.get(xid)
        if waiter is None:
            return False
        if msg_type == OFPT_MULTIPART_REPLY:
            waiter.parts.append(buf)
            (flags,) = struct.unpack_from("!H", buf, 10)
            if not flags & OFPMPF_REPLY_MORE:
                waiter.event.send("ok")
            return True
        if msg_type in (OFPT_BARRIER_REPLY, OFPT_BUNDLE_CONTROL, OFPT_EXPERIMENTER):
            waiter.parts.append(buf)
            waiter.event.send("ok")
            return True
        return False

    # ---- requests ------------------------------------------------------
    def send(self, data):
        """Send one message (bytes) or several (a list of bytes), in chunks of
        whole messages: between two chunks another green thread may send (an
        echo reply, a packet-out), so a chunk never ends inside a message."""
        messages = [data] if isinstance(data, (bytes, bytearray)) else data   # or any iterable of them
        chunk, size = [], 0
        for msg in messages:
            chunk.append(msg)
            size += len(msg)
            if size >= SEND_CHUNK:
                self.datapath.send(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self.datapath.send(b"".join(chunk))

    def _request(self, xid, data, what, timeout=None):
        if self.gone:
            raise SwitchError("switch %s: its connection is gone, %s not sent" % (self._name(), what))
        waiter = _Waiter()
        self._waiters[xid] = waiter
        timeout = timeout or self.timeout
        try:
            self.send(data)
            with eventlet.Timeout(timeout, False):
                outcome = waiter.event.wait()
                if outcome == "closed":
                    raise SwitchError("switch %s closed the connection before it answered %s" % (
                        self._name(), what))
                if outcome == "error":
                    raise SwitchError("switch %s refused %s" % (self._name(), what), waiter.parts)
                return waiter.parts
            raise SwitchError("switch %s did not answer %s in %.0f s" % (self._name(), what, timeout))
        finally:
            self._waiters.pop(xid, None)

    def _name(self):
        return "%016x" % (self.dpid or 0)

    def barrier(self, timeout=None):
        xid = self.next_xid()
        self._request(xid, ofwire.barrier_request(xid), "a barrier", timeout)

    def _checked(self, build):
        """Send ``build(xid)`` and a barrier: the errors the switch answered it with."""
        xid = self.next_xid()
        self._watched[xid] = []
        try:
            self.send(build(xid))
            self.barrier()
            return self._watched[xid]
        finally:
            self._watched.pop(xid, None)

    def ensure_meter(self, meter_id, rate_pps, burst):
        """Add the meter, or set its rate if it is there already."""
        for command in (0, 1):  # OFPMC_ADD, then OFPMC_MODIFY if it exists
            errors = self._checked(lambda xid: ofwire.meter_mod(meter_id, rate_pps, burst, xid, command))
            if not errors:
                return
        raise SwitchError("switch %s refused meter %d" % (self._name(), meter_id), errors)

    def ensure_tlv_map(self, option):
        """Map the GENEVE ``option`` (fields.GeneveOption) to its tun_metadata
        field, unless the switch has that mapping already; raise SwitchError
        naming what stands in the way if the field or the option is mapped
        otherwise (dvn never remaps: another user of the switch may need it)."""
        xid = self.next_xid()
        have = []
        for part in self._request(xid, ofwire.tlv_table_request(xid), "a GENEVE TLV map read"):
            have.extend(ofwire.decode_tlv_table_reply(part))
        want = (option.opt_class, option.opt_type, option.length, option.index)
        if want in have:
            return False
        clash = [m for m in have if m[3] == want[3] or m[:2] == want[:2]]
        if clash:
            raise SwitchError("switch %s: GENEVE TLV map conflict: dvn needs {class=0x%x,type=0x%x,len=%d}->"
                              "tun_metadata%d, the switch has %s" % (
                                  self._name(), want[0], want[1], want[2], want[3],
                                  ", ".join("{class=0x%x,type=0x%x,len=%d}->tun_metadata%d" % m for m in clash)))
        errors = self._checked(lambda xid: ofwire.tlv_table_add([want], xid))
        if errors:
            raise SwitchError("switch %s refused the GENEVE TLV map" % self._name(), errors)
        return True

    def read_flows(self, cookie=0, cookie_mask=0, table_id=ofwire.OFPTT_ALL):
        """The flows the switch has (those whose cookie matches, if a mask is
        given; of one table, if given): a list of ofwire.FlowDesc."""
        xid = self.next_xid()
        parts = self._request(xid, ofwire.flow_desc_request(xid, cookie, cookie_mask, table_id), "a flow read",
                              self.timeout * READ_FACTOR)
        found = []
        for part in parts:
            found.extend(ofwire.decode_flow_desc_reply(part))
        return found

    def count_flows(self, cookie=0, cookie_mask=0):
        """How many flows the switch has whose cookie matches."""
        xid = self.next_xid()
        parts = self._request(xid, ofwire.aggregate_request(xid, cookie, cookie_mask), "a flow count")
        return ofwire.decode_aggregate_reply(parts[0])

    def read_groups(self):
        """{group id: ofwire.GroupDesc} of the switch's groups."""
        xid = self.next_xid()
        found = {}
        for part in self._request(xid, ofwire.group_desc_request(xid), "a group read"):
            found.update(ofwire.decode_group_desc_reply(part))
        return found

    def read_group_stats(self):
        xid = self.next_xid()
        found = {}
        for part in self._request(xid, ofwire.group_stats_request(xid), "a group statistics read"):
            found.update(ofwire.decode_group_stats_reply(part))
        return found

    def closed(self):
        """The connection is gone: every request waiting on it fails now,
        not when its wait runs out (a flow read waits minutes), and so does
        every request made after."""
        self.gone = True
        for waiter in list(self._waiters.values()):
            if not waiter.event.ready():
                waiter.event.send("closed")

    def silence(self):
        """Ask the switch for no asynchronous messages on this connection (a
        lane: packet-ins go to the switch's main connection only)."""
        errors = self._checked(ofwire.set_async_none)
        if errors:
            raise SwitchError("switch %s refused an asynchronous-message config" % self._name(), errors)

    def bundle(self, messages):
        """Apply ``messages`` atomically in one bundle.

        ``messages`` are (inner message bytes, context) pairs; the inner
        messages' xids are patched. Raises SwitchError, with the contexts of
        the refused messages, if any message or the commit is refused; then
        nothing was applied.
        """
        self.commit(self.stage(messages))

    def stage(self, messages):
        """Open a bundle and add ``messages`` to it, uncommitted; raise
        SwitchError (the bundle discarded) if the switch refused any of them.
        Returns what commit() and discard() take."""
        self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
        bid = self._bundle_id
        # The open goes with the messages (its answer is read after the
        # barrier's: a switch answers in order), which saves a round trip:
        # through a userspace switch with 10,000 ports one takes 0.1 s.
        open_xid = self.next_xid()
        opened = self._waiters[open_xid] = _Waiter()
        # (A userspace switch with thousands of ports takes in as few as 1,000
        # flow_mods a second: the waits grow with the bundle.)
        wait = self.timeout + len(messages) / MIN_INTAKE
        try:
            with self._watching(messages) as watch:
                self.send(itertools.chain(
                    [ofwire.bundle_open(bid, open_xid)],
                    (ofwire.bundle_add(bid, inner, xid) for xid, (inner, _context) in zip(watch.xids(), messages))))
                # OVS leaves a refused message out of the bundle and would commit
                # the rest: make sure none was refused before committing.
                self.barrier(wait)
            if not opened.event.ready() or opened.event.wait() != "ok":
                raise SwitchError("switch %s refused a bundle open" % self._name(), opened.parts)
            if watch.refused:
                self.discard((bid, wait))
                raise SwitchError("switch %s refused %d message(s) of a bundle" % (
                    self._name(), len(watch.refused)), watch.refused)
        finally:
            self._waiters.pop(open_xid, None)
        return bid, wait

    def apply(self, messages):
        """Send ``messages`` (as for bundle()) one by one, not in a bundle,
        and a barrier: one round trip where a bundle takes two. Each message
        takes effect alone, so this is for a change whose messages need not
        act together (one flow and the switch's mark). Raises SwitchError,
        with the contexts of the refused messages, if any was refused; the
        others are applied."""
        with self._watching(messages) as watch:
            self.send(ofwire.with_xid(inner, xid) for xid, (inner, _context) in zip(watch.xids(), messages))
            self.barrier()
        if watch.refused:
            raise SwitchError("switch %s refused %d message(s) of a change" % (self._name(), len(watch.refused)),
                              watch.refused)

    @contextlib.contextmanager
    def _watching(self, messages):
        """A block of xids for ``messages`` ((message, context) pairs),
        watched for errors while in the block: a refusal names its message
        by its place in the block (no per-message bookkeeping for bundles of
        100,000s). After it, the watch's ``refused``: [(context, error)]."""
        dp = self.datapath
        watch = _Watch((dp.xid + 1) & 0xFFFFFFFF, len(messages))
        dp.xid = (dp.xid + len(messages)) & 0xFFFFFFFF
        self._bundles.append(watch)
        try:
            yield watch
        finally:
            self._bundles.remove(watch)
        watch.refused = [(messages[(rec[0] - watch.first) & 0xFFFFFFFF][1], rec) for rec in watch.errors]

    def commit(self, staged):
        bid, wait = staged
        xid = self.next_xid()
        self._request(xid, ofwire.bundle_commit(bid, xid), "a bundle commit", wait)

    def discard(self, staged):
        """Drop a staged bundle (best effort: the switch drops an idle one anyway)."""
        xid = self.next_xid()
        try:
            self._request(xid, ofwire.bundle_discard(staged[0], xid), "a bundle discard")
        except SwitchError:
            pass


def bundle_across(main, lanes, shares):
    """Apply a change to one switch over its main connection and ``lanes``
    (more connections to the same switch), which a userspace switch with
    many ports takes in several times faster than over one: it reads at most
    50 messages from a connection in each pass of its main loop.

    ``shares`` (flows.reconcile.bundles): the main connection's messages,
    applied in one bundle committed last, then each lane's, whose bundle
    commits as soon as the switch has taken it in (an open bundle that
    waits goes idle, and OVS drops one idle for 10 s). Each bundle is
    atomic; the change as a whole is not. Raises SwitchError if any bundle
    is refused; then the main bundle is not applied, and some lanes' may be.
    """
    threads = [eventlet.spawn(lambda c, m: c.commit(c.stage(m)), conn, msgs)
               for conn, msgs in zip(lanes, shares[1:]) if msgs]
    errors, staged = [], None
    try:
        staged = main.stage(shares[0]) if shares[0] else None
    except SwitchError as exc:
        errors.append(exc)
    for t in threads:   # (the lanes are done before anything else talks to the switch)
        try:
            t.wait()
        except SwitchError as exc:
            errors.append(exc)
    if errors:
        if staged is not None:
            main.discard(staged)
        raise errors[0]
    if staged is not None:
        main.commit(staged)
