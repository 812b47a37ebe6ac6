"""Experiment results from the audit trail: exposures, matches, outcomes and the SRM flag."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from experiments import selectors, services
from experiments.models import Experiment
from lifecycle.models import Label
from rules_engine import engine
from rules_engine.models import Acknowledgement, Execution, Rule
from tests.experiments.conftest import experiment_data


@pytest.fixture(autouse=True, params=["in the database", "in Python"])
def containment(request: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: JSON containment by PostgreSQL, and found in Python as on a database
    without it (the SQLite of `make run`); both must count the same."""
    if request.param == "in Python":
        monkeypatch.setattr(selectors, "json_containment", lambda: False)


@pytest.fixture
def running(promo_rule: Rule) -> Experiment:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    return services.experiment_start(experiment=experiment)


def _rows(experiment: Experiment, variant: str, count: int, **entry: Any) -> list[Execution]:
    """`count` audit rows of distinct subjects exposed to `variant` (nothing saved yet)."""
    rule = experiment.rule
    assert rule is not None
    return [
        Execution(
            entry_point_id=experiment.entry_point_id,
            outcome="matched" if entry.get("outcome") == "matched" else "no_match",
            subject=f"{variant}-{n}",
            rule_results=[
                {
                    "id": str(rule.pk),
                    "outcome": "not_matched",
                    "variant": f"{experiment.key}:{variant}",
                    **entry,
                }
            ],
        )
        for n in range(count)
    ]


def _by_key(results: Any) -> dict[str, Any]:
    return {v.key: v for v in results.variants}


def test_real_decisions_count_as_exposures_and_matches(running: Experiment) -> None:
    # given three subjects of b (b matches everyone) and two of control deciding silver
    # (control does not match), plus a decision without subject
    for subject in _assigned("b")[:3]:
        engine.execute(entry_point="promo", context={"user": {"id": subject}, "tier": "silver"})
    for subject in _assigned("control")[:2]:
        engine.execute(entry_point="promo", context={"user": {"id": subject}, "tier": "silver"})
    engine.execute(entry_point="promo", context={"tier": "gold"})
    # when the results are read
    results = selectors.experiment_results(experiment=running)
    # then each variant has its exposures and matches (the subject-less decision is none)
    variants = _by_key(results)
    assert (variants["b"].exposures, variants["b"].matches, variants["b"].match_rate) == (3, 3, 1.0)
    assert (variants["control"].exposures, variants["control"].matches) == (2, 0)
    assert variants["control"].match_rate == 0.0
    assert (variants["b"].share, variants["b"].expected_share) == (0.6, 0.5)
    assert results.outcome_source is None and variants["b"].outcomes is None
    assert results.srm.flagged is False


def _assigned(variant: str) -> list[str]:
    from experiments import runtime

    return [
        f"u{n}"
        for n in range(40)
        if runtime.assign(salt="salt-1", subject=f"u{n}", weights=[("b", 50), ("control", 50)])
        == variant
    ]


def test_5000_against_4500_exposures_on_50_50_are_flagged(running: Experiment) -> None:
    Execution.objects.bulk_create(
        _rows(running, "b", 5000, outcome="matched") + _rows(running, "control", 4500)
    )
    results = selectors.experiment_results(experiment=running)
    variants = _by_key(results)
    assert (variants["b"].exposures, variants["control"].exposures) == (5000, 4500)
    assert (variants["b"].matches, variants["control"].matches) == (5000, 0)
    assert results.srm.flagged is True
    assert results.srm.p_value == pytest.approx(2.8990882828775596e-07, rel=1e-6)


def test_5010_against_4990_exposures_on_50_50_are_not_flagged(running: Experiment) -> None:
    Execution.objects.bulk_create(_rows(running, "b", 5010) + _rows(running, "control", 4990))
    results = selectors.experiment_results(experiment=running)
    assert [v.exposures for v in results.variants] == [5010, 4990]
    assert results.srm.flagged is False
    assert results.srm.p_value == pytest.approx(0.8414805811217944, rel=1e-9)


