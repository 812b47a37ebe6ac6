"""Writes of ingress: accept events once, cancel them, process them through the engine.

An event row committed in PostgreSQL is the promise that it will be processed: publishing the
processing task happens after commit and may fail (broker down) without losing anything,
because `event_recover` publishes every open event again once it has waited too long.

Processing is batched: a task claims the received events that are waiting (oldest first,
`FOR UPDATE SKIP LOCKED`, up to EVENT_BATCH), decides them in one transaction, and loops
until none is left. Accepting an event therefore publishes a task only when none is on its
way: a "doorbell" mark in the shared cache (set with add, i.e. SET NX, with a short expiry)
says one is; the task clears it before its last look for work, so an event committed while
the mark was set is always seen by that look or by the task the next accept publishes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, JSONField, OuterRef
from django.utils import timezone

from ingress.models import Event, PendingCancellation
from rules_engine import audit, engine
from rules_engine.actions.base import subject_to_str
from rules_engine.cache import one_generation, rulesets
from rules_engine.errors import Conflict, InvalidContext, InvalidInput, NotFound
from rules_engine.validation import validate_context
from scheduling.models import ScheduledAction

logger = logging.getLogger(__name__)

OPEN = [str(s) for s in Event.OPEN_STATUSES]


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, "VERDICT", {}).get(name, default))


def _lock_source_key(source: str, key: str) -> None:
    """Serialise accept and cancel-by-key of one (source, key) until the transaction ends.

    Without it a cancellation could look for the event just before the event commits and be
    stored as "early" just after, and never be applied. Accepting takes the same lock inside
    the database function `ingress_accept_event` (migration ingress 0002): keep the two keys
    alike. SQLite serialises writers anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{len(source)}:{source}:{key}"]
            )


DOORBELL_KEY = "verdict:events:doorbell"
# Set while a helper task published for a full batch is recent (see events_process_pending).
HELPER_KEY = "verdict:events:helper"


def _publish_processing() -> bool:
    """Publish one batch-processing task; a broker outage is logged (recovery publishes later)."""
    from ingress.tasks import process_events

    try:
        process_events.delay()
    except Exception:
        logger.warning("could not publish event processing; recovery will retry", exc_info=True)
        return False
    return True


@dataclass
class _RingingTogether:
    """The doorbell state of an `events_ringing_together` block."""

    rung: bool = False  # the block's first accept rang
    owed: bool = False  # an accept since then waits for the ring at the block's end


_ringing_together: ContextVar[_RingingTogether | None] = ContextVar(
    "ringing_together", default=None
)


@contextmanager
def events_ringing_together() -> Iterator[None]:
    """Within the block, accepted events ring the doorbell right after the first accept and
    once more when the block ends (if more came), not once each.

    For a stream consumer's batch: one Redis round trip per batch instead of one per event.
    Safe because ringing covers every event committed before it (see `_ring`): the last ring
    covers the batch. An event committed in between waits for that ring only if no task was
    at work, and a batch takes milliseconds.
    """
    state = _RingingTogether()
    token = _ringing_together.set(state)
    try:
        yield
    finally:
        _ringing_together.reset(token)
        if state.owed:
            _ring()


def _ring() -> None:
    """Make sure a processing task is on its way for the events committed so far.

    Publishes only when the doorbell mark was not set (cache `add` is atomic), so a burst of
    events costs one message, not one per event. A cache outage publishes anyway.
    """
    together = _ringing_together.get()
    if together is not None:
        if together.rung:
            together.owed = True  # the block's last ring covers this event
            return
        together.rung = True
    expiry = int(_setting("EVENT_DOORBELL_SECONDS", 2))
    # Unreachable cache: publish anyway (a spare task finds nothing; a missing one waits).
    if _first_in(DOORBELL_KEY, seconds=expiry, unreachable=True) and not _publish_processing():
        # Nothing is on its way after all: let the next accept try again.
        _clear_doorbell()


