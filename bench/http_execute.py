"""HTTP throughput and latency of `POST /api/rules/engine/execute/` against a naive baseline.

One run starts PostgreSQL-backed production servers itself (DEBUG off, persistent database
connections, Redis cache), loads a 100-rule workload on one entry point through the services,
and drives load from this machine:

  verdict    Verdict's execute endpoint: orjson in/out, JSON Schema validation of the context,
             100 compiled JSONLogic rules (10-20 nodes each, gated by the event type the way
             real entry points are), a few matches with `display_message` effects whose
             templates (text, HTML, JSON) are rendered, and the audit row group-committed.
  baseline   `bench/baseline/`: a plain DRF APIView with the stock JSON parser and renderer,
             the same 100 rules interpreted by json-logic-qubit on every request, and one ORM
             insert (an Execution row) per request. Same settings, same server configuration.
  write      (Verdict only) the same rules plus one that always matches and writes the
             subject's state (`update`), so every decision writes in its own transaction.

Per target and round: wrk (closed loop) at 8, 32 and 64 connections, then an open-loop
generator paced at 1,000 and 2,000 requests/s whose latency is measured from each request's
intended send time (no coordinated omission). After every phase the audit is checked: the
paced phases compare every answered request's `execution_id` with the database, the wrk
phases compare the number of new audit rows with the number of 2xx answers.

    python bench/http_execute.py [--quick] [--rounds N] [--duration S] [--config granian:2x16]
                                 [--baseline-config granian:2x4]
    python bench/http_execute.py --sweep [--configs granian:2x4,gunicorn-gthread:2x4,...]
    python bench/http_execute.py --profile          # CPU per request and by step, one process

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/verdict_bench_http) and
REDIS_URL (default redis://127.0.0.1:6379/11); `make bench-http` sets both. Prints a table and
writes bench/results/http_execute.json (medians over the rounds, and every round).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
WORKLOAD = ROOT.parent / "shared" / "bench" / "jsonlogic-workload.json"
PYTHON = sys.executable
# Each bench has a database and Redis database of its own (see the Makefile), so benches can
# run side by side without sharing rule-cache generations or Celery queues.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/verdict_bench_http"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"

EXECUTE_PATH = "/api/rules/engine/execute/"
BASELINE_PATH = "/bench/baseline/execute/"
ENTRY_POINT = "bench.http"
WRITE_ENTRY_POINT = "bench.http-write"
EVENT_TYPES = ("view", "purchase", "refund", "login", "add_to_cart")
CHANNELS = ("pos", "ios", "web", "android")
# Verdict's server: `make serve`'s shape (WEB_WORKERS x WEB_THREADS). The baseline runs on the
# shape the issue measured it with, which is also its best here (more threads only add GIL
# contention to a CPU-bound endpoint; see --sweep).
DEFAULT_CONFIG = "granian:2x16"
BASELINE_CONFIG = "granian:2x4"
SWEEP_CONFIGS = (
    "granian:1x8,granian:2x2,granian:2x4,granian:2x8,granian:3x4,granian:4x2,"
    "gunicorn-sync:4,gunicorn-gthread:2x4"
)
TARGET_RPS = 2000
TARGET_P99_MS = 25.0
TARGET_RATIO = 1.5


# --- environment -----------------------------------------------------------------------------


_metrics_dir: str | None = None


def metrics_dir() -> str:
    """The Prometheus multiprocess folder of this bench run: empty at first, removed at exit."""
    global _metrics_dir
    if _metrics_dir is None:
        _metrics_dir = tempfile.mkdtemp(prefix="verdict-bench-metrics-")
        atexit.register(shutil.rmtree, _metrics_dir, ignore_errors=True)
    return _metrics_dir


def bench_env(
    *, settings_module: str = "config.settings", application_name: str = "", **extra: str
) -> dict[str, str]:
    """The environment of every process the benches start: production settings on the bench
    database and Redis (DEBUG off, persistent connections, Prometheus in multiprocess mode as
    `manage.py run_all` runs every process). `application_name` tags their PostgreSQL
    connections, so the bench can add up the CPU of their backends."""
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if application_name and database_url.startswith("postgres"):
        separator = "&" if "?" in database_url else "?"
        database_url = f"{database_url}{separator}application_name={application_name}"
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL") or redis_url,
        DJANGO_DEBUG="false",
        DJANGO_SETTINGS_MODULE=settings_module,
        DATABASE_CONN_MAX_AGE=os.environ.get("DATABASE_CONN_MAX_AGE", "600"),
        # As `make serve`: the generation stamp read at most every 100 ms per process.
        VERDICT_CACHE_CHECK_INTERVAL=os.environ.get("VERDICT_CACHE_CHECK_INTERVAL", "0.1"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
        # As `make serve` (run_all): every process writes its metrics to files that /metrics
        # adds up, which costs each count more than a counter in memory.
        PROMETHEUS_MULTIPROC_DIR=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or metrics_dir(),
    )
    env.update(extra)
    return env


def setup_django(env: dict[str, str] | None = None) -> None:
    """Make sure the services and the database exist, then set Django up on them and migrate."""
    env = env or bench_env()
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "DJANGO_DEBUG",
        "VERDICT_CACHE_CHECK_INTERVAL",
    ):
        os.environ[name] = env[name]
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if env["DATABASE_URL"].startswith("postgres"):
        subprocess.run(
            [str(ROOT / "scripts" / "ensure_services.sh"), env["DATABASE_URL"], env["REDIS_URL"]],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


# Every scope a bench calls: execute (decisions), events (POST /new-event), read (GET /status).
BENCH_KEY_SCOPES = ("execute", "events", "read")


def bench_api_key_headers(name: str) -> dict[str, str]:
    """A new secret API key for the servers a bench starts, as request headers.

    Call it after the database is set up (migrated) and before starting the servers: creating
    a key moves the cache generation stamp, which must not happen during a measurement. The
    key may use every entry point and has no rate of its own (the servers' default applies:
    none unless VERDICT_API_KEY_RATE is set). Earlier active keys named `name` are revoked
    first, so runs do not pile keys up; each bench uses a name of its own, so benches on one
    database do not revoke each other's. Writes ApiKey rows; raises nothing of its own.
    """
    from access import services
    from access.keys import KEY_HEADER_PREFIX
    from access.models import ApiKey

    for key in ApiKey.objects.filter(name=name, revoked_at__isnull=True):
        services.api_key_revoke(key=key)
    _, raw = services.api_key_create(name=name, scopes=BENCH_KEY_SCOPES)
    return {"Authorization": KEY_HEADER_PREFIX + raw}


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str]:
    # Fields after the command name: state ppid pgrp session tty tpgid flags minflt cminflt
    # majflt cmajflt utime stime ...
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def process_group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(entry.name)
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def postgres_cpu(application_name: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends of connections tagged with this
    application name (PostgreSQL on this machine only)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        pids = [row[0] for row in cursor.fetchall()]
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_info() -> dict[str, Any]:
    """CPU, memory and versions of everything on the measured path."""
    from importlib.metadata import version

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions: dict[str, str] = {"python": platform.python_version()}
    for package in ("django", "djangorestframework", "granian", "gunicorn", "psycopg", "orjson"):
        with contextlib.suppress(Exception):
            versions[package] = version(package)
    with contextlib.suppress(Exception):
        versions["json-logic-qubit"] = version("json-logic-qubit")
    with contextlib.suppress(Exception):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            versions["postgresql"] = str(cursor.fetchone()[0])
    with contextlib.suppress(Exception):
        import redis
        from django.conf import settings

        versions["redis"] = str(redis.Redis.from_url(settings.REDIS_URL).info()["redis_version"])
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        versions["wrk"] = out.split()[1] if out.split() else "?"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "versions": versions,
    }


def code_state() -> dict[str, Any]:
    """The commit measured and the product files that differ from it (work in progress)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line[3:].split("/")[0] in {"config", "rules_engine", "ingress", "scheduling", "egress"}
    ]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_product_files": changed}