def test_rows_outside_the_experiment_window_are_not_counted(running: Experiment) -> None:
    rows = _rows(running, "b", 3)
    Execution.objects.bulk_create(rows)
    assert running.started_at is not None
    Execution.objects.filter(pk=rows[0].pk).update(
        created_at=running.started_at - timedelta(seconds=1)
    )
    services.experiment_stop(experiment=running)
    running.refresh_from_db()
    late = _rows(running, "b", 1)
    Execution.objects.bulk_create(late)
    assert running.stopped_at is not None
    Execution.objects.filter(pk=late[0].pk).update(
        created_at=running.stopped_at + timedelta(seconds=1)
    )
    assert _by_key(selectors.experiment_results(experiment=running))["b"].exposures == 2


def test_the_outcome_is_the_acknowledgement_of_the_chosen_action(running: Experiment) -> None:
    # given b showed an acknowledgement to 4 subjects, 3 of whom accepted, and control to 2
    # subjects, 1 of whom accepted
    services.experiment_update(experiment=running, data={"outcome_action_type": "user_acknowledge"})
    shown = [{"rule_id": str(running.rule_id), "type": "user_acknowledge", "status": "ok"}]
    b_rows = _rows(running, "b", 4, outcome="matched")
    control_rows = _rows(running, "control", 2, outcome="matched")
    for row in b_rows + control_rows:
        row.action_results = shown
    Execution.objects.bulk_create(b_rows + control_rows + _rows(running, "control", 3))
    for row in b_rows[:3] + control_rows[:1]:
        Acknowledgement.objects.create(
            ack_key="terms", subject=row.subject, entry_point_id=row.entry_point_id, execution=row
        )
    # when the results are read
    results = selectors.experiment_results(experiment=running)
    # then outcomes are counted per variant against the executions that showed the action
    variants = _by_key(results)
    assert results.outcome_source == "action:user_acknowledge"
    assert (variants["b"].outcome_eligible, variants["b"].outcomes) == (4, 3)
    assert variants["b"].outcome_rate == 0.75
    assert (variants["control"].outcome_eligible, variants["control"].outcomes) == (2, 1)
    assert variants["control"].outcome_rate == 0.5


def test_the_outcome_can_be_labels_of_the_exposed_executions(running: Experiment) -> None:
    services.experiment_update(experiment=running, data={"outcome_labels": ["FRAUD"]})
    b_rows = _rows(running, "b", 4)
    control_rows = _rows(running, "control", 5)
    Execution.objects.bulk_create(b_rows + control_rows)
    now = timezone.now()
    Label.objects.bulk_create(
        [Label(execution=row, label="FRAUD", created_at=now) for row in b_rows[:1]]
        + [Label(execution=row, label="NORMAL", created_at=now) for row in b_rows[1:3]]
        + [Label(execution=row, label="FRAUD", created_at=now) for row in control_rows[:2]]
    )
    results = selectors.experiment_results(experiment=running)
    variants = _by_key(results)
    assert results.outcome_source == "labels"
    assert (variants["b"].outcome_eligible, variants["b"].outcomes) == (4, 1)
    assert (variants["control"].outcome_eligible, variants["control"].outcomes) == (5, 2)
    assert variants["control"].outcome_rate == 0.4


def test_a_shadow_rollout_counts_the_new_versions_shadow_matches(promo_rule: Rule) -> None:
    rollout = services.experiment_create(
        data=experiment_data(promo_rule, key="greet-rollout", kind="rollout", shadow=True)
    )
    services.experiment_start(experiment=rollout)
    for subject in _assigned("b")[:2]:
        engine.execute(entry_point="promo", context={"user": {"id": subject}, "tier": "silver"})
    variants = _by_key(selectors.experiment_results(experiment=rollout))
    assert (variants["b"].exposures, variants["b"].matches) == (2, 2)


def test_a_draft_has_no_results(promo_rule: Rule) -> None:
    draft = services.experiment_create(data=experiment_data(promo_rule))
    results = selectors.experiment_results(experiment=draft)
    assert [(v.key, v.exposures) for v in results.variants] == [("b", 0), ("control", 0)]
    assert results.srm.flagged is False
