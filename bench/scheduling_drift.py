"""Delayed-action drift: Verdict's scheduler against plain Celery ETA tasks, on the same load.

For each size N (1,000, 10,000, 100,000 by default) it runs two phases on the bench database
and Redis (DATABASE_URL, REDIS_URL; `make bench-scheduling` sets both):

  verdict     N events, each waiting for one delayed `update` action (adds 1 to its subject's
              `$state.runs`), due uniformly at random over a window of N / rate seconds (rate
              1,250/s: 80 s at 100,000). The real `manage.py scheduling_sweep` process(es) and
              Celery worker process(es) run them; 10% of the events are cancelled through
              `ingress.services.event_cancel` 0.3-4 s before their action is due (some still
              pending in PostgreSQL, some already published to Celery).
  celery_eta  the same N due times as plain `apply_async(eta=...)` tasks of a trivial task
              that records when it started (and how often it ran), with `revoke` for the same
              10%, on the same worker configuration.

Start = when the action starts running: for Verdict the instant the worker calls the action's
handler (stored as the row's `started_at` with its done mark), for the baseline the first
line of the task body. Lateness = start - due. Duplicates and cancelled runs are read from the
actions' own writes (`$state.runs` per subject) and, for the baseline, from the task's run
counter. Peak worker memory is the RSS of every process of the worker (main + pool children),
sampled every 250 ms.

    python bench/scheduling_drift.py [--sizes 1000,10000,100000] [--quick] [--rounds N]

prints a table and writes bench/results/scheduling_drift.json (medians over the rounds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from celery import shared_task  # noqa: E402  (after the path set-up above)

RESULTS = ROOT / "bench" / "results"
STARTS_KEY = "bench:eta:starts"
RUNS_KEY = "bench:eta:runs"
PLUGIN = "bench.scheduling_drift"
ANCHOR = datetime(2100, 1, 1, tzinfo=UTC)
CANCEL_SHARE = 0.10
CANCEL_LEAD = (0.3, 4.0)

_redis_client: Any = None


def _redis() -> Any:
    global _redis_client
    if _redis_client is None:
        import redis
        from django.conf import settings

        _redis_client = redis.Redis.from_url(settings.REDIS_URL)
    return _redis_client


@shared_task(name="bench.eta_probe", ignore_result=True, acks_late=True)
def eta_probe(key: str) -> None:
    """Baseline task: record when it first started and count its runs (nothing else)."""
    started = time.time()
    pipe = _redis().pipeline(transaction=False)
    pipe.hsetnx(STARTS_KEY, key, repr(started))
    pipe.hincrby(RUNS_KEY, key, 1)
    pipe.execute()


# --- processes -------------------------------------------------------------------------


class Proc:
    """A child process in its own session (so its whole group can be measured and stopped)."""

    def __init__(self, name: str, args: list[str], ready: str, env: dict[str, str]) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = RESULTS / f"{name}.log"
        handle = self.log.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while ready not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL if it lingers."""
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def rss_bytes(self) -> int:
        """The resident memory of every process in this process group."""
        total = 0
        page = os.sysconf("SC_PAGE_SIZE")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) != self.proc.pid:
                    continue
                total += int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
        return total


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # DEBUG off as in production (`make serve`): with it on, Django keeps the last 9,000
    # queries per connection, which would show up as worker memory growing with N.
    env.update(
        PYTHONUNBUFFERED="1",
        VERDICT_PLUGINS=PLUGIN,
        LOG_LEVEL="WARNING",
        DJANGO_DEBUG="false",
        **extra,
    )
    return env


def start_workers(count: int, concurrency: int, tag: str) -> list[Proc]:
    """Celery worker processes (prefork) for this project, with the bench's probe task."""
    return [
        Proc(
            f"{tag}-worker{index}",
            [
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
                "-n",
                f"bench{index}-{uuid.uuid4().hex[:6]}@%h",
            ],
            "ready.",
            _env(),
        )
        for index in range(count)
    ]


