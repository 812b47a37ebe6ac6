"""Reads of analytics: rule and entry point statistics per hour or day, from the rollups.

Only rollup rows are read (never the audit trail). Buckets are UTC hours or UTC days; a day is
the sum of its 24 hour rows. Latency percentiles come from the merged histograms (see
`analytics.histogram`: nearest rank, reported as the bucket's upper bound capped at the
slowest decision seen). Every bucket of the window is listed, empty ones with zero counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from analytics import histogram
from analytics.models import EntryPointRollup, RuleRollup
from rules_engine.models import EntryPoint, Rule

Bucket = Literal["hour", "day"]
STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# The window when `from` is not given: the last day of hours, or the last 30 days.
DEFAULT_SPAN: dict[str, timedelta] = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
# Most buckets one answer may hold (a quarter of hours, about three years of days).
MAX_BUCKETS = 2200
TOP_RULES = 10


class WindowError(ValueError):
    """A window that cannot be answered; `field` names the offending query parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Window:
    """The buckets asked for: `[start, end)` aligned to whole UTC hours or days."""

    start: datetime
    end: datetime
    bucket: Bucket

    def starts(self) -> list[datetime]:
        """The start of every bucket of the window."""
        step, moment, out = STEP[self.bucket], self.start, []
        while moment < self.end:
            out.append(moment)
            moment += step
        return out

    def key(self, moment: datetime) -> datetime:
        """The start of the window's bucket holding `moment`."""
        return floor(moment, self.bucket)


def floor(moment: datetime, bucket: str) -> datetime:
    """The start of `moment`'s UTC hour or day."""
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket == "day" else moment


def ceil(moment: datetime, bucket: str) -> datetime:
    """The end of `moment`'s bucket (itself when it starts a bucket)."""
    start = floor(moment, bucket)
    return start if start == moment else start + STEP[bucket]


def window_resolve(
    *, start: datetime | None, end: datetime | None, bucket: Bucket, now: datetime
) -> Window:
    """The whole buckets covering `[start, end)`; missing ends default around `now`.

    Without `to`: `from` plus the default span, or (without both) up to the end of the
    current bucket. Without `from`: the default span before `to`. Raises ValueError (with the
    offending parameter's name first) when `to` is not after `from` or there are too many
    buckets.
    """
    span = DEFAULT_SPAN[bucket]
    if start is not None and end is not None and end <= start:
        raise WindowError("to", "must be later than from")
    if end is None:
        end = start + span if start is not None else now
    end = ceil(end, bucket)
    # Without `from`, the span ends with the bucket holding `to`: 24 hours, the current one last.
    window = Window(floor(start if start is not None else end - span, bucket), end, bucket)
    if (window.end - window.start) / STEP[bucket] > MAX_BUCKETS:
        raise WindowError("from", f"the window holds more than {MAX_BUCKETS} {bucket} buckets")
    return window


