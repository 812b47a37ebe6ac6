"""Writes of egress: destinations, the outbox write, attempts, retries and dead letters.

A delivery's life:

    delivery_enqueue       writes the row in the decision's transaction; publishes
                           `deliver` once that transaction commits
    delivery_attempt       claims the row (a lease, in a short transaction), sends once with
                           no transaction open, then records the attempt and either marks it
                           delivered, schedules the next attempt (exponential backoff, full
                           jitter) or dead-letters it after the destination's max_attempts
    delivery_retry_due     the periodic safety net: publishes again the deliveries whose
                           attempt is due but whose task never came (broker down, lost
                           message, worker killed mid-send once its lease ran out)
    delivery_retry         puts dead deliveries back to pending (history kept)

Knobs (settings.VERDICT, all optional): EGRESS_BACKOFF_BASE_SECONDS (1),
EGRESS_BACKOFF_CAP_SECONDS (300), EGRESS_REPUBLISH_AFTER (10), EGRESS_LEASE_SECONDS (60),
EGRESS_SCAN_BATCH (500); see also `egress.channels` (EGRESS_STREAM_MAXLEN,
EGRESS_STREAM_DEDUPE_SECONDS) and `rules_engine.actions.webhook` (EGRESS_MAX_PAYLOAD_BYTES).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from egress import channels, selectors
from egress.models import Delivery, DeliveryAttempt, Destination
from rules_engine.actions.base import ActionContext
from rules_engine.errors import ErrorDetail, InvalidInput

logger = logging.getLogger(__name__)

DESTINATION_FIELDS = (
    "name",
    "kind",
    "description",
    "url",
    "secret",
    "stream",
    "active",
    "timeout_seconds",
    "max_attempts",
)
OPEN = [str(status) for status in Delivery.OPEN_STATUSES]
LOST_ATTEMPT = "no result: the worker stopped during this attempt"
MAX_ERROR_CHARS = 2000


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, "VERDICT", {}).get(name, default))


def generate_secret() -> str:
    """A new signing secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


# --- destinations --------------------------------------------------------------------------


def destination_errors(
    *, data: Mapping[str, Any], destination: Destination | None = None
) -> list[ErrorDetail]:
    """Every problem with creating (or changing `destination` to) `data`, with JSON paths.

    The fields' own validation (URL scheme, name format, unique name, bounds) plus
    `destination_consistency_errors`. Writes nothing.
    """
    errors: list[ErrorDetail] = [
        {"path": f"$.{name}", "message": "unknown field"}
        for name in sorted(set(data) - set(DESTINATION_FIELDS))
    ]
    candidate = _candidate(destination, data)
    try:
        candidate.full_clean()
    except ValidationError as exc:
        errors.extend(
            {"path": f"$.{name}" if name != "__all__" else "$", "message": str(message)}
            for name, messages in exc.message_dict.items()
            for message in messages
        )
    return errors + destination_consistency_errors(data=data, destination=destination)


def destination_consistency_errors(
    *, data: Mapping[str, Any], destination: Destination | None = None
) -> list[ErrorDetail]:
    """The checks beyond single fields (the admin form validates fields itself).

    A webhook needs a URL and a stream destination a stream key (and Redis); a destination
    that active rules send to keeps its name and kind and stays active, since those rules
    would stop compiling. Writes nothing.
    """
    candidate = _candidate(destination, data)
    errors: list[ErrorDetail] = []
    if candidate.kind == Destination.Kind.WEBHOOK:
        if not candidate.url:
            errors.append({"path": "$.url", "message": "a webhook destination needs a URL"})
        if candidate.stream:
            errors.append(
                {"path": "$.stream", "message": "only redis_stream destinations have a stream"}
            )
    elif candidate.kind == Destination.Kind.REDIS_STREAM:
        if not candidate.stream:
            errors.append(
                {"path": "$.stream", "message": "a redis_stream destination needs a stream key"}
            )
        if candidate.url:
            errors.append({"path": "$.url", "message": "only webhook destinations have a URL"})
        if not settings.REDIS_URL:
            errors.append(
                {"path": "$.kind", "message": "redis_stream needs REDIS_URL to be configured"}
            )
    if destination is not None and destination.pk is not None:
        errors.extend(_reference_errors(destination, candidate))
    return errors


