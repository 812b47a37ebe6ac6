"""Writes of ingress: accept events once, cancel them, process them through the engine.

An event row committed in PostgreSQL is the promise that it will be processed: publishing the
processing task happens after commit and may fail (broker down) without losing anything,
because `event_recover` publishes every open event again once it has waited too long.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from ingress.models import Event, PendingCancellation
from rules_engine import engine
from rules_engine.actions.base import subject_to_str
from rules_engine.cache import rulesets
from rules_engine.errors import InvalidContext, InvalidInput, NotFound
from rules_engine.validation import validate_context
from scheduling.models import ScheduledAction

logger = logging.getLogger(__name__)

OPEN = [str(s) for s in Event.OPEN_STATUSES]


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, "VERDICT", {}).get(name, default))


def _lock_source_key(source: str, key: str) -> None:
    """Serialise accept and cancel-by-key of one (source, key) until the transaction ends.

    Without it a cancellation could look for the event just before the event commits and be
    stored as "early" just after, and never be applied. SQLite serialises writers anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{len(source)}:{source}:{key}"]
            )


def _enqueue(event_id: str) -> None:
    """Publish the processing task; a broker outage is logged, recovery publishes it later."""
    from ingress.tasks import process_event

    try:
        process_event.delay(event_id)
    except Exception:
        logger.warning("could not publish event %s; recovery will retry", event_id, exc_info=True)


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

    Returns (event, created); the same (source, key) again returns the stored event. A
    cancellation that arrived first is applied: the event is stored as cancelled. Raises
    NotFound (unknown_event_type) when no active entry point has this key, InvalidContext
    when the payload fails its schema. Writes one Event row (and deletes the early
    cancellation it consumed).
    """
    existing = Event.objects.filter(source=source, key=key).first()
    if existing is not None:
        return existing, False
    ruleset = rulesets.get(type)
    if ruleset is None:
        raise NotFound("unknown_event_type", f"no active entry point {type!r}")
    errors = validate_context(schema=ruleset.schema, context=payload, validator=ruleset.validator)
    if errors:
        raise InvalidContext([{"path": e.path, "message": e.message} for e in errors])
    if not subject and ruleset.subject is not None:
        subject = subject_to_str(ruleset.subject(payload)) or ""
    try:
        with transaction.atomic():
            _lock_source_key(source, key)
            early = (
                PendingCancellation.objects.select_for_update()
                .filter(source=source, key=key)
                .first()
            )
            event = Event.objects.create(
                type=type,
                key=key,
                source=source,
                subject=subject[:200],
                payload=payload,
                depth=depth,
                parent_id=parent_id,
                status=Event.Status.CANCELLED if early else Event.Status.RECEIVED,
                cancel_reason=early.reason if early else "",
                finished_at=timezone.now() if early else None,
            )
            if early is not None:
                early.delete()
            else:
                transaction.on_commit(lambda: _enqueue(str(event.pk)))
    except IntegrityError:
        # A concurrent accept of the same (source, key) won; return its row.
        return Event.objects.get(source=source, key=key), False
    return event, True


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
    """Run the engine for a received event and store the decision with the event's new status.

    The event moves received -> processing (committed, so it shows), then one transaction
    locks the row, decides, and moves it to waiting (delayed actions pending) or completed;
    a concurrent cancel waits for that transaction and then cancels what it scheduled. A
    duplicate delivery or a cancelled event is a no-op (returns None). An unknown entry point
    or a payload that no longer fits the schema fails the event; other errors leave it
    processing, and `event_recover` retries it after the lease.
    """
    now = timezone.now()
    claimed = Event.objects.filter(pk=event_id, status=Event.Status.RECEIVED).update(
        status=Event.Status.PROCESSING, processed_at=now, updated_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    try:
        with transaction.atomic():
            event = Event.objects.select_for_update().get(pk=event_id)
            if event.status != Event.Status.PROCESSING:
                return None
            decision = engine.execute(
                entry_point=event.type,
                context=event.payload,
                caller=f"event:{event.source}",
                request_id=str(event.pk),
                event=engine.EventRef(str(event.pk), event.depth),
            )
            waiting = any(r.get("status") == "scheduled" for r in decision.action_results)
            event.execution_id = decision.execution_id
            event.status = Event.Status.WAITING if waiting else Event.Status.COMPLETED
            event.finished_at = None if waiting else timezone.now()
            event.save(update_fields=["execution", "status", "finished_at", "updated_at"])
            return event
    except (NotFound, InvalidInput) as exc:
        detail = exc.message if isinstance(exc, NotFound) else str(exc)
        Event.objects.filter(pk=event_id, status=Event.Status.PROCESSING).update(
            status=Event.Status.FAILED, error=detail[:2000], finished_at=timezone.now()
        )
        return Event.objects.get(pk=event_id)


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
    for event_id in waiting_ids:
        _enqueue(str(event_id))
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