def _clear_doorbell() -> None:
    try:
        shared_cache.delete(DOORBELL_KEY)
    except Exception:
        logger.warning("could not clear the event doorbell", exc_info=True)


def event_accept(
    *,
    type: str,
    key: str,
    payload: Any,
    source: str = "api",
    subject: str = "",
    depth: int = 0,
    parent_id: str | None = None,
) -> tuple[Event, bool]:
    """Store an event once per (source, key) and publish its processing after commit.

    Returns (event, created); the same (source, key) again returns the stored event (of the
    same type: a key already used by an event of another type raises Conflict
    (idempotency_key_conflict), as the caller means another event). A cancellation that
    arrived first is applied: the event is stored as cancelled. Raises NotFound
    (unknown_event_type) when no active entry point has this key, InvalidContext when the
    payload fails its schema (unless the event is already stored). Writes one Event row (and
    deletes the early cancellation it consumed).
    """
    ruleset = rulesets.get(type)
    if ruleset is None:
        if (existing := _stored(source, key)) is not None:
            return _repeat(existing, type), False
        raise NotFound("unknown_event_type", f"no active entry point {type!r}")
    errors = validate_context(schema=ruleset.schema, context=payload, validator=ruleset.validator)
    if errors:
        # A repeat of a stored event answers with that event, whatever its payload now says.
        if (existing := _stored(source, key)) is not None:
            return _repeat(existing, type), False
        raise InvalidContext([{"path": e.path, "message": e.message} for e in errors])
    if not subject and ruleset.subject is not None:
        subject = subject_to_str(ruleset.subject(payload)) or ""
    event = Event(
        type=type,
        key=key,
        source=source,
        subject=subject[:200],
        payload=payload,
        depth=depth,
        parent_id=parent_id,
    )
    try:
        # Inside a caller's transaction (an emitted event) a savepoint keeps a failed insert
        # from aborting it; on its own the insert is one statement and needs none.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            created = _insert(event)
    except IntegrityError:
        created = False
    if created and event.status == Event.Status.RECEIVED:
        # At once outside a transaction; after the caller's commit inside one.
        transaction.on_commit(_ring)
    if not created:
        # Stored before (or by a concurrent accept of the same key, which won).
        stored = Event.objects.get(source=source, key=key)
        if stored.status == Event.Status.RECEIVED:
            # Its accepter may have died between commit and doorbell (a stream consumer
            # killed mid-accept, whose entry is now redelivered): ring for it.
            transaction.on_commit(_ring)
        return _repeat(stored, type), False
    return event, True


def _stored(source: str, key: str) -> Event | None:
    return Event.objects.filter(source=source, key=key).order_by().first()


def _repeat(stored: Event, type: str) -> Event:
    """The stored event a repeated (source, key) names. Raises Conflict when it has another
    type (its type is not named: a key limited to some entry points may not learn others)."""
    if stored.type != type:
        raise Conflict(
            "idempotency_key_conflict",
            f"key {stored.key!r} of source {stored.source!r} is already used by an event of "
            "another type",
        )
    return stored


# One round trip: the function (migration ingress 0002) takes the (source, key) lock, consumes
# an early cancellation and inserts the row, in the caller's transaction or its own.
_ACCEPT_SQL = "SELECT * FROM ingress_accept_event(%s, %s, %s, %s, %s, %s, %s, %s, %s)"


