"""The northbound store client (ovsdbapp over the DVN_Northbound schema)."""

import logging
import time
import uuid as uuidlib
from collections import abc

import ovs.db.data
import ovs.db.error
import ovs.db.idl
import ovs.db.types
import ovs.jsonrpc
import ovs.ovsuuid
import ovs.poller

from ovsdbapp import api as ovsdbapp_api
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend import ovs_idl
from ovsdbapp.backend.ovs_idl import command as idl_command
from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.backend.ovs_idl import transaction as idl_transaction

from ovsdb import fastjson

LOG = logging.getLogger(__name__)
SCHEMA_NAME = "DVN_Northbound"
YIELD_S = 0.05    # the longest the IDL parses an update before it lets the other green threads in
SHARE_MAX = 1024   # distinct values of a column from which its rows' Datums are no longer shared (_Idl._compact)
SECONDS_PER_COMMAND = 0.005   # what a transaction may take beyond the timeout, per command (python-ovs)
# Tables not replicated into dvn's memory: written and read with raw
# operations (Northbound.raw), as the audit log, which only grows.
UNREPLICATED = ("Audit",)


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
        self._shared = {}   # (table, column) -> {atom: its Datum}, or None: not shared (_compact)
        self._defaults = {}  # column -> its default Datum, compared with, never kept (_Idl__row_update)
        self._missing = {}   # table name -> [(column, its default as JSON)] (_Idl__add_default)

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
        if kind in ("create", "update"):
            self._compact(row)
        if kind is not None:
            # An update's ``updates`` holds the old values of the columns that changed, only those.
            old = getattr(updates, "_data", None) if kind == "update" else None
            self._on_change(row._table.name, kind, row, frozenset(old) if old is not None else None)

    def _Idl__row_update(self, table, row, row_json):
        """python-ovs's ``Idl.__row_update`` (ovs 4.0), but for the default a
        column the row lacks is compared with: made once per column, where
        python-ovs made one for every column of every new row (the row's
        ColumnDefaultDict makes it when asked and keeps nothing): that was
        40% of the parse of an import's update (18,700 new rows). Nothing
        keeps the default: a column that differs from it gets its parsed
        Datum, as in python-ovs."""
        changed = False
        data = row._data
        for column_name, datum_json in row_json.items():
            column = table.columns.get(column_name)
            if not column:
                LOG.warning("unknown column %s updating table %s", column_name, table.name)
                continue
            try:
                datum = ovs.db.data.Datum.from_json(column.type, datum_json)
            except ovs.db.error.Error as exc:
                LOG.warning("error parsing column %s in table %s: %s", column_name, table.name, exc)
                continue
            have = dict.get(data, column_name)
            if have is None:
                have = self._defaults.get(column)
                if have is None:
                    have = self._defaults[column] = ovs.db.data.Datum.default(column.type)
            if datum != have:
                data[column_name] = datum
                if column.alert:
                    changed = True
        return changed

    def _Idl__add_default(self, table, row_update):
        """python-ovs's ``Idl.__add_default`` (ovs 4.0): a new row's required
        scalar columns the update leaves out get their default, with the
        columns that need it listed once per table (python-ovs looked at each
        column of each new row through IdlColumn's __getattr__)."""
        missing = self._missing.get(table.name)
        if missing is None:
            readonly = self.readonly.get(table.name, ())
            missing = self._missing[table.name] = [
                (name, ovs.ovsuuid.to_json(column.type.key.type.default)
                 if column.type.key.type == ovs.db.types.UuidType else column.type.key.type.default)
                for name, column in table.columns.items()
                if name not in readonly and column.type.n_min != 0 and not column.type.is_map()]
        for name, value in missing:
            if name not in row_update:
                row_update[name] = value

    def _compact(self, row):
        """Keep less of a row: python-ovs keeps every column of every row as
        a Datum (an object, a dict, an Atom and its value), and the store
        holds 18,700 rows after an import of 10,000 ports. A column at its
        default (an empty set or map, an absent optional value) is dropped:
        the row's column dict makes a default when asked (ColumnDefaultDict,
        made for this). A single value many rows share (a tenant, a network,
        a node, an enum) is one Datum for all of them (a single value is
        replaced, never changed in place: only sets, maps and empty values
        are, by Datum.diff). A column with more than SHARE_MAX distinct
        values (names, addresses) is not shared."""
        data = row._data
        table = row._table.name
        for column, datum in list(dict.items(data)):
            values = datum.values
            if not values:
                del data[column]
                continue
            type_ = datum.type
            if len(values) != 1 or type_.n_max != 1 or type_.value is not None:
                continue
            shared = self._shared.get((table, column), False)
            if shared is None:
                continue
            if shared is False:
                shared = self._shared[(table, column)] = {}
            atom = next(iter(values))
            have = shared.get(atom)
            if have is None:
                if len(shared) >= SHARE_MAX:
                    self._shared[(table, column)] = None   # (its datums stay with their rows)
                    continue
                shared[atom] = datum
            elif have is not datum and have == datum:
                data[column] = have

    def run(self):
        changed = super().run()
        self._after_run()
        return changed


