"""Writes of analytics: the periodic rollup of the audit trail into hourly rows.

How it stays exact. Each run reads the audit rows with `watermark <= created_at < now - LAG`
(half-open, by time alone: a row belongs to exactly one run's window, however many rows share
a timestamp, so no id tie-break is needed), adds their counts to the hour rows, and moves the
watermark to the window's end, all in one transaction holding the watermark row locked. A run
that fails leaves both unchanged; a second run, concurrent or repeated, waits for the lock and
then starts where the first one stopped. So no row is counted twice.

Rows committed late: `created_at` is set when a row is inserted, and its transaction may
commit later (an event batch, a caller's transaction). The window stops `LAG` seconds before
now, so a row is read only once every transaction that could still insert at that time has
committed. Every row whose transaction commits within `LAG` of its insert is counted exactly
once; the engine's transactions last milliseconds to seconds, and `LAG` (default 120 s,
`VERDICT["ANALYTICS_LAG_SECONDS"]`) bounds them with a wide margin. The cost is that
dashboards trail real time by `LAG` plus the beat period. (The alternative, recomputing the
recent buckets in full on every run, would rescan up to an hour of audit rows every 30 s.)
`rollups_rebuild` recomputes whole hours from the audit trail, to repair a window by hand.

Variants: a rule's audit entry names its experiment variant (`"variant": "<experiment>:<arm>"`,
set by `experiments.runtime`). In a shadow rollout (`"shadow": true`) the live rule decided
and the variant was only evaluated on the side, so the entry counts under no variant ("")
with the live outcome; shadow outcomes are the experiments app's to report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics import histogram
from analytics.models import EntryPointRollup, RollupWatermark, RuleRollup
from rules_engine.models import Execution, RulesetSnapshot
from rules_engine.selectors import execution_rule_results

logger = logging.getLogger(__name__)

WATERMARK = "executions"
# The rule outcomes whose condition ran (the others: skipped after a stop_processing rule).
EVALUATED = ("matched", "not_matched", "error", "suppressed")
# A run reads at most this much audit time, so a long pause is caught up in bounded steps.
MAX_WINDOW = timedelta(hours=6)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

RuleKey = tuple[str, str, datetime]  # rule id, variant, hour
EntryPointKey = tuple[int, datetime]  # entry point id, hour


def lag() -> timedelta:
    """How long after its insert an audit row is read (its transaction must commit before)."""
    return timedelta(seconds=float(settings.VERDICT.get("ANALYTICS_LAG_SECONDS", 120)))


@dataclass
class _Tally:
    """Counts of one rollup row being built (rule or entry point)."""

    entry_point_id: int = 0
    name: str = ""
    a: int = 0  # rule: evaluations; entry point: decisions
    b: int = 0  # rule: matches; entry point: matched
    c: int = 0  # rule: errors; entry point: errors
    d: int = 0  # rule: suppressions; entry point: blocking
    e: int = 0  # rule: skipped; entry point: action errors
    f: int = 0  # entry point: no match
    counts: list[int] = field(default_factory=histogram.empty)
    sum_ms: float = 0.0
    max_ms: float = 0.0

    def add_latency(self, hist_index: int, samples: int, sum_ms: float, max_ms: float) -> None:
        if samples:
            self.counts[hist_index] += samples
            self.sum_ms += sum_ms
            self.max_ms = max(self.max_ms, max_ms)


@dataclass
class Aggregate:
    """What one window of the audit trail adds: per rule hour/variant and per entry point hour."""

    rules: dict[RuleKey, _Tally] = field(default_factory=dict)
    entry_points: dict[EntryPointKey, _Tally] = field(default_factory=dict)
    executions: int = 0


@dataclass(frozen=True)
class RollupRun:
    """The result of one run: the window read and how many decisions it counted."""

    start: datetime | None
    end: datetime | None
    executions: int


def rollups_run(*, now: datetime | None = None) -> RollupRun:
    """Add the audit rows of `[watermark, now - LAG)` to the hourly rollups; advance the mark.

    Reads at most MAX_WINDOW of audit time (from the first row after the mark) per run.
    Writes RuleRollup, EntryPointRollup and the RollupWatermark row in one transaction.
    Raises DatabaseError (nothing is then written).
    """
    now = now or timezone.now()
    RollupWatermark.objects.get_or_create(name=WATERMARK)
    with transaction.atomic():
        mark = RollupWatermark.objects.select_for_update().get(name=WATERMARK)
        limit = now - lag()
        start = mark.position
        pending = Execution.objects.filter(created_at__lt=limit)
        if start is not None:
            pending = pending.filter(created_at__gte=start)
        first = pending.order_by("created_at").values_list("created_at", flat=True).first()
        if first is None:
            # Nothing committed before the limit: the empty stretch is done in one step.
            end = limit if start is None else max(start, limit)
            if end != start:
                mark.position = end
                mark.save(update_fields=["position", "updated_at"])
            return RollupRun(start=start, end=end, executions=0)
        # The window starts at the mark but spans MAX_WINDOW of audit time from its first row,
        # so a long quiet stretch (or the first run over old history) is not read in steps.
        start = start or first
        end = min(limit, first + MAX_WINDOW)
        aggregate = aggregate_window(start=start, end=end)
        _add(aggregate)
        mark.position = end
        mark.save(update_fields=["position", "updated_at"])
    logger.info("rollup of %s..%s: %d decisions", start, end, aggregate.executions)
    return RollupRun(start=start, end=end, executions=aggregate.executions)


def rollups_rebuild(*, start: datetime, end: datetime) -> RollupRun:
    """Recompute the hours from `start`'s hour to `end`'s from the audit trail (a repair).

    Only hours wholly behind the watermark are rebuilt (the rest is left to `rollups_run`).
    Writes (deletes, then inserts) RuleRollup and EntryPointRollup rows of those hours under
    the watermark lock. Raises DatabaseError.
    """
    RollupWatermark.objects.get_or_create(name=WATERMARK)
    with transaction.atomic():
        mark = RollupWatermark.objects.select_for_update().get(name=WATERMARK)
        start = hour_floor(start)
        end = min(hour_floor(end), hour_floor(mark.position) if mark.position else start)
        if end <= start:
            return RollupRun(start=start, end=start, executions=0)
        RuleRollup.objects.filter(bucket_start__gte=start, bucket_start__lt=end).delete()
        EntryPointRollup.objects.filter(bucket_start__gte=start, bucket_start__lt=end).delete()
        aggregate = aggregate_window(start=start, end=end)
        _add(aggregate)
    return RollupRun(start=start, end=end, executions=aggregate.executions)


def hour_floor(moment: datetime) -> datetime:
    """The start of `moment`'s UTC hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def aggregate_window(*, start: datetime, end: datetime) -> Aggregate:
    """The counts of the audit rows with `start <= created_at < end` (one query on PostgreSQL)."""
    if connection.vendor == "postgresql":
        return _aggregate_sql(start, end)
    return aggregate_python(
        Execution.objects.filter(created_at__gte=start, created_at__lt=end).select_related(
            "ruleset"
        )
    )


