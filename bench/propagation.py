"""Rule change propagation across separate web processes, each with its own compiled-rule cache.

Starts 4 web processes (separate granian processes, one worker each, on their own ports), has
one poller thread per process send `execute` (dry run: no audit rows) in a tight keep-alive
loop with a context that only a probe rule matches, then changes the probe rule N times through
`rules_engine.services.rule_update` (a new version each time). For every change and process it
records the time from the service call's return (the change is committed) until the first
response of that process that carries the new version (the response's arrival, so one request
round trip is included). Reported: p50 / p95 / max per process and overall.

Backends:
  postgres   PostgreSQL + Redis, production settings (the generation stamp lives in Redis).
  embedded   the embedded default of `make run`: SQLite (WAL) + the database cache table.

    python bench/propagation.py [--quick] [--changes N] [--processes 4] [--backend both]

Environment (postgres backend): DATABASE_URL (default .../verdict_bench_multi) and REDIS_URL
(default redis://127.0.0.1:6379/10), shared with bench/multiprocess_check.py. Prints a
table and writes bench/results/propagation.json.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from http_execute import (
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

ENTRY_POINT = "bench.propagation"
PROBE_RULE = "bench propagation probe"
OUTPUT = RESULTS / "propagation.json"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/verdict_bench_multi"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"


def ensure_probe() -> Any:
    """The probe rule (created through the services on first use)."""
    from rules_engine import services
    from rules_engine.models import EntryPoint, Rule

    entry_point = EntryPoint.objects.filter(key=ENTRY_POINT).first()
    if entry_point is None:
        entry_point = services.entry_point_create(
            data={
                "key": ENTRY_POINT,
                "description": "bench/propagation.py",
                "context_schema": {"type": "object", "required": ["probe"]},
            }
        )
    rule = Rule.objects.filter(entry_point=entry_point, name=PROBE_RULE).first()
    if rule is None:
        rule = services.rule_create(
            data={
                "name": PROBE_RULE,
                "entry_point": entry_point,
                "condition": {"==": [{"var": "probe"}, True]},
                "actions": [],
                "metadata": {"change": 0},
            }
        )
    return rule


class Poller(threading.Thread):
    """Polls one process's execute endpoint and notes when each rule version first appears."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.port = port
        # Content-Type and the API key.
        self.headers = {"Content-Type": "application/json", **headers}
        self.body = json.dumps(
            {"entry_point": ENTRY_POINT, "context": {"probe": True}, "dry_run": True}
        ).encode()
        self.first_seen: dict[int, float] = {}
        self.requests = 0
        self.errors = 0
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        self.started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stopping.is_set():
            try:
                connection.request("POST", "/api/rules/engine/execute/", self.body, self.headers)
                response = connection.getresponse()
                payload = response.read()
                arrived = time.perf_counter()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                time.sleep(0.01)
                continue
            self.requests += 1
            if response.status != 200:
                self.errors += 1
                continue
            matched = json.loads(payload)["matched_rules"]
            version = matched[0]["version"] if matched else 0
            self.first_seen.setdefault(version, arrived)
            self.ready.set()
        connection.close()
        self.stopped = time.perf_counter()

    started = stopped = 0.0

    @property
    def interval_ms(self) -> float:
        """Mean time between two polls: the resolution of this process's measurement."""
        return (self.stopped - self.started) / max(1, self.requests) * 1000


