"""Operations endpoints: /healthz, /readyz and /metrics (unauthenticated, cheap).

* `/healthz` answers 200 while the process can serve a request; it touches nothing else.
* `/readyz` answers 200 when the database answers, every migration is applied, and Redis and
  the Celery broker are reachable; otherwise 503 naming the checks that failed. Each check
  has a short timeout; a positive migration check is remembered by the process (code and
  migrations only change together with a restart).
* `/metrics` is django-prometheus's export plus ours (`rules_engine.metrics`) plus the state
  gauges of `StateCollector`, read from PostgreSQL and Redis at scrape time and cached for
  `VERDICT["METRICS_STATE_SECONDS"]` in the shared cache, so they are the same whichever
  process answers. With PROMETHEUS_MULTIPROC_DIR set, counters of every process of the host
  that shares the directory are added up (deploy/README.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from rules_engine import tally

logger = logging.getLogger(__name__)

STATE_CACHE_KEY = "verdict:metrics:state"
CHECK_TIMEOUT_SECONDS = 2.0


# --- health ----------------------------------------------------------------------------------


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """200 while the process serves requests; checks no dependency."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """200 when database, migrations, Redis and broker are fine, else 503 naming the failures.

    The body lists every check as "ok", "skipped: <why>" or "error: <exception class>" (the
    full error goes to the log, never to the caller).
    """
    checks: dict[str, str] = {}
    for name, check in _CHECKS:
        if name == "migrations" and checks["database"] != "ok":
            # Unknown is not ready: the database must answer before migrations can be read.
            checks[name] = "error: database unavailable"
            continue
        try:
            skipped = check()
        except Exception as exc:
            logger.warning("readiness check %s failed", name, exc_info=True)
            checks[name] = f"error: {type(exc).__name__}"
            continue
        checks[name] = f"skipped: {skipped}" if skipped else "ok"
    failed = [name for name, result in checks.items() if result.startswith("error")]
    body: dict[str, Any] = {"status": "unavailable" if failed else "ready", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


def _check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return None


_migrations_applied = False


def _check_migrations() -> str | None:
    """Raise MigrationsPending when a migration on disk is not applied to the database."""
    global _migrations_applied
    if _migrations_applied:
        return None
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise MigrationsPending(f"{len(plan)} migrations not applied")
    _migrations_applied = True
    return None


class MigrationsPending(Exception):
    """Migrations exist that the database has not applied."""


_redis_clients: dict[str, redis.Redis] = {}
_redis_lock = threading.Lock()


def _redis() -> redis.Redis:
    """A client for REDIS_URL with short timeouts, one per process."""
    url = settings.REDIS_URL
    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                socket_timeout=CHECK_TIMEOUT_SECONDS,
            )
            _redis_clients[url] = client
        return client


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return "REDIS_URL not set (embedded defaults)"
    _redis().ping()
    return None


def _check_broker() -> str | None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_SECONDS)
    return None


_CHECKS: tuple[tuple[str, Callable[[], str | None]], ...] = (
    ("database", _check_database),
    ("migrations", _check_migrations),
    ("redis", _check_redis),
    ("broker", _check_broker),
)


# --- metrics ---------------------------------------------------------------------------------


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition of this process (or of the host, in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The default registry's collection adds this process's tallied counts first; the
        # multiprocess one reads the files, so they are written before (other processes add
        # theirs within tally.FLUSH_INTERVAL).
        tally.flush()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(state_collector)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class StateCollector:
    """Gauges of shared state, read at scrape time (cached briefly in the shared cache).

    verdict_events{status}, verdict_deliveries{status}, verdict_scheduled_actions{status},
    verdict_scheduled_actions_overdue, verdict_stream_consumer_lag{stream,group},
    verdict_stream_consumer_pending{stream,group}, verdict_stream_length{stream,role} and
    verdict_state_up{source}: 0 when the database or Redis could not be read (their gauges
    are then left out rather than reported as zero).
    """

    def describe(self) -> list[Metric]:
        """Nothing: describing would query the database when the collector is registered."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges from the latest snapshot."""
        snapshot = state_snapshot()
        up = GaugeMetricFamily(
            "verdict_state_up",
            "Whether the state gauges could be read from the source (database, redis).",
            labels=["source"],
        )
        for source in ("database", "redis"):
            # Redis is not reported at all under the embedded defaults (no REDIS_URL).
            if f"{source}_ok" in snapshot:
                up.add_metric([source], 1.0 if snapshot[f"{source}_ok"] else 0.0)
        yield up
        for name, text in (
            ("events", "Events by status."),
            ("deliveries", "Egress deliveries by status (dead = dead letters)."),
            ("scheduled_actions", "Scheduled (delayed) actions by status."),
        ):
            counts = snapshot.get(name)
            if counts is None:
                continue
            family = GaugeMetricFamily(f"verdict_{name}", text, labels=["status"])
            for status, count in sorted(counts.items()):
                family.add_metric([status], float(count))
            yield family
        if "overdue" in snapshot:
            yield GaugeMetricFamily(
                "verdict_scheduled_actions_overdue",
                "Delayed actions still pending or enqueued more than "
                "METRICS_OVERDUE_GRACE_SECONDS after their due time.",
                value=float(snapshot["overdue"]),
            )
        groups = snapshot.get("stream_groups")
        if groups is not None:
            lag = GaugeMetricFamily(
                "verdict_stream_consumer_lag",
                "Entries of the ingress stream not yet delivered to the consumer group "
                "(NaN when Redis cannot tell).",
                labels=["stream", "group"],
            )
            pending = GaugeMetricFamily(
                "verdict_stream_consumer_pending",
                "Entries delivered to the consumer group but not acknowledged yet.",
                labels=["stream", "group"],
            )
            for stream, group, group_lag, group_pending in groups:
                value = float("nan") if group_lag is None else float(group_lag)
                lag.add_metric([stream, group], value)
                pending.add_metric([stream, group], float(group_pending))
            yield lag
            yield pending
        lengths = snapshot.get("stream_lengths")
        if lengths is not None:
            length = GaugeMetricFamily(
                "verdict_stream_length",
                "Entries in the ingress stream (role=ingress) and its dead-letter stream "
                "(role=dead_letter).",
                labels=["stream", "role"],
            )
            for stream, role, count in lengths:
                length.add_metric([stream, role], float(count))
            yield length


