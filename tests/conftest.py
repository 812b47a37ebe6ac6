"""Shared fixtures: a clean ruleset cache per test and the checkout demo built by services."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.core.management import call_command

from access.selectors import api_key_cache_clear
from rules_engine import cooldowns
from rules_engine.cache import GENERATION_KEY, rulesets
from rules_engine.management.commands.rules_load_demo import DEMO_FILE
from rules_engine.models import EntryPoint


@pytest.fixture(autouse=True)
def _fresh_ruleset_cache() -> Any:
    """Each test starts with no compiled rulesets or keys, no generation stamp, no cooldowns
    and no rate-limit counters.

    Only our own keys are deleted: flushing the Redis database would also drop the Celery
    messages and streams that worker tests rely on.
    """
    rulesets.clear()
    api_key_cache_clear()
    cache.delete(GENERATION_KEY)
    _clear_redis_cooldowns()
    yield
    rulesets.clear()
    api_key_cache_clear()


def _clear_redis_cooldowns() -> None:
    from django.conf import settings

    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for pattern in (f"{cooldowns.KEY_PREFIX}*", "*verdict:throttle:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)


@pytest.fixture
def demo(db: Any) -> EntryPoint:
    """The checkout demo (entry point, templates, five rules), loaded by its command."""
    call_command("rules_load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return EntryPoint.objects.get(key="checkout")


@pytest.fixture
def banner(db: Any) -> EntryPoint:
    """A non-critical entry point whose only rule shows a message: decisions that write
    nothing but their audit row."""
    from rules_engine import services

    entry_point = services.entry_point_create(
        data={"key": "banner", "context_schema": {"type": "object"}}
    )
    services.template_create(data={"key": "hi", "format": "text", "body": "Hi {{ name }}"})
    services.rule_create(
        data={
            "name": "Greet",
            "entry_point": entry_point,
            "condition": {"!!": [{"var": "name"}]},
            "actions": [{"type": "display_message", "params": {"template": "hi"}}],
        }
    )
    return entry_point


@pytest.fixture
def demo_context() -> dict[str, Any]:
    """The checkout schema's example context (a fresh copy per test)."""
    data = json.loads(DEMO_FILE.read_text())
    return copy.deepcopy(data["entry_point"]["context_schema"]["examples"][0])


@pytest.fixture(scope="session", autouse=True)
def _close_audit_writer(django_db_setup: Any) -> Any:
    """Close the audit writer thread's connection before pytest drops the test database."""
    yield
    from rules_engine import audit

    audit.writer.close_connection()


@pytest.fixture(scope="session")
def _clean_broker(django_db_setup: Any) -> None:
    """Start the session with an empty test Redis database (no messages from earlier runs)."""
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

    # The test plugins (a sleeping JSONLogic function) let tests kill a worker mid-action.
    worker = make_worker(VERDICT_PLUGINS="tests.support.plugins").start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker: Any) -> Any:
    """The session's worker, started again if an earlier test killed it."""
    if not celery_worker.alive():
        celery_worker.start()
    return celery_worker


@pytest.fixture
def api_client(db: Any) -> Any:
    """A DRF test client that sends an API key holding every scope (execute, events, read,
    manage) on every request: what an application's backend uses."""
    from tests.support.keys import application_client

    return application_client()