# One statement: the rule results expanded with jsonb_array_elements, grouped per rule, variant,
# hour and latency bucket; UNION ALL the decisions grouped per entry point, hour and bucket.
_SQL = """
WITH ex AS MATERIALIZED (
    SELECT e.entry_point_id AS ep,
           date_trunc('hour', e.created_at AT TIME ZONE 'UTC') AS hour,
           e.duration_ms AS ms,
           width_bucket(e.duration_ms, %(bounds)s::double precision[]) AS hb,
           e.outcome, e.blocking, e.rule_results, e.action_results, e.ruleset_id
    FROM {table} e
    WHERE e.created_at >= %(start)s AND e.created_at < %(end)s
),
rr AS (
    SELECT ex.ep, ex.hour, ex.ms, ex.hb,
           r.value ->> 'id' AS rule_id,
           r.value ->> 'name' AS name,
           CASE WHEN r.value -> 'shadow' = 'true' THEN ''
                ELSE coalesce(r.value ->> 'variant', '') END AS variant,
           r.value ->> 'outcome' AS outcome,
           (r.value ->> 'outcome') = ANY(%(evaluated)s) AS ran
    FROM ex CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(ex.rule_results) = 'array' THEN ex.rule_results ELSE '[]' END
    ) AS r(value)
    WHERE jsonb_typeof(r.value) = 'object' AND (r.value ->> 'id') ~ %(uuid)s
    UNION ALL
    -- A row with a rule-set snapshot stores only its notable results: the snapshot's other
    -- rules were evaluated and did not match.
    SELECT ex.ep, ex.hour, ex.ms, ex.hb,
           s.value ->> 'id', s.value ->> 'name', '', 'not_matched',
           'not_matched' = ANY(%(evaluated)s)
    FROM ex
    JOIN {snapshots} sn ON sn.digest = ex.ruleset_id
    CROSS JOIN LATERAL jsonb_array_elements(sn.rules) AS s(value)
    WHERE NOT (
        CASE WHEN jsonb_typeof(ex.rule_results) = 'array' THEN ex.rule_results ELSE '[]' END
        @> jsonb_build_array(jsonb_build_object('id', s.value -> 'id'))
    )
)
SELECT 'rule', rule_id, variant, ep, hour, hb, max(name),
       count(*) FILTER (WHERE ran),
       count(*) FILTER (WHERE outcome = 'matched'),
       count(*) FILTER (WHERE outcome = 'error'),
       count(*) FILTER (WHERE outcome = 'suppressed'),
       count(*) FILTER (WHERE outcome = 'skipped'),
       0,
       count(*) FILTER (WHERE ran),
       coalesce(sum(ms) FILTER (WHERE ran), 0),
       coalesce(max(ms) FILTER (WHERE ran), 0)
FROM rr GROUP BY rule_id, variant, ep, hour, hb
UNION ALL
SELECT 'ep', NULL, '', ep, hour, hb, NULL,
       count(*),
       count(*) FILTER (WHERE outcome = 'matched'),
       count(*) FILTER (WHERE outcome = 'error'),
       count(*) FILTER (WHERE blocking),
       coalesce(sum((
           SELECT count(*) FROM jsonb_array_elements(
               CASE WHEN jsonb_typeof(action_results) = 'array' THEN action_results ELSE '[]' END
           ) AS a(value)
           WHERE jsonb_typeof(a.value) = 'object' AND a.value ->> 'status' = 'error'
       )), 0),
       count(*) FILTER (WHERE outcome = 'no_match'),
       count(*),
       coalesce(sum(ms), 0),
       coalesce(max(ms), 0)
FROM ex GROUP BY ep, hour, hb
"""


