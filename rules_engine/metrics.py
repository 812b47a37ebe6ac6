"""Prometheus metrics of the decision core, exported at /metrics with django-prometheus's.

Labels are entry point keys that exist (unknown keys are refused before counting), so the
label set stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
ruleset_compiles = Counter(
    "verdict_ruleset_compiles_total",
    "Rulesets loaded and compiled from the database (cache misses), by entry point.",
    ["entry_point"],
)