def _plain(commands):
    """Whether a transaction is only creates and plain sets (no map merged
    into a map, the record a row's uuid or a create of the transaction):
    what _Operations sends."""
    for cmd in commands:
        kind = type(cmd)
        if kind is idl_command.DbCreateCommand and not cmd.row:
            continue
        if kind is idl_command.DbSetCommand and isinstance(cmd.record, (uuidlib.UUID, idl_command.DbCreateCommand)) \
                and not any(isinstance(val, abc.Mapping) for _col, val in cmd.col_values):
            continue
        return False
    return bool(commands)


class _Reply:
    """Where python-ovs's IDL puts the reply to a request dvn sent on its
    session (``_process_reply``), or says the session went (``_status``)."""

    def __init__(self):
        self.msg, self._status = None, None

    def _process_reply(self, msg):
        self.msg = msg


class _Operations(idl_transaction.Transaction):
    """A transaction of creates and sets (``_plain``) sent as the OVSDB
    operations themselves, built here from the commands, on the IDL's own
    session. ovsdbapp and python-ovs build a transaction column by column
    through their row objects: for an import of 10,000 ports (18,700 rows,
    127,000 columns) that took seconds, this takes a tenth of that. Like
    python-ovs's, it returns once the IDL has the rows it made; a create's
    ``result`` is its row's uuid, as ovsdbapp's."""

    def do_commit(self):
        idl = self.api.idl
        ops = _operations(idl, self.commands)
        if not ops:
            return []
        deadline = time.monotonic() + self.timeout
        # As python-ovs's: sent again when the session went before the store
        # answered (on its next connection; creates meet their unique indexes).
        while not self._attempt(idl, ops, deadline):
            pass
        return [cmd.result for cmd in self.commands]

    def _attempt(self, idl, ops, deadline):
        """Send the operations once the session is up and wait for the
        store's answer and the rows it made; False: the session went first."""
        reply, msg, made = None, None, None
        while True:
            idl.run()   # (the store's update of the rows comes before its reply)
            if reply is None and idl._session.is_connected():
                msg = ovs.jsonrpc.Message.create_request("transact", [SCHEMA_NAME] + [op for _cmd, op in ops])
                reply = _Reply()
                idl._outstanding_txns[msg.id] = reply
                if idl._session.send(msg):
                    idl._outstanding_txns.pop(msg.id, None)
                    reply = None
            if reply is not None and reply.msg is not None:
                if made is None:
                    made = self._results(reply.msg, ops)
                if all(u in idl.tables[table].rows for table, u in made):
                    return True
            elif reply is not None and reply._status is not None:
                return False
            if time.monotonic() > deadline:
                if msg is not None:
                    idl._outstanding_txns.pop(msg.id, None)
                raise RuntimeError("the northbound store did not answer in %.0f s" % self.timeout)
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(100)
            poller.block()

    @staticmethod
    def _check(msg):
        """RuntimeError naming a refusal of the store."""
        if msg.type != ovs.jsonrpc.Message.T_REPLY or not isinstance(msg.result, list):
            raise RuntimeError("the northbound store refused the transaction: %s" % (msg.error,))
        for result in msg.result:
            if isinstance(result, dict) and "error" in result:
                raise RuntimeError("%s: %s" % (result["error"], result.get("details", "")))

    @classmethod
    def _results(cls, msg, ops):
        """The created rows [(table, uuid)], each create's ``result`` set; RuntimeError naming a refusal."""
        cls._check(msg)
        made = []
        for (cmd, op), result in zip(ops, msg.result):
            if op["op"] == "insert":
                cmd.result = uuidlib.UUID(result["uuid"][1])
                made.append((op["table"], cmd.result))
        return made


