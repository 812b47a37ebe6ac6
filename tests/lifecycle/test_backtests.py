"""Backtests: a candidate rule replayed over stored history, compared with the live rules."""

from __future__ import annotations

from typing import Any

import pytest

from ingress.models import Event
from lifecycle import services
from lifecycle.models import Backtest, Label
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint, Execution, Rule
from tests.lifecycle.conftest import store_executions, window
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db


def label_every_hundredth(executions: list[Execution]) -> None:
    """Totals 0, 100, ..., 9900 are labelled: FRAUD from 6000 on, NORMAL below."""
    Label.objects.bulk_create(
        [
            Label(execution=row, label="FRAUD" if total >= 6000 else "NORMAL", source="test")
            for total, row in enumerate(executions)
            if total % 100 == 0
        ]
    )


def start(entry_point: EntryPoint, candidate: Any, **kwargs: Any) -> Backtest:
    window_from, window_to = window()
    return services.backtest_start(
        entry_point=entry_point,
        window_from=window_from,
        window_to=window_to,
        candidate=candidate,
        enqueue=False,
        **kwargs,
    )


def test_a_backtest_over_10000_executions_reports_the_exact_diff(
    payments: EntryPoint, big_rule: Rule
) -> None:
    # given 10,000 audit rows with totals 0..9999 (live rule: total > 5000), 100 labelled
    executions = store_executions(payments, 10_000)
    label_every_hundredth(executions)
    backtest = start(payments, {"condition": {">": [{"var": "total"}, 7500]}}, rule=big_rule)

    # when the candidate `total > 7500` is backtested in chunks of 1,000
    done = services.backtest_run(backtest_id=backtest.pk, chunk_size=1000)

    # then 2,500 decisions (totals 5001..7500) no longer match and nothing newly matches
    assert done is not None
    assert (done.status, done.processed, done.total) == ("done", 10_000, 10_000)
    results = done.results
    assert {k: results[k] for k in ("evaluated", "errors", "decisions_changed")} == {
        "evaluated": 10_000,
        "errors": 0,
        "decisions_changed": 2500,
    }
    assert (results["newly_matching"], results["no_longer_matching"]) == (0, 2500)
    assert results["outcomes"] == {
        "current": {"matched": 4999, "no_match": 5001},
        "candidate": {"matched": 2499, "no_match": 7501},
    }
    [rule] = results["rules"]
    assert {k: v for k, v in rule.items() if k not in ("labels", "examples")} == {
        "id": str(big_rule.pk),
        "name": "Big",
        "in_current": True,
        "in_candidate": True,
        "current_matched": 4999,
        "candidate_matched": 2499,
        "newly_matching": 0,
        "no_longer_matching": 2500,
        "unchanged_matching": 2499,
        "unchanged_not_matching": 5001,
    }
    # and against the labels: 40 FRAUD (6000..9900), 60 NORMAL
    assert results["labels"] == {
        "positive": ["CHARGEBACK", "FRAUD"],
        "labelled": 100,
        "counts": {"FRAUD": 40, "NORMAL": 60},
        # live: matches 5100..9900 (49 labelled), 9 of them NORMAL
        "current": {"tp": 40, "fp": 9, "fn": 0, "tn": 51, "precision": 0.816327, "recall": 1.0},
        # candidate: matches 7600..9900 (24), misses 6000..7500 (16)
        "candidate": {"tp": 24, "fp": 0, "fn": 16, "tn": 60, "precision": 1.0, "recall": 0.6},
    }
    assert rule["labels"]["candidate"]["recall"] == 0.6
    # and the examples are the first ten changed decisions, with their audit row ids
    first = results["examples"]["first_changed"]
    assert [e["id"] for e in first] == [str(executions[t].pk) for t in range(5001, 5011)]
    assert first[0] == {
        "id": str(executions[5001].pk),
        "current": {"outcome": "matched", "matched": ["Big"]},
        "candidate": {"outcome": "no_match", "matched": []},
        "label": None,
    }
    assert rule["examples"]["no_longer_matching"][0] == str(executions[5001].pk)
    sampled = results["examples"]["sampled_changed"]
    changed = {str(executions[t].pk) for t in range(5001, 7501)}
    assert len(sampled) == 10 and {e["id"] for e in sampled} <= changed


def test_a_backtest_writes_no_audit_rows(payments: EntryPoint, big_rule: Rule) -> None:
    # given 100 stored executions
    store_executions(payments, 100)
    backtest = start(payments, {"condition": {">": [{"var": "total"}, 50]}}, rule=big_rule)

    # when it runs
    done = services.backtest_run(backtest_id=backtest.pk)

    # then the audit table is as it was, and the candidate newly matches totals 51..99
    assert Execution.objects.count() == 100
    assert done is not None and done.results["newly_matching"] == 49


def test_cancelling_stops_a_running_backtest_between_chunks(
    payments: EntryPoint, big_rule: Rule
) -> None:
    # given a backtest over 10,000 executions in chunks of 1,000
    store_executions(payments, 10_000)
    backtest = start(payments, {"condition": {">": [{"var": "total"}, 7500]}}, rule=big_rule)
    seen: list[int] = []

    def cancel_after_first_chunk(running: Backtest) -> None:
        seen.append(running.processed)
        services.backtest_cancel(backtest=running)

    # when it is cancelled while the first chunk is being reported
    done = services.backtest_run(
        backtest_id=backtest.pk, chunk_size=1000, on_chunk=cancel_after_first_chunk
    )

    # then it stopped there: cancelled, 1,000 of 10,000 processed, partial results kept
    assert seen == [1000]
    assert done is not None
    assert (done.status, done.processed, done.total) == ("cancelled", 1000, 10_000)
    assert done.results["evaluated"] == 1000
    # and running it again is a no-op
    assert services.backtest_run(backtest_id=backtest.pk) is None


