"""The rollup: hour rows with exact counts, idempotent, late rows within the lag counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import histogram, services, tasks
from analytics.models import EntryPointRollup, RollupWatermark, RuleRollup
from rules_engine.models import Execution, RulesetSnapshot
from tests.analytics.conftest import DAY1_10, DAY1_11, DAY2_09, Sample, execution, result, roll_up

pytestmark = pytest.mark.django_db

LATER = DAY2_09 + timedelta(hours=3)


def rule_rows(rule: Any) -> dict[tuple[datetime, str], tuple[int, ...]]:
    """(hour, variant) -> evaluations, matches, errors, suppressions, skipped, histogram size."""
    return {
        (row.bucket_start, row.variant): (
            row.evaluations,
            row.matches,
            row.errors,
            row.suppressions,
            row.skipped,
            sum(row.latency_counts),
        )
        for row in RuleRollup.objects.filter(rule_id=rule.pk)
    }


def entry_point_rows() -> dict[datetime, tuple[int, ...]]:
    """hour -> decisions, matched, no_match, errors, blocking, action_errors, samples."""
    return {
        row.bucket_start: (
            row.decisions,
            row.matched,
            row.no_match,
            row.errors,
            row.blocking,
            row.action_errors,
            sum(row.latency_counts),
        )
        for row in EntryPointRollup.objects.all()
    }


EXPECTED_A = {
    (DAY1_10, ""): (4, 1, 1, 1, 0, 4),
    (DAY1_11, "exp:control"): (1, 0, 0, 0, 0, 1),
    (DAY1_11, "exp:treatment"): (1, 1, 0, 0, 0, 1),
    (DAY2_09, ""): (2, 1, 0, 0, 0, 2),
}
EXPECTED_B = {
    (DAY1_10, ""): (3, 1, 0, 0, 1, 3),
    (DAY1_11, ""): (1, 1, 0, 0, 1, 1),
    (DAY2_09, ""): (2, 0, 1, 0, 0, 2),
}
EXPECTED_ENTRY_POINT = {
    DAY1_10: (4, 2, 1, 1, 1, 0, 4),
    DAY1_11: (2, 2, 0, 0, 0, 1, 2),
    DAY2_09: (2, 1, 0, 1, 0, 0, 2),
}


def test_the_rollup_counts_each_rule_hour_and_variant(sample: Sample) -> None:
    # when the rollup catches up with the sample
    counted = roll_up(LATER)
    # then every decision is counted once, per rule, hour and variant
    assert counted == 8
    assert rule_rows(sample.a) == EXPECTED_A
    assert rule_rows(sample.b) == EXPECTED_B
    assert entry_point_rows() == EXPECTED_ENTRY_POINT


def test_the_histogram_sum_and_max_of_an_hour(sample: Sample) -> None:
    roll_up(LATER)
    row = RuleRollup.objects.get(rule_id=sample.a.pk, bucket_start=DAY1_10)
    # 0.5, 1.5, 3.0 and 12.0 ms fall in [0.5, 1), [1, 2.5), [2.5, 5) and [10, 25)
    expected = histogram.empty()
    for index in (3, 4, 5, 7):
        expected[index] = 1
    assert row.latency_counts == expected
    assert (row.latency_sum_ms, row.latency_max_ms) == (17.0, 12.0)
    assert row.rule_name == "A"


def test_running_again_counts_nothing_twice(sample: Sample) -> None:
    # given a caught-up rollup
    roll_up(LATER)
    # when it runs again, now and later
    again = services.rollups_run(now=LATER)
    later = services.rollups_run(now=LATER + timedelta(minutes=5))
    # then nothing is added
    assert (again.executions, later.executions) == (0, 0)
    assert rule_rows(sample.a) == EXPECTED_A
    assert entry_point_rows() == EXPECTED_ENTRY_POINT


def test_new_rows_are_added_to_the_existing_hour(sample: Sample) -> None:
    # given a caught-up rollup, then one more decision in the 09:00 hour of day 2
    roll_up(DAY2_09 + timedelta(minutes=50))
    execution(
        sample.entry_point,
        DAY2_09.replace(minute=55),
        "matched",
        1.0,
        [result(sample.a, "matched"), result(sample.b, "not_matched")],
    )
    # when the rollup passes it
    assert roll_up(LATER) == 1
    # then the hour holds the sum of both runs
    assert rule_rows(sample.a)[DAY2_09, ""] == (3, 2, 0, 0, 0, 3)
    assert entry_point_rows()[DAY2_09] == (3, 2, 0, 1, 0, 0, 3)


def test_a_row_committed_late_within_the_lag_is_counted(sample: Sample) -> None:
    # given a rollup run at `now` (it reads up to now - 120 s)
    now = LATER
    roll_up(now)
    # when a row stamped 100 s before `now` commits only after that run
    late = execution(
        sample.entry_point,
        now - timedelta(seconds=100),
        "error",
        5.0,
        [result(sample.a, "error", error="late")],
    )
    # then the next run (30 s later) counts it, in its own hour
    run = services.rollups_run(now=now + timedelta(seconds=30))
    assert run.executions == 1
    hour = services.hour_floor(late.created_at)
    assert rule_rows(sample.a)[hour, ""] == (1, 0, 1, 0, 0, 1)
    assert entry_point_rows()[hour] == (1, 0, 0, 1, 0, 0, 1)


def test_a_row_stamped_behind_the_watermark_is_not_counted(sample: Sample) -> None:
    # given a caught-up rollup (the documented bound: rows commit within the lag)
    roll_up(LATER)
    # when a row stamped before the watermark appears afterwards
    execution(sample.entry_point, DAY1_10.replace(minute=30), "matched", 1.0, [])
    # then it is not counted (and nothing else changes)
    assert roll_up(LATER + timedelta(minutes=1)) == 0
    assert entry_point_rows() == EXPECTED_ENTRY_POINT


def test_the_watermark_stops_lag_seconds_before_now(sample: Sample) -> None:
    run = services.rollups_run(now=DAY1_10.replace(minute=21))
    # then only the first decision (10:05) is read: 10:20 is not behind the limit 10:19
    assert (run.start, run.end, run.executions) == (
        DAY1_10.replace(minute=5),
        DAY1_10.replace(minute=19),
        1,
    )
    assert RollupWatermark.objects.get().position == DAY1_10.replace(minute=19)


def test_a_run_reads_at_most_the_max_window(sample: Sample) -> None:
    # given history older than the window: the first run reads six hours from the first row
    run = services.rollups_run(now=LATER)
    assert run.end == DAY1_10.replace(minute=5) + services.MAX_WINDOW
    assert run.executions == 6
    # and the next one skips the empty night up to the next row
    run = services.rollups_run(now=LATER)
    assert run.executions == 2


def test_an_empty_audit_trail_moves_the_watermark_to_the_limit(db: Any) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    run = services.rollups_run(now=now)
    assert (run.start, run.end, run.executions) == (None, now - timedelta(seconds=120), 0)


def test_the_sql_and_python_aggregations_agree(sample: Sample) -> None:
    # given the sample (and a malformed row the engine never writes)
    malformed: list[Any] = [{"id": "x"}, "junk"]
    execution(sample.entry_point, DAY1_10, "no_match", 1.0, malformed)
    shadow = {"variant": "exp:new", "shadow": True, "shadow_outcome": "matched"}
    execution(sample.entry_point, DAY1_10, "no_match", 1.0, [result(sample.a, "error", **shadow)])
    start, end = DAY1_10, DAY2_09 + timedelta(hours=1)
    # when both paths aggregate the same window
    sql = services.aggregate_window(start=start, end=end)
    python = services.aggregate_python(
        Execution.objects.filter(created_at__gte=start, created_at__lt=end)
    )
    # then they agree exactly
    assert sql == python
    assert sql.executions == 10


def test_a_shadow_variant_counts_under_the_live_rule(sample: Sample) -> None:
    # given a decision where the live rule decided and a shadow variant was noted beside it
    shadow = {"variant": "exp:new", "shadow": True, "shadow_outcome": "matched"}
    execution(
        sample.entry_point,
        DAY2_09.replace(minute=50),
        "no_match",
        1.0,
        [result(sample.a, "not_matched", **shadow)],
    )
    roll_up(LATER)
    # then it counts as an evaluation of the live rule, under no variant
    assert rule_rows(sample.a)[DAY2_09, ""] == (3, 1, 0, 0, 0, 3)
    assert (DAY2_09, "exp:new") not in rule_rows(sample.a)


def test_a_rebuild_reproduces_the_incremental_rows(sample: Sample) -> None:
    # given rows built in several runs
    services.rollups_run(now=DAY1_11.replace(minute=10))
    roll_up(LATER)
    # when the whole range is rebuilt from the audit trail
    rebuilt = services.rollups_rebuild(start=DAY1_10, end=LATER)
    # then the rows are the same
    assert rebuilt.executions == 8
    assert rule_rows(sample.a) == EXPECTED_A
    assert entry_point_rows() == EXPECTED_ENTRY_POINT


def test_the_task_rolls_up_and_returns_the_count(sample: Sample) -> None:
    # the task reads up to the real now: two runs (six hours, then day 2) and a third with none
    assert [tasks.rollup_executions() for _ in range(3)] == [6, 2, 0]
    assert entry_point_rows() == EXPECTED_ENTRY_POINT


def test_rows_with_a_rule_set_snapshot_count_the_rules_that_did_not_match(sample: Sample) -> None:
    # given two decisions stored the compact way: only notable results, plus the snapshot of
    # the rule set (A then B) standing for the rules that did not match
    snapshot = RulesetSnapshot.objects.create(
        digest="d" * 64,
        entry_point=sample.entry_point,
        rules=[
            {k: v for k, v in result(r, "").items() if k != "outcome"} for r in (sample.a, sample.b)
        ],
    )
    hour = DAY2_09 + timedelta(hours=1)
    execution(sample.entry_point, hour.replace(minute=1), "no_match", 1.0, [], ruleset=snapshot)
    matched_a = [result(sample.a, "matched")]
    execution(
        sample.entry_point, hour.replace(minute=2), "matched", 2.0, matched_a, ruleset=snapshot
    )
    # when both aggregation paths read that hour
    sql = services.aggregate_window(start=hour, end=hour + timedelta(hours=1))
    python = services.aggregate_python(
        Execution.objects.filter(created_at__gte=hour, created_at__lt=hour + timedelta(hours=1))
    )
    # then each rule was evaluated twice, A matched once, and both paths agree
    assert sql == python
    counts = {key[0]: (tally.a, tally.b) for key, tally in sql.rules.items()}
    assert counts == {str(sample.a.pk): (2, 1), str(sample.b.pk): (2, 0)}
