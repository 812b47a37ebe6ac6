"""Prometheus metrics of the engine: per-rule outcomes (bounded), sampled rule timing,
actions by type and outcome, ruleset cache hits and misses, delayed-action lateness."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from rules_engine import engine, metrics, services
from rules_engine.functions import registry as functions
from rules_engine.models import Rule
from scheduling import services as scheduling_services
from scheduling.models import ScheduledAction

pytestmark = pytest.mark.django_db


def value(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry (0 when it does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rule_id(name: str) -> str:
    return str(Rule.objects.get(name=name).pk)


@pytest.fixture(autouse=True)
def _fresh_rule_labels() -> Iterator[None]:
    """Each test starts with no rule admitted to its own series."""
    metrics._admitted_rules.clear()
    yield
    metrics._admitted_rules.clear()


@pytest.fixture
def no_rule_timing(settings: Any) -> None:
    settings.VERDICT = {**settings.VERDICT, "METRICS_RULE_TIMING_EVERY": 0}


def test_matched_rules_are_counted_per_rule(demo, demo_context, no_rule_timing):
    # given the per-rule counters before
    shipping, loyalty = rule_id("Free shipping banner"), rule_id("Count checkouts and show loyalty")
    large = rule_id("Large order confirmation")
    before = [
        value("verdict_rule_outcomes_total", entry_point="checkout", rule=r, outcome="matched")
        for r in (shipping, loyalty, large)
    ]
    # when the demo context is decided twice (and dry-run once, which does not count)
    engine.execute(entry_point="checkout", context=demo_context)
    engine.execute(entry_point="checkout", context=demo_context)
    engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    # then each matching rule counted two matches under its own id, the others none
    after = [
        value("verdict_rule_outcomes_total", entry_point="checkout", rule=r, outcome="matched")
        for r in (shipping, loyalty, large)
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 0]


def test_a_failing_rule_is_counted_as_an_error_of_that_rule(demo, demo_context, no_rule_timing):
    # given a rule whose condition raises at run time
    def explode(*args: Any) -> Any:
        raise ValueError("boom")

    functions.register("explode", explode)
    try:
        rule = Rule.objects.get(name="Large order confirmation")
        services.rule_update(rule=rule, data={"condition": {"explode": [1]}})
        labels = {"entry_point": "checkout", "rule": str(rule.pk), "outcome": "error"}
        before = value("verdict_rule_outcomes_total", **labels)
        errors_before = value("verdict_rule_errors_total", entry_point="checkout", kind="rule")
        # when decided
        engine.execute(entry_point="checkout", context=demo_context)
    finally:
        functions.unregister("explode")
    # then that rule counted one error, and the entry point's rule errors one more
    assert value("verdict_rule_outcomes_total", **labels) == before + 1
    errors = value("verdict_rule_errors_total", entry_point="checkout", kind="rule")
    assert errors == errors_before + 1


def test_rules_beyond_the_bound_share_the_other_series(
    demo, demo_context, settings, no_rule_timing
):
    # given room for one rule's own series per process
    settings.VERDICT = {**settings.VERDICT, "METRICS_MAX_RULES": 1}
    shipping = rule_id("Free shipping banner")
    labels = {"entry_point": "checkout", "outcome": "matched"}
    own = value("verdict_rule_outcomes_total", rule=shipping, **labels)
    other = value("verdict_rule_outcomes_total", rule="other", **labels)
    # when the demo context (three matching rules) is decided
    engine.execute(entry_point="checkout", context=demo_context)
    # then the first matching rule has its own series and the other two are folded together
    assert metrics._admitted_rules == {shipping}
    assert value("verdict_rule_outcomes_total", rule=shipping, **labels) == own + 1
    assert value("verdict_rule_outcomes_total", rule="other", **labels) == other + 2


def test_rule_timing_is_sampled_on_one_decision_in_n(demo, demo_context, settings, monkeypatch):
    # given timing on every second decision
    settings.VERDICT = {**settings.VERDICT, "METRICS_RULE_TIMING_EVERY": 2}
    monkeypatch.setattr(metrics, "_decisions_seen", itertools.count(1))
    ids = [rule.pk for rule in Rule.objects.filter(entry_point__key="checkout")]
    counts = [
        value("verdict_rule_evaluation_seconds_count", entry_point="checkout", rule=str(pk))
        for pk in ids
    ]
    # when four decisions are made
    for _ in range(4):
        engine.execute(entry_point="checkout", context=demo_context)
    # then two of them were timed rule by rule: every rule has two more observations
    after = [
        value("verdict_rule_evaluation_seconds_count", entry_point="checkout", rule=str(pk))
        for pk in ids
    ]
    assert [a - b for a, b in zip(after, counts, strict=True)] == [2, 2, 2, 2, 2]


def test_rule_timing_off_times_nothing(demo, demo_context, no_rule_timing):
    # given rule timing switched off
    pk = rule_id("Free shipping banner")
    labels = {"entry_point": "checkout", "rule": pk}
    before = value("verdict_rule_evaluation_seconds_count", **labels)
    # when decisions are made
    for _ in range(3):
        engine.execute(entry_point="checkout", context=demo_context)
    # then no rule was timed
    assert value("verdict_rule_evaluation_seconds_count", **labels) == before


def test_actions_are_counted_by_type_and_outcome(demo, demo_context, no_rule_timing):
    # given the action counters before
    kinds = [("display_message", "ok"), ("user_acknowledge", "ok"), ("update", "ok")]
    before = [value("verdict_actions_total", type=t, outcome=o) for t, o in kinds]
    # when the demo context is decided, and dry-run (not counted)
    engine.execute(entry_point="checkout", context=demo_context)
    engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    # then two messages, one acknowledgement and one update were dispatched
    after = [value("verdict_actions_total", type=t, outcome=o) for t, o in kinds]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]


def test_a_failing_action_is_counted_as_an_error(demo, demo_context, no_rule_timing):
    # given an update whose subject expression gives null
    rule = Rule.objects.get(name="Free shipping banner")
    update = {
        "type": "update",
        "params": {"target": "subject_state", "subject": None, "set": {"x": 1}},
    }
    services.rule_update(rule=rule, data={"actions": [update]})
    before = value("verdict_actions_total", type="update", outcome="error")
    # when decided
    decision = engine.execute(entry_point="checkout", context=demo_context)
    # then the failed update is counted as an error
    assert [r["status"] for r in decision.action_results if r["rule_id"] == str(rule.pk)] == [
        "error"
    ]
    assert value("verdict_actions_total", type="update", outcome="error") == before + 1


def test_ruleset_cache_counts_one_miss_then_hits(demo, demo_context, no_rule_timing):
    # given an empty process cache and the counters before
    misses = value("verdict_ruleset_cache_total", result="miss")
    hits = value("verdict_ruleset_cache_total", result="hit")
    # when three decisions are made
    for _ in range(3):
        engine.execute(entry_point="checkout", context=demo_context)
    # then the first loaded the ruleset and the two others found it compiled
    assert value("verdict_ruleset_cache_total", result="miss") == misses + 1
    assert value("verdict_ruleset_cache_total", result="hit") == hits + 2


def test_a_delayed_action_is_counted_scheduled_then_its_lateness_observed(
    demo, demo_context, no_rule_timing
):
    # given a rule whose message is delayed by 60 s
    rule = Rule.objects.get(name="Free shipping banner")
    message = {**rule.actions[0], "delay_seconds": 60}
    services.rule_update(rule=rule, data={"actions": [message]})
    scheduled = value("verdict_actions_total", type="display_message", outcome="scheduled")
    late = value("verdict_scheduled_action_lateness_seconds_count", entry_point="checkout")
    late_sum = value("verdict_scheduled_action_lateness_seconds_sum", entry_point="checkout")
    # when decided, the delayed action is stored and counted as scheduled
    engine.execute(entry_point="checkout", context=demo_context)
    assert value("verdict_actions_total", type="display_message", outcome="scheduled") == (
        scheduled + 1
    )
    ran = value("verdict_actions_total", type="display_message", outcome="ok")
    # and when it runs 3 s after its due time
    row = ScheduledAction.objects.get(rule_id=rule.pk)
    row.status = ScheduledAction.Status.ENQUEUED
    row.due_at = timezone.now() - timedelta(seconds=3)
    row.save()
    scheduling_services.scheduled_actions_run(ids=[str(row.pk)])
    # then it counts as run and its lateness (3 s and a little) is observed once
    assert value("verdict_actions_total", type="display_message", outcome="ok") == ran + 1
    count = value("verdict_scheduled_action_lateness_seconds_count", entry_point="checkout")
    observed = value("verdict_scheduled_action_lateness_seconds_sum", entry_point="checkout")
    assert count == late + 1
    assert 3.0 <= observed - late_sum < 3.5
