"""The northbound store client (ovsdbapp over the DVN_Northbound schema)."""

import logging
import time

from ovsdbapp import api as ovsdbapp_api
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend import ovs_idl
from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.backend.ovs_idl import transaction as idl_transaction

from ovsdb import fastjson

LOG = logging.getLogger(__name__)
SCHEMA_NAME = "DVN_Northbound"
YIELD_S = 0.05    # the longest the IDL parses an update before it lets the other green threads in
SECONDS_PER_COMMAND = 0.005   # what a transaction may take beyond the timeout, per command (python-ovs)


def optional(value):
    """An optional column (OVSDB "min": 0, "max": 1) as python-ovs gives it, [] or [value]: the value or None."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _name(fn):
    return getattr(fn, "__qualname__", repr(fn))


class NbError(Exception):
    pass


class Conflict(NbError):
    """A unique index or a reference refused the transaction."""


class NotFound(NbError):
    pass


class Timeout(NbError):
    """The store did not confirm a transaction in time (it may yet apply it)."""


class _Idl(connection.OvsdbIdl):
    """Hands every row change to ``on_change`` and, after each batch of
    updates (all applied to the rows by then), calls ``after_run``; both in
    the IDL thread."""

    def __init__(self, remote, helper, on_change, after_run):
        super().__init__(remote, helper)
        self._on_change, self._after_run = on_change, after_run
        self._yielded = time.monotonic()

    def cooperative_yield(self):
        """python-ovs calls this for every row of an update; ovsdbapp's
        yields each time, which for an update of 18,700 rows (an import of
        10,000 ports) is 18,700 trips through the hub. Once every
        YIELD_S is enough for the other green threads."""
        now = time.monotonic()
        if now - self._yielded >= YIELD_S:
            time.sleep(0)   # eventlet's under `dvn serve`: a yield
            self._yielded = time.monotonic()

    def notify(self, event, row, updates=None):
        kind = {"create": "create", "update": "update", "delete": "delete"}.get(event)
        if kind is not None:
            # An update's ``updates`` holds the old values of the columns that changed, only those.
            old = getattr(updates, "_data", None) if kind == "update" else None
            self._on_change(row._table.name, kind, row, frozenset(old) if old is not None else None)

    def run(self):
        changed = super().run()
        self._after_run()
        return changed


class _Api(ovs_idl.Backend, ovsdbapp_api.API):
    schema = SCHEMA_NAME
    lookup_table = {"Network": ("Network", None, None)}
    # ovsdbapp keeps its connection on the class; dvn keeps it on the instance.
    ovsdb_connection = None


class Northbound:
    def __init__(self, remote, timeout=10):
        self.remote = remote
        self.timeout = timeout
        self._subscribers = []      # [callback, on_error, the first error since the last batch or None, columns]
        self.subscriber_errors = 0  # callbacks (and on_error hooks) that raised, since the start
        self.api = None

    def start(self):
        fastjson.install()  # the store's updates are large: parse them at C speed
        helper = idlutils.get_schema_helper(self.remote, SCHEMA_NAME)
        helper.register_all()
        idl = _Idl(self.remote, helper, self._changed, self._recover)
        self.api = _Api(connection.Connection(idl, timeout=self.timeout))
        return self

    def stop(self):
        if self.api is not None:
            self.api.ovsdb_connection.stop(timeout=5)

    @property
    def idl(self):
        return self.api.idl

    def subscribe(self, callback, on_error=None, columns=False):
        """Call ``callback(table, kind, row)`` (kind: create, update, delete)
        for every row change, in the IDL thread, once the whole update is in
        the rows; with ``columns``, ``callback(table, kind, row, changed)``,
        ``changed`` the names of the columns an update changed (None: not
        known, or not an update), so that it need not read the others. A callback that raises has missed a change and its model
        may be stale: the error is logged with its traceback and counted
        (``subscriber_errors``), the other subscribers still get the change,
        and after the batch of updates ``on_error(exc)`` is called once
        with the first error, so that the subscriber can recompute from the
        store (``rows``). Without ``on_error`` the log and the count are all."""
        self._subscribers.append([callback, on_error, None, columns])

    def _changed(self, table, kind, row, changed=None):
        for sub in list(self._subscribers):
            try:
                if sub[3]:
                    sub[0](table, kind, row, changed)
                else:
                    sub[0](table, kind, row)
            except Exception as exc:  # a subscriber's bug must not stop the IDL, nor go unnoticed
                self.subscriber_errors += 1
                LOG.exception("northbound subscriber %s failed on %s %s %s%s", _name(sub[0]), kind, table,
                              row.uuid, "; it will recompute from the store" if sub[1] else "")
                if sub[2] is None:
                    sub[2] = exc

    def _recover(self):
        for sub in list(self._subscribers):
            exc, sub[2] = sub[2], None
            if exc is None or sub[1] is None:
                continue
            try:
                sub[1](exc)
            except Exception:
                self.subscriber_errors += 1
                LOG.exception("northbound subscriber %s: its recovery failed too; its view may be stale",
                              _name(sub[0]))

    def rows(self, table):
        return list(self.api.tables[table].rows.values())

    def get(self, table, uuid):
        import uuid as uuidlib
        try:
            key = uuidlib.UUID(str(uuid))
        except ValueError:
            return None
        return self.api.tables[table].rows.get(key)

    def transact(self, commands):
        """Run ``commands`` (ovsdbapp commands) in one transaction; typed errors.
        It must be confirmed within the connection's timeout plus time for its
        size (an import or a node's bindings are thousands of rows)."""
        timeout = self.timeout + SECONDS_PER_COMMAND * len(commands)
        txn = idl_transaction.Transaction(self.api, self.api.ovsdb_connection, timeout, check_error=True)
        for cmd in commands:
            txn.add(cmd)
        try:
            txn.commit()
        except ovsdbapp_exceptions.TimeoutException:
            # (ovsdbapp's own message lists every command: not for a log or an answer)
            raise Timeout("the northbound store did not confirm the transaction (%d commands) in %.0f s; "
                          "it may still be applied" % (len(commands), timeout)) from None
        except RuntimeError as exc:
            text = str(exc)
            if "constraint violation" in text or "referential integrity" in text:
                raise Conflict(text) from None
            raise NbError(text) from None
        return [cmd.result for cmd in commands]

    # ---- writers the controller needs ------------------------------------
    def _node(self, system_id):
        for row in self.api.tables["Node"].rows.values():
            if row.system_id == system_id:
                return row
        return None

    def upsert_node(self, system_id, hostname, encap_ip, state, last_seen_ms):
        row = self._node(system_id)
        values = (("hostname", hostname or ""), ("encap_ip", encap_ip), ("state", state),
                  ("last_seen", last_seen_ms))
        if row is None:
            self.transact([self.api.db_create("Node", system_id=system_id, **dict(values))])
        else:
            self.transact([self.api.db_set("Node", row.uuid, *values)])

    def set_node_state(self, system_id, state, last_seen_ms):
        row = self._node(system_id)
        if row is None:
            raise NotFound("node %s" % system_id)
        self.transact([self.api.db_set("Node", row.uuid, ("state", state), ("last_seen", last_seen_ms))])

    def set_node_external_id(self, system_id, key, value):
        """Set (or, with None, remove) one external_ids key of a Node row."""
        row = self._node(system_id)
        if row is None:
            raise NotFound("node %s" % system_id)
        if value is None:
            self.transact([self.api.db_remove("Node", row.uuid, "external_ids", key)])
        else:
            self.transact([self.api.db_set("Node", row.uuid, ("external_ids", {key: value}))])

    def delete_node(self, system_id):
        row = self._node(system_id)
        if row is None:
            raise NotFound("node %s" % system_id)
        self.transact([self.api.db_destroy("Node", row.uuid)])

    def set_port_bindings(self, bindings):
        """Record where ports are plugged ({port id: system id, or None for
        nowhere}), all in one transaction; ports no longer in the store are
        left out."""
        commands = []
        for port_id, system_id in bindings.items():
            row = self.get("Port", port_id)
            if row is not None:
                commands.append(self.api.db_set("Port", row.uuid, ("node", [system_id] if system_id else [])))
        if commands:
            self.transact(commands)
