"""The Celery application's process hooks (config/celery.py)."""

from __future__ import annotations

import os

from celery.signals import worker_process_shutdown
from prometheus_client import Counter

import config.celery  # noqa: F401  (connects the hooks)
from rules_engine import tally


def test_a_pool_process_adds_its_counts_to_the_metrics_before_it_ends() -> None:
    # given counts made in a worker's pool process and not yet added to the metric
    child = Counter("test_celery_shutdown_counts", "A test counter.", ["kind"]).labels("ok")
    tally.inc(child, 2)
    # when the pool process is about to end (it then exits without exit handlers)
    worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    # then its counts are in the metric's own value
    assert child._value.get() == 2
