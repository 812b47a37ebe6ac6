"""Celery tasks of lifecycle: thin wrappers that take ids and call the services."""

from __future__ import annotations

from celery import shared_task

from lifecycle import services


@shared_task(acks_late=True, ignore_result=True)
def run_backtest(backtest_id: int) -> str | None:
    """Run one backtest to the end (or until cancelled); returns its final status.

    Idempotent: a finished or cancelled backtest is a no-op; a redelivered message (the worker
    died) starts the backtest over as a new attempt. Writes the Backtest row (progress,
    results, status).
    """
    backtest = services.backtest_run(backtest_id=backtest_id)
    return None if backtest is None else backtest.status