def _candidate(destination: Destination | None, data: Mapping[str, Any]) -> Destination:
    candidate = Destination()
    if destination is not None:
        for name in DESTINATION_FIELDS:
            setattr(candidate, name, getattr(destination, name))
        candidate.pk = destination.pk
        # A stored destination: the unique check must not count its own row.
        candidate._state.adding = destination._state.adding
    for name, value in data.items():
        if name in DESTINATION_FIELDS:
            setattr(candidate, name, value)
    return candidate


def _reference_errors(destination: Destination, candidate: Destination) -> list[ErrorDetail]:
    stored = Destination.objects.filter(pk=destination.pk).first()
    if stored is None:
        return []
    changes = [
        ("$.name", "renamed", candidate.name != stored.name),
        ("$.kind", "changed to another kind", candidate.kind != stored.kind),
        ("$.active", "deactivated", stored.active and not candidate.active),
    ]
    if not any(changed for _path, _what, changed in changes):
        return []
    rules = selectors.rules_using_destination(name=stored.name)
    if not rules:
        return []
    names = ", ".join(repr(rule.name) for rule in rules[:10])
    return [
        {
            "path": path,
            "message": f"cannot be {what} while active rules send to it: {names}",
        }
        for path, what, changed in changes
        if changed
    ]


@transaction.atomic
def destination_create(*, data: Mapping[str, Any]) -> Destination:
    """Register a destination; a webhook without a secret gets a generated one.

    Raises InvalidInput (invalid_destination) with every problem; writes one Destination.
    """
    errors = destination_errors(data=data)
    if errors:
        raise InvalidInput(errors, code="invalid_destination")
    destination = _candidate(None, data)
    if destination.kind == Destination.Kind.WEBHOOK and not destination.secret:
        destination.secret = generate_secret()
    destination.save()
    return destination


@transaction.atomic
def destination_update(*, destination: Destination, data: Mapping[str, Any]) -> Destination:
    """Change a destination; a blank secret keeps the current one (use rotate to replace it).

    Raises InvalidInput (invalid_destination), e.g. when deactivating a destination active
    rules send to. Writes the Destination row.
    """
    locked = Destination.objects.select_for_update().get(pk=destination.pk)
    data = {k: v for k, v in data.items() if not (k == "secret" and not v)}
    errors = destination_errors(data=data, destination=locked)
    if errors:
        raise InvalidInput(errors, code="invalid_destination")
    for name, value in data.items():
        setattr(locked, name, value)
    if locked.kind == Destination.Kind.WEBHOOK and not locked.secret:
        locked.secret = generate_secret()
    locked.save()
    destination.refresh_from_db()
    return locked


@transaction.atomic
def destination_rotate_secret(*, destination: Destination) -> str:
    """Replace a destination's signing secret with a new generated one and return it.

    Receivers must switch to the new secret; attempts after this are signed with it. Writes
    the Destination row.
    """
    secret = generate_secret()
    Destination.objects.filter(pk=destination.pk).update(secret=secret, updated_at=timezone.now())
    destination.refresh_from_db()
    return secret


@transaction.atomic
def destination_delete(*, destination: Destination) -> None:
    """Delete a destination nothing refers to.

    Raises InvalidInput (invalid_destination) when active rules send to it or deliveries
    (the record of what was sent) refer to it; deactivate it instead. Deletes one row.
    """
    errors: list[ErrorDetail] = []
    rules = selectors.rules_using_destination(name=destination.name)
    if rules:
        names = ", ".join(repr(rule.name) for rule in rules[:10])
        errors.append({"path": "$", "message": f"active rules send to it: {names}"})
    if Delivery.objects.filter(destination=destination).exists():
        errors.append({"path": "$", "message": "deliveries refer to it; deactivate it instead"})
    if errors:
        raise InvalidInput(errors, code="invalid_destination")
    destination.delete()


# --- the outbox ----------------------------------------------------------------------------


def delivery_enqueue(
    *, destination: Destination, payload: Any, ctx: ActionContext, now: datetime | None = None
) -> tuple[Delivery, bool]:
    """Write the delivery of one action run, once; call inside the decision's transaction.

    Returns (delivery, created). The action's idempotency key finds the row a previous run
    of the same action wrote, so a re-run never writes or sends a second one. Sending is
    published when the transaction commits (never for a rolled-back decision); a broker
    outage then only delays it until `delivery_retry_due` runs. Writes one Delivery row.
    """
    delivery, created = Delivery.objects.get_or_create(
        idempotency_key=ctx.idempotency_key(),
        defaults={
            "destination": destination,
            "event_id": ctx.event_id,
            "execution_id": ctx.execution_id,
            "payload": payload,
            "next_attempt_at": now or timezone.now(),
        },
    )
    if created:
        transaction.on_commit(partial(_publish, str(delivery.pk)))
    return delivery, created


