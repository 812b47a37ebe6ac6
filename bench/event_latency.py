"""Accepted-to-decided latency of events over REST and over the Redis stream.

    make bench-events                                   # 100 and 500 events/s, 10 s each
    make bench-events BENCH_ARGS="--rounds 3"           # medians over three rounds
    make bench-events BENCH_ARGS="--quick"              # 3 s per phase, a smoke run

Starts everything itself against DATABASE_URL and REDIS_URL (both required: PostgreSQL and
Redis): migrates, loads the checkout demo, then runs the web server of `make serve` (granian
WSGI, keep-alive), Celery worker(s) and `manage.py ingress_consume` consumer(s) on a stream of
its own. Each phase sends events at a steady rate for a fixed duration, open loop (every send
has an intended time `start + i / rate`; a late send is measured from its intended time, so a
slow server cannot hide latency by slowing the generator down), to 127.0.0.1 only, with a
bounded count. Payloads are the demo's example context with one of 5,000 user ids, so
decisions do not all queue on one subject's state row.

Measured per event, from the database afterwards:
* accepted -> decided: `Event.received_at` (the accept, in the web or consumer process) to
  `Event.finished_at`, set in the decision's transaction right after `execute` wrote the
  Execution row, just before commit (the Execution's `created_at` is a few hundred microseconds
  earlier; its `created_at` is used for events still waiting on delayed actions);
* sent -> decided: the intended send time to the same decided time (includes HTTP or stream
  queueing and the accept itself).
All timestamps come from the same machine clock. CPU seconds used per process kind during each
phase are read from /proc, to show what saturates. Results: a table on stdout and
bench/results/event_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from http_execute import PacedGenerator, bench_api_key_headers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

TARGET_P99_MS = 50.0
TARGET_RATE = 500
USERS = 5000  # distinct subjects, so decisions do not all queue on one subject_state row


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Child:
    """One process the bench started, in its own process group, logging to a file."""

    kind: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        """Start the process (not waiting for anything)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the log shows `text`. Raises RuntimeError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while text not in self.log_path.read_text(errors="replace"):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} not ready after {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM its process group, SIGKILL it if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        """The end of the log."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _processes() -> Iterator[tuple[int, int, str, float]]:
    """(pid, process group, command line, CPU seconds used) of every process on the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        rest = stat.rsplit(")", 1)[1].split()
        # Fields after the name: state ppid pgrp ... utime (12th) stime (13th).
        yield int(entry.name), int(rest[2]), command, (int(rest[11]) + int(rest[12])) / ticks


class CpuMeter:
    """CPU seconds per process kind: the bench's children (by process group), the PostgreSQL
    backends serving the bench database, the Redis server (shared by every database on it) and
    the load generator itself. Counted per process, so processes that exit between two samples
    never make a kind go backwards.
    """

    def __init__(self, children: Sequence[Child], database: str) -> None:
        self.children = children
        self.database = database

    def sample(self) -> dict[int, tuple[str, float]]:
        """Cumulative CPU seconds of every process the bench accounts for, by pid."""
        groups = {c.proc.pid: c.kind for c in self.children if c.proc is not None}
        found: dict[int, tuple[str, float]] = {}
        for pid, group, command, seconds in _processes():
            if group in groups:
                kind = groups[group]
            elif command.startswith("postgres:") and f" {self.database} " in command:
                kind = "postgres"
            elif command.startswith("redis-server"):
                kind = "redis (whole server)"
            elif pid == os.getpid():
                kind = "load generator"
            else:
                continue
            found[pid] = (kind, seconds)
        return found

    @staticmethod
    def used(
        before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
    ) -> dict[str, float]:
        """CPU seconds per kind between two samples."""
        totals: dict[str, float] = {}
        for pid, (kind, seconds) in after.items():
            earlier = before.get(pid)
            totals[kind] = totals.get(kind, 0.0) + seconds - (earlier[1] if earlier else 0.0)
        return {kind: round(value, 2) for kind, value in sorted(totals.items())}


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything on the machine, not only us)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# --- load -----------------------------------------------------------------------------------------


def _payload(rng: random.Random, context: dict[str, Any]) -> dict[str, Any]:
    payload = json.loads(json.dumps(context))
    payload["user"]["id"] = rng.randrange(USERS)
    return payload


