"""The multi-machine layout, exercised on one machine: separate processes, one PostgreSQL, one
Redis. `docs/deployment.md` describes how the same layout spreads over machines.

Starts, as separate OS processes that share nothing but PostgreSQL and Redis:

  web      4 granian processes (WSGI, 1 worker x 4 threads each, ports of their own), as a
           load balancer would see 4 machines;
  worker   2 Celery workers (`-n bench-w1@%h`, `-n bench-w2@%h`, prefork, concurrency 2);
  beat     1 Celery beat (the singleton: sweeper, recoveries).

Then checks, printing each result:

  1. executes sent round-robin to the 4 web processes are all answered, and every answer's
     `execution_id` has its audit row;
  2. events sent round-robin to the 4 web processes (`POST /new-event`) are all completed by
     the workers, each with its decision's audit row, and both workers processed some of them
     (each worker records which events it ran, through this module loaded as a plugin);
  3. a rule changed through the service is served by every web process (time measured) and
     used by both workers for every event accepted after the change.

    python bench/multiprocess_check.py [--quick] [--executes N] [--events N]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/verdict_bench_multi) and
REDIS_URL (default redis://127.0.0.1:6379/10; cache and broker). Both are this check's own:
another bench's workers on the same Redis database would take these events. Writes
bench/results/multiprocess_check.json; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from celery.signals import task_postrun
from http_execute import (
    PYTHON,
    RESULTS,
    ROOT,
    Server,
    ServerConfig,
    bench_api_key_headers,
    bench_env,
    loadavg,
    machine_info,
    setup_django,
)

PLUGIN = "bench.multiprocess_check"
ENTRY_POINT = "bench.multi"
WORKERS_KEY = "bench:multi:workers"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/verdict_bench_multi"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
OUTPUT = RESULTS / "multiprocess_check.json"
EXECUTE = "/api/rules/engine/execute/"


@task_postrun.connect
def _record_worker(sender: Any = None, retval: Any = None, **_: Any) -> None:
    """In a worker that loads this module as a plugin: note which worker decided which event.

    `ingress.tasks.process_events` returns the ids of the events its batches decided.
    """
    if os.environ.get("VERDICT_PLUGINS") != PLUGIN or sender is None:
        return
    if sender.name != "ingress.tasks.process_events" or not isinstance(retval, list) or not retval:
        return
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    who = f"{sender.request.hostname} pid {os.getpid()}"
    client.hset(WORKERS_KEY, mapping={str(event_id): who for event_id in retval})


def ensure_rules() -> Any:
    """The entry point and its two rules: a marker (versioned by the check) and a writer."""
    from rules_engine import services
    from rules_engine.models import EntryPoint, Rule

    entry_point = EntryPoint.objects.filter(key=ENTRY_POINT).first()
    if entry_point is None:
        entry_point = services.entry_point_create(
            data={
                "key": ENTRY_POINT,
                "description": "bench/multiprocess_check.py",
                "subject_path": "user",
                "context_schema": {
                    "type": "object",
                    "required": ["user", "amount"],
                    "properties": {"user": {"type": "string"}, "amount": {"type": "number"}},
                },
            }
        )
    marker = Rule.objects.filter(entry_point=entry_point, name="marker").first()
    if marker is None:
        marker = services.rule_create(
            data={
                "name": "marker",
                "entry_point": entry_point,
                "priority": 1,
                "condition": {">=": [{"var": "amount"}, 0]},
                "actions": [],
            }
        )
    if not Rule.objects.filter(entry_point=entry_point, name="writer").exists():
        services.rule_create(
            data={
                "name": "writer",
                "entry_point": entry_point,
                "priority": 2,
                "condition": {">": [{"var": "amount"}, 100]},
                "actions": [
                    {
                        "type": "update",
                        "params": {"target": "subject_state", "set": {"big": {"var": "amount"}}},
                    }
                ],
            }
        )
    return marker


class Celery:
    """A Celery worker or beat process of its own (its own process group and log)."""

    def __init__(self, args: list[str], env: dict[str, str], log_name: str) -> None:
        self.log_path = RESULTS / f"{log_name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "celery", "-A", "config", *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to its group), then kill after 20 s."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


_clients = threading.local()


def _post(
    port: int, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    import httpx

    # One keep-alive client per thread, like an application's connection pool.
    client = getattr(_clients, "client", None)
    if client is None:
        client = _clients.client = httpx.Client(timeout=30)
    response = client.post(f"http://127.0.0.1:{port}{path}", json=body, headers=headers)
    return response.status_code, response.json()


def send_round_robin(
    ports: Sequence[int], path: str, bodies: Sequence[dict[str, Any]], headers: dict[str, str]
) -> list[tuple[int, int, dict[str, Any]]]:
    """POST each body (with `headers`: the API key) to the next web process, 16 at a time;
    (port, status, json) each."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [
            (ports[i % len(ports)], pool.submit(_post, ports[i % len(ports)], path, body, headers))
            for i, body in enumerate(bodies)
        ]
        return [(port, *future.result()) for port, future in futures]