def _aggregate_sql(start: datetime, end: datetime) -> Aggregate:
    sql = _SQL.format(
        table=connection.ops.quote_name(Execution._meta.db_table),
        snapshots=connection.ops.quote_name(RulesetSnapshot._meta.db_table),
    )
    params: dict[str, Any] = {
        "bounds": list(histogram.BOUNDS_MS),
        "start": start,
        "end": end,
        "evaluated": list(EVALUATED),
        "uuid": _UUID.pattern,
    }
    aggregate = Aggregate()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, rule_id, variant, ep, hour, hb, name, *counts, n, sum_ms, max_ms in cursor:
            hour = hour.replace(tzinfo=UTC)  # `AT TIME ZONE 'UTC'` gives naive UTC
            tally: _Tally
            if kind == "rule":
                key: Any = (str(rule_id).lower(), variant, hour)
                tally = aggregate.rules.setdefault(key, _Tally(entry_point_id=ep))
                tally.name = max(tally.name, name or "")
            else:
                tally = aggregate.entry_points.setdefault((ep, hour), _Tally(entry_point_id=ep))
                aggregate.executions += int(counts[0])
            tally.a += counts[0]
            tally.b += counts[1]
            tally.c += counts[2]
            tally.d += counts[3]
            tally.e += int(counts[4])
            tally.f += counts[5]
            tally.add_latency(hb, n, float(sum_ms), float(max_ms))
    return aggregate