@dataclass
class Sent:
    """One event sent: its key, intended and actual send times (epoch s), HTTP outcome."""

    key: str
    intended: float
    started: float = 0.0
    finished: float = 0.0
    status: int = 0


def _pace(count: int, rate: float, send: Callable[[int, float], None]) -> float:
    """Call `send(i, intended_time)` at `start + i / rate`; returns the start (epoch s)."""
    start = time.time() + 0.2
    for index in range(count):
        intended = start + index / rate
        delay = intended - time.time()
        if delay > 0:
            time.sleep(delay)
        send(index, intended)
    return start


def send_rest(
    base_url: str,
    keys: list[str],
    rate: float,
    context: dict[str, Any],
    connections: int,
    headers: dict[str, str],
) -> list[Sent]:
    """POST /new-event for each key at `rate`/s over `connections` keep-alive connections,
    each request with `headers` (the API key).

    The sender is http_execute's paced generator (asyncio, requests encoded up front), not an
    HTTP client library: at 500 events/s a thread pool of httpx clients burned almost a core
    of the two this machine has, which the server then lacked.
    """
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    rng = random.Random(1)
    bodies = [
        json.dumps({"type": "checkout", "key": key, "payload": _payload(rng, context)}).encode()
        for key in keys
    ]
    sent = [Sent(key, 0.0) for key in keys]
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    # The generator's clock is perf_counter; the rows' timestamps are wall-clock time.
    offset = time.time() - time.perf_counter()

    def on_send(index: int) -> None:
        sent[index].started = time.perf_counter() + offset

    def on_answer(index: int, status: int) -> None:
        sent[index].finished = time.perf_counter() + offset
        sent[index].status = status

    async def main() -> float:
        """Send everything; returns when request 0 was due (perf_counter)."""
        generator = PacedGenerator(
            host,
            int(port),
            "/new-event",
            bodies,
            connections,
            {**headers, "Accept": "application/json"},
            on_send=on_send,
            on_answer=on_answer,
            give_up=False,
        )
        generator.drain_seconds = 60.0
        await generator.open()
        await generator.run(rate, len(keys) / rate)
        for connection in [*generator.free, *generator.busy]:
            if connection.transport is not None:
                connection.transport.close()
        return generator.start

    # The generator sends request i at its start + i / rate.
    start = asyncio.run(main()) + offset
    for index, record in enumerate(sent):
        record.intended = start + index / rate
        if not record.started:  # never sent (the server stopped answering)
            record.started = record.finished = record.intended
            record.status = -1
    return sent


def send_stream(
    redis_url: str, stream: str, keys: list[str], rate: float, context: dict[str, Any]
) -> list[Sent]:
    """XADD one event message per key at `rate`/s."""
    from ingress.streams import publish_event, redis_client

    rng = random.Random(2)
    payloads = [_payload(rng, context) for _ in keys]
    sent = [Sent(key, 0.0) for key in keys]
    client = redis_client(redis_url)

    def publish(index: int, intended: float) -> None:
        record = sent[index]
        record.intended = intended
        record.started = time.time()
        publish_event(
            client, type="checkout", key=keys[index], payload=payloads[index], stream=stream
        )
        record.finished = time.time()
        record.status = 200

    _pace(len(keys), rate, publish)
    client.close()
    return sent


# --- measuring ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty values."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _stats(values: Sequence[float], undecided: int = 0) -> dict[str, float | None]:
    """p50/p99/max/mean; undecided events count as infinitely late (a percentile they reach is
    reported as None: longer than the bench waited)."""
    if not values and not undecided:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    every = [*values, *([float("inf")] * undecided)]

    def finite(value: float) -> float | None:
        return None if value == float("inf") else round(value, 2)

    return {
        "p50": finite(percentile(every, 50)),
        "p99": finite(percentile(every, 99)),
        "max": finite(max(every)),
        "mean": round(statistics.fmean(values), 2) if values and not undecided else None,
    }


