"""Writes of scheduling: delayed actions from creation to exactly one run.

    created   pending in PostgreSQL (or enqueued and published at commit when due within the
              horizon); PostgreSQL is the truth, Celery only ever holds seconds of work
    sweep     pending rows due within the horizon are claimed with FOR UPDATE SKIP LOCKED,
              marked enqueued and published, grouped in slices of a few milliseconds of due
              time, one Celery message per slice with ETA = the slice's last due time
    run       a worker claims a slice's rows that are still enqueued in one conditional UPDATE
              (enqueued -> running, a fresh claim token); each row's action then runs in one
              transaction with the row's done mark, which only the claim token's holder can
              write; a cancelled row or a duplicate message claims nothing and runs nothing
    recover   rows enqueued too long past their due time (message lost) or running past their
              lease (worker died, so its transaction rolled back) become pending again
    cancel    pending/enqueued rows become cancelled in one UPDATE; a worker can no longer
              claim them, whatever messages are still in flight

The knobs are in `scheduling.conf`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import F
from django.db.models.base import ModelState
from django.utils import timezone

from ingress.models import Event
from ingress.services import events_settle
from rules_engine import engine, metrics
from rules_engine.actions import ActionContext, registry
from rules_engine.cache import one_generation
from scheduling.conf import setting
from scheduling.models import ScheduledAction

logger = logging.getLogger(__name__)

Status = ScheduledAction.Status
Due = tuple[uuid.UUID, datetime]

# The hot statements on PostgreSQL, built once. At a slice of a dozen rows the ORM spends more
# time composing and loading than the actions take to run; other databases (SQLite under
# `make run`) take the ORM path, which does the same in more statements.
#
# The statements that pick rows by id test their status as `(status = ...) IS TRUE`: the same
# as `status = ...` (status is never null), but no index on status can serve it, so the
# planner always goes through the primary key with the dozen ids. Statistics taken when few
# rows had that status (right after a bulk load, say) otherwise make a status index look
# nearly empty, and every slice would scan all its entries (100,000 waiting events: 15 ms).
_TABLE = ScheduledAction._meta.db_table
_OPEN = ", ".join(f"'{status}'" for status in ScheduledAction.OPEN_STATUSES)
# MATERIALIZED: the locking subquery runs exactly once, whatever plan the UPDATE gets.
_SWEEP_SQL = (
    f"WITH due AS MATERIALIZED (SELECT id FROM {_TABLE} WHERE status = 'pending' "  # noqa: S608
    "AND due_at <= %s ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED) "
    f"UPDATE {_TABLE} AS s SET status = 'enqueued', enqueued_at = %s, lease_until = %s "
    "FROM due WHERE s.id = due.id AND (s.status = 'pending') IS TRUE RETURNING s.id, s.due_at"
)
_CLAIM_SQL = (
    f"UPDATE {_TABLE} SET status = 'running', claim_token = %s, started_at = %s, "  # noqa: S608
    "lease_until = %s, attempts = attempts + 1 "
    "WHERE id = ANY(%s::uuid[]) AND (status = 'enqueued') IS TRUE AND due_at <= %s"
)
# What `_run_locked` and `engine.run_delayed_action` read, and due_at and attempts for callers.
_LOCKED_COLUMNS = (
    "id",
    "event_id",
    "execution_id",
    "entry_point_key",
    "critical",
    "rule_id",
    "rule_name",
    "rule_version",
    "action_index",
    "spec",
    "data",
    "subject",
    "event_depth",
    "due_at",
    "attempts",
)
_LOCK_SQL = (
    f"SELECT {', '.join(_LOCKED_COLUMNS)} FROM {_TABLE} "  # noqa: S608
    "WHERE id = ANY(%s::uuid[]) AND (status = 'running') IS TRUE AND claim_token = %s "
    "ORDER BY due_at FOR UPDATE"
)
# The outcomes of a slice and the settling of its events in one statement. The outer UPDATE
# sees the snapshot from before the CTE's writes, where the slice's own rows are still running,
# so they are left out of the open actions explicitly; otherwise it is `events_settle`. The id
# arrays (rows, events) let the planner use the primary keys: it cannot see into the JSON.
_FINISH_SQL = (
    f"WITH finished AS (UPDATE {_TABLE} AS s SET status = v.status, "  # noqa: S608
    "started_at = v.started_at, finished_at = v.finished_at, lease_until = NULL, "
    "result = v.result, error = v.error "
    "FROM json_to_recordset(%(outcomes)s::json) AS v (id uuid, status text, "
    "started_at timestamptz, finished_at timestamptz, result jsonb, error text) "
    "WHERE s.id = ANY(%(ids)s::uuid[]) AND s.id = v.id) "
    f"UPDATE {Event._meta.db_table} AS e SET status = 'completed', finished_at = %(now)s, "
    "updated_at = %(now)s WHERE e.id = ANY(%(events)s::uuid[]) AND (e.status = 'waiting') IS TRUE "
    f"AND NOT EXISTS (SELECT 1 FROM {_TABLE} AS o WHERE o.event_id = e.id "
    f"AND o.status IN ({_OPEN}) AND o.id <> ALL(%(ids)s::uuid[]))"
)
# Taken just before `_FINISH_SQL`, in id order (no deadlock between slices): two slices
# finishing the last two open actions of one event would otherwise each see the other's
# action still running (uncommitted) and neither would complete the event. With the lock the
# second waits for the first's commit, and its next statement's snapshot sees that action done.
_LOCK_EVENTS_SQL = (
    f"SELECT id FROM {Event._meta.db_table} WHERE id = ANY(%s::uuid[]) "  # noqa: S608
    "ORDER BY id FOR UPDATE"
)
# Results are stored as DjangoJSONEncoder writes them: orjson for speed, with dates, times,
# decimals and the like handed to the encoder so they come out exactly as it formats them.
_ENCODER = DjangoJSONEncoder()
_RESULT_JSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)


def _on_postgresql() -> bool:
    """Whether the hot paths take the raw PostgreSQL statements above (else the ORM)."""
    return connection.vendor == "postgresql"


def _seconds(name: str) -> timedelta:
    return timedelta(seconds=setting(name))


def _enqueued_lease(now: datetime) -> datetime:
    """Until when a row enqueued `now` may wait for its message.

    Rows enqueued now are due by `now + horizon` at the latest, so this is at least
    SCHEDULE_REPUBLISH_AFTER past each one's due time, and one value serves the whole batch.
    """
    return now + _seconds("SCHEDULE_HORIZON_SECONDS") + _seconds("SCHEDULE_REPUBLISH_AFTER")


def scheduled_action_create(
    *,
    spec: dict[str, Any],
    due_at: datetime,
    data: dict[str, Any],
    ctx: ActionContext,
    now: datetime | None = None,
) -> ScheduledAction:
    """Store a delayed action; call inside the decision's transaction.

    A row due later than the horizon is stored pending and the sweeper publishes it shortly
    before `due_at`. A row due sooner is stored enqueued and published right after the
    decision commits (a failed publish makes it pending again for the sweeper). Writes one
    ScheduledAction row.
    """
    now = now or timezone.now()
    soon = due_at <= now + _seconds("SCHEDULE_HORIZON_SECONDS")
    row = ScheduledAction.objects.create(
        event_id=ctx.event_id,
        execution_id=ctx.execution_id,
        entry_point_key=ctx.entry_point_key,
        critical=ctx.critical,
        rule_id=ctx.rule_id,
        rule_name=ctx.rule_name,
        rule_version=ctx.rule_version,
        action_index=ctx.action_index,
        spec=spec,
        data=data,
        subject=ctx.subject or "",
        event_depth=ctx.event_depth,
        due_at=due_at,
        status=Status.ENQUEUED if soon else Status.PENDING,
        enqueued_at=now if soon else None,
        lease_until=_enqueued_lease(now) if soon else None,
    )
    metrics.count_action(str(spec.get("type")), "scheduled")
    if soon:
        # Published only once the row is committed: a message must never name a row that a
        # rolled-back decision did not keep.
        transaction.on_commit(lambda: scheduled_actions_publish(rows=[(row.pk, due_at)]))
    return row


def slice_rows(
    rows: Iterable[Due], *, width: timedelta, most: int
) -> list[tuple[list[uuid.UUID], datetime]]:
    """Group (id, due_at) pairs into slices: one Celery message each, due at its last row.

    A slice spans at most `width` of due time and holds at most `most` rows, so the first
    row of a slice starts at most `width` late and no row starts early. Writes nothing.
    """
    slices: list[tuple[list[uuid.UUID], datetime]] = []
    ids: list[uuid.UUID] = []
    first = last = None
    for pk, due_at in sorted(rows, key=lambda row: row[1]):
        full = len(ids) >= most or (first is not None and due_at - first > width)
        if ids and full and last is not None:
            slices.append((ids, last))
            ids = []
        if not ids:
            first = due_at
        ids.append(pk)
        last = due_at
    if ids and last is not None:
        slices.append((ids, last))
    return slices


def scheduled_actions_publish(*, rows: Sequence[Due]) -> int:
    """Send enqueued rows to Celery, one message per slice with ETA = its last due time.

    Returns how many rows were published. Rows whose message could not be sent (broker down)
    go back to pending so the next sweep tries again; a message that did reach the broker
    despite the error only makes a duplicate, which the worker's conditional claim ignores.
    Writes ScheduledAction rows only on failure.
    """
    from scheduling.tasks import run_scheduled_actions

    slices = slice_rows(
        rows,
        width=timedelta(milliseconds=setting("SCHEDULE_SLICE_MS")),
        most=max(1, int(setting("SCHEDULE_SLICE_MAX"))),
    )
    sent = 0
    try:
        with run_scheduled_actions.app.producer_or_acquire() as producer:
            for ids, eta in slices:
                not_before = eta.timestamp()
                run_scheduled_actions.apply_async(
                    args=[[str(pk) for pk in ids], not_before],
                    eta=eta,
                    producer=producer,
                    # What logs and monitors show of the message: Celery's safe repr of the
                    # id list would cost as much as the rest of the publish.
                    argsrepr=f"(<{len(ids)} scheduled actions, first {ids[0]}>, {not_before})",
                    kwargsrepr="{}",
                )
                sent += 1
    except Exception:  # noqa: BLE001  (any broker failure: the rows wait for the next sweep)
        unsent = [pk for ids, _ in slices[sent:] for pk in ids]
        logger.warning("could not publish %s scheduled actions; sweeping again", len(unsent))
        ScheduledAction.objects.filter(pk__in=unsent, status=Status.ENQUEUED).update(
            status=Status.PENDING, enqueued_at=None, lease_until=None
        )
        return len(rows) - len(unsent)
    return len(rows)


def _claim_pending(*, now: datetime, limit: int) -> list[Due]:
    """Mark up to `limit` pending rows due within the horizon enqueued; returns them.

    SKIP LOCKED lets concurrent sweepers take disjoint rows without waiting on each other.
    The claim commits before it returns (one statement on PostgreSQL, a transaction
    elsewhere), so a message published next always names a committed enqueued row.
    """
    horizon = now + _seconds("SCHEDULE_HORIZON_SECONDS")
    lease = _enqueued_lease(now)
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(_SWEEP_SQL, [horizon, limit, now, lease])
            return [(pk, due_at) for pk, due_at in cursor.fetchall()]
    with transaction.atomic():
        due = list(
            ScheduledAction.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, due_at__lte=horizon)
            .order_by("due_at")
            .values_list("pk", "due_at")[:limit]
        )
        if due:
            ScheduledAction.objects.filter(
                pk__in=[pk for pk, _ in due], status=Status.PENDING
            ).update(status=Status.ENQUEUED, enqueued_at=now, lease_until=lease)
    return due


def scheduled_actions_sweep(*, now: datetime | None = None) -> int:
    """Publish every pending row due within the horizon; returns how many were published.

    Claims batches of SCHEDULE_BATCH rows (each committed before it is published, so a
    message always names a committed enqueued row) until none is left. Safe to run in several
    processes at once. Writes ScheduledAction rows.
    """
    limit = max(1, int(setting("SCHEDULE_BATCH")))
    published = 0
    while True:
        due = _claim_pending(now=now or timezone.now(), limit=limit)
        if due:
            published += scheduled_actions_publish(rows=due)
        if len(due) < limit:
            return published


def _run_locked(row: ScheduledAction) -> None:
    """Run one claimed, locked row's action and set its outcome on the instance.

    The action runs in a savepoint, so a failing action's partial writes are undone alone.
    """
    handler = registry.get(str(row.spec.get("type"))) if isinstance(row.spec, dict) else None
    # Only actions that write need a savepoint (two more statements per action).
    savepoint = handler is None or handler.writes
    row.started_at = timezone.now()
    metrics.observe_lateness(row.entry_point_key, (row.started_at - row.due_at).total_seconds())
    try:
        with transaction.atomic() if savepoint else nullcontext():
            row.result = engine.run_delayed_action(scheduled=row)
        row.status, row.error = Status.DONE, ""
    except (OperationalError, InterfaceError):
        # The database went away: nothing of the slice commits, and its rows stay running
        # until recovery runs them again after their lease.
        raise
    except DatabaseError:
        if not savepoint:
            # Without a savepoint the slice's transaction is unusable: it rolls back whole
            # and recovery runs its rows again.
            raise
        logger.warning("scheduled action %s failed", row.pk, exc_info=True)
        row.status, row.result, row.error = Status.FAILED, {}, "database error in the action"
    except Exception as exc:  # noqa: BLE001  (recorded on the row, like a decision's action)
        # An error from the action itself is deterministic (same spec, same data), so running
        # it again would fail again: the row fails now, with the reason.
        logger.warning("scheduled action %s failed: %s", row.pk, exc)
        row.status, row.result, row.error = Status.FAILED, {}, f"{type(exc).__name__}: {exc}"[:2000]
    row.finished_at = timezone.now()
    row.lease_until = None


def scheduled_actions_run(
    *, ids: Sequence[str], now: datetime | None = None
) -> list[ScheduledAction]:
    """Run the given actions that are still enqueued and due; returns the rows it ran.

    The claim moves enqueued rows due by `now` to running in one conditional UPDATE under a
    fresh claim token (committed at once, so the attempt counts even if the worker dies);
    rows that were cancelled, already claimed (a duplicate message) or not yet due are left
    alone. Then one transaction locks the rows still held by this claim, runs their actions
    in due order (each that writes in a savepoint), writes their done or failed marks and
    settles their events: every action's writes commit together with its done mark. The rows
    returned carry the columns the run read and its outcome (others load on access). Raises
    OperationalError/InterfaceError when the database fails (nothing commits; recovery runs
    the rows again after SCHEDULE_LEASE_SECONDS). Writes ScheduledAction rows, whatever the
    actions write, and Event rows (settled).
    """
    now = now or timezone.now()
    token = uuid.uuid4()
    if not _claim(ids=ids, now=now, token=token):
        return []
    # One transaction per slice, not per row: a commit waits for a WAL flush, and one flush
    # per action would cap a worker at a few hundred actions a second.
    with transaction.atomic():
        # Holding the row locks until commit keeps recovery (which skips locked rows) away
        # from rows whose actions are running; a row recovered between the claim and this
        # lock no longer carries our token and is not run.
        rows = _lock_claimed(ids=ids, token=token)
        # One generation check per slice, not per action.
        with one_generation():
            for row in rows:
                _run_locked(row)
        _finish(rows)
    return rows


def _claim(*, ids: Sequence[str], now: datetime, token: uuid.UUID) -> int:
    """Move the given enqueued rows due by `now` to running under `token`; returns how many."""
    lease = now + _seconds("SCHEDULE_LEASE_SECONDS")
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, [token, now, lease, _uuid_array(ids), now])
            return int(cursor.rowcount)
    return ScheduledAction.objects.filter(
        pk__in=list(ids), status=Status.ENQUEUED, due_at__lte=now
    ).update(
        status=Status.RUNNING,
        claim_token=token,
        started_at=now,
        lease_until=lease,
        attempts=F("attempts") + 1,
    )


def _lock_claimed(*, ids: Sequence[str], token: uuid.UUID) -> list[ScheduledAction]:
    """Lock and load the given rows still running under `token`, in due order."""
    if not _on_postgresql():
        return list(
            ScheduledAction.objects.select_for_update()
            .filter(pk__in=list(ids), status=Status.RUNNING, claim_token=token)
            .order_by("due_at")
        )
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [_uuid_array(ids), token])
        return [_claimed_row(values, token) for values in cursor.fetchall()]


def _claimed_row(values: Sequence[Any], token: uuid.UUID) -> ScheduledAction:
    """A ScheduledAction holding `_LOCKED_COLUMNS` (the others load on access, as with `only`).

    Built without `Model.__init__`, which alone costs more per row than a typical action.
    """
    fields = dict(zip(_LOCKED_COLUMNS, values, strict=True))
    # The backend hands jsonb over as text (the JSONField decodes it); json, not orjson,
    # because orjson reads integers past 64 bits as floats.
    fields["spec"] = json.loads(fields["spec"])
    fields["data"] = json.loads(fields["data"])
    state = ModelState()
    state.adding, state.db = False, DEFAULT_DB_ALIAS
    row = ScheduledAction.__new__(ScheduledAction)
    row.__dict__.update(fields, status=Status.RUNNING, claim_token=token, _state=state)
    return row


def _finish(rows: Sequence[ScheduledAction]) -> None:
    """Store the rows' done/failed marks and complete the events left with no open action.

    One statement on PostgreSQL; elsewhere one UPDATE per row, then `events_settle`.
    (`bulk_update` builds a CASE per field and row, which costs more than the actions.)
    """
    if not rows:
        return
    if not _on_postgresql():
        for row in rows:
            ScheduledAction.objects.filter(pk=row.pk).update(
                status=row.status,
                started_at=row.started_at,
                finished_at=row.finished_at,
                lease_until=None,
                result=row.result,
                error=row.error,
            )
        _settle(row.event_id for row in rows)
        return
    outcomes = orjson.dumps(
        [
            {
                "id": row.pk,
                "status": row.status,
                "started_at": row.started_at,
                "finished_at": row.finished_at,
                "result": orjson.Fragment(_result_json(row.result)),
                "error": row.error,
            }
            for row in rows
        ]
    )
    params: dict[str, Any] = {
        "outcomes": outcomes.decode(),
        "ids": _uuid_array(row.pk for row in rows),
        "events": _uuid_array({row.event_id for row in rows if row.event_id is not None}),
        "now": timezone.now(),
    }
    with connection.cursor() as cursor:
        if params["events"] != "{}":
            cursor.execute(_LOCK_EVENTS_SQL, [params["events"]])
        cursor.execute(_FINISH_SQL, params)


def _uuid_array(ids: Iterable[Any]) -> str:
    """A PostgreSQL array literal of the ids, for a `%s::uuid[]` parameter.

    psycopg's list adapter costs more than the rest of the statement; PostgreSQL still parses
    every element as a uuid, so a malformed id fails the statement (DataError).
    """
    return "{" + ",".join(map(str, ids)) + "}"


def _result_json(result: Any) -> bytes:
    """`result` as JSON with the values `json.dumps(result, cls=DjangoJSONEncoder)` writes.

    One difference: NaN and infinities, which jsonb refuses (failing the whole slice), are
    written as null. Raises TypeError for what the encoder cannot write either.
    """
    try:
        return orjson.dumps(result, default=_ENCODER.default, option=_RESULT_JSON_OPTIONS)
    except TypeError:
        # What orjson cannot write (integers past 64 bits) or refuses: the encoder decides.
        return json.dumps(result, cls=DjangoJSONEncoder).encode()


def _settle(event_ids: Iterable[Any]) -> None:
    events_settle(event_ids=[pk for pk in dict.fromkeys(event_ids) if pk is not None])


def scheduled_actions_recover(*, now: datetime | None = None) -> int:
    """Make rows whose message or worker was lost pending again; returns how many it touched.

    Enqueued rows past their lease (their message never ran) and running rows past their lease
    (their worker died, so the action's transaction rolled back) become pending, and the
    sweeper publishes them again. A running row that has been claimed SCHEDULE_MAX_ATTEMPTS
    times fails instead (an action that keeps killing its worker). Rows locked by someone else
    (their actions are running right now) are skipped. Writes ScheduledAction rows and settles
    the events of failed ones.
    """
    now = now or timezone.now()
    limit = max(1, int(setting("SCHEDULE_BATCH")))
    most = int(setting("SCHEDULE_MAX_ATTEMPTS"))
    with transaction.atomic():
        stale = list(
            ScheduledAction.objects.select_for_update(skip_locked=True)
            .filter(status__in=[Status.ENQUEUED, Status.RUNNING], lease_until__lt=now)
            .values_list("pk", "status", "attempts", "event_id")[:limit]
        )
        give_up = [row for row in stale if row[1] == Status.RUNNING and row[2] >= most]
        again = [row[0] for row in stale if row not in give_up]
        ScheduledAction.objects.filter(pk__in=again).update(
            status=Status.PENDING, enqueued_at=None, lease_until=None, claim_token=None
        )
        ScheduledAction.objects.filter(pk__in=[row[0] for row in give_up]).update(
            status=Status.FAILED,
            finished_at=now,
            lease_until=None,
            error=f"gave up after {most} attempts: the worker was lost each time",
        )
    if stale:
        logger.warning("recovered %s scheduled actions (%s failed)", len(stale), len(give_up))
    _settle(row[3] for row in give_up)
    return len(stale)


def scheduled_actions_cancel(*, ids: Sequence[Any], now: datetime | None = None) -> int:
    """Cancel the given rows that are pending or enqueued, in one UPDATE; returns how many.

    Running and finished rows are left as they are. Once this returns no cancelled row starts
    (a worker starts a row only by claiming it from enqueued). Writes ScheduledAction rows and
    settles their events.
    """
    now = now or timezone.now()
    targets = ScheduledAction.objects.filter(
        pk__in=list(ids), status__in=ScheduledAction.CANCELLABLE
    )
    event_ids = set(targets.exclude(event=None).values_list("event_id", flat=True))
    cancelled = targets.update(status=Status.CANCELLED, finished_at=now, lease_until=None)
    _settle(event_ids)
    return cancelled
