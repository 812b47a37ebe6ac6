"""Experiment writes: validation, start/stop, and promoting a winner to the live rule."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import connection

from experiments import services
from experiments.models import Experiment
from rules_engine import engine
from rules_engine.errors import InvalidInput
from rules_engine.models import Rule, RuleChange
from tests.experiments.conftest import BYE, experiment_data, make_promo, subject_for


def _paths(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [d["path"] for d in exc.value.details]


def test_create_stores_a_draft_with_its_variants(promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    assert (experiment.status, experiment.entry_point.key, experiment.salt) == (
        "draft",
        "promo",
        "salt-1",
    )
    assert [(v.key, v.weight, v.content) for v in experiment.variants.all()] == [
        ("b", 50, BYE),
        ("control", 50, {}),
    ]


def test_the_salt_is_random_by_default(promo_rule: Rule) -> None:
    data = experiment_data(promo_rule)
    del data["salt"]
    first = services.experiment_create(data=data)
    second = services.experiment_create(data={**data, "key": "other"})
    assert len(first.salt) == 16 and first.salt != second.salt


def test_create_refuses_variants_without_control_and_content_that_does_not_compile(
    promo_rule: Rule,
) -> None:
    data = experiment_data(
        promo_rule,
        variants=[
            {"key": "a", "weight": 1, "content": {"condition": {"nope": [1]}}},
            {"key": "b", "weight": 1, "content": {"colour": "red"}},
        ],
    )
    with pytest.raises(InvalidInput) as exc:
        services.experiment_create(data=data)
    assert exc.value.code == "invalid_experiment"
    assert _paths(exc) == [
        "$.variants",
        "$.variants[0].content.condition",
        "$.variants[1].content.colour",
    ]
    assert not Experiment.objects.exists()


def test_shadow_mode_is_for_rollouts_only(promo_rule: Rule) -> None:
    with pytest.raises(InvalidInput) as exc:
        services.experiment_create(data=experiment_data(promo_rule, shadow=True))
    assert _paths(exc) == ["$.shadow"]


def test_a_running_experiment_keeps_its_split(promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    services.experiment_start(experiment=experiment)
    with pytest.raises(InvalidInput) as exc:
        services.experiment_update(experiment=experiment, data={"salt": "new"})
    assert exc.value.details == [{"path": "$.salt", "message": "cannot change once running"}]
    services.experiment_update(experiment=experiment, data={"description": "why"})
    assert (experiment.description, experiment.salt) == ("why", "salt-1")


def test_only_one_experiment_runs_on_a_rule(promo_rule: Rule) -> None:
    services.experiment_start(
        experiment=services.experiment_create(data=experiment_data(promo_rule))
    )
    second = services.experiment_create(data=experiment_data(promo_rule, key="second"))
    with pytest.raises(InvalidInput) as exc:
        services.experiment_start(experiment=second)
    assert exc.value.details == [
        {"path": "$.rule", "message": "experiment 'greet-ab' is already running on this rule"}
    ]


def test_starting_needs_a_weighted_variant_besides_control(promo_rule: Rule) -> None:
    experiment = services.experiment_create(
        data=experiment_data(promo_rule, variants=[{"key": "control", "weight": 1}])
    )
    with pytest.raises(InvalidInput) as exc:
        services.experiment_start(experiment=experiment)
    assert _paths(exc) == ["$.variants"]
    assert Experiment.objects.get().status == "draft"


def test_promote_writes_the_winner_to_the_live_rule_and_stops(promo_rule: Rule) -> None:
    # given a running experiment
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    services.experiment_start(experiment=experiment)
    # when variant b is promoted
    result = services.experiment_promote(experiment=experiment, variant_key="b")
    # then the live rule is b's content as a new version, noted in its history
    assert isinstance(result, Rule)
    rule = Rule.objects.get(pk=promo_rule.pk)
    assert (rule.version, rule.condition, rule.actions) == (2, BYE["condition"], BYE["actions"])
    assert rule.history.first().history_change_reason == "promoted from experiment greet-ab"
    # and the experiment is stopped with its winner
    experiment.refresh_from_db()
    assert (experiment.status, experiment.winner) == ("stopped", "b")
    assert experiment.stopped_at is not None
    # and every subject now gets b, with no variant noted
    decision = engine.execute(
        entry_point="promo", context={"user": {"id": subject_for("control")}, "tier": "silver"}
    )
    assert [e["message"]["content"] for e in decision.effects] == ["Bye"]
    assert "variant" not in decision.rule_results[0]


def test_promote_on_a_critical_entry_point_makes_a_four_eyes_draft(db: Any) -> None:
    # given an experiment on a rule of a critical entry point
    rule = make_promo(critical=True)
    experiment = services.experiment_create(data=experiment_data(rule))
    services.experiment_start(experiment=experiment)
    # when b is promoted
    result = services.experiment_promote(experiment=experiment, variant_key="b")
    # then a draft waits for review and the live rule is unchanged
    assert isinstance(result, RuleChange)
    assert (result.status, result.operation, result.change_note) == (
        "draft",
        "update",
        "promoted from experiment greet-ab",
    )
    assert result.content is not None
    assert (result.content["condition"], result.content["actions"]) == (
        BYE["condition"],
        BYE["actions"],
    )
    assert Rule.objects.get(pk=rule.pk).version == 1
    experiment.refresh_from_db()
    assert (experiment.status, experiment.winner) == ("stopped", "b")


def test_promoting_control_keeps_the_live_rule(promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    services.experiment_start(experiment=experiment)
    services.experiment_stop(experiment=experiment)
    result = services.experiment_promote(experiment=experiment, variant_key="control")
    assert result == promo_rule
    assert Rule.objects.get(pk=promo_rule.pk).version == 1
    assert Experiment.objects.get().winner == "control"


def test_promote_refuses_an_unknown_variant_and_a_second_promotion(promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    services.experiment_start(experiment=experiment)
    with pytest.raises(InvalidInput) as exc:
        services.experiment_promote(experiment=experiment, variant_key="c")
    assert exc.value.details == [{"path": "$.variant", "message": "no variant 'c'"}]
    services.experiment_promote(experiment=experiment, variant_key="b")
    with pytest.raises(InvalidInput) as exc:
        services.experiment_promote(experiment=experiment, variant_key="b")
    assert exc.value.details == [
        {"path": "$.winner", "message": "variant 'b' was already promoted"}
    ]


def test_a_running_experiment_cannot_be_deleted(promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    services.experiment_start(experiment=experiment)
    with pytest.raises(InvalidInput):
        services.experiment_delete(experiment=experiment)
    services.experiment_stop(experiment=experiment)
    services.experiment_delete(experiment=experiment)
    assert not Experiment.objects.exists()


def test_starting_on_a_critical_entry_point_needs_another_publisher(
    db: Any, django_user_model: Any
) -> None:
    # given an author's experiment on a rule of a critical entry point (roles as migrated)
    roles = importlib.import_module("rules_engine.migrations.0004_roles")
    roles.create_roles(django_apps, SimpleNamespace(connection=connection))

    def member(name: str, role: str) -> Any:
        user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        return django_user_model.objects.get(pk=user.pk)

    author, creator = member("alice", "author"), member("cy", "publisher")
    publisher = member("pete", "publisher")
    rule = make_promo(critical=True)
    by_author = services.experiment_create(data=experiment_data(rule), user=author)
    by_publisher = services.experiment_create(
        data=experiment_data(rule, key="greet-cd"), user=creator
    )
    # when the author starts theirs, and a publisher starts their own
    with pytest.raises(PermissionDenied) as not_publisher:
        services.experiment_start(experiment=by_author, user=author)
    with pytest.raises(PermissionDenied) as own:
        services.experiment_start(experiment=by_publisher, user=creator)
    # then both are refused and nothing runs; another publisher may start it
    assert str(not_publisher.value) == (
        "starting an experiment on the critical entry point 'promo' needs the publisher role "
        "(approve_rulechange)"
    )
    assert str(own.value) == (
        "the creator of an experiment on a critical entry point cannot start it; "
        "another publisher must"
    )
    assert set(Experiment.objects.values_list("status", flat=True)) == {"draft"}
    started = services.experiment_start(experiment=by_author, user=publisher)
    assert started.status == "running"
