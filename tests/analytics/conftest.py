"""The hand-computed sample: two rules of one entry point over three hours on two days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from rules_engine import services
from rules_engine.models import EntryPoint, Execution, Rule

DAY1_10 = datetime(2025, 3, 10, 10, 0, tzinfo=UTC)
DAY1_11 = datetime(2025, 3, 10, 11, 0, tzinfo=UTC)
DAY2_09 = datetime(2025, 3, 11, 9, 0, tzinfo=UTC)


@dataclass
class Sample:
    """The entry point and its two rules (A runs first)."""

    entry_point: EntryPoint
    a: Rule
    b: Rule


def result(rule: Rule, outcome: str, **extra: Any) -> dict[str, Any]:
    """A rule's entry in `Execution.rule_results`, as the engine writes it."""
    row = {"id": str(rule.pk), "name": rule.name, "version": 1, "priority": rule.priority}
    return {**row, "outcome": outcome, **extra}


def execution(
    entry_point: EntryPoint,
    at: datetime,
    outcome: str,
    duration_ms: float,
    rule_results: list[dict[str, Any]],
    **fields: Any,
) -> Execution:
    """An audit row created at `at` (created_at is auto_now_add: set afterwards)."""
    row = Execution.objects.create(
        entry_point=entry_point,
        outcome=outcome,
        duration_ms=duration_ms,
        rule_results=rule_results,
        **fields,
    )
    Execution.objects.filter(pk=row.pk).update(created_at=at)
    row.created_at = at
    return row


@pytest.fixture
def sample(db: Any) -> Sample:
    """Eight decisions: four in 10:00-11:00 and two in 11:00-12:00 on 2025-03-10, two in
    09:00-10:00 on 2025-03-11. Rule A is once an error, once suppressed and in 11:00 split
    between two experiment variants; B is once skipped and once an error."""
    entry_point = services.entry_point_create(data={"key": "shop", "context_schema": {}})
    a = services.rule_create(
        data={"name": "A", "entry_point": entry_point, "priority": 1, "condition": True}
    )
    b = services.rule_create(
        data={"name": "B", "entry_point": entry_point, "priority": 2, "condition": True}
    )
    ep = entry_point
    at = DAY1_10
    execution(
        ep, at.replace(minute=5), "matched", 0.5, [result(a, "matched"), result(b, "skipped")]
    )
    execution(
        ep, at.replace(minute=20), "matched", 1.5, [result(a, "not_matched"), result(b, "matched")]
    )
    execution(
        ep,
        at.replace(minute=40),
        "error",
        3.0,
        [result(a, "error", error="TypeError: x"), result(b, "not_matched")],
    )
    execution(
        ep,
        at.replace(minute=59, second=59, microsecond=999999),
        "no_match",
        12.0,
        [result(a, "suppressed"), result(b, "not_matched")],
        blocking=True,
    )
    at = DAY1_11
    execution(
        ep,
        at,
        "matched",
        0.5,
        [result(a, "matched", variant="exp:treatment"), result(b, "skipped")],
    )
    execution(
        ep,
        at.replace(minute=30),
        "matched",
        60.0,
        [result(a, "not_matched", variant="exp:control"), result(b, "matched")],
        action_results=[{"status": "error"}, {"status": "ok"}],
    )
    at = DAY2_09
    execution(
        ep, at.replace(minute=15), "matched", 2.0, [result(a, "matched"), result(b, "not_matched")]
    )
    execution(
        ep,
        at.replace(minute=45),
        "error",
        0.2,
        [result(a, "not_matched"), result(b, "error", error="boom")],
    )
    return Sample(entry_point, a, b)


def roll_up(now: datetime) -> int:
    """Run the rollup until it has caught up with `now`; returns the decisions counted."""
    from analytics.services import lag, rollups_run

    counted = 0
    while True:
        run = rollups_run(now=now)
        counted += run.executions
        if run.end is not None and run.end >= now - lag():
            return counted
