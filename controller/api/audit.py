"""The audit log: every API write (who, what, when, result), in the store.

A record is written after the request is answered, by one writer that puts
what came meanwhile in one transaction, so a burst of writes costs few
transactions and never slows the answers. Records are numbered (``seq``);
the newest KEEP stay, older ones go in the same transaction as new ones.
The Audit table is not replicated into dvn's memory (ovsdb.nb.UNREPLICATED):
it is written and read with raw operations.

``GET /v1/audit`` lists them, newest last: an admin sees all, a tenant the
records of its own calls. ``?after=SEQ`` gives those after a record seen
before, ``?limit=N`` (default 100, at most 1000) the newest N of those.
Secrets never reach a record: it keeps the path, not the body, and for a
failure the problem's title and field.
"""

import collections
import logging
import threading
import time

from controller.validation import Problem
from ovsdb.nb import NbError

LOG = logging.getLogger(__name__)

KEEP = 10000          # records kept
WRITES = ("POST", "PUT", "PATCH", "DELETE")
LIMIT = 100


class AuditLog:
    def __init__(self, nb):
        self.nb = nb
        self.pending = collections.deque()
        self.seq = None               # the last number given; read from the store at the first write
        self.lock = threading.Lock()  # (green under eventlet)
        self.writing = False
        self.failures = 0

    def record(self, caller, method, path, status, detail=""):
        if caller is None:
            actor, tenant = "(public)", ""
        else:
            actor = "admin" if caller.admin else "tenant %s" % caller.tenant
            tenant = "" if caller.admin else caller.tenant
        self.pending.append({"time": int(time.time() * 1000), "actor": actor, "tenant": tenant,
                             "method": method, "path": path[:512], "status": status, "detail": detail[:512]})
        with self.lock:
            if self.writing:
                return
            self.writing = True
        threading.Thread(target=self._write, daemon=True).start()

    def _write(self):
        try:
            while True:
                with self.lock:
                    if not self.pending:
                        self.writing = False
                        return
                    batch = list(self.pending)
                    self.pending.clear()
                try:
                    self._insert(batch)
                except Exception as exc:   # (the store away: the records are lost, the log says so)
                    self.failures += len(batch)
                    LOG.warning("audit: %d records not written: %s", len(batch), exc)
        except BaseException:
            with self.lock:
                self.writing = False
            raise

    def _insert(self, batch):
        if self.seq is None:
            rows = self.nb.raw([{"op": "select", "table": "Audit", "where": [], "columns": ["seq"]}])[0]["rows"]
            self.seq = max((r["seq"] for r in rows), default=0)
        ops = []
        for rec in batch:
            self.seq += 1
            ops.append({"op": "insert", "table": "Audit", "row": dict(rec, seq=self.seq)})
        ops.append({"op": "delete", "table": "Audit", "where": [["seq", "<=", self.seq - KEEP]]})
        self.nb.raw(ops)

    def flush(self, timeout=10):
        """Wait until what was recorded is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self.pending or self.writing) and time.monotonic() < deadline:
            time.sleep(0.02)

    def query(self, caller, after=0, limit=LIMIT):
        where = [["seq", ">", after]]
        if not caller.admin:
            where.append(["tenant", "==", caller.tenant])
        rows = self.nb.raw([{"op": "select", "table": "Audit", "where": where}])[0]["rows"]
        rows.sort(key=lambda r: r["seq"])
        return [{k: r[k] for k in ("seq", "time", "actor", "tenant", "method", "path", "status", "detail")}
                for r in rows[-limit:]]


class Audit:
    """GET /v1/audit (a part of the Api)."""

    def list_audit(self, req, caller):
        q = self._filter(req, ("after", "limit"))
        try:
            return 200, self.audit.query(caller, q.get("after", 0), q.get("limit", LIMIT))
        except NbError as exc:
            raise Problem(503, "Store unavailable", "the audit log was not read: %s" % exc)


def detail_of(status, payload):
    """What a record keeps of an answer: the created or changed object's id,
    or a problem's title and field (never a body: it may hold secrets)."""
    if not isinstance(payload, dict):
        return ""
    if status >= 400:
        field = payload.get("field")
        return "%s%s" % (payload.get("title", ""), " (%s)" % field if field else "")
    return str(payload.get("id", "")) if isinstance(payload.get("id"), str) else ""

