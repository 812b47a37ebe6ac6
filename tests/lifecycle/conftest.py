"""Fixtures of lifecycle tests: a payments entry point with one rule and a stored history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from rules_engine.models import EntryPoint, Execution, Rule
from tests.support.rules import entry_point_with_rule


@pytest.fixture
def payments(db: Any) -> EntryPoint:
    """Entry point `payments` (subject `user.id`, `card` masked) with rule "Big" `total > 5000`."""
    return entry_point_with_rule(
        {"key": "payments", "subject_path": "user.id", "sensitive_paths": ["card"]},
        {
            "name": "Big",
            "priority": 10,
            "condition": {">": [{"var": "total"}, 5000]},
            "actions": [],
        },
    )


@pytest.fixture
def big_rule(payments: EntryPoint) -> Rule:
    """The rule "Big" of `payments`."""
    return Rule.objects.get(name="Big")


def store_executions(entry_point: EntryPoint, count: int) -> list[Execution]:
    """`count` audit rows with totals 0..count-1 (oldest first, 1 ms apart), bulk-inserted;
    returns them in total order."""
    rows = Execution.objects.bulk_create(
        [
            Execution(
                entry_point=entry_point,
                outcome="matched" if total > 5000 else "no_match",
                context_snapshot={"total": total, "user": {"id": f"u{total}"}},
            )
            for total in range(count)
        ],
        batch_size=2000,
    )
    # One statement spreads them a millisecond apart by total, so history order is known.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rules_engine_execution SET created_at = %s"
            " + ((context_snapshot->>'total')::int * interval '1 millisecond')"
            " WHERE entry_point_id = %s",
            [timezone.now() - timedelta(minutes=30), entry_point.pk],
        )
    return rows


def window() -> tuple[datetime, datetime]:
    """A window around now that holds every row stored by the test."""
    now = timezone.now()
    return now - timedelta(hours=1), now + timedelta(hours=1)