def state_snapshot() -> dict[str, Any]:
    """The numbers behind `StateCollector`, from the shared cache or read afresh.

    Reads never raise: a source that fails is logged and marked down in the snapshot.
    """
    ttl = float(settings.VERDICT.get("METRICS_STATE_SECONDS", 10))
    if ttl > 0:
        try:
            cached = cache.get(STATE_CACHE_KEY)
        except Exception:  # noqa: BLE001  (the cache is an optimisation here)
            cached = None
        if isinstance(cached, dict):
            return cached
    snapshot = {**_database_state(), **_redis_state()}
    if ttl > 0:
        # The cache is an optimisation here: a failed write only means the next scrape reads.
        with contextlib.suppress(Exception):
            cache.set(STATE_CACHE_KEY, snapshot, timeout=ttl)
    return snapshot


def _database_state() -> dict[str, Any]:
    from egress.models import Delivery
    from ingress.models import Event
    from scheduling.models import ScheduledAction

    grace = float(settings.VERDICT.get("METRICS_OVERDUE_GRACE_SECONDS", 5))
    timeout_ms = int(float(settings.VERDICT.get("METRICS_STATE_TIMEOUT_SECONDS", 2)) * 1000)
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # A slow count must not hold a scrape (or a connection) for long.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)]
                    )
            state: dict[str, Any] = {
                "events": _by_status(Event),
                "deliveries": _by_status(Delivery),
                "scheduled_actions": _by_status(ScheduledAction),
                "overdue": ScheduledAction.objects.filter(
                    status__in=ScheduledAction.CANCELLABLE,
                    due_at__lt=timezone.now() - timedelta(seconds=grace),
                ).count(),
            }
    except Exception:
        logger.warning("could not read the state gauges from the database", exc_info=True)
        return {"database_ok": False}
    return {**state, "database_ok": True}


def _by_status(model: Any) -> dict[str, int]:
    counts = {status: 0 for status in model.Status.values}
    for status, count in model.objects.order_by().values_list("status").annotate(Count("pk")):
        counts[status] = count
    return counts


def _redis_state() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {}
    from ingress.streams import ConsumerConfig

    config = ConsumerConfig.from_settings()
    try:
        client = _redis()
        groups: list[tuple[str, str, int | None, int]] = []
        try:
            infos: Any = client.xinfo_groups(config.stream)
        except redis.ResponseError:
            infos = []  # no stream yet: nothing to lag behind
        for info in infos:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            # Redis reports no lag (nil) when it cannot tell, e.g. after entries were deleted.
            lag = info.get("lag")
            groups.append((config.stream, name, lag, int(info["pending"])))
        lengths = [
            (config.stream, "ingress", int(client.xlen(config.stream))),
            (config.dead_letter_stream, "dead_letter", int(client.xlen(config.dead_letter_stream))),
        ]
    except Exception:
        logger.warning("could not read the stream gauges from Redis", exc_info=True)
        return {"redis_ok": False}
    return {"redis_ok": True, "stream_groups": groups, "stream_lengths": lengths}


state_collector = StateCollector()
_registered = False
_register_lock = threading.Lock()


def register_state_collector() -> None:
    """Add the state gauges to the process's default registry, once."""
    global _registered
    with _register_lock:
        if not _registered:
            REGISTRY.register(state_collector)
            _registered = True


register_state_collector()