def ensure_wrk() -> str:
    """The wrk binary, installed from the distribution's packages when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing; installing it with apt-get (Debian package 'wrk') ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        sys.exit("error: wrk is not installed and could not be installed (apt-get install wrk)")
    return found


# --- the workload ------------------------------------------------------------------------------


def _nodes(expr: Any) -> int:
    if isinstance(expr, dict):
        return sum(1 + _nodes(v) for v in expr.values())
    if isinstance(expr, list):
        return sum(_nodes(v) for v in expr)
    return 1


CONTEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user", "cart", "event"],
    "properties": {
        "user": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer", "minimum": 0},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "tier": {"type": "string", "maxLength": 20},
                "tags": {"type": "array", "maxItems": 20, "items": {"type": "string"}},
                "score": {"type": "number"},
                "verified": {"type": "boolean"},
                "banned": {"type": "boolean"},
                "email": {"type": "string", "maxLength": 200},
                "tenure_years": {"type": "number", "minimum": 0},
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                },
            },
        },
        "cart": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "total": {"type": "number", "minimum": 0},
                "discount": {"type": "number"},
                "items": {
                    "type": "array",
                    "maxItems": 100,
                    "items": {
                        "type": "object",
                        "required": ["sku", "price", "qty"],
                        "properties": {
                            "sku": {"type": "string"},
                            "price": {"type": "number", "minimum": 0},
                            "qty": {"type": "integer", "minimum": 1},
                            "category": {"type": "string"},
                        },
                    },
                },
            },
        },
        "event": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"enum": list(EVENT_TYPES)},
                "channel": {"enum": list(CHANNELS)},
                "hour": {"type": "integer", "minimum": 0, "maximum": 23},
            },
        },
    },
}

TEMPLATES: list[dict[str, str]] = [
    {
        "key": "bench-discount",
        "format": "text",
        "body": "Hi {{ user.tier|default:'friend' }} member, {{ cart.items|length }} items "
        "qualify for a discount today.",
    },
    {
        "key": "bench-shipping",
        "format": "html",
        "body": "<p>Orders from <strong>{{ user.country }}</strong> ship free on "
        "{{ event.channel }}; you have {{ cart.items|length }} items.</p>",
    },
    {
        "key": "bench-loyalty",
        "format": "json",
        "body": '{"title": "Loyalty", "score": "{{ user.score }}", '
        '"years": "{{ user.tenure_years|default:0 }}", "tier": "{{ user.tier }}"}',
    },
    {
        "key": "bench-review",
        "format": "text",
        "body": "Review needed for the {{ event.type }} on {{ event.channel }}.",
    },
]


def workload() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The 100 rule specs (without entry point) and the request contexts.

    Conditions are the shared workload's rules of at most 15 nodes, each gated by one event
    type (`and` + `==`: 5 more nodes), so every condition has 10-20 nodes and a context matches
    about 9 of the 100 rules. Every fifth rule shows a message through a template (about 2
    effects per decision); the others only mark the decision (their match is audited).
    """
    data = json.loads(WORKLOAD.read_text())
    bodies = [rule for rule in data["rules"] if _nodes(rule) <= 15]
    rules = []
    for index in range(100):
        event_type = EVENT_TYPES[index % len(EVENT_TYPES)]
        gate = {"==": [{"var": "event.type"}, event_type]}
        condition = {"and": [gate, bodies[index % len(bodies)]]}
        actions: list[dict[str, Any]] = []
        if index % 5 == (index // 5) % 5:
            template = TEMPLATES[(index // 5) % len(TEMPLATES)]["key"]
            level = ("info", "success", "warning")[index % 3]
            actions = [
                {"type": "display_message", "params": {"template": template, "level": level}}
            ]
        rules.append(
            {
                "name": f"bench rule {index:03d}",
                "priority": 10 + index,
                "condition": condition,
                "actions": actions,
                "metadata": {"bench": "http_execute"},
            }
        )
    return rules, data["contexts"]


WRITE_RULE: dict[str, Any] = {
    "name": "bench rule write",
    "priority": 5,
    "condition": {">=": [{"var": "user.id"}, 0]},
    "actions": [
        {
            "type": "update",
            "params": {"target": "subject_state", "set": {"last_event": {"var": "event.type"}}},
        }
    ],
    "metadata": {"bench": "http_execute"},
}


def ensure_workload() -> dict[str, int]:
    """Create (or refresh) the bench entry points, templates and rules through the services.

    Idempotent: a fingerprint of the workload is kept in the entry point's description, so an
    unchanged workload costs two queries. Returns entry point key -> id.
    """
    from django.db import transaction

    from rules_engine import services
    from rules_engine.models import EntryPoint, MessageTemplate, Rule

    rules, _ = workload()
    for template in TEMPLATES:
        existing = MessageTemplate.objects.filter(key=template["key"]).first()
        if existing is None:
            services.template_create(data=template, change_note="bench")
        elif (existing.format, existing.body) != (template["format"], template["body"]):
            services.template_update(template=existing, data=template, change_note="bench")
    ids = {}
    for key, extra in ((ENTRY_POINT, []), (WRITE_ENTRY_POINT, [WRITE_RULE])):
        specs = [*extra, *rules]
        fingerprint = hashlib.sha1(
            json.dumps([CONTEXT_SCHEMA, specs, TEMPLATES], sort_keys=True).encode()
        ).hexdigest()
        description = f"bench/http_execute.py workload {fingerprint}"
        data = {
            "key": key,
            "description": description,
            "context_schema": CONTEXT_SCHEMA,
            "sensitive_paths": ["user.email"],
            "subject_path": "user.id",
            "critical": False,
            "active": True,
        }
        entry_point = EntryPoint.objects.filter(key=key).first()
        count = Rule.objects.filter(entry_point=entry_point, active=True).count()
        if entry_point and entry_point.description == description and count == len(specs):
            ids[key] = entry_point.pk
            continue
        with transaction.atomic():
            if entry_point is None:
                entry_point = services.entry_point_create(data=data, change_note="bench")
            else:
                services.entry_point_update(entry_point=entry_point, data=data)
            for rule in Rule.objects.filter(entry_point=entry_point):
                services.rule_delete(rule=rule)
            for spec in specs:
                services.rule_create(
                    data={**spec, "entry_point": entry_point, "active": True}, change_note="bench"
                )
        ids[key] = entry_point.pk
    return ids


def request_bodies(entry_point: str, contexts: Sequence[dict[str, Any]]) -> list[bytes]:
    """One JSON request body per context."""
    return [
        json.dumps({"entry_point": entry_point, "context": c}, separators=(",", ":")).encode()
        for c in contexts
    ]


# --- servers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """A WSGI server and its process/thread counts, written `granian:2x4`, `gunicorn-sync:4`,
    `gunicorn-gthread:2x4`."""

    kind: str
    workers: int
    threads: int
    # Extra command-line options for the server, e.g. ("--runtime-mode", "st") for granian.
    extra: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        """Parse `kind:WxT` (or `kind:W` for one thread). Raises ValueError."""
        kind, _, shape = text.partition(":")
        workers, _, threads = shape.partition("x")
        if kind not in {"granian", "gunicorn-sync", "gunicorn-gthread"}:
            raise ValueError(f"unknown server kind {kind!r}")
        return cls(kind, int(workers or 2), int(threads or 1))

    @property
    def label(self) -> str:
        """The config as written on the command line."""
        shape = f"{self.workers}x{self.threads}"
        if self.kind == "gunicorn-sync":
            shape = str(self.workers)
        return " ".join((f"{self.kind}:{shape}", *self.extra))

    def command(self, port: int, app: str = "config.wsgi:application") -> list[str]:
        """The server's command line (by default the same WSGI app as `make serve`)."""
        if self.kind == "granian":
            # As `manage.py run_all --production` starts it.
            return [
                PYTHON,
                "-m",
                "granian",
                "--interface",
                "wsgi",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(self.workers),
                "--blocking-threads",
                str(self.threads),
                "--no-ws",
                *self.extra,
            ]
        worker_class = "sync" if self.kind == "gunicorn-sync" else "gthread"
        return [
            PYTHON,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(self.threads),
            "--backlog",
            "2048",
            *self.extra,
        ]


class Server:
    """One server process (and its workers) on a free port; a context manager."""

    def __init__(
        self,
        config: ServerConfig,
        env: dict[str, str],
        *,
        log_name: str,
        port: int | None = None,
        app: str = "config.wsgi:application",
        cwd: Path = ROOT,
    ) -> None:
        self.config = config
        self.app = app
        self.cwd = cwd
        self.application_name = ""
        url = env.get("DATABASE_URL", "")
        if "application_name=" in url:
            self.application_name = url.split("application_name=", 1)[1].split("&", 1)[0]
        self.env = env
        self.port = port or free_port()
        self.log_path = RESULTS / f"{log_name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.config.command(self.port, self.app),
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and its workers (its own process group only)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def wait_ready(
        self,
        path: str,
        body: bytes,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Wait until the server answers `path` with 200 (sending `headers` too, e.g. the API
        key). Raises RuntimeError."""
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{self.port}{path}",
                    content=body,
                    headers={"Content-Type": "application/json", **(headers or {})},
                    timeout=5,
                )
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s: {last}; see {self.log_path}")


# --- closed loop: wrk --------------------------------------------------------------------------

WRK_SCRIPT = """
local bodies = {
%s
}
local requests = {}
local index = 0
function init(args)
  local headers = {["Content-Type"] = "application/json"%s}
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", nil, headers, body)
  end
  index = math.random(#requests)
end
function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"status_errors":%%d,"connect_errors":%%d,' ..
    '"read_errors":%%d,"write_errors":%%d,"timeouts":%%d,"p50_us":%%d,"p95_us":%%d,' ..
    '"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def write_wrk_script(
    bodies: Sequence[bytes],
    directory: Path,
    name: str,
    headers: dict[str, str] | None = None,
) -> Path:
    """A wrk Lua script that cycles through the request bodies (pre-formatted once), each sent
    with `headers` (e.g. the API key) besides Content-Type."""
    quoted = ",\n".join(f"[==[{body.decode()}]==]" for body in bodies)
    extra = "".join(f", [ [==[{k}]==] ] = [==[{v}]==]" for k, v in (headers or {}).items())
    path = directory / f"{name}.lua"
    path.write_text(WRK_SCRIPT % (quoted, extra))
    return path


def run_wrk(
    port: int, path: str, script: Path, *, connections: int, duration: float
) -> dict[str, Any]:
    """One closed-loop wrk run; rps counts 2xx answers only."""
    threads = max(1, min(2, connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    seconds = raw["duration_us"] / 1e6
    answered = raw["requests"] - raw["status_errors"]
    errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return {
        "mode": "closed",
        "connections": connections,
        "seconds": round(seconds, 2),
        "requests": raw["requests"],
        "answered_2xx": answered,
        "non_2xx": raw["status_errors"],
        "socket_errors": errors,
        "rps": round(answered / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
    }


# --- open loop: the paced generator ------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, generator: PacedGenerator) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.header_end = -1
        self.need = -1
        self.status = 0
        self.close_after = False
        self.intended = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.generator.idle(self)

    def send(self, request: bytes, intended: float) -> None:
        self.intended = intended
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            start = head.find(b"content-length:")
            if start < 0:
                raise RuntimeError("response without content-length")
            stop = head.find(b"\r\n", start)
            length = int(head[start + 15 : stop if stop > 0 else None])
            self.close_after = b"connection: close" in head
            self.header_end = end + 4
            self.need = self.header_end + length
        if len(self.buffer) < self.need:
            return
        body = bytes(self.buffer[self.header_end : self.need])
        del self.buffer[: self.need]
        self.need = -1
        self.generator.answered(self, self.status, body)
        if self.close_after and self.transport is not None:
            self.transport.close()
        else:
            self.generator.idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.generator.lost(self)


class PacedGenerator:
    """Open-loop load: request i is due at t0 + i / rate whatever the server does; a request
    waits for a free connection if all are busy, and its latency runs from its due time.

    `on_send(i)` and `on_answer(i, status)` (optional) see each request go out and come back,
    for callers that time requests themselves (bench/event_latency.py); `give_up=False` sends
    every request even when the server falls behind.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        bodies: Sequence[bytes],
        connections: int,
        headers: dict[str, str] | None = None,
        *,
        on_send: Callable[[int], None] | None = None,
        on_answer: Callable[[int, int], None] | None = None,
        give_up: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.requests = [
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in bodies
        ]
        self.connections = connections
        self.free: deque[_Connection] = deque()
        self.waiting: deque[tuple[int, float]] = deque()
        self.busy: dict[_Connection, int] = {}
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.execution_ids: list[str] = []
        self.errors = 0
        self.outstanding = 0
        self.done = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.on_send = on_send
        self.on_answer = on_answer
        self.give_up = give_up

    async def open(self) -> None:
        await asyncio.gather(*(self._connect() for _ in range(self.connections)))

    async def _connect(self) -> None:
        await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)

    def idle(self, connection: _Connection) -> None:
        if self.waiting:
            index, intended = self.waiting.popleft()
            self._send(connection, index, intended)
        else:
            self.free.append(connection)

    def _send(self, connection: _Connection, index: int, intended: float) -> None:
        self.busy[connection] = index
        if self.on_send is not None:
            self.on_send(index)
        connection.send(self.requests[index % len(self.requests)], intended)

    def dispatch(self, index: int, intended: float) -> None:
        self.outstanding += 1
        if self.free:
            self._send(self.free.popleft(), index, intended)
        else:
            self.waiting.append((index, intended))

    def answered(self, connection: _Connection, status: int, body: bytes) -> None:
        index = self.busy.pop(connection, None)
        if self.on_answer is not None and index is not None:
            self.on_answer(index, status)
        self.latencies.append(time.perf_counter() - connection.intended)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            at = body.find(b'"execution_id":"')
            if at >= 0:
                self.execution_ids.append(body[at + 16 : at + 52].decode())
        self._finished_one()

    def lost(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self.free.remove(connection)
        index = self.busy.pop(connection, None)
        if index is not None:
            self.errors += 1
            if self.on_answer is not None:
                self.on_answer(index, -1)
            self._finished_one()
        if not self.done.is_set():
            self.loop.create_task(self._connect())

    def _finished_one(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and self.all_sent:
            self.done.set()

    all_sent = False
    # How long `run` waits for the answers still outstanding once every request is sent.
    drain_seconds = 5.0

    async def run(self, rate: float, duration: float) -> tuple[int, float]:
        """Send on schedule; stop early once more than a second of requests waits for a free
        connection (the server is overloaded and latency only grows). Returns how many were
        sent and the seconds from the first due time to the last answer (or the drain limit)."""
        # perf_counter, not loop.time(): uvloop's clock has millisecond steps.
        clock = time.perf_counter
        total = int(rate * duration)
        start = self.start = clock() + 0.05
        index = 0
        while index < total:
            now = clock()
            due = start + index / rate
            if due > now:
                # Event loop timers have millisecond resolution: a shorter sleep can return at
                # once and spin. Requests due meanwhile go out together, and their latency
                # still runs from their own due time.
                await asyncio.sleep(max(due - now, 0.001))
                now = clock()
            while index < total and start + index / rate <= now:
                self.dispatch(index, start + index / rate)
                index += 1
            if len(self.waiting) > rate and self.give_up:
                self.overloaded = True
                break
        self.all_sent = True
        if self.outstanding:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), timeout=self.drain_seconds)
        return index, clock() - start

    overloaded = False
    # The perf_counter time request 0 was due (set by `run`).
    start = 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def run_paced(
    port: int,
    path: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    connections: int = 64,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One open-loop run at `rate` requests/s; latency from each request's intended send time.
    `headers` (e.g. the API key) go with every request."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> tuple[PacedGenerator, int, float]:
        generator = PacedGenerator("127.0.0.1", port, path, bodies, connections, headers)
        await generator.open()
        sent, elapsed = await generator.run(rate, duration)
        for connection in [*generator.free, *generator.busy]:
            if connection.transport is not None:
                connection.transport.close()
        return generator, sent, elapsed

    cpu_before = time.process_time()
    generator, sent, elapsed = asyncio.run(main())
    client_cpu = time.process_time() - cpu_before
    latencies = sorted(generator.latencies)
    answered = sum(n for status, n in generator.statuses.items() if 200 <= status < 300)
    return {
        "mode": "paced",
        "rate": rate,
        "connections": connections,
        "seconds": round(elapsed, 2),
        "requests": sent,
        # More than a second of requests queued for a connection: stopped early.
        "overloaded": generator.overloaded,
        "answered_2xx": answered,
        "non_2xx": sum(n for status, n in generator.statuses.items() if not 200 <= status < 300),
        "socket_errors": generator.errors,
        "unanswered": sent - len(latencies),
        "rps": round(answered / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 50) * 1000, 3),
        "p95_ms": round(_percentile(latencies, 95) * 1000, 3),
        "p99_ms": round(_percentile(latencies, 99) * 1000, 3),
        "max_ms": round((latencies[-1] if latencies else float("nan")) * 1000, 3),
        # The load generator's own CPU per request (it shares the machine with the server).
        "client_cpu_us_per_request": round(client_cpu / max(1, len(latencies)) * 1e6, 1),
        "execution_ids": generator.execution_ids,
    }


HELLO_APP = """
def application(environ, start_response):
    environ["wsgi.input"].read()
    body = b'{"execution_id":"00000000-0000-0000-0000-000000000000"}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def calibrate(directory: Path, *, rate: float, duration: float) -> dict[str, Any]:
    """The paced generator against a hello-world WSGI app on granian: what the generator and
    the machine add to every latency, and the generator's own CPU per request."""
    (directory / "bench_hello.py").write_text(HELLO_APP)
    config = ServerConfig("granian", 1, 1)
    with Server(
        config,
        dict(os.environ),
        log_name="http_execute-hello",
        app="bench_hello:application",
        cwd=directory,
    ) as server:
        server.wait_ready("/", b"{}")
        result = run_paced(server.port, "/", [b"{}"], rate=rate, duration=duration)
    result.pop("execution_ids", None)
    return result


# --- the audit check ---------------------------------------------------------------------------


def audit_rows(entry_point_id: int, since: datetime) -> int:
    """How many audit rows the entry point has from `since` on.

    Bounded by time so the count reads only this phase's rows (index on entry point and
    creation time): counting the whole table every 0.3 s would steal CPU from the server.
    """
    from rules_engine.models import Execution

    return Execution.objects.filter(entry_point_id=entry_point_id, created_at__gte=since).count()


def settle(entry_point_id: int, since: datetime) -> int:
    """Wait until the audit rows from `since` on stop growing (at most 30 s); their count.

    Requests the client abandoned (wrk's deadline, an overloaded paced phase) still run in the
    server; waiting for them makes the next phase start idle and keeps its counts its own.
    """
    rows, deadline = audit_rows(entry_point_id, since), time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = audit_rows(entry_point_id, since)
        if now == rows:
            break
        rows = now
    return rows


def reset_audit(entry_point_ids: Sequence[int]) -> None:
    """Empty the bench entry points' audit rows, so the table does not grow run after run.

    Only on the bench's own database (its name ends in `_http`): a plain DELETE of the bench
    entry points' rows elsewhere.
    """
    from django.db import connection

    from rules_engine.models import Execution

    if str(connection.settings_dict["NAME"]).endswith("_http"):
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Execution._meta.db_table} CASCADE")
    else:
        Execution.objects.filter(entry_point_id__in=entry_point_ids).delete()


def missing_audit_rows(execution_ids: Sequence[str]) -> int:
    """How many of these execution ids have no audit row."""
    from rules_engine.models import Execution

    found = 0
    unique = list(dict.fromkeys(execution_ids))
    for start in range(0, len(unique), 5000):
        chunk = unique[start : start + 5000]
        found += Execution.objects.filter(id__in=chunk).count()
    return len(unique) - found + (len(execution_ids) - len(unique))


# --- phases ------------------------------------------------------------------------------------


@dataclass
class Target:
    """One endpoint under load: its settings module, path, request bodies and the headers sent
    with each (Verdict's: the API key; the baseline's: none, it authenticates nobody)."""

    name: str
    settings_module: str
    path: str
    bodies: list[bytes]
    entry_point_id: int
    headers: dict[str, str] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)


def measure_phase(
    server: Server,
    target: Target,
    phase: dict[str, Any],
    script: Path,
    *,
    duration: float,
) -> dict[str, Any]:
    """Run one phase (wrk at N connections, or paced at R rps) and check its audit rows."""
    from django.utils import timezone

    since = timezone.now()
    load_before = loadavg()
    assert server.process is not None
    cpu_before = process_group_cpu(server.process.pid), postgres_cpu(server.application_name)
    if phase["mode"] == "closed":
        result = run_wrk(
            server.port,
            target.path,
            script,
            connections=phase["connections"],
            duration=duration,
        )
    else:
        result = run_paced(
            server.port,
            target.path,
            target.bodies,
            rate=phase["rate"],
            duration=duration,
            headers=target.headers,
        )
    new_rows = settle(target.entry_point_id, since)
    # CPU per request is far less sensitive to the other load on the machine than rps.
    served = max(1, new_rows)
    cpu_after = process_group_cpu(server.process.pid), postgres_cpu(server.application_name)
    result["server_cpu_ms_per_request"] = round((cpu_after[0] - cpu_before[0]) / served * 1e3, 3)
    result["postgres_cpu_ms_per_request"] = round((cpu_after[1] - cpu_before[1]) / served * 1e3, 3)
    ids = result.pop("execution_ids", None)
    audit: dict[str, Any] = {"new_rows": new_rows}
    if ids is not None:
        audit["checked_ids"] = len(ids)
        audit["missing"] = missing_audit_rows(ids) + (result["answered_2xx"] - len(ids))
    else:
        audit["missing"] = max(0, result["answered_2xx"] - new_rows)
    result["audit"] = audit
    result["load_before"] = load_before
    result["target"] = target.name
    return result


def phase_name(phase: dict[str, Any]) -> str:
    """`c8` for wrk at 8 connections, `r2000` for paced at 2,000/s."""
    return f"c{phase['connections']}" if phase["mode"] == "closed" else f"r{int(phase['rate'])}"


def run_target(
    config: ServerConfig,
    target: Target,
    phases: Sequence[dict[str, Any]],
    script: Path,
    *,
    duration: float,
    warmup: float,
    extra: Sequence[tuple[Target, Sequence[dict[str, Any]], Path]] = (),
) -> list[dict[str, Any]]:
    """Start the target's server, warm it up, run every phase, stop it."""
    from django.utils import timezone

    env = bench_env(
        settings_module=target.settings_module, application_name=f"verdict-bench-{target.name}"
    )
    results = []
    with Server(config, env, log_name=f"http_execute-{target.name}") as server:
        server.wait_ready(target.path, target.bodies[0], headers=target.headers)
        for each_target, each_phases, each_script in ((target, phases, script), *extra):
            # Every worker compiles its rule set and opens its connections.
            warmup_started = timezone.now()
            run_wrk(server.port, each_target.path, each_script, connections=8, duration=warmup)
            settle(each_target.entry_point_id, warmup_started)
            for phase in each_phases:
                result = measure_phase(server, each_target, phase, each_script, duration=duration)
                result["config"] = config.label
                result["phase"] = phase_name(phase)
                results.append(result)
                _print_row(result)
    return results


def _print_row(result: dict[str, Any]) -> None:
    print(
        f"  {result['target']:9} {result['config']:22} {result['phase']:6} "
        f"{result['rps']:8.0f} rps  p50 {result['p50_ms']:7.2f}  p95 {result['p95_ms']:7.2f}  "
        f"p99 {result['p99_ms']:7.2f} ms  non2xx {result['non_2xx']}  "
        f"err {result['socket_errors'] + result.get('unanswered', 0)}  "
        f"audit missing {result['audit']['missing']}  load {result['load_before'][0]}  "
        f"CPU/req web {result['server_cpu_ms_per_request']} ms, "
        f"PG {result['postgres_cpu_ms_per_request']} ms"
        + ("  OVERLOADED: stopped early" if result.get("overloaded") else ""),
        flush=True,
    )


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Medians over rounds per target and phase."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in results:
        grouped.setdefault((result["target"], result["phase"]), []).append(result)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for (target, phase), rows in grouped.items():
        summary.setdefault(target, {})[phase] = {
            "rounds": len(rows),
            "config": rows[0]["config"],
            **{
                key: round(statistics.median(row[key] for row in rows), 3)
                for key in (
                    "rps",
                    "p50_ms",
                    "p95_ms",
                    "p99_ms",
                    "max_ms",
                    "server_cpu_ms_per_request",
                    "postgres_cpu_ms_per_request",
                )
            },
            "non_2xx": sum(row["non_2xx"] for row in rows),
            "socket_errors": sum(row["socket_errors"] + row.get("unanswered", 0) for row in rows),
            "overloaded_rounds": sum(1 for row in rows if row.get("overloaded")),
            "audit_missing": sum(row["audit"]["missing"] for row in rows),
            "answered_2xx": sum(row["answered_2xx"] for row in rows),
        }
    return summary


def verdict_targets(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The issue's three targets, judged on the medians."""
    verdict = summary.get("verdict", {})
    baseline = summary.get("baseline", {})
    paced = verdict.get("r2000", {})
    best = max((row["rps"] for key, row in verdict.items() if key.startswith("c")), default=0.0)
    base = max((row["rps"] for key, row in baseline.items() if key.startswith("c")), default=0.0)
    answered = sum(row["answered_2xx"] for rows in summary.values() for row in rows.values())
    missing = sum(row["audit_missing"] for rows in summary.values() for row in rows.values())
    paced_ok = (
        bool(paced)
        and paced["rps"] >= 0.99 * TARGET_RPS
        and paced["p99_ms"] <= TARGET_P99_MS
        and paced["non_2xx"] == 0
        and paced["socket_errors"] == 0
        and paced["overloaded_rounds"] == 0
    )
    return {
        "paced_2000": {
            "met": paced_ok,
            "rps": paced.get("rps"),
            "p99_ms": paced.get("p99_ms"),
            "target": f">= {TARGET_RPS} rps with p99 <= {TARGET_P99_MS} ms",
        },
        "vs_baseline": {
            "met": base > 0 and best >= TARGET_RATIO * base,
            "verdict_max_rps": best,
            "baseline_max_rps": base,
            "ratio": round(best / base, 2) if base else None,
            "target": f">= {TARGET_RATIO}x",
        },
        "audit": {"met": missing == 0, "answered_2xx": answered, "missing": missing},
    }


def print_table(summary: dict[str, dict[str, dict[str, Any]]], targets: dict[str, Any]) -> None:
    """The results table (medians over rounds) and the targets."""
    print()
    print(
        f"{'target':9} {'phase':6} {'config':20} {'rps':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'non2xx':>6} {'errors':>6} {'no audit':>8} "
        f"{'web CPU':>8} {'PG CPU':>7}"
    )
    for target, phases in summary.items():
        for phase, row in phases.items():
            print(
                f"{target:9} {phase:6} {row['config']:20} {row['rps']:8.0f} {row['p50_ms']:8.2f} "
                f"{row['p95_ms']:8.2f} {row['p99_ms']:8.2f} {row['max_ms']:8.1f} "
                f"{row['non_2xx']:6} {row['socket_errors']:6} {row['audit_missing']:8} "
                f"{row['server_cpu_ms_per_request']:8.3f} {row['postgres_cpu_ms_per_request']:7.3f}"
                + ("  overloaded" if row["overloaded_rounds"] else "")
            )
    print("(web CPU, PG CPU: CPU milliseconds per audited request of the server's processes and of")
    print(" their PostgreSQL backends; less sensitive to the machine's other load than rps)")
    print()
    paced = targets["paced_2000"]
    ratio = targets["vs_baseline"]
    audit = targets["audit"]
    print(
        f"target paced 2,000 rps, p99 <= 25 ms: {'MET' if paced['met'] else 'NOT MET'} "
        f"({paced['rps']} rps, p99 {paced['p99_ms']} ms)"
    )
    print(
        f"target >= 1.5x baseline max rps:     {'MET' if ratio['met'] else 'NOT MET'} "
        f"({ratio['verdict_max_rps']:.0f} vs {ratio['baseline_max_rps']:.0f} rps, "
        f"{ratio['ratio']}x)"
    )
    print(
        f"target no answer without audit row:  {'MET' if audit['met'] else 'NOT MET'} "
        f"({audit['missing']} missing of {audit['answered_2xx']} answered)"
    )


# --- profiling ---------------------------------------------------------------------------------

PROFILE_STEPS = (
    ("whole request (Django + middleware + view)", "django/core/handlers/base.py", "get_response"),
    ("  hot path (key, body, rate; DRF skipped)", "rules_engine/api/hot_path.py", "answer"),
    ("    parsing and checking the body", "rules_engine/api/hot_path.py", "_body"),
    ("  DRF request parsing + body serializer", "rest_framework/serializers.py", "is_valid"),
    ("  engine.execute", "rules_engine/engine.py", "execute"),
    ("    1 load: generation check in Redis", "rules_engine/cache.py", "current_generation"),
    ("    2 validate: JSON Schema", "rules_engine/validation.py", "validate_context"),
    ("    3 evaluate: 100 rules", "rules_engine/engine.py", "_evaluate"),
    ("    4 dispatch: actions", "rules_engine/engine.py", "_dispatch"),
    ("    5 render: templates", "rules_engine/engine.py", "_render"),
    ("    6 audit: build the row", "rules_engine/engine.py", "_audit_row"),
    ("    6 audit: hand the row to the group commit", "rules_engine/audit.py", "write"),
    ("    metrics", "rules_engine/engine.py", "_count"),
    ("  response rendering (orjson)", "rules_engine/api/parsers.py", "render"),
)


def profile(
    contexts: Sequence[dict[str, Any]], headers: dict[str, str], *, requests: int = 1000
) -> dict[str, Any]:
    """CPU per request of each endpoint in one process (Django's test client, no network), and
    a cProfile of Verdict's request by pipeline step. The audit writer thread's CPU is the
    process's CPU minus the request thread's. `headers` (the API key) go with Verdict's
    requests only."""
    import cProfile
    import pstats

    from django.test import Client
    from django.test.utils import override_settings

    client = Client()
    bodies = request_bodies(ENTRY_POINT, contexts)
    dry = [body[:-1] + b',"dry_run":true}' for body in bodies]

    def cpu(path: str, payloads: Sequence[bytes], headers: dict[str, str]) -> dict[str, float]:
        for body in payloads[:50]:
            client.post(path, body, content_type="application/json", headers=headers)
        rounds = []
        for _ in range(3):
            process, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
            for body in payloads[:requests]:
                response = client.post(path, body, content_type="application/json", headers=headers)
                assert response.status_code == 200, response.content[:500]
            rounds.append(
                (
                    (time.process_time() - process) / requests * 1000,
                    (time.thread_time() - thread) / requests * 1000,
                    (time.perf_counter() - wall) / requests * 1000,
                )
            )
        best = min(rounds)
        return {
            "cpu_ms": round(best[0], 3),
            "request_thread_cpu_ms": round(best[1], 3),
            "wall_ms": round(best[2], 3),
        }

    with override_settings(ROOT_URLCONF="bench.baseline.urls"):
        measured = {
            "verdict": cpu(EXECUTE_PATH, bodies, headers),
            "verdict_dry_run": cpu(EXECUTE_PATH, dry, headers),
            "baseline": cpu(BASELINE_PATH, bodies, {}),
        }
        # CPU time of the request thread: waits (the group commit, Redis, sockets) count only
        # for the CPU they burn.
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        for body in bodies[:requests]:
            client.post(EXECUTE_PATH, body, content_type="application/json", headers=headers)
        profiler.disable()
    # (file, line, name) -> (calls, primitive calls, own time, cumulative time, callers)
    stats: dict[tuple[str, int, str], Any] = cast(Any, pstats.Stats(profiler)).stats
    total = sum(row[2] for row in stats.values())
    steps = {}
    for label, filename, function in PROFILE_STEPS:
        cumulative = sum(
            row[3]
            for (file, _, name), row in stats.items()
            if file.endswith(filename) and name == function
        )
        steps[label] = round(100 * cumulative / total, 1)
    own = sorted(stats.items(), key=lambda item: -item[1][2])[:15]
    top = [
        {
            "function": f"{name} ({'/'.join(Path(file).parts[-2:])}:{line})",
            "self_pct": round(100 * row[2] / total, 1),
        }
        for (file, line, name), row in own
    ]
    print("\nCPU per request, one process, no network (best of 3 x", requests, "requests):")
    for name, row in measured.items():
        writer = row["cpu_ms"] - row["request_thread_cpu_ms"]
        print(
            f"  {name:16} {row['cpu_ms']:6.3f} ms CPU ({row['request_thread_cpu_ms']:.3f} request "
            f"thread + {writer:.3f} other threads), {row['wall_ms']:.3f} ms wall"
        )
    print("\nVerdict's request by step (cProfile, share of the request thread's CPU time):")
    for label, share in steps.items():
        print(f"  {share:5.1f}%  {label}")
    print("  top self time:")
    for row in top:
        print(f"  {row['self_pct']:5.1f}%  {row['function']}")
    return {"cpu_per_request": measured, "steps_pct": steps, "top_self_pct": top}


# --- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s phases")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Verdict's server shape")
    parser.add_argument(
        "--baseline-config", default=BASELINE_CONFIG, help="the baseline's server shape"
    )
    parser.add_argument("--server-args", default="", help="extra server options, quoted")
    parser.add_argument("--connections", default="8,32,64")
    parser.add_argument("--rates", default="1000,2000")
    parser.add_argument("--no-write", action="store_true", help="skip the writing variant")
    parser.add_argument("--targets", default="verdict,baseline", help="which endpoints to load")
    parser.add_argument("--sweep", action="store_true", help="compare server configurations")
    parser.add_argument("--configs", default=SWEEP_CONFIGS)
    parser.add_argument("--profile", action="store_true", help="CPU profile, one process")
    parser.add_argument("--output", type=Path, default=RESULTS / "http_execute.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 3.0

    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so the servers started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    setup_django()
    ids = ensure_workload()
    reset_audit(list(ids.values()))
    key_headers = bench_api_key_headers("bench:http_execute")
    _, contexts = workload()
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="verdict-bench-http-"))
    verdict = Target(
        "verdict",
        "config.settings",
        EXECUTE_PATH,
        request_bodies(ENTRY_POINT, contexts),
        ids[ENTRY_POINT],
        key_headers,
    )
    baseline = Target(
        "baseline",
        "bench.baseline.settings",
        BASELINE_PATH,
        request_bodies(ENTRY_POINT, contexts),
        ids[ENTRY_POINT],
    )
    write = Target(
        "write",
        "config.settings",
        EXECUTE_PATH,
        request_bodies(WRITE_ENTRY_POINT, contexts),
        ids[WRITE_ENTRY_POINT],
        key_headers,
    )
    scripts = {
        t.name: write_wrk_script(t.bodies, workdir, t.name, t.headers) for t in (verdict, write)
    }
    scripts["baseline"] = write_wrk_script(baseline.bodies, workdir, "baseline")
    config = ServerConfig.parse(args.config)
    baseline_config = ServerConfig.parse(args.baseline_config)
    if args.server_args:
        config = replace(config, extra=tuple(shlex.split(args.server_args)))
    info = machine_info()
    started = datetime.now(UTC)
    load_at_start = loadavg()
    print(
        f"{info['nproc']} x {info['cpu_model']}; load {loadavg()}; "
        f"{args.rounds} round(s) of {args.duration:g} s phases; server {config.label} "
        f"(baseline {baseline_config.label})",
        flush=True,
    )

    try:
        if args.profile:
            result = profile(contexts, key_headers, requests=300 if args.quick else 1000)
            path = args.output.with_name("http_execute-profile.json")
            path.write_text(
                json.dumps({"date": started.isoformat(timespec="seconds"), **result}, indent=2)
            )
            print(f"\nwrote {path}")
            return
        if args.sweep:
            sweep(args, [verdict, baseline], scripts, info, started)
            return
        closed: list[dict[str, Any]] = [
            {"mode": "closed", "connections": int(c)} for c in args.connections.split(",") if c
        ]
        paced = [{"mode": "paced", "rate": float(r)} for r in args.rates.split(",") if r]
        calibration = calibrate(workdir, rate=TARGET_RPS, duration=min(5.0, args.duration))
        print(
            f"generator calibration (hello-world app, paced {TARGET_RPS}/s): "
            f"p50 {calibration['p50_ms']} ms, p99 {calibration['p99_ms']} ms, "
            f"client {calibration['client_cpu_us_per_request']} us CPU/request",
            flush=True,
        )
        results: list[dict[str, Any]] = []
        for round_index in range(args.rounds):
            print(f"round {round_index + 1}/{args.rounds} (load {loadavg()})", flush=True)
            # Alternate the order so slow drift of the machine does not favour one target.
            order = [verdict, baseline] if round_index % 2 == 0 else [baseline, verdict]
            for target in [t for t in order if t.name in args.targets.split(",")]:
                extra: list[tuple[Target, Sequence[dict[str, Any]], Path]] = []
                if target is verdict and not args.no_write:
                    write_phases = [*closed[len(closed) // 2 :][:1], *paced[:1]]
                    extra = [(write, write_phases, scripts["write"])]
                for result in run_target(
                    baseline_config if target is baseline else config,
                    target,
                    [*closed, *paced],
                    scripts[target.name],
                    duration=args.duration,
                    warmup=min(3.0, args.duration),
                    extra=extra,
                ):
                    result["round"] = round_index + 1
                    results.append(result)
        summary = summarize(results)
        targets = verdict_targets(summary)
        print_table(summary, targets)
        payload = {
            "bench": "http_execute",
            "date": started.isoformat(timespec="seconds"),
            "machine": info,
            "code": code_state(),
            "load_at_start": load_at_start,
            "server": config.label,
            "baseline_server": baseline_config.label,
            "settings": {
                "DJANGO_DEBUG": "false",
                "DATABASE_CONN_MAX_AGE": bench_env()["DATABASE_CONN_MAX_AGE"],
                "VERDICT_CACHE_CHECK_INTERVAL": bench_env()["VERDICT_CACHE_CHECK_INTERVAL"],
                "database": "PostgreSQL",
                "cache": "Redis",
            },
            "workload": {
                "rules": 100,
                "condition_nodes": "10-20",
                "contexts": len(contexts),
                "mean_body_bytes": round(statistics.mean(len(b) for b in verdict.bodies)),
                "templates": [t["format"] for t in TEMPLATES],
            },
            "rounds": args.rounds,
            "phase_seconds": args.duration,
            "paced_connections": 64,
            "generator_calibration": calibration,
            "summary": summary,
            "targets": targets,
            "runs": results,
        }
        args.output.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {args.output}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sweep(
    args: argparse.Namespace,
    targets: Sequence[Target],
    scripts: dict[str, Path],
    info: dict[str, Any],
    started: datetime,
) -> None:
    """Max rps (wrk, 32 and 64 connections) of each target under each server configuration."""
    phases = [{"mode": "closed", "connections": 32}, {"mode": "closed", "connections": 64}]
    results = []
    configs = [ServerConfig.parse(text) for text in args.configs.split(",")]
    # Rounds outermost, so the machine's drift spreads over every configuration alike.
    for round_index in range(args.rounds):
        for config in configs:
            for target in targets:
                if target.name not in args.targets.split(","):
                    continue
                for result in run_target(
                    config,
                    target,
                    phases,
                    scripts[target.name],
                    duration=args.duration,
                    warmup=2.0,
                ):
                    result["round"] = round_index + 1
                    results.append(result)
    table: dict[str, dict[str, Any]] = {}
    for result in results:
        row = table.setdefault(result["config"], {})
        row.setdefault(result["target"], []).append(result)
    print(
        f"\n{'config':28} {'verdict rps':>12} {'p99 ms':>8} {'CPU ms':>7} "
        f"{'baseline rps':>13} {'p99 ms':>8} {'CPU ms':>7}"
    )
    out: dict[str, Any] = {}
    for label, by_target in table.items():
        cells = []
        out[label] = {}
        for name in ("verdict", "baseline"):
            rows = by_target.get(name, [])
            best: dict[str, Any] = {}
            for phase in ("c32", "c64"):
                these = [r for r in rows if r["phase"] == phase]
                if these:
                    rps = statistics.median(r["rps"] for r in these)
                    if rps > best.get("rps", 0):
                        p99 = statistics.median(r["p99_ms"] for r in these)
                        cpu = statistics.median(r["server_cpu_ms_per_request"] for r in these)
                        best = {"rps": rps, "p99_ms": p99, "web_cpu_ms": cpu, "phase": phase}
            out[label][name] = best
            cells.append(
                f"{best.get('rps', 0):12.0f} {best.get('p99_ms', 0):8.2f} "
                f"{best.get('web_cpu_ms', 0):7.3f}"
            )
        print(f"{label:28} {cells[0]} {' ' + cells[1]}")
    path = args.output.with_name("http_execute-sweep.json")
    path.write_text(
        json.dumps(
            {
                "bench": "http_execute --sweep",
                "date": started.isoformat(timespec="seconds"),
                "machine": info,
                "phase_seconds": args.duration,
                "rounds": args.rounds,
                "best_per_config": out,
                "runs": results,
            },
            indent=2,
        )
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
