"""Operators' commands: `rules_backtest` and `events_backfill`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingress.models import Event
from ingress.services import event_accept, event_cancel, events_decide
from lifecycle.models import BackfilledEvent, BackfillRun, Backtest, Label
from rules_engine import services as rule_services
from rules_engine.models import EntryPoint, Execution, Rule
from tests.lifecycle.conftest import store_executions, window

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_rules_backtest_waits_with_a_progress_bar_and_prints_the_summary(
    payments: EntryPoint, big_rule: Rule, tmp_path: Path
) -> None:
    # given 10,000 stored executions, totals 6000 and 7000 labelled FRAUD, 100 NORMAL
    executions = store_executions(payments, 10_000)
    for total, label in ((6000, "FRAUD"), (7000, "FRAUD"), (100, "NORMAL")):
        Label.objects.create(execution=executions[total], label=label)
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps({"condition": {">": [{"var": "total"}, 7500]}}))
    window_from, window_to = window()

    # when the candidate is backtested with --wait
    out, err = run(
        "rules_backtest",
        "--entry-point=payments",
        f"--rule={big_rule.pk}",
        f"--candidate-file={candidate}",
        f"--from={window_from.isoformat()}",
        f"--to={window_to.isoformat()}",
        "--sample=2",
        "--chunk=2500",
        "--wait",
    )

    # then it ran here, drew its bar on one line, and printed the diff and the label scores
    backtest = Backtest.objects.get()
    assert err.endswith(f"\rbacktest #{backtest.pk} [{'#' * 30}] 10000/10000 (100%)\n")
    assert err.count("\n") == 1
    assert out.splitlines() == [
        f"backtest #{backtest.pk}: done (10000/10000)",
        "evaluated: 10000  errors: 0",
        "decisions changed: 2500  (newly matching: 0, no longer matching: 2500)",
        "per rule: current -> candidate matched (+newly / -no longer / =unchanged)",
        "  Big: 4999 -> 2499 (+0 / -2500 / =2499)",
        "labels: 3 labelled, positive = CHARGEBACK, FRAUD",
        "  current: precision 1.000 recall 1.000 (tp 2, fp 0, fn 0, tn 1)",
        "  candidate: precision n/a recall 0.000 (tp 0, fp 0, fn 2, tn 1)",
        "first changed decisions:",
        f"  {executions[5001].pk}: matched ['Big'] -> no_match []",
        f"  {executions[5002].pk}: matched ['Big'] -> no_match []",
    ]


def test_rules_backtest_refuses_a_candidate_that_does_not_compile(
    payments: EntryPoint, big_rule: Rule, tmp_path: Path
) -> None:
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps({"condition": {"nope": []}}))

    with pytest.raises(CommandError, match=r"invalid_candidate: \$\.condition"):
        run(
            "rules_backtest",
            "--entry-point=payments",
            f"--rule={big_rule.pk}",
            f"--candidate-file={candidate}",
            "--from=2025-01-01",
            "--to=2025-02-01",
            "--wait",
        )
    assert Backtest.objects.count() == 0


@pytest.fixture
def decided_events(payments: EntryPoint) -> list[Event]:
    """Three events decided by the live rule `total > 5000` (totals 100, 6000, 9000) and one
    cancelled before it was decided."""
    events = [
        event_accept(type="payments", key=f"k{total}", payload={"total": total})[0]
        for total in (100, 6000, 9000)
    ]
    Event.objects.update(status="processing")
    events_decide(event_ids=[str(e.pk) for e in events])
    cancelled, _ = event_accept(type="payments", key="gone", payload={"total": 9999})
    event_cancel(event=cancelled)
    return events


WINDOW = window()


def backfill(*extra: str) -> tuple[str, str]:
    # The same window each time: the window names the backfill run.
    window_from, window_to = WINDOW
    return run(
        "events_backfill",
        f"--from={window_from.isoformat()}",
        f"--to={window_to.isoformat()}",
        "--type=payments",
        *extra,
    )


def test_events_backfill_dry_run_lists_changes_and_writes_nothing(
    decided_events: list[Event], big_rule: Rule
) -> None:
    # given the rule now asks for total > 7000
    rule_services.rule_update(rule=big_rule, data={"condition": {">": [{"var": "total"}, 7000]}})

    # when the window is backfilled without --apply
    out, err = backfill()

    # then the 6000 event would change, the others not; nothing was written
    lines = out.splitlines()
    assert lines[0].endswith(": dry run (nothing written; --apply to write)")
    assert lines[1:] == [
        f"  {decided_events[1].pk} payments: matched ['Big'] -> no_match []",
        "events: 3  unchanged: 2  changed: 1  new: 0  failed: 0",
    ]
    assert err.endswith(f"\revents [{'#' * 30}] 3/3 (100%)\n")
    assert Execution.objects.count() == 3
    assert (BackfillRun.objects.count(), BackfilledEvent.objects.count()) == (0, 0)


def test_events_backfill_apply_twice_writes_each_decision_once(
    decided_events: list[Event], big_rule: Rule
) -> None:
    # given the rule now asks for total > 7000
    rule_services.rule_update(rule=big_rule, data={"condition": {">": [{"var": "total"}, 7000]}})

    # when the window is backfilled with --apply, twice
    first, _ = backfill("--apply")
    after_first = sorted(Execution.objects.values_list("request_id", "outcome"))
    second, _ = backfill("--apply")

    # then the first run wrote one new decision per event, the second none
    key = BackfillRun.objects.get().key
    assert first.splitlines()[-1] == (
        "events: 3  unchanged: 2  changed: 1  new: 0  failed: 0"
        "  applied: 3  skipped (already backfilled): 0"
    )
    assert second.splitlines()[-1] == (
        "events: 3  unchanged: 0  changed: 0  new: 0  failed: 0"
        "  applied: 0  skipped (already backfilled): 3"
    )
    assert sorted(Execution.objects.values_list("request_id", "outcome")) == after_first
    backfilled = sorted(
        (f"{key}:{e.pk}", outcome)
        for e, outcome in zip(decided_events, ["no_match", "no_match", "matched"], strict=True)
    )
    assert sorted(r for r in after_first if r[0].startswith("backfill:")) == backfilled
    assert Execution.objects.count() == 6
    run_row = BackfillRun.objects.get()
    assert (run_row.applied, run_row.skipped, run_row.runs) == (3, 3, 2)
    # and each event keeps the decision it got when it arrived
    for event in decided_events:
        event.refresh_from_db()
        assert event.execution is not None and event.execution.caller == "event:api"


def test_rules_backtest_leaves_it_to_a_worker_without_wait(
    payments: EntryPoint, big_rule: Rule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a worker answers pings
    from lifecycle.management.commands import rules_backtest

    monkeypatch.setattr(rules_backtest, "_worker_available", lambda: True)
    ruleset = tmp_path / "ruleset.json"
    ruleset.write_text(json.dumps([{"name": "All", "condition": True}]))

    # when a rule set is backtested without --wait
    out, _ = run(
        "rules_backtest",
        "--entry-point=payments",
        f"--ruleset-file={ruleset}",
        "--from=2025-01-01",
        "--to=2025-02-01T00:00:00+00:00",
        "--source=events",
    )

    # then it is queued (published when the transaction commits) and not run here
    backtest = Backtest.objects.get()
    assert out.startswith(f"backtest #{backtest.pk} queued for a worker")
    assert (backtest.status, backtest.mode, backtest.source) == ("queued", "ruleset", "events")
    assert backtest.window_from.isoformat() == "2025-01-01T00:00:00+00:00"