def start_sweepers(count: int, interval: float) -> list[Proc]:
    """`manage.py scheduling_sweep` processes."""
    return [
        Proc(
            f"sweeper{index}",
            [sys.executable, "manage.py", "scheduling_sweep", "--interval", str(interval)],
            "scheduling sweeper ready",
            _env(),
        )
        for index in range(count)
    ]


@contextmanager
def memory_sampler(workers: list[Proc]) -> Iterator[dict[str, int]]:
    """Samples the workers' summed RSS every 250 ms; yields {"peak": bytes, "first": bytes}."""
    seen = {"peak": 0, "first": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = sum(w.rss_bytes() for w in workers)
            seen["first"] = seen["first"] or rss
            seen["peak"] = max(seen["peak"], rss)
            stop.wait(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def at(moment: float, fn: Callable[[], Any]) -> Any:
    """Sleep until wall-clock `moment` (epoch seconds), then call fn."""
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)
    return fn()


# --- load ------------------------------------------------------------------------------


def plan(n: int, rate: float, seed: int) -> tuple[list[float], set[int], dict[int, float]]:
    """Due offsets (seconds from the window start), the cancelled indexes and their leads."""
    rng = random.Random(seed)
    window = n / rate
    offsets = sorted(rng.uniform(0, window) for _ in range(n))
    cancelled = set(rng.sample(range(n), round(n * CANCEL_SHARE)))
    leads = {index: rng.uniform(*CANCEL_LEAD) for index in cancelled}
    return offsets, cancelled, leads


def summarize(lateness_ms: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max of the lateness (ms); None when nothing ran."""
    if not lateness_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    values = sorted(lateness_ms)

    def pct(q: float) -> float:
        return round(values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))], 1)

    return {"p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


def reset_state() -> None:
    """Empty the bench database's events, delayed actions and subject state, and Redis."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE scheduling_scheduledaction, ingress_event, rules_engine_subjectstate CASCADE"
        )
    _redis().flushdb()


def run_verdict(n: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One round of the Verdict pipeline on N actions."""
    from django.db import connection
    from django.db.models import Count, F

    from ingress.models import Event
    from ingress.services import event_cancel
    from rules_engine.models import SubjectState
    from scheduling.models import ScheduledAction

    reset_state()
    offsets, cancelled, leads = plan(n, args.rate, seed)
    spec: dict[str, Any] = {"type": "display_message", "params": {"template": "bench"}}
    if args.action == "update":
        spec = {
            "type": "update",
            "params": {
                "target": "subject_state",
                "set": {"runs": {"+": [{"var": ["$state.runs", 0]}, 1]}},
            },
        }
    rule_id = uuid.uuid4()
    events = [Event(type="bench", key=f"b{i}", subject=f"b{i}", status="waiting") for i in range(n)]
    setup_started = time.time()
    Event.objects.bulk_create(events, batch_size=5000)
    if args.action == "update":
        SubjectState.objects.bulk_create(
            [SubjectState(subject=f"b{i}", attributes={}) for i in range(n)], batch_size=5000
        )
    ScheduledAction.objects.bulk_create(
        [
            ScheduledAction(
                event_id=events[i].pk,
                entry_point_key="bench",
                rule_id=rule_id,
                rule_name="bench",
                rule_version=1,
                action_index=0,
                spec=spec,
                subject=f"b{i}",
                due_at=ANCHOR + timedelta(seconds=offsets[i]),
            )
            for i in range(n)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE scheduling_scheduledaction")
    setup_s = time.time() - setup_started

    workers = start_workers(args.workers, args.concurrency, "verdict")
    sweepers = start_sweepers(args.sweepers, args.sweep_interval)
    try:
        with memory_sampler(workers) as memory:
            # Move the whole schedule to start a few seconds from now, in one statement.
            t0 = time.time() + args.lead
            shift = datetime.fromtimestamp(t0, UTC) - ANCHOR
            ScheduledAction.objects.update(due_at=F("due_at") + shift)
            if time.time() > t0 - CANCEL_LEAD[1]:
                print(f"  warning: schedule set up late ({t0 - time.time():.1f} s before start)")
            late_cancels = 0

            def canceller() -> None:
                nonlocal late_cancels
                for index in sorted(cancelled, key=lambda i: offsets[i] - leads[i]):
                    due = t0 + offsets[index]
                    at(due - leads[index], partial(event_cancel, event=Event(pk=events[index].pk)))
                    if time.time() >= due:
                        late_cancels += 1

            thread = threading.Thread(target=canceller)
            thread.start()
            window_end = t0 + n / args.rate
            deadline = window_end + args.drain
            open_statuses = list(ScheduledAction.OPEN_STATUSES)
            while time.time() < deadline:
                time.sleep(1)
                if time.time() > window_end and not (
                    ScheduledAction.objects.filter(status__in=open_statuses).exists()
                ):
                    break
            thread.join()
    finally:
        for process in sweepers + workers:
            process.stop()

    # Runs seen in the actions' own writes (update) and in the claims (every start of an
    # action follows a successful claim, which adds one to `attempts`).
    runs = dict(SubjectState.objects.values_list("subject", "attributes__runs"))
    cancelled_subjects = {f"b{i}" for i in cancelled}
    lateness: list[float] = []
    early = extra_claims = cancelled_started = 0
    rows = ScheduledAction.objects.values_list(
        "subject", "status", "due_at", "started_at", "attempts"
    )
    for subject, status, due_at, started_at, attempts in rows.iterator(chunk_size=10000):
        extra_claims += max(0, attempts - 1)
        if subject in cancelled_subjects:
            cancelled_started += attempts > 0 or (runs.get(subject) or 0) > 0
        elif status == "done" and started_at is not None:
            delta = (started_at - due_at).total_seconds() * 1000
            lateness.append(delta)
            early += delta < 0
    statuses = dict(ScheduledAction.objects.values_list("status").annotate(c=Count("pk")))
    return {
        **summarize(lateness),
        "ran": len(lateness),
        "early": early,
        "cancelled_ran": cancelled_started,
        "duplicates": extra_claims + sum(max(0, (r or 0) - 1) for r in runs.values()),
        "not_run": n - len(cancelled) - len(lateness),
        "cancels_after_due": late_cancels,
        "statuses": statuses,
        "peak_worker_rss_mb": round(memory["peak"] / 2**20, 1),
        "idle_worker_rss_mb": round(memory["first"] / 2**20, 1),
        "setup_s": round(setup_s, 1),
    }


def run_celery_eta(n: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One round of plain Celery ETA tasks on the same N due times (revoke for the 10%)."""
    from config.celery import app

    reset_state()
    offsets, cancelled, leads = plan(n, args.rate, seed)
    workers = start_workers(args.workers, args.concurrency, "celery-eta")
    ids = [str(uuid.uuid4()) for _ in range(n)]
    try:
        with memory_sampler(workers) as memory:
            # Publishing takes a while: the window starts once every task can be sent in time.
            t0 = time.time() + args.lead + n / args.publish_rate
            publish_started = time.time()
            with app.producer_or_acquire() as producer:
                for index, offset in enumerate(offsets):
                    eta = datetime.fromtimestamp(t0 + offset, UTC)
                    eta_probe.apply_async(
                        args=[f"b{index}"], eta=eta, task_id=ids[index], producer=producer
                    )
            publish_s = time.time() - publish_started
            if time.time() > t0 - CANCEL_LEAD[1]:
                print(f"  warning: publishing ended late ({t0 - time.time():.1f} s before start)")
            late_revokes = 0

            def revoker() -> None:
                nonlocal late_revokes
                for index in sorted(cancelled, key=lambda i: offsets[i] - leads[i]):
                    due = t0 + offsets[index]
                    at(due - leads[index], partial(app.control.revoke, ids[index]))
                    if time.time() >= due:
                        late_revokes += 1

            thread = threading.Thread(target=revoker)
            thread.start()
            window_end = t0 + n / args.rate
            deadline = window_end + args.drain
            expected = n - len(cancelled)
            while time.time() < deadline:
                time.sleep(1)
                if time.time() > window_end and _redis().hlen(STARTS_KEY) >= expected:
                    break
            thread.join()
    finally:
        for process in workers:
            process.stop()

    starts = {k.decode(): float(v) for k, v in _redis().hgetall(STARTS_KEY).items()}
    runs = {k.decode(): int(v) for k, v in _redis().hgetall(RUNS_KEY).items()}
    lateness: list[float] = []
    early = 0
    for index, offset in enumerate(offsets):
        key = f"b{index}"
        if index in cancelled or key not in starts:
            continue
        delta = (starts[key] - (t0 + offset)) * 1000
        lateness.append(delta)
        early += delta < 0
    return {
        **summarize(lateness),
        "ran": len(lateness),
        "early": early,
        "cancelled_ran": sum(1 for i in cancelled if f"b{i}" in starts),
        "duplicates": sum(max(0, r - 1) for r in runs.values()),
        "not_run": n - len(cancelled) - len(lateness),
        "cancels_after_due": late_revokes,
        "peak_worker_rss_mb": round(memory["peak"] / 2**20, 1),
        "idle_worker_rss_mb": round(memory["first"] / 2**20, 1),
        "publish_s": round(publish_s, 1),
    }


# --- report ----------------------------------------------------------------------------

COLUMNS = [
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("early", "early"),
    ("cancelled_ran", "cancelled ran"),
    ("duplicates", "dups"),
    ("not_run", "not run"),
    ("peak_worker_rss_mb", "peak RSS MB"),
]


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric field over the rounds (the single round when there is one)."""
    if len(rounds) == 1:
        return rounds[0]
    merged: dict[str, Any] = {"rounds": rounds}
    for key, value in rounds[0].items():
        values = [r[key] for r in rounds if isinstance(r.get(key), (int, float))]
        merged[key] = statistics.median(values) if len(values) == len(rounds) else value
    return merged


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The results as a fixed-width text table."""
    header = ["N", "system", *(title for _, title in COLUMNS)]
    lines = [header]
    for size, systems in results.items():
        for system, row in systems.items():
            lines.append(
                [size, system, *("-" if row.get(k) is None else str(row[k]) for k, _ in COLUMNS)]
            )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )


def main() -> None:
    """Parse options, run every size (both systems), print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="smoke run: N=1000, no baseline drain")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per size (medians reported)")
    parser.add_argument("--rate", type=float, default=1250.0, help="due actions per second")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--sweepers", type=int, default=1, help="sweeper processes")
    parser.add_argument("--sweep-interval", type=float, default=0.1)
    parser.add_argument("--lead", type=float, default=6.0, help="seconds before the first due")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds allowed after the window"
    )
    parser.add_argument(
        "--publish-rate", type=float, default=2500.0, help="baseline publish budget/s"
    )
    parser.add_argument(
        "--action",
        choices=["message", "update"],
        default="message",
        help="delayed action: display_message (no write) or update of $state.runs",
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--output", default=str(RESULTS / "scheduling_drift.json"))
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        args.drain = 30.0

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from scheduling.conf import DEFAULTS, setting

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit("the benchmark needs PostgreSQL: set DATABASE_URL (make bench-scheduling)")
    call_command("migrate", verbosity=0)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        systems: dict[str, dict[str, Any]] = {}
        print(f"N={size}: verdict ...", flush=True)
        systems["verdict"] = median_round(
            [run_verdict(size, args, seed=r) for r in range(args.rounds)]
        )
        if not args.skip_baseline:
            print(f"N={size}: plain celery eta ...", flush=True)
            systems["celery_eta"] = median_round(
                [run_celery_eta(size, args, seed=r) for r in range(args.rounds)]
            )
        results[str(size)] = systems
        print(table({str(size): systems}), flush=True)

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "settings": {
            "rate_per_s": args.rate,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "sweepers": args.sweepers,
            "sweep_interval_s": args.sweep_interval,
            "rounds": args.rounds,
            "action": args.action,
            "knobs": {name: setting(name) for name in DEFAULTS},
        },
        "results": results,
    }
    print()
    print(table(results))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
