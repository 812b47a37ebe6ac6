"""Group commit of audit rows: concurrent decisions share one multi-row INSERT.

A decision that wrote nothing else (the common case: messages, modals, acknowledgements to
show) does not need a transaction of its own for its audit row. `AuditWriter.write` hands the
row to one writer thread per process and waits until the batch holding it has committed, so a
caller still answers only after its audit row is durable ("no decision without its audit
row"), while the database sees one INSERT per batch instead of one per request. Batches form
naturally: rows that arrive while a batch commits go into the next one.

Decisions that write (updates, scheduled actions, deliveries, emitted events), and decisions
made inside a caller's transaction (event processing, tests), keep inserting their audit row
in their own transaction instead (see `engine.execute`).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import close_old_connections, connection, models, transaction
from django.utils import timezone

from rules_engine.models import Execution, RulesetSnapshot

logger = logging.getLogger(__name__)


class AuditWriteError(Exception):
    """The audit row could not be written; the decision must not be reported as made."""


class _Pending:
    """A row waiting for the commit of its batch (None asks the writer to close its
    connection). A lock held from the start and released by the writer is the signal: cheaper
    than a threading.Event, whose set() takes a condition and notifies in Python."""

    __slots__ = ("_done", "error", "row")

    def __init__(self, row: AuditRow | None) -> None:
        self.row = row
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self) -> None:
        """Wake the waiting caller (once)."""
        self._done.release()

    def wait(self, timeout: float) -> bool:
        """Whether the writer finished this row within `timeout` seconds."""
        return self._done.acquire(timeout=timeout)


class AuditWriter:
    """One writer thread per process inserting queued Execution rows in batches."""

    def __init__(self, *, max_batch: int = 500, timeout: float = 30.0) -> None:
        self.max_batch = max_batch
        self.timeout = timeout
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.batches = 0
        self.rows = 0

    def write(self, row: AuditRow) -> None:
        """Queue the row and wait until its batch committed. Raises AuditWriteError."""
        self._ensure_thread()
        pending = _Pending(row)
        self._queue.put(pending)
        if not pending.wait(self.timeout):
            raise AuditWriteError(f"audit row not committed within {self.timeout} s")
        if pending.error is not None:
            raise AuditWriteError(str(pending.error)) from pending.error

    def close_connection(self, timeout: float = 10.0) -> None:
        """Have the writer thread close its database connection (tests drop the database)."""
        if self._pid != os.getpid():
            return
        pending = _Pending(None)
        self._queue.put(pending)
        pending.wait(timeout)

    def _ensure_thread(self) -> None:
        # After a fork (prefork servers) the parent's thread does not exist in the child.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, name="verdict-audit", daemon=True).start()
                self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [pending for pending in batch if pending.row is not None]
            if rows:
                self._commit(rows)
            for pending in batch:
                if pending.row is None:
                    connection.close()
                    pending.finish()

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            rows = [p.row for p in batch if p.row is not None]
            if not _copy_on_its_own(rows):
                with transaction.atomic():
                    insert_rows(rows)
        except Exception:  # noqa: BLE001  (isolate the bad row; the others must still land)
            logger.warning("audit batch of %d failed; inserting one by one", len(batch))
            self._reset_connection()
            for pending in batch:
                try:
                    assert pending.row is not None
                    with transaction.atomic():
                        _ensure_snapshots([pending.row], remembered=False)
                        pending.row.model().save(force_insert=True)
                except Exception as exc:  # noqa: BLE001  (reported to that caller)
                    pending.error = exc
                    self._reset_connection()
        else:
            self.batches += 1
            self.rows += len(batch)
        for pending in batch:
            pending.finish()

    @staticmethod
    def _reset_connection() -> None:
        # A failed statement may leave the thread's connection unusable; start clean.
        try:
            connection.close()
        except Exception:
            logger.debug("closing the audit connection failed", exc_info=True)
        close_old_connections()


writer = AuditWriter()


# Every column of the audit table, from the model, so a new field cannot be left out of COPY.
_FIELDS = tuple(Execution._meta.concrete_fields)
_COPY_COLUMNS = tuple(str(f.column) for f in _FIELDS)
_ATTNAMES = tuple(f.attname for f in _FIELDS)
_ATTNAME_SET = frozenset(_ATTNAMES)
_PK_INDEX = _ATTNAMES.index(Execution._meta.pk.attname)
_CREATED_AT_INDEX = _ATTNAMES.index("created_at")


@dataclass(slots=True, eq=False)
class AuditRow:
    """One decision's audit row before it is written: the values of the Execution columns in
    column order (`created_at` is set when it is inserted) and the rule-set snapshot it
    refers to (a `cache.Snapshot`, or None), inserted first if it is not yet.

    A plain list rather than a model instance: an audit row is written once and never read
    back here, and building and reading an Execution cost a tenth of the writer's work.
    """

    values: list[Any]
    snapshot: Any = None

    @property
    def pk(self) -> Any:
        """The execution id."""
        return self.values[_PK_INDEX]

    def model(self) -> Execution:
        """The row as an unsaved Execution (to save it alone, or on SQLite)."""
        return Execution(**dict(zip(_ATTNAMES, self.values, strict=True)))


def new_row(*, snapshot: Any = None, **columns: Any) -> AuditRow:
    """An AuditRow from Execution's field values by attribute name (`entry_point_id`, ...);
    a field left out takes its model default. Raises TypeError for a name that is no field."""
    unknown = columns.keys() - _ATTNAME_SET
    if unknown:
        raise TypeError(f"not Execution fields: {sorted(unknown)}")
    values = [
        columns[name] if name in columns else field.get_default()
        for name, field in zip(_ATTNAMES, _FIELDS, strict=True)
    ]
    return AuditRow(values, snapshot)


# Digests of snapshots known to be committed (noted when the transaction that inserted them
# commits), so a rule set's snapshot costs one insert-or-ignore per process, not one per
# decision. Bounded: forgetting only costs an extra insert-or-ignore.
_committed: set[str] = set()
_committed_lock = threading.Lock()


def forget_snapshots() -> None:
    """Forget which snapshots were committed (tests that empty the database)."""
    with _committed_lock:
        _committed.clear()


def _ensure_snapshots(rows: list[AuditRow], *, remembered: bool = True) -> None:
    """Insert (or ignore, if present) the snapshots the rows refer to, in the current
    transaction, except those known to be committed (unless `remembered` is False).
    Raises DatabaseError."""
    snapshots = _snapshots_to_insert(rows, remembered=remembered)
    if not snapshots:
        return
    RulesetSnapshot.objects.bulk_create(
        [
            RulesetSnapshot(digest=s.digest, entry_point_id=s.entry_point_id, rules=list(s.rules))
            for s in snapshots.values()
        ],
        ignore_conflicts=True,
    )
    # Not before the commit: a rolled-back snapshot must be inserted again next time.
    transaction.on_commit(functools.partial(_remember_snapshots, frozenset(snapshots)))


def _snapshots_to_insert(rows: list[AuditRow], *, remembered: bool = True) -> dict[str, Any]:
    """digest -> snapshot of the snapshots the rows refer to, except those known to be
    committed (unless `remembered` is False)."""
    snapshots = {}
    for row in rows:
        snapshot = row.snapshot
        if snapshot is not None and (not remembered or snapshot.digest not in _committed):
            snapshots[snapshot.digest] = snapshot
    return snapshots


def _remember_snapshots(digests: frozenset[str]) -> None:
    """Note snapshots whose inserting transaction has committed."""
    with _committed_lock:
        if len(_committed) > 10_000:
            _committed.clear()
        _committed.update(digests)


def insert_rows(rows: list[AuditRow]) -> None:
    """Insert audit rows in the current transaction, all at once (COPY on PostgreSQL), after
    the rule-set snapshots they refer to.

    For callers that decide many contexts in one transaction (event batches). Raises
    DatabaseError like an INSERT would.
    """
    if not rows:
        return
    _ensure_snapshots(rows)
    if connection.vendor == "postgresql":
        _copy(rows)
    else:
        Execution.objects.bulk_create([row.model() for row in rows])


def _copy_on_its_own(rows: list[AuditRow]) -> bool:
    """Insert the rows with one COPY outside any transaction block, if possible: a single
    statement in autocommit mode commits on its own, without the BEGIN and COMMIT round trips
    and Django's atomic bookkeeping (a third of the writer's CPU at batches of 8 rows).
    Possible on PostgreSQL once the rule-set snapshots the rows refer to are committed (the
    common case); returns False otherwise, having written nothing. Raises DatabaseError."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    if _snapshots_to_insert(rows) or not connection.get_autocommit():
        return False
    _copy(rows)
    return True


