"""Helpers of the scheduling tests: delayed rows written directly, and a plugin-loaded worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

import tests.support.plugins  # noqa: F401  (registers test_sleep_ms for rules saved here)
from ingress.models import Event
from rules_engine.models import SubjectState
from scheduling.models import ScheduledAction
from tests.support import processes
from tests.support.processes import ManagedProcess

RULE_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def count_spec(sleep_ms: int = 0) -> dict[str, Any]:
    """An `update` adding 1 to `$state.count` of the row's subject (after sleeping, if asked)."""
    one: Any = 1 if not sleep_ms else {"test_sleep_ms": [1, sleep_ms]}
    return {
        "type": "update",
        "params": {
            "target": "subject_state",
            "set": {"count": {"+": [{"var": ["$state.count", 0]}, one]}},
        },
    }


def make_row(
    *,
    due_at: datetime,
    subject: str = "u1",
    status: str = "pending",
    spec: dict[str, Any] | None = None,
    event: Event | None = None,
    **fields: Any,
) -> ScheduledAction:
    """A ScheduledAction as the engine stores it (rule fields filled with fixed values)."""
    return ScheduledAction.objects.create(
        event=event,
        entry_point_key="checkout",
        rule_id=RULE_ID,
        rule_name="count later",
        rule_version=1,
        action_index=0,
        spec=spec or count_spec(),
        data={},
        subject=subject,
        due_at=due_at,
        status=status,
        **fields,
    )


def make_event(key: str = "e1", status: str = "waiting") -> Event:
    """An event waiting for its delayed actions."""
    return Event.objects.create(type="checkout", key=key, status=status, payload={})


def count_of(subject: str) -> int | None:
    """The subject's `$state.count`, or None when no action wrote it."""
    row = SubjectState.objects.filter(subject=subject).first()
    return None if row is None else row.attributes.get("count")


@pytest.fixture(scope="module")
def plugin_worker(celery_worker: Any) -> Iterator[ManagedProcess]:
    """A worker that loads tests.support.plugins, the only worker on the queue meanwhile.

    The session worker lacks the plugin, so it is stopped for these tests (the `worker`
    fixture starts it again for whoever needs it next).
    """
    celery_worker.stop()
    worker = celery_worker_with_plugins().start()
    yield worker
    worker.stop()


def celery_worker_with_plugins(**env: str) -> ManagedProcess:
    """A prefork worker (2 processes) with the test plugin module."""
    return processes.celery_worker(concurrency=2, VERDICT_PLUGINS="tests.support.plugins", **env)


@pytest.fixture
def live_worker(plugin_worker: ManagedProcess) -> ManagedProcess:
    """The plugin worker, started again if an earlier test killed it."""
    if not plugin_worker.alive():
        plugin_worker.start()
    return plugin_worker


@pytest.fixture
def broker_routes() -> None:
    """Bind the default queue again after the per-test cache flush emptied the broker's Redis.

    The cache and the broker share the test Redis database, so `cache.clear()` also drops
    kombu's queue bindings, and every process's producer believes it declared them already:
    messages would be routed nowhere. Declaring on a new connection restores the binding.
    """
    from config.celery import app

    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            app.amqp.queues[app.conf.task_default_queue](channel).declare()
        finally:
            channel.close()