def aggregate_python(executions: Iterable[Execution]) -> Aggregate:
    """The same counts as the SQL path, computed in Python (SQLite, and to check the SQL)."""
    aggregate = Aggregate()
    for execution in executions:
        aggregate.executions += 1
        hour = hour_floor(execution.created_at)
        ms = float(execution.duration_ms)
        hb = histogram.index(ms)
        ep = aggregate.entry_points.setdefault(
            (execution.entry_point_id, hour), _Tally(entry_point_id=execution.entry_point_id)
        )
        ep.a += 1
        ep.b += execution.outcome == "matched"
        ep.c += execution.outcome == "error"
        ep.d += bool(execution.blocking)
        actions = execution.action_results if isinstance(execution.action_results, list) else []
        ep.e += sum(1 for a in actions if isinstance(a, dict) and a.get("status") == "error")
        ep.f += execution.outcome == "no_match"
        ep.add_latency(hb, 1, ms, ms)
        for result in execution_rule_results(execution=execution):
            if not isinstance(result, dict) or not _UUID.match(str(result.get("id", ""))):
                continue
            variant = None if result.get("shadow") is True else result.get("variant")
            key = (str(result["id"]).lower(), "" if variant is None else str(variant), hour)
            tally = aggregate.rules.setdefault(key, _Tally(entry_point_id=execution.entry_point_id))
            tally.name = max(tally.name, str(result.get("name") or ""))
            outcome = result.get("outcome")
            ran = outcome in EVALUATED
            tally.a += ran
            tally.b += outcome == "matched"
            tally.c += outcome == "error"
            tally.d += outcome == "suppressed"
            tally.e += outcome == "skipped"
            tally.add_latency(hb, int(ran), ms, ms)
    return aggregate


def _add(aggregate: Aggregate) -> None:
    """Add the aggregate to the stored hour rows (read, merge, upsert with ON CONFLICT)."""
    if aggregate.rules:
        _add_rules(aggregate.rules)
    if aggregate.entry_points:
        _add_entry_points(aggregate.entry_points)


# The counter columns of each rollup and the tally field each one adds up (see _Tally).
_RULE_COUNTS = {
    "evaluations": "a",
    "matches": "b",
    "errors": "c",
    "suppressions": "d",
    "skipped": "e",
}
_ENTRY_POINT_COUNTS = {
    "decisions": "a",
    "matched": "b",
    "errors": "c",
    "blocking": "d",
    "action_errors": "e",
    "no_match": "f",
}
_MERGED_LATENCY = ("latency_counts", "latency_sum_ms", "latency_max_ms")


def _merged(old: Any, tally: _Tally, counts: dict[str, str]) -> dict[str, Any]:
    """A stored rollup row's counters and latency with the tally added (by column name)."""
    merged: dict[str, Any] = {
        column: getattr(old, column) + getattr(tally, attr) for column, attr in counts.items()
    }
    merged.update(
        latency_counts=histogram.merge(list(tally.counts), old.latency_counts),
        latency_sum_ms=old.latency_sum_ms + tally.sum_ms,
        latency_max_ms=max(old.latency_max_ms, tally.max_ms),
    )
    return merged


def _add_rules(tallies: dict[RuleKey, _Tally]) -> None:
    hours = {hour for _, _, hour in tallies}
    rule_ids = {rule_id for rule_id, _, _ in tallies}
    existing = {
        (str(row.rule_id), row.variant, row.bucket_start): row
        for row in RuleRollup.objects.filter(bucket_start__in=hours, rule_id__in=rule_ids)
    }
    rows = []
    for key, tally in tallies.items():
        rule_id, variant, hour = key
        old = existing.get(key) or RuleRollup(latency_counts=histogram.empty())
        rows.append(
            RuleRollup(
                rule_id=rule_id,
                rule_name=(tally.name or old.rule_name)[:200],
                entry_point_id=tally.entry_point_id,
                bucket_start=hour,
                variant=variant[:200],
                **_merged(old, tally, _RULE_COUNTS),
            )
        )
    RuleRollup.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["rule_id", "bucket_start", "variant"],
        update_fields=["rule_name", "entry_point", *_RULE_COUNTS, *_MERGED_LATENCY, "updated_at"],
    )


def _add_entry_points(tallies: dict[EntryPointKey, _Tally]) -> None:
    hours = {hour for _, hour in tallies}
    entry_point_ids = {ep for ep, _ in tallies}
    existing = {
        (row.entry_point_id, row.bucket_start): row
        for row in EntryPointRollup.objects.filter(
            bucket_start__in=hours, entry_point_id__in=entry_point_ids
        )
    }
    rows = []
    for key, tally in tallies.items():
        ep, hour = key
        old = existing.get(key) or EntryPointRollup(latency_counts=histogram.empty())
        rows.append(
            EntryPointRollup(
                entry_point_id=ep,
                bucket_start=hour,
                **_merged(old, tally, _ENTRY_POINT_COUNTS),
            )
        )
    EntryPointRollup.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["entry_point", "bucket_start"],
        update_fields=[*_ENTRY_POINT_COUNTS, *_MERGED_LATENCY, "updated_at"],
    )