def _insert(event: Event) -> bool:
    """Insert `event` (applying an early cancellation); False when (source, key) exists.

    On PostgreSQL one function call takes the (source, key) lock, consumes the early
    cancellation and inserts the row, so an accept outside a transaction is one round trip
    (a transaction with the lock and the ORM's statements cost four, and most of an accept's
    CPU); elsewhere (SQLite serialises writers) the ORM does the same in steps, in a
    transaction. Sets the instance's status, cancel_reason and timestamps.
    """
    now = timezone.now()
    if connection.vendor != "postgresql":
        with transaction.atomic():
            if _stored(event.source, event.key) is not None:
                return False
            early = PendingCancellation.objects.filter(source=event.source, key=event.key).first()
            if early is not None:
                event.status, event.cancel_reason = Event.Status.CANCELLED, early.reason
                early.delete()
            event.save(force_insert=True)
            if early is not None:
                # Finished as it was received, as on PostgreSQL (received_at is stamped by
                # the save, after anything computed here).
                event.finished_at = event.received_at
                event.save(update_fields=["finished_at"])
        return True
    payload = Event._meta.get_field("payload").get_db_prep_save(event.payload, connection)
    params = [event.pk, event.type, event.source, event.key, event.subject, payload]
    with connection.cursor() as cursor:
        cursor.execute(_ACCEPT_SQL, [*params, event.depth, event.parent_id, now])
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    event._state.adding, event._state.db = False, connection.alias
    event.status, event.cancel_reason = inserted
    event.received_at = event.updated_at = now
    event.finished_at = now if event.status == Event.Status.CANCELLED else None
    return True


@transaction.atomic
def event_cancel(*, event: Event, reason: str = "") -> Event:
    """Cancel an event and every pending or enqueued action of it, in one transaction.

    Once this returns, no action of the event starts: workers only start an action by moving
    its row from enqueued to running, and these rows are cancelled now. If the event is being
    processed, this waits for that decision to commit and then cancels what it scheduled.
    Cancelling a finished event changes nothing. Writes the Event and its ScheduledActions.
    """
    now = timezone.now()
    cancelled = Event.objects.filter(pk=event.pk, status__in=OPEN).update(
        status=Event.Status.CANCELLED, cancel_reason=reason[:200], finished_at=now, updated_at=now
    )
    if cancelled:
        ScheduledAction.objects.filter(
            event_id=event.pk, status__in=list(ScheduledAction.CANCELLABLE)
        ).update(status=ScheduledAction.Status.CANCELLED, finished_at=now)
    event.refresh_from_db()
    return event


@transaction.atomic
def event_cancel_by_key(*, source: str, key: str, reason: str = "") -> Event | None:
    """Cancel the event (source, key), or remember the cancellation until it arrives.

    Returns the cancelled event, or None when the cancellation was stored for later. Writes the
    Event (see `event_cancel`) or one PendingCancellation row.
    """
    _lock_source_key(source, key)
    event = Event.objects.filter(source=source, key=key).first()
    if event is not None:
        return event_cancel(event=event, reason=reason)
    PendingCancellation.objects.get_or_create(
        source=source, key=key, defaults={"reason": reason[:200]}
    )
    return None


def event_process(*, event_id: str) -> Event | None:
    """Decide on one received event now (see `events_decide`); returns it, or None.

    None when the event is not received any more (a duplicate delivery, a cancelled event,
    or another worker has it). Writes like `events_decide`.
    """
    claimed = _claim_received(ids=[event_id], limit=1)
    if not claimed:
        return None
    return next(iter(events_decide(event_ids=claimed)), None)


def events_process_pending() -> list[str]:
    """Decide on received events, a batch per transaction, until none is left (or time is up).

    Each round claims up to EVENT_BATCH of the oldest received events. A full batch means
    more are waiting, so another processing task is published for a second worker to share
    the backlog (at most one such helper per second, so a long backlog does not flood the
    broker with tasks that will find nothing). Before giving up the task clears the doorbell
    and looks once more, so an event accepted while the doorbell was set is never left
    waiting for recovery. After EVENT_TASK_SECONDS it hands over to a new task instead of
    looping on, so a worker under steady load can still shut down or restart between tasks.
    Returns the ids of the events it decided. Writes like `events_decide`.
    """
    limit = max(1, int(_setting("EVENT_BATCH", 20)))
    deadline = time.monotonic() + _setting("EVENT_TASK_SECONDS", 5)
    decided: list[str] = []
    while True:
        if time.monotonic() >= deadline:
            # The doorbell stays set: the task published here is the one on its way.
            _publish_processing()
            return decided
        ids = _claim_received(limit=limit)
        if not ids:
            _clear_doorbell()
            ids = _claim_received(limit=limit)
            if not ids:
                return decided
        if len(ids) >= limit and _first_in(HELPER_KEY, seconds=1):
            _publish_processing()
        decided += [str(event.pk) for event in events_decide(event_ids=ids)]