def wait_events(event_ids: Sequence[str], timeout: float) -> dict[str, int]:
    """Wait until none of the events is open any more; their statuses."""
    from ingress.models import Event

    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(Event.objects.filter(pk__in=event_ids).values_list("status", flat=True))
        open_ = sum(n for status, n in statuses.items() if status in Event.OPEN_STATUSES)
        if not open_ or time.monotonic() > deadline:
            return dict(statuses)
        time.sleep(0.2)


def event_versions(event_ids: Sequence[str]) -> tuple[Counter[int], int]:
    """The marker rule's version in each event's audit row; and how many have no audit row."""
    from ingress.models import Event
    from rules_engine.models import Execution

    executions = dict(Event.objects.filter(pk__in=event_ids).values_list("pk", "execution_id"))
    rows = {
        row.pk: row for row in Execution.objects.filter(pk__in=[e for e in executions.values()])
    }
    versions: Counter[int] = Counter()
    missing = 0
    for execution_id in executions.values():
        row = rows.get(execution_id)
        if row is None:
            missing += 1
            continue
        marker = next((r for r in row.matched_rules if r["name"] == "marker"), None)
        versions[marker["version"] if marker else 0] += 1
    return versions, missing + len(event_ids) - len(executions)


def workers_of(event_ids: Sequence[str]) -> Counter[str]:
    """Which worker ran each event (as recorded by the plugin), counted per worker hostname."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    raw = client.hmget(WORKERS_KEY, list(event_ids)) if event_ids else []
    return Counter((str(value).split(" pid ")[0] if value else "unrecorded") for value in raw)


def check(results: dict[str, Any], name: str, ok: bool, detail: str) -> None:
    """Record and print one check."""
    results["checks"].append({"check": name, "ok": ok, "detail": detail})
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    from rules_engine import services
    from rules_engine.models import Execution

    marker = ensure_rules()
    # Before the servers start: creating a key moves the cache generation stamp.
    headers = bench_api_key_headers("bench:multiprocess_check")
    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete(WORKERS_KEY)
    env = bench_env(VERDICT_PLUGINS=PLUGIN, LOG_LEVEL="INFO")
    results: dict[str, Any] = {"checks": [], "processes": []}
    web_config = ServerConfig("granian", 1, 4)
    with contextlib.ExitStack() as stack:
        webs = [
            stack.enter_context(Server(web_config, env, log_name=f"multiprocess-web{i + 1}"))
            for i in range(4)
        ]
        celery = [
            Celery(
                [
                    "worker",
                    "-n",
                    f"bench-w{i + 1}@%h",
                    "--concurrency=2",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env,
                f"multiprocess-worker{i + 1}",
            )
            for i in range(2)
        ]
        celery.append(Celery(["beat", "--loglevel=INFO"], env, "multiprocess-beat"))
        for process in reversed(celery):
            stack.callback(process.stop)
        probe = {"entry_point": ENTRY_POINT, "context": {"user": "probe", "amount": 1}}
        for web in webs:
            web.wait_ready(
                EXECUTE, json.dumps({**probe, "dry_run": True}).encode(), headers=headers
            )
        ports = [web.port for web in webs]
        for web in webs:
            assert web.process is not None
            results["processes"].append({"role": "web", "pid": web.process.pid, "port": web.port})
        for index, process in enumerate(celery):
            role = "beat" if index == 2 else f"worker bench-w{index + 1}"
            results["processes"].append({"role": role, "pid": process.process.pid})
        print(
            "started " + ", ".join(f"{p['role']} (pid {p['pid']})" for p in results["processes"]),
            flush=True,
        )

        # 1. executes over the 4 web processes, every answer audited
        bodies = [
            {"entry_point": ENTRY_POINT, "context": {"user": f"u{i % 50}", "amount": i % 200}}
            for i in range(args.executes)
        ]
        started = time.perf_counter()
        answers = send_round_robin(ports, EXECUTE, bodies, headers)
        seconds = time.perf_counter() - started
        ok = [a for a in answers if a[1] == 200]
        ids = [a[2]["execution_id"] for a in ok]
        found = Execution.objects.filter(pk__in=ids).count()
        per_port = Counter(a[0] for a in ok)
        check(
            results,
            "executes answered by every web process",
            len(ok) == len(bodies) and len(per_port) == 4,
            f"{len(ok)}/{len(bodies)} answered 200 in {seconds:.1f} s, per process "
            f"{sorted(per_port.values())}",
        )
        check(
            results,
            "every answered execute has its audit row",
            found == len(ids),
            f"{found} of {len(ids)} execution ids found",
        )

        # 2. events over the 4 web processes, processed by both workers
        event_ids = send_events(ports, args.events, "before", headers)
        statuses = wait_events(event_ids, timeout=120)
        workers = workers_of(event_ids)
        _, no_audit = event_versions(event_ids)
        check(
            results,
            "events accepted by every web process and completed",
            statuses.get("completed", 0) == len(event_ids),
            f"{len(event_ids)} accepted, statuses {statuses}",
        )
        check(
            results,
            "both workers processed events",
            len([w for w in workers if w.startswith("bench-w")]) == 2,
            f"per worker {dict(workers)}",
        )
        check(results, "every completed event has its audit row", no_audit == 0, f"{no_audit}")

        # 3. a rule change is seen by every web process and both workers
        old_version = marker.version
        changed_at = time.perf_counter()
        marker = services.rule_update(
            rule=marker, data={"metadata": {"changed": str(uuid.uuid4())}}, change_note="bench"
        )
        committed = time.perf_counter()
        seen_ms = []
        for port in ports:
            while True:
                _, body = _post(port, EXECUTE, {**probe, "dry_run": True}, headers)
                version = next(
                    (r["version"] for r in body.get("matched_rules", []) if r["name"] == "marker"),
                    0,
                )
                if version == marker.version or time.perf_counter() - committed > 10:
                    break
            seen_ms.append(round((time.perf_counter() - committed) * 1000, 1))
        check(
            results,
            "every web process serves the changed rule",
            all(ms < 10_000 for ms in seen_ms),
            f"v{old_version} -> v{marker.version}; seen after {seen_ms} ms "
            f"(service call {1000 * (committed - changed_at):.0f} ms; polled one process "
            "after another)",
        )
        after_ids = send_events(ports, max(20, args.events // 2), "after", headers)
        statuses = wait_events(after_ids, timeout=120)
        versions, no_audit = event_versions(after_ids)
        workers = workers_of(after_ids)
        check(
            results,
            "both workers decide with the changed rule",
            set(versions) == {marker.version}
            and no_audit == 0
            and len([w for w in workers if w.startswith("bench-w")]) == 2,
            f"{len(after_ids)} events after the change: marker versions {dict(versions)}, "
            f"per worker {dict(workers)}, statuses {statuses}",
        )
    return results


def send_events(ports: Sequence[int], count: int, tag: str, headers: dict[str, str]) -> list[str]:
    """POST `count` events round-robin to the web processes (with `headers`: the API key);
    their ids."""
    run_id = uuid.uuid4().hex[:8]
    bodies = [
        {
            "type": ENTRY_POINT,
            "key": f"{run_id}-{tag}-{i}",
            "source": "bench-multi",
            "payload": {"user": f"u{i % 50}", "amount": (i * 7) % 300},
        }
        for i in range(count)
    ]
    answers = send_round_robin(ports, "/new-event", bodies, headers)
    return [a[2]["id"] for a in answers if a[1] in (200, 202)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 executes, 100 events")
    parser.add_argument("--executes", type=int, default=1000)
    parser.add_argument("--events", type=int, default=400)
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so the processes started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.executes, args.events = 200, 100
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    setup_django()
    started = datetime.now(UTC)
    print(f"load {loadavg()}", flush=True)
    results = run(args)
    payload = {
        "bench": "multiprocess_check",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "layout": "4 web (granian 1x4 each) + 2 Celery workers (prefork 2) + 1 beat; "
        "one PostgreSQL, one Redis (cache + broker)",
        **results,
        "ok": all(c["ok"] for c in results["checks"]),
    }
    OUTPUT.write_text(json.dumps(payload, indent=2))
    print(f"\n{'all checks passed' if payload['ok'] else 'SOME CHECKS FAILED'}; wrote {OUTPUT}")
    if not payload["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