@dataclass
class _Stats:
    """Counters of one bucket (or of totals) being summed from rollup rows."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency: list[int] = field(default_factory=histogram.empty)
    max_ms: float = 0.0

    def add(self, row: Any, fields: Iterable[str]) -> None:
        for name in fields:
            self.counts[name] += getattr(row, name)
        histogram.merge(self.latency, row.latency_counts)
        self.max_ms = max(self.max_ms, row.latency_max_ms)

    def as_dict(self, fields: Iterable[str], rate_of: tuple[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.counts[name] for name in fields}
        part, whole = self.counts[rate_of[0]], self.counts[rate_of[1]]
        out["match_rate"] = part / whole if whole else None
        out["latency_p50_ms"] = histogram.percentile(self.latency, 50, self.max_ms)
        out["latency_p95_ms"] = histogram.percentile(self.latency, 95, self.max_ms)
        return out


RULE_FIELDS = ("evaluations", "matches", "errors", "suppressions", "skipped")
RULE_RATE = ("matches", "evaluations")
ENTRY_POINT_FIELDS = ("decisions", "matched", "no_match", "errors", "blocking", "action_errors")
ENTRY_POINT_RATE = ("matched", "decisions")


def rule_analytics(*, rule: Rule, window: Window) -> dict[str, Any]:
    """A rule's statistics per bucket and per variant, with totals (shape: RuleAnalytics)."""
    rows = RuleRollup.objects.filter(
        rule_id=rule.pk, bucket_start__gte=window.start, bucket_start__lt=window.end
    )
    totals = _Stats()
    per_variant: defaultdict[str, _Stats] = defaultdict(_Stats)
    buckets: dict[datetime, _Stats] = defaultdict(_Stats)
    cells: dict[tuple[datetime, str], _Stats] = defaultdict(_Stats)
    for row in rows:
        key = window.key(row.bucket_start)
        for into in (totals, per_variant[row.variant], buckets[key], cells[key, row.variant]):
            into.add(row, RULE_FIELDS)
    variants = sorted(per_variant)

    def stats(s: _Stats) -> dict[str, Any]:
        return s.as_dict(RULE_FIELDS, RULE_RATE)

    return {
        "rule": {"id": str(rule.pk), "name": rule.name, "entry_point": rule.entry_point.key},
        "from": window.start,
        "to": window.end,
        "bucket": window.bucket,
        "latency_bounds_ms": list(histogram.BOUNDS_MS),
        "totals": stats(totals),
        "variants": [{"variant": v, **stats(per_variant[v])} for v in variants],
        "buckets": [
            {
                "start": start,
                **stats(buckets[start]),
                "variants": [
                    {"variant": v, **stats(cells[start, v])}
                    for v in variants
                    if (start, v) in cells
                ],
            }
            for start in window.starts()
        ],
    }


def entry_point_analytics(*, entry_point: EntryPoint, window: Window) -> dict[str, Any]:
    """An entry point's decisions per bucket, its top rules and the rules that failed
    (shape: EntryPointAnalytics)."""
    rows = EntryPointRollup.objects.filter(
        entry_point=entry_point, bucket_start__gte=window.start, bucket_start__lt=window.end
    )
    totals = _Stats()
    buckets: dict[datetime, _Stats] = defaultdict(_Stats)
    for row in rows:
        totals.add(row, ENTRY_POINT_FIELDS)
        buckets[window.key(row.bucket_start)].add(row, ENTRY_POINT_FIELDS)
    rules = _rule_totals(entry_point=entry_point, window=window)
    by_matches = sorted(rules, key=lambda r: (-r["matches"], -r["evaluations"], r["name"]))
    by_errors = sorted((r for r in rules if r["errors"]), key=lambda r: (-r["errors"], r["name"]))

    def stats(s: _Stats) -> dict[str, Any]:
        return s.as_dict(ENTRY_POINT_FIELDS, ENTRY_POINT_RATE)

    return {
        "entry_point": entry_point.key,
        "from": window.start,
        "to": window.end,
        "bucket": window.bucket,
        "latency_bounds_ms": list(histogram.BOUNDS_MS),
        "totals": stats(totals),
        "buckets": [{"start": start, **stats(buckets[start])} for start in window.starts()],
        "top_rules": by_matches[:TOP_RULES],
        "error_rules": by_errors[:TOP_RULES],
    }


def _rule_totals(*, entry_point: EntryPoint, window: Window) -> list[dict[str, Any]]:
    """Every rule of the entry point seen in the window, with its totals over all variants."""
    per_rule: dict[str, _Stats] = defaultdict(_Stats)
    names: dict[str, str] = {}
    rows = RuleRollup.objects.filter(
        entry_point=entry_point, bucket_start__gte=window.start, bucket_start__lt=window.end
    ).order_by("bucket_start")
    for row in rows:
        rule_id = str(row.rule_id)
        per_rule[rule_id].add(row, RULE_FIELDS)
        names[rule_id] = row.rule_name
    # Current names win over the names in the audit rows (a rule may have been renamed).
    current = {
        str(pk): name
        for pk, name in Rule.objects.filter(pk__in=list(per_rule)).values_list("pk", "name")
    }
    names.update(current)
    return [
        {
            "rule_id": rule_id,
            "name": names[rule_id],
            "exists": rule_id in current,
            **stats.as_dict(RULE_FIELDS, RULE_RATE),
        }
        for rule_id, stats in per_rule.items()
    ]
