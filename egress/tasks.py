"""Celery tasks of egress (thin wrappers over `egress.services`)."""

from __future__ import annotations

from celery import shared_task

from egress import services


@shared_task(acks_late=True, ignore_result=True)
def deliver(delivery_id: str) -> None:
    """Make one attempt at a delivery (idempotent: a sent, held or not-yet-due one is a no-op)."""
    services.delivery_attempt(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def retry_due_deliveries() -> int:
    """Publish again the deliveries whose attempt is overdue (periodic, every few seconds)."""
    return services.delivery_retry_due()