def test_a_queued_backtest_cancelled_never_runs(payments: EntryPoint, big_rule: Rule) -> None:
    backtest = start(payments, {"condition": False}, rule=big_rule)

    assert services.backtest_cancel(backtest=backtest) is True

    assert services.backtest_run(backtest_id=backtest.pk) is None
    backtest.refresh_from_db()
    assert (backtest.status, backtest.processed) == ("cancelled", 0)


def test_a_candidate_that_does_not_compile_is_refused(payments: EntryPoint, big_rule: Rule) -> None:
    with pytest.raises(InvalidInput) as refused:
        start(payments, {"condition": {"no_such_operator": [1]}}, rule=big_rule)

    assert refused.value.code == "invalid_candidate"
    assert [d["path"] for d in refused.value.details] == ["$.condition"]
    assert Backtest.objects.count() == 0


def test_a_whole_candidate_rule_set_replaces_the_live_rules(
    payments: EntryPoint, big_rule: Rule
) -> None:
    # given 10 executions with totals 0..9
    store_executions(payments, 10)
    # when the candidate set keeps "Big" and adds "Small" (total < 3)
    backtest = start(
        payments,
        [
            {"id": str(big_rule.pk), "condition": {">": [{"var": "total"}, 5000]}},
            {"name": "Small", "condition": {"<": [{"var": "total"}, 3]}, "priority": 5},
        ],
    )
    done = services.backtest_run(backtest_id=backtest.pk)

    # then three decisions change, all newly matching the new rule
    assert done is not None and done.mode == "ruleset"
    rules = {r["name"]: r for r in done.results["rules"]}
    assert (rules["Big"]["newly_matching"], rules["Big"]["no_longer_matching"]) == (0, 0)
    assert (rules["Small"]["in_current"], rules["Small"]["newly_matching"]) == (False, 3)
    assert done.results["decisions_changed"] == 3


def test_executions_replay_masked_snapshots_and_events_full_payloads(
    payments: EntryPoint, big_rule: Rule
) -> None:
    # given one event decided live: its payload has the card, its audit snapshot masks it
    from ingress.services import event_accept, events_decide

    event, _ = event_accept(type="payments", key="k1", payload={"total": 1, "card": "4111"})
    Event.objects.filter(pk=event.pk).update(status="processing")
    events_decide(event_ids=[str(event.pk)])
    assert Execution.objects.get().context_snapshot["card"] == "***"
    candidate = {"condition": {"==": [{"var": "card"}, "4111"]}}

    # when a candidate testing the card is backtested over each source
    over_events = start(payments, candidate, rule=big_rule, source="events")
    over_audit = start(payments, candidate, rule=big_rule, source="executions")
    services.backtest_run(backtest_id=over_events.pk)
    services.backtest_run(backtest_id=over_audit.pk)
    over_events.refresh_from_db()
    over_audit.refresh_from_db()

    # then only the events see the real card number
    assert over_events.results["newly_matching"] == 1
    assert over_audit.results["newly_matching"] == 0


def test_event_labels_count_for_the_events_source(payments: EntryPoint, big_rule: Rule) -> None:
    # given two decided events, one labelled FRAUD by event, one CHARGEBACK by its execution
    from ingress.services import event_accept, events_decide

    first, _ = event_accept(type="payments", key="a", payload={"total": 9000})
    second, _ = event_accept(type="payments", key="b", payload={"total": 10})
    Event.objects.update(status="processing")
    events_decide(event_ids=[str(first.pk), str(second.pk)])
    second.refresh_from_db()
    Label.objects.create(event=first, label="FRAUD")
    Label.objects.create(execution_id=second.execution_id, label="CHARGEBACK")

    # when the live rule is backtested unchanged over events
    backtest = start(payments, {}, rule=big_rule, source="events")
    done = services.backtest_run(backtest_id=backtest.pk)

    # then both are positives: the 9000 one is caught, the 10 one missed
    assert done is not None
    assert done.results["labels"]["current"] == {
        "tp": 1,
        "fp": 0,
        "fn": 1,
        "tn": 0,
        "precision": 1.0,
        "recall": 0.5,
    }


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_published_backtest(worker: Any, payments: EntryPoint) -> None:
    # given 2,000 stored executions and a running worker
    store_executions(payments, 2000)
    rule = Rule.objects.get(name="Big")
    window_from, window_to = window()

    # when a backtest is started (published on commit)
    backtest = services.backtest_start(
        entry_point="payments",
        window_from=window_from,
        window_to=window_to,
        rule=rule,
        candidate={"condition": {">": [{"var": "total"}, 1500]}},
    )

    # then the worker finishes it: totals 1501..1999 newly match (the live rule matches none)
    def finished() -> Backtest | None:
        row = Backtest.objects.get(pk=backtest.pk)
        return row if row.status not in ("queued", "running") else None

    done = wait_for(finished, timeout=60)
    assert (done.status, done.processed, done.total) == ("done", 2000, 2000)
    assert done.results["newly_matching"] == 499