def _publish(delivery_id: str, countdown: float | None = None) -> None:
    """Publish the `deliver` task; a broker error is logged, the periodic scan publishes later."""
    from egress.tasks import deliver

    try:
        deliver.apply_async((delivery_id,), countdown=countdown)
    except Exception:
        logger.warning(
            "could not publish delivery %s; the retry scan will", delivery_id, exc_info=True
        )


# --- attempts ------------------------------------------------------------------------------


def backoff_seconds(
    *, failures: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """The wait before the next attempt after `failures` failed ones: full jitter.

    Uniform in [0, min(cap, base * 2 ** (failures - 1))], so retries of many deliveries that
    failed together spread out instead of hitting a recovering receiver at once.
    """
    ceiling = min(cap, base * 2 ** max(failures - 1, 0))
    return ceiling * rand()


def lease_seconds(destination: Destination) -> float:
    """How long a worker holds a delivery it is sending.

    httpx's timeout bounds each phase (connect, write, every read), not the whole request,
    so an attempt may take a few timeouts; the lease must outlast it, or a second worker
    could send the same delivery while the first still waits.
    """
    return max(_setting("EGRESS_LEASE_SECONDS", 60), 4 * destination.timeout_seconds + 5)


def delivery_attempt(*, delivery_id: str, now: datetime | None = None) -> DeliveryAttempt | None:
    """Make one attempt at an open, due delivery and record it; returns the attempt.

    Returns None (a no-op) when the delivery is delivered, dead, cancelled, not due yet, or
    held by another worker: duplicate and early tasks are harmless. A delivery whose
    destination was deactivated is dead-lettered without an attempt. No transaction is open
    while sending. Writes the Delivery and one DeliveryAttempt; publishes the next attempt.
    """
    claimed = _claim(delivery_id, now or timezone.now())
    if claimed is None:
        return None
    delivery, attempt = claimed
    started = time.perf_counter()
    try:
        result = channels.send(destination=delivery.destination, delivery=delivery)
    except Exception as exc:  # any failure is a failed attempt, never a lost lease
        logger.exception("delivery %s: attempt %s failed", delivery.pk, attempt.number)
        result = channels.SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    logger.info(
        "delivery %s attempt %s: %s",
        delivery.pk,
        attempt.number,
        "delivered" if result.ok else result.error,
        extra={"delivery_id": str(delivery.pk), "attempt": attempt.number, "ok": result.ok},
    )
    return _finish(delivery, attempt, result, duration_ms, now or timezone.now())


def _claim(delivery_id: str, now: datetime) -> tuple[Delivery, DeliveryAttempt] | None:
    """Take the lease on a due delivery and start its attempt, in one short transaction.

    SKIP LOCKED lets a concurrent claimer on PostgreSQL give up at once; the write is a
    compare-and-set on `attempts` (bumped by every claim), so only one claimer wins on any
    database, SQLite included.
    """
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("destination")
            .filter(pk=delivery_id, status__in=OPEN, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .first()
        )
        if delivery is None:
            return None
        destination = delivery.destination
        unchanged = Delivery.objects.filter(
            pk=delivery.pk, attempts=delivery.attempts, status__in=OPEN
        )
        if not destination.active:
            unchanged.update(
                status=Delivery.Status.DEAD,
                next_attempt_at=None,
                last_error=f"destination {destination.name!r} is inactive",
                updated_at=now,
            )
            return None
        lease_until = now + timedelta(seconds=lease_seconds(destination))
        if not unchanged.update(
            attempts=delivery.attempts + 1, lease_until=lease_until, updated_at=now
        ):
            return None
        delivery.attempts += 1
        delivery.lease_until = lease_until
        # The lease of this attempt's predecessor ran out without a result: its worker died.
        DeliveryAttempt.objects.filter(delivery=delivery, duration_ms__isnull=True).update(
            error=LOST_ATTEMPT
        )
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, started_at=now
        )
    return delivery, attempt


