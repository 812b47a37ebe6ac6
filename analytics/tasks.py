"""Celery tasks of analytics (thin wrappers over `analytics.services`)."""

from __future__ import annotations

from celery import shared_task

from analytics import services


@shared_task(acks_late=True, ignore_result=True)
def rollup_executions() -> int:
    """Add the audit rows behind the lag to the hourly rollups (beat, every 30 s).

    Idempotent: the watermark moves with the counts in one transaction, so a repeated or
    concurrent run never counts a row twice. Writes through `rollups_run`; returns how many
    decisions it counted.
    """
    return services.rollups_run().executions
