"""`manage.py run_all` (make run, make serve) keeps its processes up: a worker that dies is
started again and the events keep being processed; a process that cannot start stops it all.

Runs the real command against the test database and a private Redis (its broker is no other
worker's), so only run_all's own worker can process the events.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from ingress.models import Event
from rules_engine.management.commands.run_all import _Child
from tests.support.keys import key_header, new_key
from tests.support.processes import ManagedProcess, free_port, private_redis, process_env, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def run_all(port: int, redis_url: str) -> ManagedProcess:
    return ManagedProcess(
        "run-all",
        [sys.executable, "manage.py", "run_all", "--no-demo-events", "--addr", f"127.0.0.1:{port}"],
        "Ctrl-C stops everything",
        process_env(REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url),
    )


def worker_pid(parent: int) -> int | None:
    """The Celery worker run_all started (its direct child), if one is running."""
    found = subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "celery -A config worker"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return int(found[0]) if found else None


def serving(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def completed(port: int, headers: dict[str, str], key: str, payload: dict[str, Any]) -> bool:
    body = {"type": "checkout", "key": key, "payload": payload}
    response = httpx.post(
        f"http://127.0.0.1:{port}/new-event",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )
    assert response.status_code == 202
    event_id = response.json()["id"]
    return bool(wait_for(lambda: Event.objects.get(pk=event_id).status == "completed", 60))


@pytest.fixture
def stack(tmp_path: Any) -> Any:
    redis_server, redis_url = private_redis(tmp_path)
    redis_server.start()
    port = free_port()
    command = run_all(port, redis_url)
    try:
        yield command, port
    finally:
        command.stop(timeout=30)
        redis_server.stop()


def test_a_worker_that_dies_is_started_again(stack, demo, demo_context):
    command, port = stack
    headers = key_header(new_key(scopes=("events",)))
    # given run_all processing events, past its processes' start-up
    command.start()
    started = time.monotonic()
    wait_for(lambda: serving(port), 30)
    assert completed(port, headers, "before", demo_context)
    assert command.proc is not None
    first = wait_for(lambda: worker_pid(command.proc.pid), 30)
    time.sleep(max(0.0, started + _Child.STARTUP_SECONDS + 1 - time.monotonic()))
    # when its worker is killed
    os.kill(first, signal.SIGKILL)
    # then run_all says so, starts another one, and events are processed again
    wait_for(lambda: "worker restarted" in command.log_tail(), 30)
    log = command.log_path.read_text(errors="replace")
    assert "worker exited with -9; restarting in 1 s" in log, log
    assert wait_for(lambda: worker_pid(command.proc.pid), 30) != first
    assert completed(port, headers, "after", demo_context)
    assert command.alive()


def test_a_process_that_cannot_start_stops_everything(stack, db):
    command, port = stack
    # given the web server's port already taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        # when run_all starts
        command.start()
        # then it stops with the web server's reason instead of starting it over and over
        assert command.proc is not None
        code = command.proc.wait(timeout=60)
    log = command.log_path.read_text(errors="replace")
    assert code == 1, log
    assert "web exited with 1 while starting; stopping" in log, log
    assert "web could not start" in log, log
    assert "restarting in" not in log, log
