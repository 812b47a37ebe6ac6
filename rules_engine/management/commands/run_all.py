"""`manage.py run_all`: the web server, a Celery worker and beat (and the stream consumer when
Redis is configured) as one command, for `make run` and `make serve`. Ctrl-C stops them all; a
process that dies once running is started again, one that cannot start stops them all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    """Start web + worker + beat (+ ingress_consume with Redis), send the demo events once."""

    help = "Run web, worker and beat together (embedded defaults need nothing else)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-demo-events", action="store_true")
        parser.add_argument(
            "--production",
            action="store_true",
            help="granian WSGI server (static files served by it) instead of runserver",
        )
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--web-threads", type=int, default=4)
        parser.add_argument("--worker-concurrency", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        # The embedded database allows one writer at a time, so the worker runs one task at a
        # time there; with PostgreSQL it uses the default prefork pool.
        embedded = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        pool = ["--pool=solo"] if embedded else [f"--concurrency={options['worker_concurrency']}"]
        commands = {
            "web": self._web(python, options),
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=WARNING",
                *pool,
            ],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "--loglevel=WARNING"],
        }
        if settings.REDIS_URL:
            commands["consumer"] = [python, "manage.py", "ingress_consume"]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir())}
        children = {name: _Child(name, args, env) for name, args in commands.items()}
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"running {', '.join(children)}; Ctrl-C stops everything")
        if not options["no_demo_events"]:
            threading.Thread(target=self._demo_events, args=(stopping,), daemon=True).start()
        try:
            while not stopping.is_set():
                for child in children.values():
                    message = child.supervise()
                    if message is None:
                        continue
                    self.stderr.write(message)
                    if child.failed_to_start:
                        stopping.set()
                time.sleep(0.5)
        finally:
            for child in children.values():
                child.terminate()
            for child in children.values():
                child.wait(timeout=15)
        failed = [child.name for child in children.values() if child.failed_to_start]
        if failed:
            raise CommandError(f"{', '.join(failed)} could not start (see above)")

    @staticmethod
    def _metrics_dir() -> Path:
        # Every child writes its counters here and /metrics adds them up, so the workers'
        # work (events, delayed actions, deliveries) shows next to the web processes'. Files
        # of an earlier run would be added too, so the folder starts empty.
        configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        folder = Path(configured) if configured else Path(settings.BASE_DIR) / "var" / "prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _web(python: str, options: dict[str, Any]) -> list[str]:
        if not options["production"]:
            return [python, "manage.py", "runserver", options["addr"], "--noreload"]
        host, _, port = options["addr"].rpartition(":")
        # Threads per worker overlap database and Redis waits; workers use the cores.
        return [
            python,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "config.wsgi:application",
            "--host",
            host,
            "--port",
            port,
            "--workers",
            str(options["web_workers"]),
            "--blocking-threads",
            str(options["web_threads"]),
            "--static-path-route",
            "/static",
            "--static-path-mount",
            str(settings.STATIC_ROOT),
            "--no-ws",
        ]

    def _demo_events(self, stopping: threading.Event) -> None:
        # Give the worker and beat a moment to connect before the demo events go out.
        if stopping.wait(8):
            return
        call_command("demo_events", stdout=self.stdout, stderr=self.stderr)


class _Child:
    """One supervised process: restarted when it exits, unless it never got going.

    A process that exits within STARTUP_SECONDS of its first start is misconfigured (a
    port in use, a bad setting): run_all stops with its message rather than loop. Later
    exits (a worker killed, a crash on a broker outage) are restarted after a pause that
    doubles from 1 s up to 30 s and starts over once the process has run for a minute, so
    nothing stays down and nothing spins.
    """

    STARTUP_SECONDS = 10.0
    STEADY_SECONDS = 60.0
    MAX_PAUSE = 30.0

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.restarts = 0
        self.failed_to_start = False
        self._restart_at: float | None = None
        self._start()
        self._first_started = self._started

    def _start(self) -> None:
        self.process = subprocess.Popen(self.args, env=self.env)  # noqa: S603  (our own commands)
        self._started = time.monotonic()

    def supervise(self) -> str | None:
        """Restart the process if it exited and its pause is over; a line to log, or None."""
        now = time.monotonic()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self._restart_at = None
                self.restarts += 1
                self._start()
                return f"{self.name} restarted"
            return None
        code = self.process.poll()
        if code is None:
            return None
        if self._started == self._first_started and now - self._started < self.STARTUP_SECONDS:
            self.failed_to_start = True
            return f"{self.name} exited with {code} while starting; stopping"
        if now - self._started >= self.STEADY_SECONDS:
            self.restarts = 0
        pause = min(self.MAX_PAUSE, 2.0**self.restarts)
        self._restart_at = now + pause
        return f"{self.name} exited with {code}; restarting in {pause:g} s"

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM) if it is running; no restart follows."""
        self._restart_at = None
        if self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> None:
        """Wait for the process to exit; SIGKILL it after `timeout` seconds."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