class _Raw(_Operations):
    """OVSDB operations as they are (on tables not replicated, UNREPLICATED):
    the store's results, once it answered."""

    def __init__(self, api, connection_, timeout, ops):
        super().__init__(api, connection_, timeout, check_error=True)
        self.ops = ops

    def do_commit(self):
        idl = self.api.idl
        deadline = time.monotonic() + self.timeout
        self.result = None
        while not self._attempt(idl, [(self, op) for op in self.ops], deadline):
            pass
        return [self.result]

    def _results(self, msg, ops):
        self._check(msg)
        self.result = msg.result
        return []


def _atom(base, value, names):
    if base.type == ovs.db.types.UuidType:
        if isinstance(value, idl_command.BaseCommand):
            return ["named-uuid", names[id(value)]]
        return ["uuid", str(getattr(value, "uuid", value))]
    if base.type == ovs.db.types.RealType:
        return float(value)
    return value


def _datum(type_, value, names):
    """A column's value as OVSDB JSON: a dict for a map, a list (or tuple) for a set, else one atom."""
    if type_.is_map():
        return ["map", [[_atom(type_.key, k, names), _atom(type_.value, v, names)] for k, v in value.items()]]
    if isinstance(value, (list, tuple, set, frozenset)):
        return ["set", [_atom(type_.key, v, names) for v in value]]
    return _atom(type_.key, value, names)


def _operations(idl, commands):
    """[(command, OVSDB operation)] of plain commands: an insert per create
    (with what later sets of it give), an update per set of another row."""
    names = {id(cmd): "row%d" % i for i, cmd in enumerate(commands) if type(cmd) is idl_command.DbCreateCommand}
    inserts, ops, types = {}, [], {}
    for cmd in commands:
        columns = types.get(cmd.table)
        if columns is None:   # (not through IdlColumn.__getattr__ for each of 127,000 columns: 0.15 s)
            columns = types[cmd.table] = {name: c.type for name, c in idl.tables[cmd.table].columns.items()}
        if type(cmd) is idl_command.DbCreateCommand:
            op = {"op": "insert", "table": cmd.table, "uuid-name": names[id(cmd)],
                  "row": {col: _datum(columns[col], val, names) for col, val in cmd.columns.items()}}
            inserts[id(cmd)] = op
            ops.append((cmd, op))
            continue
        row = {col: _datum(columns[col], val, names) for col, val in cmd.col_values}
        target = inserts.get(id(cmd.record))
        if target is not None:
            target["row"].update(row)
            cmd.result = None
            continue
        if cmd.record not in idl.tables[cmd.table].rows:
            if cmd.if_exists:
                cmd.result = None
                continue
            raise idlutils.RowNotFound(table=cmd.table, col="uuid", match=str(cmd.record))
        cmd.result = None
        ops.append((cmd, {"op": "update", "table": cmd.table, "where": [["_uuid", "==", ["uuid", str(cmd.record)]]],
                          "row": row}))
    return ops


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
        for table in helper.schema_json["tables"]:
            if table not in UNREPLICATED:
                helper.register_table(table)
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
        kind = _Operations if _plain(commands) else idl_transaction.Transaction
        txn = kind(self.api, self.api.ovsdb_connection, timeout, check_error=True)
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

    def raw(self, ops):
        """Run OVSDB operations (JSON, RFC 7047) in one transaction: their results."""
        txn = _Raw(self.api, self.api.ovsdb_connection, self.timeout + SECONDS_PER_COMMAND * len(ops), ops)
        try:
            return txn.commit()[0]
        except ovsdbapp_exceptions.TimeoutException:
            raise Timeout("the northbound store did not confirm the transaction (%d operations) in %.0f s; "
                          "it may still be applied" % (len(ops), txn.timeout)) from None
        except RuntimeError as exc:
            raise NbError(str(exc)) from None

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