def _finish(
    delivery: Delivery,
    attempt: DeliveryAttempt,
    result: channels.SendResult,
    duration_ms: float,
    now: datetime,
) -> DeliveryAttempt:
    """Record the attempt and move the delivery on: delivered, retrying or dead."""
    error = result.error[:MAX_ERROR_CHARS]
    with transaction.atomic():
        attempt.duration_ms = duration_ms
        attempt.status_code = result.status_code
        attempt.ok = result.ok
        attempt.error = error
        attempt.response = result.response[: channels.RESPONSE_EXCERPT_BYTES]
        attempt.save()
        # Only while this attempt still holds the delivery: if its lease ran out and another
        # worker claimed it (attempts moved on), or it was cancelled, that state wins.
        held = Delivery.objects.filter(pk=delivery.pk, attempts=attempt.number, status__in=OPEN)
        if result.ok:
            held.update(
                status=Delivery.Status.DELIVERED,
                delivered_at=now,
                next_attempt_at=None,
                lease_until=None,
                last_error="",
                updated_at=now,
            )
        elif delivery.attempts_since_retry >= delivery.destination.max_attempts:
            held.update(
                status=Delivery.Status.DEAD,
                next_attempt_at=None,
                lease_until=None,
                last_error=error,
                updated_at=now,
            )
        else:
            cap = _setting("EGRESS_BACKOFF_CAP_SECONDS", 300)
            delay = backoff_seconds(
                failures=delivery.attempts_since_retry,
                base=_setting("EGRESS_BACKOFF_BASE_SECONDS", 1),
                cap=cap,
            )
            if result.retry_after is not None:
                # The receiver said when it can take more; still never beyond the cap.
                delay = max(delay, min(result.retry_after, cap))
            moved = held.update(
                status=Delivery.Status.RETRYING,
                next_attempt_at=now + timedelta(seconds=delay),
                lease_until=None,
                last_error=error,
                updated_at=now,
            )
            if moved:
                transaction.on_commit(partial(_publish, str(delivery.pk), countdown=delay))
    return attempt


def delivery_retry_due(*, now: datetime | None = None) -> int:
    """Publish again every open delivery whose attempt is overdue; returns how many.

    Overdue means due for longer than EGRESS_REPUBLISH_AFTER seconds (its own task should
    have come by then) and not held by a live lease. Rows are taken with SKIP LOCKED, so
    concurrent scans split the work, and marked due now, so the next scan skips them for a
    while. Writes Delivery rows; publishes `deliver` after commit.
    """
    now = now or timezone.now()
    overdue = now - timedelta(seconds=_setting("EGRESS_REPUBLISH_AFTER", 10))
    batch = int(_setting("EGRESS_SCAN_BATCH", 500))
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status__in=OPEN, next_attempt_at__lte=overdue)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:batch]
        )
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=now, updated_at=now)
        for delivery_id in ids:
            transaction.on_commit(partial(_publish, str(delivery_id)))
    return len(ids)


def delivery_retry(*, delivery_ids: Iterable[Any], now: datetime | None = None) -> int:
    """Send dead deliveries again: back to pending, due now, with a fresh attempt budget.

    Deliveries that are not dead are left alone. The attempt history is kept (numbering
    continues). Returns how many were retried. Writes Delivery rows; publishes `deliver`.
    """
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update()
            .filter(pk__in=list(delivery_ids), status=Delivery.Status.DEAD)
            .values_list("pk", flat=True)
        )
        Delivery.objects.filter(pk__in=ids, status=Delivery.Status.DEAD).update(
            status=Delivery.Status.PENDING,
            attempts_before_retry=F("attempts"),
            next_attempt_at=now,
            lease_until=None,
            updated_at=now,
        )
        for delivery_id in ids:
            transaction.on_commit(partial(_publish, str(delivery_id)))
    return len(ids)


def delivery_cancel(*, delivery_ids: Iterable[Any], now: datetime | None = None) -> int:
    """Give up on open or dead deliveries for good (status cancelled); returns how many.

    An attempt already on the wire finishes, and is recorded, but does not change the
    status back. Writes Delivery rows.
    """
    now = now or timezone.now()
    return Delivery.objects.filter(
        pk__in=list(delivery_ids), status__in=[*OPEN, Delivery.Status.DEAD]
    ).update(status=Delivery.Status.CANCELLED, next_attempt_at=None, updated_at=now)
