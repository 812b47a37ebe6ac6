"""Nothing accepted is lost: Redis (broker and cache) stops and restarts while events arrive.

Uses a private redis-server on its own port, so stopping it cannot disturb anything else, and
real processes: an HTTP server, a Celery worker and beat, all on the test database.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import httpx
import pytest

from ingress.models import Event
from rules_engine.models import Execution
from tests.support.keys import key_header, new_key
from tests.support.processes import (
    ManagedProcess,
    free_port,
    private_redis,
    process_env,
    wait_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


# The application's key of the current test (events scope).
HEADERS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _application_key(db: Any) -> None:
    HEADERS.clear()
    HEADERS.update(key_header(new_key(scopes=("events",))))


def post_event(port: int, key: str, payload: dict[str, Any]) -> httpx.Response:
    body = {"type": "checkout", "key": key, "payload": payload}
    return httpx.post(
        f"http://127.0.0.1:{port}/new-event",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **HEADERS},
        timeout=30,
    )


@pytest.fixture
def private_stack(tmp_path: Any) -> Any:
    redis_server, redis_url = private_redis(tmp_path)
    web_port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "VERDICT_EVENT_REPUBLISH_AFTER": "1",
        "VERDICT_EVENT_LEASE_SECONDS": "3",
    }
    worker = ManagedProcess(
        "worker-private",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
            "-n",
            f"private-{web_port}@%h",
        ],
        "ready.",
        process_env(**env),
    )
    beat = ManagedProcess(
        "beat-private",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel=INFO",
            "--scheduler",
            "celery.beat:PersistentScheduler",
            "-s",
            str(tmp_path / "beat"),
        ],
        "beat: Starting",
        process_env(**env),
    )
    web = ManagedProcess(
        "web-private",
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"],
        "Quit the server with",
        process_env(**env),
    )
    started = [redis_server.start(), worker.start(), beat.start(), web.start()]
    yield redis_server, web_port
    for process in reversed(started):
        process.stop()


def test_events_accepted_while_redis_is_down_are_all_processed(private_stack, demo, demo_context):
    redis_server, web_port = private_stack
    # given events flowing normally
    for index in range(3):
        assert post_event(web_port, f"before-{index}", demo_context).status_code == 202
    wait_for(lambda: Event.objects.filter(status="completed").count() == 3, timeout=30)
    # when Redis (broker and cache) stops while events keep arriving over REST
    redis_server.kill()
    during = [post_event(web_port, f"during-{index}", demo_context) for index in range(5)]
    assert [r.status_code for r in during] == [202] * 5
    # and Redis comes back (empty: it keeps nothing on disk)
    redis_server.start()
    # then every accepted event is processed exactly once
    wait_for(lambda: Event.objects.filter(status="completed").count() == 8, timeout=60)
    assert Event.objects.exclude(status="completed").count() == 0
    assert Execution.objects.count() == 8
