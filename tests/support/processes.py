"""Real processes for tests: a Celery worker (and other commands) against the test database.

Tests that need one use the `celery_worker` fixture (tests/conftest.py) and must commit their
data (`@pytest.mark.django_db(transaction=True)`), since the worker is another process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database the tests use (the test database once it is set up)."""
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: the test database, Redis and broker, plus `extra`."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy and return it. Raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ManagedProcess:
    """A child process in its own process group, logging to a file, restartable."""

    def __init__(
        self, name: str, args: list[str], ready_text: str | None, env: dict[str, str]
    ) -> None:
        self.name = name
        self.args = args
        self.ready_text = ready_text
        self.env = env
        self.log_path = Path(f"/tmp/verdict-test-{name}-{uuid.uuid4().hex[:8]}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ManagedProcess:
        """Start and wait until its log shows `ready_text`. Raises AssertionError otherwise."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready = self.ready_text
        if ready:
            try:
                wait_for(lambda: ready in self._log_since(offset), timeout)
            except AssertionError as exc:
                raise AssertionError(f"{self.name} did not start:\n{self.log_tail()}") from exc
        return self

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (worker and its pool children), at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group and wait; SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> ManagedProcess:
        """Stop (if running) and start again."""
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the process log (for failure messages)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def celery_worker(concurrency: int = 2, **env: str) -> ManagedProcess:
    """A real Celery worker (prefork) for this project against the test database."""
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"test-{uuid.uuid4().hex[:8]}@%h",
    ]
    return ManagedProcess("worker", args, "ready.", process_env(**env))


def manage(name: str, *command: str, ready_text: str | None = None, **env: str) -> ManagedProcess:
    """A long-running `manage.py` command (consumer, sweeper) against the test database."""
    args = [sys.executable, "manage.py", *command]
    return ManagedProcess(name, args, ready_text, process_env(**env))


def private_redis(folder: Path) -> tuple[ManagedProcess, str]:
    """A throwaway redis-server on a free port, keeping nothing on disk (not started yet),
    and its URL: stopping it cannot disturb the suite's Redis."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = ManagedProcess(
        "redis",
        [*args, "--appendonly", "no", "--dir", str(folder)],
        "Ready to accept connections",
        dict(process_env()),
    )
    return server, f"redis://127.0.0.1:{port}/0"