def _copy(rows: list[AuditRow]) -> None:
    """Insert audit rows with COPY: several times cheaper per row than an ORM INSERT.

    The rows are written as COPY text in one piece (`_copy_line`): their values were built by
    the engine from JSON data, so each column's type says how to write it, with no adapter
    lookup per value. Raises DatabaseError (the caller then inserts the rows one by one to
    isolate a bad one).
    """
    now = timezone.now()
    for row in rows:
        row.values[_CREATED_AT_INDEX] = now
    data = "".join([_copy_line(row.values) for row in rows]).encode()
    table = Execution._meta.db_table
    columns = ", ".join(_COPY_COLUMNS)
    # psycopg's own cursor (Django's wrapper has no COPY), its errors turned into Django's.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            copy.write(data)


# COPY's text format: tab between columns, a newline after each row, \N for NULL, and a
# backslash, newline, carriage return or tab inside a value written as a backslash escape.
def _text(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if "\\" in text or "\n" in text or "\r" in text or "\t" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
    return text


def _json(value: Any) -> str:
    # orjson writes no raw control characters (they are escaped inside strings, and there is
    # no whitespace between tokens), so its backslashes are all that COPY needs escaped.
    return orjson.dumps(value, default=str).decode().replace("\\", "\\\\")


def _boolean(value: Any) -> str:
    return "t" if value else "f"


def _float(value: Any) -> str:
    return repr(float(value))


def _timestamp(value: Any) -> str:
    return value.isoformat()


def _writer(field: models.Field[Any, Any]) -> Any:
    """How one column's values are written in COPY text (NULL aside)."""
    if isinstance(field, models.JSONField):
        return _json
    if isinstance(field, models.BooleanField):
        return _boolean
    if isinstance(field, models.FloatField):
        return _float
    if isinstance(field, models.DateTimeField):
        return _timestamp
    return _text  # UUIDs, integers, character columns


_WRITERS = tuple(_writer(field) for field in _FIELDS)


def _copy_line(values: list[Any]) -> str:
    """One row in COPY's text format."""
    return (
        "\t".join(
            [
                "\\N" if value is None else write(value)
                for write, value in zip(_WRITERS, values, strict=True)
            ]
        )
        + "\n"
    )
