"""Shared fixtures: a clean ruleset cache per test and the checkout demo built by services."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command

from rules_engine.cache import rulesets
from rules_engine.management.commands.rules_load_demo import DEMO_FILE
from rules_engine.models import EntryPoint


@pytest.fixture(autouse=True)
def _fresh_ruleset_cache() -> Any:
    """Each test starts with no compiled rulesets and no generation stamp."""
    rulesets.clear()
    cache.clear()
    yield
    rulesets.clear()


@pytest.fixture
def demo(db: Any) -> EntryPoint:
    """The checkout demo (entry point, templates, five rules), loaded by its command."""
    call_command("rules_load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return EntryPoint.objects.get(key="checkout")


@pytest.fixture
def demo_context() -> dict[str, Any]:
    """The checkout schema's example context (a fresh copy per test)."""
    data = json.loads(DEMO_FILE.read_text())
    return copy.deepcopy(data["entry_point"]["context_schema"]["examples"][0])


@pytest.fixture(scope="session")
def _clean_broker(django_db_setup: Any) -> None:
    """Start the session with an empty test Redis database (no messages from earlier runs)."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: Any, _clean_broker: None) -> Any:
    """A real Celery worker process on the test database, shared by the session.

    Tests may kill or restart it (`celery_worker.kill()`, `.restart()`); the next test that
    asks for it gets a running one again. Tests using it need committed data:
    `@pytest.mark.django_db(transaction=True)`.
    """
    from tests.support.processes import celery_worker as make_worker

    worker = make_worker().start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker: Any) -> Any:
    """The session's worker, started again if an earlier test killed it."""
    if not celery_worker.alive():
        celery_worker.start()
    return celery_worker
