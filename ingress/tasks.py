"""Celery tasks of ingress: thin wrappers that take ids and call the services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ingress import services


@shared_task(acks_late=True, ignore_result=True)
def process_events() -> list[str]:
    """Decide on every received event, in batches; returns the ids it decided.

    Idempotent: it only takes events still received, so a duplicate message finds nothing.
    """
    return services.events_process_pending()


@shared_task(acks_late=True, ignore_result=True)
def process_event(event_id: str) -> None:
    """Decide on one event (idempotent: a duplicate or cancelled event is a no-op).

    Kept for messages published before batching; new events go through `process_events`.
    """
    services.event_process(event_id=event_id)


@shared_task(ignore_result=True)
def recover_events() -> int:
    """Republish events whose processing was lost (periodic, every few seconds)."""
    return services.event_recover()


@shared_task(ignore_result=True)
def raise_periodic_event(schedule: str, type: str, payload: dict[str, Any] | None = None) -> str:
    """Raise one event for a periodic schedule; configure it in the admin (Periodic tasks) with
    this task and kwargs `{"schedule": "<name>", "type": "<entry point>", "payload": {...}}`."""
    event, _ = services.event_raise_periodic(schedule=schedule, type=type, payload=payload)
    return str(event.pk)
