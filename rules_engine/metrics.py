"""Prometheus metrics of Verdict, exported at /metrics with django-prometheus's (config/ops.py).

Counters and histograms here are incremented where things happen, in whichever process they
happen (web, Celery worker); with several processes on a host, set PROMETHEUS_MULTIPROC_DIR
(deploy/README.md) so /metrics adds them up. Numbers that describe shared state (events and
deliveries by status, overdue actions, stream lag) are read from PostgreSQL and Redis at
scrape time instead (`config.ops.StateCollector`), so they are right whatever process answers.

Label sets stay bounded: entry point keys exist (unknown keys are refused before counting),
action types come from the registry, and per-rule series are kept for at most
`VERDICT["METRICS_MAX_RULES"]` rule ids per process; further rules are counted as
rule="other". The hot path counts through `rules_engine.tally` (per-thread totals added to
these metrics in batches, and before every collection). It only increments: per-rule
evaluation time is measured on one decision in `VERDICT["METRICS_RULE_TIMING_EVERY"]` (each
rule's condition run once more, on its own), never on every call.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from prometheus_client import Counter, Histogram

# Imported before the metrics below are made: its flush-on-collect hook must come before them
# in the default registry (rules_engine/tally.py).
from rules_engine import tally

OTHER_RULES = "other"
DEFAULT_MAX_RULES = 200
DEFAULT_RULE_TIMING_EVERY = 100

decisions = Counter(
    "verdict_decisions_total",
    "Decisions made, by entry point and outcome (dry runs excluded).",
    ["entry_point", "outcome"],
)
decision_seconds = Histogram(
    "verdict_decision_seconds",
    "Time to decide, from load to audit row, by entry point.",
    ["entry_point"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
rule_errors = Counter(
    "verdict_rule_errors_total",
    "Rules or actions that failed at run time (recorded in the audit), by entry point.",
    ["entry_point", "kind"],
)
rule_outcomes = Counter(
    "verdict_rule_outcomes_total",
    "Rules that matched, failed (error) or were suppressed by a cooldown, by rule id "
    '(at most METRICS_MAX_RULES ids per process, the rest as rule="other").',
    ["entry_point", "rule", "outcome"],
)
rule_evaluation_seconds = Histogram(
    "verdict_rule_evaluation_seconds",
    "Time to evaluate one rule's condition on its own, sampled on one decision in "
    "METRICS_RULE_TIMING_EVERY, by rule id (bounded like verdict_rule_outcomes_total).",
    ["entry_point", "rule"],
    buckets=(
        0.000005,
        0.00001,
        0.000025,
        0.00005,
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.05,
        0.25,
    ),
)
ruleset_compiles = Counter(
    "verdict_ruleset_compiles_total",
    "Rulesets loaded and compiled from the database (cache misses), by entry point.",
    ["entry_point"],
)
ruleset_cache = Counter(
    "verdict_ruleset_cache_total",
    "Lookups of a compiled ruleset in the process cache, by result (hit or miss).",
    ["result"],
)
ruleset_cache_hits = ruleset_cache.labels("hit")
ruleset_cache_misses = ruleset_cache.labels("miss")
actions = Counter(
    "verdict_actions_total",
    "Actions dispatched (dry runs excluded), by type and outcome: ok, error, or scheduled "
    "(a delayed action stored; it counts again as ok or error when it runs).",
    ["type", "outcome"],
)
scheduled_action_lateness_seconds = Histogram(
    "verdict_scheduled_action_lateness_seconds",
    "How long after its due time a delayed action's handler was called, by entry point.",
    ["entry_point"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)

# The labelled children already made in this process, by metric and label values.
# `metric.labels(...)` checks and joins its arguments and takes a lock on every call, which
# cost more than the increment itself when a decision counts a hundred rules; a dict lookup
# gives the same child. Bounded like the label sets themselves (see above).
_children: dict[tuple[Any, ...], Any] = {}


def child(metric: Any, *values: str, **labels: str) -> Any:
    """`metric.labels(*values)` or `metric.labels(**labels)`, memoised per process."""
    key = (metric, *values, *sorted(labels.items())) if labels else (metric, *values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values, **labels)
    return found


# Rule ids given their own series in this process (admitted in first-seen order).
_admitted_rules: set[str] = set()
_admit_lock = threading.Lock()
_decisions_seen = itertools.count(1)


def rule_label(rule_id: str) -> str:
    """The `rule` label of a rule id: itself while the per-process bound allows, else "other"."""
    if rule_id in _admitted_rules:
        return rule_id
    limit = int(settings.VERDICT.get("METRICS_MAX_RULES", DEFAULT_MAX_RULES))
    with _admit_lock:
        if len(_admitted_rules) < limit:
            _admitted_rules.add(rule_id)
            return rule_id
    return OTHER_RULES


def count_rule_outcomes(entry_point: str, rule_results: Iterable[Mapping[str, Any]]) -> int:
    """Count one decision's matched, error and suppressed rules; returns how many errored.

    Reads the decision's audit rows after the fact, so evaluation itself pays nothing.
    """
    errors = 0
    for result in rule_results:
        outcome = result["outcome"]
        if outcome == "not_matched" or outcome == "skipped":
            continue
        if outcome == "error":
            errors += 1
        tally.inc(child(rule_outcomes, entry_point, rule_label(str(result["id"])), outcome))
    return errors


def rule_timing_due() -> bool:
    """Whether this decision is the one in METRICS_RULE_TIMING_EVERY timed rule by rule."""
    every = int(settings.VERDICT.get("METRICS_RULE_TIMING_EVERY", DEFAULT_RULE_TIMING_EVERY))
    return every > 0 and next(_decisions_seen) % every == 0


def time_rules(entry_point: str, results: Iterable[Any], data: Any) -> None:
    """Evaluate each rule's own condition once more and record how long each took.

    `results` are the decision's rule results (`.rule`, `.outcome`); rules that failed are
    left out (a failing or runaway rule is not run twice), and an error while timing is
    ignored: the decision already has its answer.
    """
    for result in results:
        if result.outcome == "error":
            continue
        rule = result.rule
        started = time.perf_counter()
        try:
            rule.condition(data)
        except Exception:  # noqa: BLE001, S112  (measurement only; the decision stands)
            continue
        elapsed = time.perf_counter() - started
        tally.observe(child(rule_evaluation_seconds, entry_point, rule_label(rule.id)), elapsed)


def count_action(action_type: str, outcome: str) -> None:
    """Count one action dispatched: outcome ok, error or scheduled."""
    tally.inc(child(actions, action_type, outcome))


def observe_lateness(entry_point: str, seconds: float) -> None:
    """Record how late a delayed action started (an early start counts as 0)."""
    tally.observe(child(scheduled_action_lateness_seconds, entry_point), max(seconds, 0.0))