def measure(backend: str, *, processes: int, changes: int, threads: int) -> dict[str, Any]:
    """Run the experiment on the current Django database (already set up for `backend`)."""
    from rules_engine import services

    rule = ensure_probe()
    # Before the servers start: creating a key moves the cache generation stamp.
    headers = bench_api_key_headers("bench:propagation")
    env = bench_env()
    if backend == "embedded":
        env = {k: v for k, v in env.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    config = ServerConfig("granian", 1, threads)
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(Server(config, env, log_name=f"propagation-{backend}-{i}"))
            for i in range(processes)
        ]
        probe = json.dumps({"entry_point": ENTRY_POINT, "context": {"probe": True}}).encode()
        for server in servers:
            server.wait_ready("/api/rules/engine/execute/", probe, headers=headers)
        pollers = [Poller(server.port, headers) for server in servers]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.ready.wait(30)
        delays: list[list[float]] = [[] for _ in servers]
        call_ms: list[float] = []
        for change in range(changes):
            time.sleep(0.3)
            started = time.perf_counter()
            rule = services.rule_update(
                rule=rule, data={"metadata": {"change": change + 1}}, change_note="bench"
            )
            committed = time.perf_counter()
            call_ms.append((committed - started) * 1000)
            deadline = committed + 10
            while time.perf_counter() < deadline and not all(
                rule.version in p.first_seen for p in pollers
            ):
                time.sleep(0.001)
            for index, poller in enumerate(pollers):
                seen = poller.first_seen.get(rule.version)
                delays[index].append(
                    (seen - committed) * 1000 if seen is not None else float("inf")
                )
        for poller in pollers:
            poller.stopping.set()
        for poller in pollers:
            poller.join(timeout=15)
    per_process = []
    for index, values in enumerate(delays):
        per_process.append(
            {
                "process": index + 1,
                "p50_ms": round(statistics.median(values), 2),
                "p95_ms": round(_quantile(values, 0.95), 2),
                "max_ms": round(max(values), 2),
                "poll_requests": pollers[index].requests,
                "poll_interval_ms": round(pollers[index].interval_ms, 2),
                "poll_errors": pollers[index].errors,
            }
        )
    everything = [v for values in delays for v in values]
    # How fast each process polls bounds the resolution of the measurement.
    return {
        "backend": backend,
        "processes": processes,
        "server": f"{processes} x granian --workers 1 --blocking-threads {threads}",
        "changes": changes,
        "all": {
            "p50_ms": round(statistics.median(everything), 2),
            "p95_ms": round(_quantile(everything, 0.95), 2),
            "max_ms": round(max(everything), 2),
            "not_seen_within_10s": sum(1 for v in everything if v == float("inf")),
        },
        "last_process": {
            "p50_ms": round(statistics.median(max(col) for col in zip(*delays, strict=True)), 2),
            "max_ms": round(max(max(col) for col in zip(*delays, strict=True)), 2),
        },
        "service_call_ms_p50": round(statistics.median(call_ms), 2),
        "per_process": per_process,
        "load": loadavg(),
    }


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Set Django up for one backend in this process and measure."""
    if backend == "embedded":
        directory = Path(tempfile.mkdtemp(prefix="verdict-propagation-"))
        os.environ["DATABASE_URL"] = f"sqlite:///{directory / 'verdict.sqlite3'}"
        os.environ.pop("REDIS_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ["DJANGO_DEBUG"] = "false"
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
    else:
        setup_django()
    return measure(backend, processes=args.processes, changes=args.changes, threads=args.threads)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 changes")
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="blocking threads per process")
    parser.add_argument("--backend", choices=["postgres", "embedded", "both"], default="both")
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so the processes started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.changes = 5
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)

    if args.child_output:
        result = run_backend(args.backend, args)
        args.child_output.write_text(json.dumps(result))
        return

    RESULTS.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    backends = ["postgres", "embedded"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        # Each backend needs its own Django set-up, so each runs in a fresh process.
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--backend",
                backend,
                "--changes",
                str(args.changes),
                "--processes",
                str(args.processes),
                "--threads",
                str(args.threads),
                "--child-output",
                out.name,
            ]
            print(f"{backend}: {args.changes} changes, load {loadavg()} ...", flush=True)
            subprocess.run(command, check=True, cwd=ROOT)
            results.append(json.loads(Path(out.name).read_text()))

    print(f"\n{'backend':9} {'process':8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'polls':>7}")
    for result in results:
        for row in result["per_process"]:
            print(
                f"{result['backend']:9} {row['process']:<8} {row['p50_ms']:8.2f} "
                f"{row['p95_ms']:8.2f} {row['max_ms']:8.2f} {row['poll_requests']:7} "
                f"{row['poll_interval_ms']:7.2f} ms"
            )
        every = result["all"]
        last = result["last_process"]
        print(
            f"{result['backend']:9} {'all':8} {every['p50_ms']:8.2f} {every['p95_ms']:8.2f} "
            f"{every['max_ms']:8.2f}   (slowest process per change: p50 {last['p50_ms']} ms, "
            f"max {last['max_ms']} ms; service call p50 {result['service_call_ms_p50']} ms)"
        )
    from http_execute import setup_django as _setup

    _setup()
    payload = {
        "bench": "propagation",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "measured": "service call returned (committed) -> first response of the process "
        "showing the new rule version (arrival time; includes one request round trip)",
        "results": results,
    }
    OUTPUT.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {OUTPUT}")


if __name__ == "__main__":
    main()
