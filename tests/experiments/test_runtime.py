"""Assignment is sticky and follows the weights; decisions run the assigned variant and the
audit row names it; shadow rollouts record without applying; no experiment costs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import runtime, services
from experiments.models import Experiment
from rules_engine import engine
from rules_engine.models import Execution
from tests.experiments.conftest import BYE, SALT, experiment_data, make_promo, subject_for

SUBJECTS = [f"user-{n}" for n in range(10_000)]


def test_assignment_is_sticky_across_calls_and_processes() -> None:
    # given a split and a few subjects assigned in this process
    weights = [("b", 50), ("control", 50)]
    here = [runtime.assign(salt=SALT, subject=f"u{n}", weights=weights) for n in range(6)]
    # when another process assigns them again
    code = (
        "import django, json; django.setup(); from experiments.runtime import assign; "
        f"print(json.dumps([assign(salt={SALT!r}, subject=f'u{{n}}', weights={weights!r})"
        " for n in range(6)]))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    # then every subject keeps its variant (and a second call here agrees too)
    assert here == ["control", "b", "b", "control", "control", "b"]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here
    assert [runtime.assign(salt=SALT, subject=f"u{n}", weights=weights) for n in range(6)] == here


def test_a_50_50_split_of_10000_subjects_is_within_2_percent() -> None:
    counts = Counter(
        runtime.assign(salt=SALT, subject=s, weights=[("b", 50), ("control", 50)]) for s in SUBJECTS
    )
    assert counts == {"control": 5022, "b": 4978}
    assert abs(counts["b"] - 5000) <= 200


def test_a_90_10_split_of_10000_subjects_is_within_1_5_percent() -> None:
    counts = Counter(
        runtime.assign(salt=SALT, subject=s, weights=[("b", 10), ("control", 90)]) for s in SUBJECTS
    )
    assert counts == {"control": 8988, "b": 1012}
    assert abs(counts["b"] - 1000) <= 150


def test_three_variants_follow_their_weights() -> None:
    counts = Counter(
        runtime.assign(salt=SALT, subject=s, weights=[("a", 20), ("b", 30), ("control", 50)])
        for s in SUBJECTS
    )
    assert counts == {"control": 5022, "b": 2942, "a": 2036}


def test_another_salt_splits_independently() -> None:
    # given the same subjects under two salts
    weights = [("b", 50), ("control", 50)]
    first = [runtime.assign(salt=SALT, subject=s, weights=weights) for s in SUBJECTS[:1000]]
    other = [runtime.assign(salt="salt-2", subject=s, weights=weights) for s in SUBJECTS[:1000]]
    # then about half of them change variant (the splits are unrelated)
    assert sum(a != b for a, b in zip(first, other, strict=True)) == 516


def test_no_subject_gets_control() -> None:
    assert runtime.assign(salt=SALT, subject=None, weights=[("b", 100), ("control", 0)]) == (
        "control"
    )


@pytest.fixture
def running(promo_rule: Any) -> Experiment:
    """The 50/50 experiment greet-ab (b = match everyone, say bye), started."""
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    return services.experiment_start(experiment=experiment)


def _entry(decision: Any) -> dict[str, Any]:
    [entry] = decision.rule_results
    return dict(entry)


def test_a_subject_in_variant_b_gets_b_and_the_audit_row_names_it(running: Experiment) -> None:
    # given a subject the split assigns to b, and a context the live rule would not match
    subject = subject_for("b")
    # when it asks for a decision
    decision = engine.execute(
        entry_point="promo", context={"user": {"id": subject}, "tier": "silver"}
    )
    # then b's condition matched and b's action ran, and the audit row names the variant
    assert [e["message"]["content"] for e in decision.effects] == ["Bye"]
    assert _entry(decision)["variant"] == "greet-ab:b"
    assert _entry(decision)["outcome"] == "matched"
    row = Execution.objects.get(pk=str(decision.execution_id))
    assert [(r["variant"], r["outcome"]) for r in row.rule_results] == [("greet-ab:b", "matched")]


def test_a_subject_in_control_gets_the_live_rule(running: Experiment) -> None:
    subject = subject_for("control")
    silver = engine.execute(
        entry_point="promo", context={"user": {"id": subject}, "tier": "silver"}
    )
    gold = engine.execute(entry_point="promo", context={"user": {"id": subject}, "tier": "gold"})
    assert (silver.effects, _entry(silver)["variant"]) == ([], "greet-ab:control")
    assert [e["message"]["content"] for e in gold.effects] == ["Hi"]
    assert _entry(gold)["variant"] == "greet-ab:control"


def test_a_decision_without_subject_gets_control(running: Experiment) -> None:
    decision = engine.execute(entry_point="promo", context={"tier": "gold"})
    assert [e["message"]["content"] for e in decision.effects] == ["Hi"]
    assert _entry(decision)["variant"] == "greet-ab:control"


def test_a_stopped_experiment_no_longer_applies(running: Experiment) -> None:
    subject = subject_for("b")
    services.experiment_stop(experiment=running)
    decision = engine.execute(
        entry_point="promo", context={"user": {"id": subject}, "tier": "silver"}
    )
    assert decision.effects == []
    assert "variant" not in _entry(decision)


def test_a_variant_that_raises_priority_and_stops_processing_skips_later_rules(
    promo_rule: Any,
) -> None:
    # given a second rule that runs before the experiment's rule, and a variant b that moves
    # the experiment's rule first and stops processing
    from rules_engine import services as rule_services

    rule_services.rule_create(
        data={
            "name": "Always",
            "entry_point": promo_rule.entry_point,
            "priority": 50,
            "condition": True,
            "actions": [{"type": "display_message", "params": {"template": "hello"}}],
        }
    )
    content = {**BYE, "priority": 10, "stop_processing": True}
    data = experiment_data(
        promo_rule,
        variants=[{"key": "control", "weight": 50}, {"key": "b", "weight": 50, "content": content}],
    )
    services.experiment_start(experiment=services.experiment_create(data=data))
    # when a subject of b decides
    decision = engine.execute(
        entry_point="promo", context={"user": {"id": subject_for("b")}, "tier": "silver"}
    )
    # then b ran first and the other rule was skipped
    assert [(r["name"], r["outcome"], r.get("variant")) for r in decision.rule_results] == [
        ("Greet gold", "matched", "greet-ab:b"),
        ("Always", "skipped", None),
    ]
    assert [e["message"]["content"] for e in decision.effects] == ["Bye"]


def test_a_shadow_rollout_records_the_new_version_without_applying_it(promo_rule: Any) -> None:
    # given a shadow rollout of the new version to 50% of subjects
    rollout = services.experiment_create(
        data=experiment_data(promo_rule, key="greet-rollout", kind="rollout", shadow=True)
    )
    services.experiment_start(experiment=rollout)
    subject = subject_for("b")
    # when a subject of the new version decides on a context only the new version matches
    decision = engine.execute(
        entry_point="promo", context={"user": {"id": subject}, "tier": "silver"}
    )
    # then the live rule decided (no match, no effect) and the new version's result is noted
    assert decision.effects == []
    assert decision.outcome == "no_match"
    row = Execution.objects.get(pk=str(decision.execution_id))
    [entry] = row.rule_results
    assert {k: entry[k] for k in ("outcome", "variant", "shadow", "shadow_outcome")} == {
        "outcome": "not_matched",
        "variant": "greet-rollout:b",
        "shadow": True,
        "shadow_outcome": "matched",
    }


def test_a_shadow_rollout_leaves_a_live_match_in_place(promo_rule: Any) -> None:
    rollout = services.experiment_create(
        data=experiment_data(
            promo_rule,
            key="greet-rollout",
            kind="rollout",
            shadow=True,
            variants=[
                {"key": "control", "weight": 50},
                {"key": "b", "weight": 50, "content": {"condition": False}},
            ],
        )
    )
    services.experiment_start(experiment=rollout)
    decision = engine.execute(
        entry_point="promo", context={"user": {"id": subject_for("b")}, "tier": "gold"}
    )
    assert [e["message"]["content"] for e in decision.effects] == ["Hi"]
    assert (_entry(decision)["outcome"], _entry(decision)["shadow_outcome"]) == (
        "matched",
        "not_matched",
    )


def test_the_draft_dry_run_of_a_rule_ignores_the_experiment(running: Experiment) -> None:
    # dry runs of a rule's own content evaluate that content, whatever the subject's variant
    decision = engine.dry_run_rule(
        rule=running.rule, context={"user": {"id": subject_for("b")}, "tier": "silver"}
    )
    assert decision.effects == []
    assert "variant" not in _entry(decision)


@pytest.mark.django_db(transaction=True)
def test_warm_decisions_make_no_query_with_or_without_an_experiment(banner: Any) -> None:
    # given an entry point without experiments and one with a running experiment, both warm
    rule = make_promo()
    services.experiment_start(experiment=services.experiment_create(data=experiment_data(rule)))
    context = {"user": {"id": subject_for("b")}, "tier": "silver"}
    engine.execute(entry_point="banner", context={"name": "Ada"})
    engine.execute(entry_point="promo", context=context)
    # when the next decisions are made
    with CaptureQueriesContext(connection) as queries:
        plain = engine.execute(entry_point="banner", context={"name": "Bob"})
        split = engine.execute(entry_point="promo", context=context)
    # then the requests ran no SQL (the experiment is compiled into the ruleset)
    assert [q["sql"] for q in queries.captured_queries] == []
    assert plain.rule_results[0].get("variant") is None
    assert split.rule_results[0]["variant"] == "greet-ab:b"
