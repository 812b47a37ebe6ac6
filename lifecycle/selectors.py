"""Reads of lifecycle: the history a backtest replays, labels of decisions, backfill windows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from ingress.models import Event
from lifecycle.models import BackfilledEvent, BackfillRun, Backtest, Label
from rules_engine.models import EntryPoint, Execution

# Events a backfill re-decides: ones that were decided (or failed); received and processing
# events are still on their way through the normal pipeline, cancelled ones must not run.
BACKFILL_STATUSES = (Event.Status.COMPLETED, Event.Status.WAITING, Event.Status.FAILED)


def history_count(*, backtest: Backtest) -> int:
    """How many stored contexts the backtest's window holds."""
    return _history(backtest).count()


def _history(backtest: Backtest) -> QuerySet[Any]:
    if backtest.source == Backtest.Source.EVENTS:
        return Event.objects.filter(
            type=backtest.entry_point.key,
            received_at__gte=backtest.window_from,
            received_at__lt=backtest.window_to,
        )
    return Execution.objects.filter(
        entry_point_id=backtest.entry_point_id,
        created_at__gte=backtest.window_from,
        created_at__lt=backtest.window_to,
    )


def history_chunks(*, backtest: Backtest, chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    """The backtest's stored contexts, oldest first, in chunks (keyset pagination).

    Each item: `id` (execution or event id, as a string), `context`, `at` (the instant the
    rules read as `$now`: the audited `$now`, else the time it was stored) and, for events,
    `execution_id` (the decision the event got, for its label).
    """
    events = backtest.source == Backtest.Source.EVENTS
    time_field = "received_at" if events else "created_at"
    fields = ["id", time_field, "payload" if events else "context_snapshot"]
    if events:
        fields.append("execution_id")
    queryset = _history(backtest).order_by(time_field, "id").values(*fields)
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        page = queryset
        if after is not None:
            page = page.filter(
                Q(**{f"{time_field}__gt": after[0]})
                | Q(**{time_field: after[0], "id__gt": after[1]})
            )
        rows = list(page[:chunk_size])
        if not rows:
            return
        after = (rows[-1][time_field], rows[-1]["id"])
        yield [
            {
                "id": str(row["id"]),
                "context": row["payload" if events else "context_snapshot"],
                "at": row[time_field],
                "execution_id": str(row["execution_id"]) if row.get("execution_id") else None,
            }
            for row in rows
        ]


def labels_for_executions(*, ids: Iterable[str]) -> dict[str, str]:
    """Labels of these executions by execution id: their own, else their event's (1-2 queries)."""
    ids = list(ids)
    found: dict[str, str] = {}
    if not ids:
        return found
    for execution_id, label in Label.objects.filter(event__execution_id__in=ids).values_list(
        "event__execution_id", "label"
    ):
        found[str(execution_id)] = label
    # An execution's own label wins over its event's.
    for execution_id, label in Label.objects.filter(execution_id__in=ids).values_list(
        "execution_id", "label"
    ):
        found[str(execution_id)] = label
    return found


def labels_for_events(*, ids: Iterable[str], executions: dict[str, str]) -> dict[str, str]:
    """Labels of these events by event id: their own, else their execution's.

    `executions` maps event id to the id of the execution that decided it.
    """
    ids = list(ids)
    found: dict[str, str] = {}
    by_execution = {execution_id: event_id for event_id, execution_id in executions.items()}
    if by_execution:
        for execution_id, label in Label.objects.filter(
            execution_id__in=list(by_execution)
        ).values_list("execution_id", "label"):
            found[by_execution[str(execution_id)]] = label
    if ids:
        for event_id, label in Label.objects.filter(event_id__in=ids).values_list(
            "event_id", "label"
        ):
            found[str(event_id)] = label
    return found


def backfill_events(
    *, window_from: datetime, window_to: datetime, event_type: str | None = None
) -> QuerySet[Event]:
    """Events received in [window_from, window_to) that a backfill re-decides, oldest first."""
    events = Event.objects.filter(
        received_at__gte=window_from,
        received_at__lt=window_to,
        status__in=[str(s) for s in BACKFILL_STATUSES],
    )
    if event_type:
        events = events.filter(type=event_type)
    return events.select_related("execution").order_by("received_at", "id")


def backfilled_event_ids(*, run: BackfillRun, event_ids: Iterable[str]) -> set[str]:
    """Which of these events the backfill run already re-decided."""
    done = BackfilledEvent.objects.filter(run=run, event_id__in=list(event_ids))
    return {str(event_id) for event_id in done.values_list("event_id", flat=True)}


def entry_point_by_key(*, key: str) -> EntryPoint | None:
    """The entry point with this key, or None."""
    return EntryPoint.objects.filter(key=key).first()
