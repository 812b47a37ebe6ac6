"""Celery tasks of scheduling (thin wrappers over `scheduling.services`)."""

from __future__ import annotations

import time

from celery import shared_task

from scheduling import services

# How far ahead of its ETA a message may arrive and still be held back in the task (seconds);
# the worker's timer fires at the ETA, this only absorbs its rounding.
EARLY_WAIT_LIMIT = 1.0


@shared_task(acks_late=True, ignore_result=True)
def run_scheduled_actions(ids: list[str], not_before: float | None = None) -> int:
    """Run one published slice of delayed actions; returns how many rows it claimed.

    Idempotent: rows that are cancelled, already claimed by another delivery or finished are
    skipped by the claim. `not_before` is the slice's last due time (epoch seconds): an early
    timer is waited out so that no action starts before it is due. Writes through
    `scheduled_actions_run`.
    """
    if not_before is not None:
        early = not_before - time.time()
        if 0 < early <= EARLY_WAIT_LIMIT:
            time.sleep(early)
    return len(services.scheduled_actions_run(ids=ids))


@shared_task(ignore_result=True)
def sweep_scheduled_actions() -> int:
    """Publish the pending actions due within the horizon (beat, every second)."""
    return services.scheduled_actions_sweep()


@shared_task(ignore_result=True)
def recover_scheduled_actions() -> int:
    """Make actions whose message or worker was lost pending again (beat, every 5 s)."""
    return services.scheduled_actions_recover()