def reset_event_tables() -> None:
    """Empty the event and audit tables of the bench's own database, so every run starts alike
    (earlier runs' rows would slow this run's inserts and polls down by a little more each
    time). Writes nothing outside the bench database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE ingress_event, ingress_pendingcancellation, rules_engine_execution, "
            "rules_engine_subjectstate, scheduling_scheduledaction, egress_delivery CASCADE"
        )


def wait_decided(prefix: str, count: int, timeout: float) -> bool:
    """Wait until `count` events with keys starting with `prefix` left the open statuses
    (count -1: until none of them is open). Returns whether that happened in time."""
    from ingress.models import Event

    deadline = time.monotonic() + timeout
    events = Event.objects.filter(key__startswith=prefix)
    while time.monotonic() < deadline:
        # All stored first, then none open: in the other order an event stored between the
        # two queries (the stream consumer still accepting) could be missed while undecided.
        if (count < 0 or events.count() >= count) and not events.filter(
            status__in=["received", "processing"]
        ).exists():
            return True
        time.sleep(0.25)
    return False


def measure(prefix: str, sent: list[Sent]) -> dict[str, Any]:
    """Latencies of the events of one phase, from their rows."""
    from ingress.models import Event

    rows = {
        key: (received, finished, created, status)
        for key, received, finished, created, status in Event.objects.filter(
            key__startswith=prefix
        ).values_list("key", "received_at", "finished_at", "execution__created_at", "status")
    }
    accepted: list[float] = []
    end_to_end: list[float] = []
    statuses: dict[str, int] = {}
    for record in sent:
        row = rows.get(record.key)
        if row is None:
            statuses["missing"] = statuses.get("missing", 0) + 1
            continue
        received, finished, created, status = row
        statuses[status] = statuses.get(status, 0) + 1
        decided = finished if finished is not None else created
        if status != "completed" or decided is None:
            continue
        accepted.append((decided - received).total_seconds() * 1000)
        end_to_end.append((decided.timestamp() - record.intended) * 1000)
    undecided = len(sent) - len(accepted)
    send_lag = [(r.started - r.intended) * 1000 for r in sent]
    response = [(r.finished - r.intended) * 1000 for r in sent]
    return {
        "events": len(sent),
        "statuses": statuses,
        "undecided_when_measured": undecided,
        "http_errors": sum(1 for r in sent if r.status not in (200, 202)),
        "accepted_to_decided_ms": _stats(accepted, undecided),
        "sent_to_decided_ms": _stats(end_to_end, undecided),
        "send_response_ms": _stats(response),
        "send_lag_ms": _stats(send_lag),
    }


def per_event(cpu: dict[str, float], result: dict[str, Any]) -> dict[str, float | None]:
    """CPU ms per event of each kind: accepting ones per stored event, deciding ones (and the
    database, mostly busy deciding) per decided event."""
    stored = result["events"] - result["statuses"].get("missing", 0)
    decided = result["statuses"].get("completed", 0)
    divisors = {"web": stored, "consumer": stored, "worker": decided, "postgres": decided}
    return {
        kind: round(cpu.get(kind, 0.0) * 1000 / count, 2) if count else None
        for kind, count in divisors.items()
    }


# --- the run --------------------------------------------------------------------------------------


def _manage(env: dict[str, str], *command: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=300
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_http(base_url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Any answer will do (this event does not exist: 404).
            httpx.get(
                f"{base_url}/status/00000000-0000-0000-0000-000000000000",
                headers=headers,
                timeout=2,
            )
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rates", default="100,500", help="events per second, comma list")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (medians are reported)")
    parser.add_argument("--channels", default="rest,stream", help="rest, stream or both")
    parser.add_argument("--quick", action="store_true", help="3 s phases, one round")
    parser.add_argument("--web-workers", type=int, default=2, help="granian worker processes")
    parser.add_argument("--web-threads", type=int, default=4, help="granian blocking threads")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery prefork size")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--prefetch", type=int, default=1, help="Celery prefetch multiplier")
    parser.add_argument("--consumers", type=int, default=1, help="stream consumer processes")
    parser.add_argument(
        "--connections", type=int, default=32, help="keep-alive connections of the REST sender"
    )
    parser.add_argument("--max-events", type=int, default=20_000, help="cap per phase")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds after a phase to wait for decisions"
    )
    parser.add_argument(
        "--drain", type=float, default=300.0, help="longest wait for a backlog between phases"
    )
    parser.add_argument("--pool", default="prefork", help="Celery pool: prefork or solo")
    parser.add_argument("--output", default=str(RESULTS / "event_latency.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 3.0, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url.startswith("redis"):
        print("DATABASE_URL (PostgreSQL) and REDIS_URL are required; see `make bench-events`.")
        return 2
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    run_id = f"bench-{datetime.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
    stream = f"verdict:bench:{run_id}:events"
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        LOG_LEVEL="WARNING",
        VERDICT_CACHE_CHECK_INTERVAL=os.environ.get("VERDICT_CACHE_CHECK_INTERVAL", "0.1"),
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", redis_url),
        CELERY_PREFETCH_MULTIPLIER=str(args.prefetch),
        PYTHONUNBUFFERED="1",
    )
    # This process reads results through the ORM: no query log, no per-request log lines.
    os.environ.update(DJANGO_DEBUG="0", LOG_LEVEL="WARNING")

    print(f"setting up {database_url.rsplit('/', 1)[-1]} ...", flush=True)
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "rules_load_demo")

    import django

    django.setup()
    from rules_engine.management.commands.rules_load_demo import DEMO_FILE

    context = json.loads(DEMO_FILE.read_text())["entry_point"]["context_schema"]["examples"][0]
    reset_event_tables()
    # Before the servers start: creating a key moves the cache generation stamp.
    headers = bench_api_key_headers("bench:event_latency")

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    # The production web server of `make serve` (granian WSGI, workers x blocking threads).
    web = f"-m granian --interface wsgi config.wsgi:application --host 127.0.0.1 --port {port}"
    web += f" --workers {args.web_workers} --blocking-threads {args.web_threads} --no-ws"
    web += " --log-level warning --no-access-log"
    children = [Child("web", [sys.executable, *web.split()], env, logs / f"{run_id}-web.log")]
    for n in range(args.workers):
        worker = f"-m celery -A config worker --pool={args.pool}"
        worker += f" --concurrency={args.worker_concurrency}"
        worker += (
            " --loglevel=WARNING -O fair --without-gossip --without-mingle --without-heartbeat"
        )
        children.append(
            Child(
                "worker",
                [sys.executable, *worker.split(), "-n", f"bench{n}-{run_id}@%h"],
                env,
                logs / f"{run_id}-worker{n}.log",
            )
        )
    for n in range(args.consumers):
        consumer = f"manage.py ingress_consume --stream {stream} --dead-letter-stream {stream}:dead"
        children.append(
            Child(
                "consumer",
                [sys.executable, *consumer.split(), "--consumer", f"bench-{n}"],
                env,
                logs / f"{run_id}-consumer{n}.log",
            )
        )
    meter = CpuMeter(children, database_url.rsplit("/", 1)[-1].split("?")[0])
    phases: list[dict[str, Any]] = []
    try:
        for child in children:
            child.start()
        _wait_http(base_url, headers)
        for child in children:
            if child.kind == "consumer":
                child.wait_for_log("ingress_consume ready")
        # Warm up every process (connections, compiled rulesets) before measuring.
        for channel in channels:
            keys = [f"{run_id}-warm-{channel}-{i}" for i in range(100)]
            if channel == "rest":
                send_rest(base_url, keys, 100, context, args.connections, headers)
            else:
                send_stream(redis_url, stream, keys, 100, context)
            if not wait_decided(f"{run_id}-warm-{channel}-", len(keys), 120):
                print(f"warm-up over {channel} was not decided; see {logs}")
                return 1
        for round_no in range(1, args.rounds + 1):
            for rate in rates:
                for channel in channels:
                    count = min(int(rate * args.duration), args.max_events)
                    prefix = f"{run_id}-r{round_no}-{channel}-{rate}-"
                    keys = [f"{prefix}{i}" for i in range(count)]
                    print(f"round {round_no}: {channel} at {rate}/s, {count} events", flush=True)
                    before = meter.sample()
                    busy_before = machine_busy_seconds()
                    load_before = os.getloadavg()[0]
                    started = time.monotonic()
                    if channel == "rest":
                        sent = send_rest(base_url, keys, rate, context, args.connections, headers)
                    else:
                        sent = send_stream(redis_url, stream, keys, rate, context)
                    all_decided = wait_decided(prefix, count, args.wait)
                    elapsed = time.monotonic() - started
                    cpu = CpuMeter.used(before, meter.sample())
                    cpu["machine (all processes)"] = round(machine_busy_seconds() - busy_before, 2)
                    result = measure(prefix, sent)
                    result.update(
                        round=round_no,
                        channel=channel,
                        rate=rate,
                        duration_s=args.duration,
                        all_decided=all_decided,
                        cpu_seconds=cpu,
                        cpu_ms_per_event=per_event(cpu, result),
                        load_average_before=round(load_before, 2),
                        wall_seconds=round(elapsed, 2),
                    )
                    # A backlog left by this phase would be charged to the next one.
                    drain_started = time.monotonic()
                    result["drained"] = wait_decided(run_id, -1, args.drain)
                    result["drain_seconds"] = round(time.monotonic() - drain_started, 2)
                    phases.append(result)
                    time.sleep(1.0)
    finally:
        for child in reversed(children):
            child.stop()
        from ingress.streams import redis_client

        cleanup = redis_client(redis_url)
        cleanup.delete(stream, f"{stream}:dead")
        cleanup.close()

    summary = summarize(phases, channels, rates)
    report = {
        "benchmark": "event_latency",
        "run_id": run_id,
        "when": datetime.now().isoformat(timespec="seconds"),
        "command": "make bench-events BENCH_ARGS=" + json.dumps(" ".join(argv or sys.argv[1:])),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "setup": {
            "web": f"granian WSGI, {args.web_workers} workers x {args.web_threads} threads",
            "celery": f"{args.workers} worker(s), {args.pool} pool, concurrency "
            f"{args.worker_concurrency}, "
            f"prefetch multiplier {args.prefetch}",
            "consumers": args.consumers,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "subjects": USERS,
        },
        "target": {"rate": TARGET_RATE, "p99_ms_below": TARGET_P99_MS},
        "summary": summary,
        "phases": phases,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_table(summary)
    print(f"\nwritten to {output}")
    return 0


def summarize(
    phases: list[dict[str, Any]], channels: list[str], rates: list[int]
) -> list[dict[str, Any]]:
    """Per channel and rate: medians over rounds of p50/p99, and whether the target holds."""
    rows = []
    inf = float("inf")
    for rate in rates:
        for channel in channels:
            runs = [p for p in phases if p["channel"] == channel and p["rate"] == rate]
            if not runs:
                continue

            def median(metric: str, key: str, runs: list[dict[str, Any]] = runs) -> float | None:
                # None means "not decided within the wait": infinitely late, not missing.
                values = [inf if r[metric][key] is None else r[metric][key] for r in runs]
                middle = statistics.median(values)
                return None if middle == inf else round(middle, 2)

            completed = sum(r["statuses"].get("completed", 0) for r in runs)
            events = sum(r["events"] for r in runs)
            p99 = median("accepted_to_decided_ms", "p99")
            rows.append(
                {
                    "channel": channel,
                    "rate": rate,
                    "rounds": len(runs),
                    "events": events,
                    "completed": completed,
                    "accepted_to_decided_p50_ms": median("accepted_to_decided_ms", "p50"),
                    "accepted_to_decided_p99_ms": p99,
                    "sent_to_decided_p50_ms": median("sent_to_decided_ms", "p50"),
                    "sent_to_decided_p99_ms": median("sent_to_decided_ms", "p99"),
                    "send_response_p99_ms": median("send_response_ms", "p99"),
                    "meets_target": (
                        None
                        if rate != TARGET_RATE
                        else bool(p99 is not None and p99 < TARGET_P99_MS and completed == events)
                    ),
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """The summary as a fixed-width table."""
    header = (
        f"{'channel':8} {'rate/s':>6} {'events':>7} {'done':>7} "
        f"{'acc->dec p50':>12} {'p99':>8} {'sent->dec p50':>13} {'p99':>8} {'target':>7}"
    )
    print("\n" + header)
    print("-" * len(header))

    def ms(value: float | None) -> str:
        # None: not decided within the wait (counted as infinitely late).
        return ">wait" if value is None else f"{value:.1f}"

    for row in rows:
        target = {None: "", True: "met", False: "MISSED"}[row["meets_target"]]
        print(
            f"{row['channel']:8} {row['rate']:>6} {row['events']:>7} {row['completed']:>7} "
            f"{ms(row['accepted_to_decided_p50_ms']):>12} "
            f"{ms(row['accepted_to_decided_p99_ms']):>8} "
            f"{ms(row['sent_to_decided_p50_ms']):>13} {ms(row['sent_to_decided_p99_ms']):>8} "
            f"{target:>7}"
        )
    print(f"(ms; target: accepted->decided p99 < {TARGET_P99_MS:.0f} ms at {TARGET_RATE}/s)")


if __name__ == "__main__":
    sys.exit(main())