def _first_in(key: str, *, seconds: int, unreachable: bool = False) -> bool:
    """Whether this call is the first to set `key` in the shared cache within `seconds`.

    `unreachable` is the answer when the shared cache cannot be reached.
    """
    try:
        return bool(shared_cache.add(key, 1, timeout=seconds))
    except Exception:
        logger.warning("shared cache unreachable", exc_info=True)
        return unreachable


_CLAIM_OLDEST_SQL = """
UPDATE ingress_event SET status = 'processing', processed_at = %(now)s, updated_at = %(now)s,
    attempts = attempts + 1
WHERE id IN (
    SELECT id FROM ingress_event WHERE status = 'received' ORDER BY received_at
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING id
"""

_CLAIM_IDS_SQL = """
UPDATE ingress_event SET status = 'processing', processed_at = %(now)s, updated_at = %(now)s,
    attempts = attempts + 1
WHERE id = ANY(%(ids)s) AND status = 'received'
RETURNING id
"""


def _claim_received(*, limit: int, ids: list[str] | None = None) -> list[str]:
    """Move received events to processing (committed at once); returns the claimed ids.

    The given ids, or the `limit` oldest received events. The claim commits on its own so the
    attempt counts (and shows) even if the worker dies while deciding; concurrent workers
    take disjoint events (SKIP LOCKED, and the status condition).
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if ids is None:
                cursor.execute(_CLAIM_OLDEST_SQL, {"now": now, "limit": limit})
            else:
                cursor.execute(_CLAIM_IDS_SQL, {"now": now, "ids": [uuid.UUID(i) for i in ids]})
            return [str(row[0]) for row in cursor.fetchall()]
    # SQLite (the embedded default) serialises writers; one conditional UPDATE per event.
    if ids is None:
        received = Event.objects.filter(status=Event.Status.RECEIVED).order_by("received_at")
        ids = [str(pk) for pk in received.values_list("pk", flat=True)[:limit]]
    claim = {
        "status": Event.Status.PROCESSING,
        "processed_at": now,
        "updated_at": now,
        "attempts": F("attempts") + 1,
    }
    return [
        event_id
        for event_id in ids
        if Event.objects.filter(pk=event_id, status=Event.Status.RECEIVED).update(**claim)
    ]


def events_decide(*, event_ids: list[str]) -> list[Event]:
    """Run the engine for claimed (processing) events and store each decision, in one transaction.

    The rows are locked first, so a concurrent cancel waits for the commit and then cancels
    what the decision scheduled; an event cancelled since its claim is skipped. Each event
    moves to waiting (delayed actions pending) or completed with its Execution row; an
    unknown entry point or a payload that no longer fits the schema fails the event; any other
    error (a bug) leaves it processing for `event_recover` to retry after the lease, and the
    others are still decided. A database outage raises (nothing commits; recovery retries).
    Returns the events decided or failed. Writes Event, Execution and whatever the actions
    write. The batch is first decided without savepoints (engine.Batch, optimistic) and only
    decided again with them when a decision needed one.
    """
    try:
        return _decide_batch(event_ids, optimistic=True)
    except engine.BatchRetry as exc:
        # Rare (an action failed after writing): the batch again, with a savepoint per
        # decision and per writing action, so that failure is recorded as usual.
        logger.info("deciding events %s again with savepoints: %s", event_ids, exc)
        return _decide_batch(event_ids, optimistic=False)


def _decide_batch(event_ids: list[str], *, optimistic: bool) -> list[Event]:
    """One transaction of `events_decide`; optimistic: without savepoints (engine.Batch)."""
    batch = engine.Batch(optimistic=optimistic)
    try:
        with transaction.atomic(), one_generation():
            events = _lock_processing(event_ids)
            # The subjects' state, acknowledgements and preferences: one query, not 3 each.
            with engine.reading_ahead((event.type, event.payload) for event in events):
                decided = [event for event in events if _decide_one(event, batch)]
            # One COPY for the batch's audit rows (the ORM would send one INSERT each).
            audit.insert_rows(batch.audit_rows)
            _store_outcomes(decided, now=timezone.now())
    except BaseException:
        # Nothing of the batch committed: its decisions' cooldowns must not hold.
        batch.release()
        raise
    return decided


# Every column, so the events handed back have no deferred field to load one query each.
_EVENT_FIELDS = [f.attname for f in Event._meta.concrete_fields]
_PAYLOAD_INDEX = _EVENT_FIELDS.index("payload")
_LOCK_SQL = (
    f"SELECT {', '.join(str(f.column) for f in Event._meta.concrete_fields)} "  # noqa: S608  (column names)
    "FROM ingress_event WHERE id = ANY(%s) AND status = 'processing' "
    "ORDER BY received_at FOR UPDATE"
)


def _lock_processing(event_ids: list[str]) -> list[Event]:
    """The events of `event_ids` still processing, oldest first, locked until the commit (a
    concurrent cancel waits for the decision, then cancels what it scheduled).

    Plain SQL on PostgreSQL: the ORM's query costs more CPU to build than to answer, and a
    batch runs it every few milliseconds under load.
    """
    if connection.vendor != "postgresql":
        processing = Event.objects.select_for_update().filter(
            pk__in=event_ids, status=Event.Status.PROCESSING
        )
        return list(processing.order_by("received_at"))
    payload = cast("JSONField[Any]", Event._meta.get_field("payload"))
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [[uuid.UUID(str(i)) for i in event_ids]])
        rows = cursor.fetchall()
    events = []
    for row in rows:
        values = list(row)
        # As the ORM decodes it (the column arrives as text).
        values[_PAYLOAD_INDEX] = payload.from_db_value(
            values[_PAYLOAD_INDEX],
            None,  # type: ignore[arg-type]  # no expression: a plain column
            connection,
        )
        events.append(Event.from_db(connection.alias, _EVENT_FIELDS, values))
    return events


def _decide_one(event: Event, batch: engine.Batch) -> bool:
    """Decide `event` in `batch` and set its outcome; False when it stays processing (a bug,
    retried after the lease). Raises BatchRetry and database outages."""
    try:
        decision = engine.execute(
            entry_point=event.type,
            context=event.payload,
            caller=f"event:{event.source}",
            request_id=str(event.pk),
            event=engine.EventRef(str(event.pk), event.depth),
            batch=batch,
            # Rules read the event's arrival as `$now`, however late it is decided.
            now=event.received_at,
        )
    except (NotFound, InvalidInput) as exc:
        event.status = Event.Status.FAILED
        event.error = (exc.message if isinstance(exc, NotFound) else str(exc))[:2000]
        return True
    except (engine.BatchRetry, OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("event %s could not be decided; retried after the lease", event.pk)
        return False
    waiting = any(r.get("status") == "scheduled" for r in decision.action_results)
    event.execution_id = decision.execution_id
    event.status = Event.Status.WAITING if waiting else Event.Status.COMPLETED
    return True


def _store_outcomes(events: list[Event], *, now: Any) -> None:
    """Write the decided events' status, execution, error and finish time (one statement on
    PostgreSQL; `bulk_update` would build a CASE per field and row)."""
    for event in events:
        event.updated_at = now
        event.finished_at = None if event.status == Event.Status.WAITING else now
    if not events:
        return
    if connection.vendor != "postgresql":
        for event in events:
            event.save(update_fields=["execution", "status", "error", "finished_at", "updated_at"])
        return
    values = ", ".join(["(%s::uuid, %s, %s::uuid, %s, %s::timestamptz)"] * len(events))
    params: list[Any] = []
    for event in events:
        params += [event.pk, event.status, event.execution_id, event.error, event.finished_at]
    sql = (
        "UPDATE ingress_event AS e SET status = v.status, execution_id = v.execution_id, "  # noqa: S608  (placeholders only)
        "error = v.error, finished_at = v.finished_at, updated_at = %s "
        f"FROM (VALUES {values}) AS v (id, status, execution_id, error, finished_at) "
        "WHERE e.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, *params])


def event_settle(*, event_id: str) -> None:
    """Complete a waiting event once none of its delayed actions is still open."""
    events_settle(event_ids=[event_id])


def events_settle(*, event_ids: list[Any]) -> int:
    """Complete the waiting events none of whose delayed actions is still open (one UPDATE).

    Returns how many were completed. Writes Event rows.
    """
    if not event_ids:
        return 0
    now = timezone.now()
    open_actions = ScheduledAction.objects.filter(
        event_id=OuterRef("pk"), status__in=list(ScheduledAction.OPEN_STATUSES)
    )
    return (
        Event.objects.filter(pk__in=event_ids, status=Event.Status.WAITING)
        .exclude(Exists(open_actions))
        .update(status=Event.Status.COMPLETED, finished_at=now, updated_at=now)
    )


def event_recover(*, now: Any = None) -> int:
    """Publish again the events whose processing was lost; returns how many.

    Received events older than EVENT_REPUBLISH_AFTER seconds (their publish failed or the
    message was lost) are published again; events stuck in processing longer than
    EVENT_LEASE_SECONDS (the worker died) go back to received first. Events that exhausted
    EVENT_MAX_ATTEMPTS fail. Writes Event rows.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=_setting("EVENT_LEASE_SECONDS", 60))
    republish_after = timedelta(seconds=_setting("EVENT_REPUBLISH_AFTER", 5))
    max_attempts = int(_setting("EVENT_MAX_ATTEMPTS", 5))
    stuck = Event.objects.filter(status=Event.Status.PROCESSING, updated_at__lt=now - lease)
    stuck.filter(attempts__gte=max_attempts).update(
        status=Event.Status.FAILED, error="gave up after repeated failures", finished_at=now
    )
    stuck_ids = list(stuck.values_list("pk", flat=True)[:1000])
    Event.objects.filter(pk__in=stuck_ids, status=Event.Status.PROCESSING).update(
        status=Event.Status.RECEIVED, updated_at=now
    )
    waiting_ids = stuck_ids + list(
        Event.objects.filter(
            status=Event.Status.RECEIVED, updated_at__lt=now - republish_after
        ).values_list("pk", flat=True)[:1000]
    )
    # Touching updated_at spaces out republishing of the same event.
    Event.objects.filter(pk__in=waiting_ids).update(updated_at=now)
    if waiting_ids:
        # Past the doorbell on purpose: its mark may be what kept these events waiting.
        _publish_processing()
    return len(waiting_ids)


def event_raise_periodic(
    *, schedule: str, type: str, payload: dict[str, Any] | None = None, now: Any = None
) -> tuple[Event, bool]:
    """Raise the event of a periodic schedule (django-celery-beat), once per schedule and second.

    The key is the schedule name and the second it fired, so a beat that sends twice in the
    same second raises one event. Raises like `event_accept`.
    """
    now = now or timezone.now()
    return event_accept(
        type=type,
        key=f"{schedule}:{now:%Y-%m-%dT%H:%M:%S}",
        source="schedule",
        payload=payload or {},
    )
