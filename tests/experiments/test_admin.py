"""The experiments admin: drafts saved through the services, results with the SRM flag,
start and promote buttons."""

from __future__ import annotations

import json
from typing import Any

from experiments import services
from experiments.models import Experiment
from rules_engine.models import Execution, Rule
from tests.experiments.conftest import BYE, experiment_data

ADD = "/admin/experiments/experiment/add/"


def _form(rule: Rule, *, content: Any = BYE) -> dict[str, Any]:
    return {
        "key": "greet-ab",
        "description": "",
        "kind": "experiment",
        "rule": str(rule.pk),
        "salt": "salt-1",
        "outcome_action_type": "",
        "outcome_labels": "[]",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-key": "control",
        "variants-0-weight": "50",
        "variants-0-content": "{}",
        "variants-1-key": "b",
        "variants-1-weight": "50",
        "variants-1-content": json.dumps(content),
    }


def test_adding_an_experiment_with_variants(admin_client: Any, promo_rule: Rule) -> None:
    response = admin_client.post(ADD, _form(promo_rule))
    assert response.status_code == 302
    experiment = Experiment.objects.get()
    assert (experiment.entry_point.key, experiment.status) == ("promo", "draft")
    assert [(v.key, v.weight, v.content) for v in experiment.variants.all()] == [
        ("b", 50, BYE),
        ("control", 50, {}),
    ]


def test_a_variant_that_does_not_compile_is_shown_on_the_form(
    admin_client: Any, promo_rule: Rule
) -> None:
    response = admin_client.post(ADD, _form(promo_rule, content={"condition": {"nope": [1]}}))
    assert response.status_code == 200
    assert "$.variants[1].content.condition" in response.content.decode()
    assert not Experiment.objects.exists()


def test_the_results_table_flags_a_sample_ratio_mismatch(
    admin_client: Any, promo_rule: Rule
) -> None:
    experiment = services.experiment_start(
        experiment=services.experiment_create(data=experiment_data(promo_rule))
    )
    rows = [
        Execution(
            entry_point_id=experiment.entry_point_id,
            outcome="no_match",
            subject=f"s{variant}{n}",
            rule_results=[{"outcome": "not_matched", "variant": f"greet-ab:{variant}"}],
        )
        for variant, count in (("b", 500), ("control", 400))
        for n in range(count)
    ]
    Execution.objects.bulk_create(rows)
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "SRM: sample ratio mismatch" in text
    assert "<td>b</td><td>50</td><td>50.0%</td><td>500</td><td>55.6%</td>" in text


def test_start_and_promote_buttons(admin_client: Any, promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    base = f"/admin/experiments/experiment/{experiment.pk}/"
    started = admin_client.post(f"{base}start/")
    promoted = admin_client.post(f"{base}promote/b/")
    assert (started.status_code, promoted.status_code) == (302, 302)
    experiment.refresh_from_db()
    assert (experiment.status, experiment.winner) == ("stopped", "b")
    assert Rule.objects.get(pk=promo_rule.pk).version == 2


def test_buttons_refuse_get(admin_client: Any, promo_rule: Rule) -> None:
    experiment = services.experiment_create(data=experiment_data(promo_rule))
    response = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/start/")
    assert response.status_code == 403


def test_authors_may_run_experiments_and_viewers_only_read(db: Any) -> None:
    from django.contrib.auth.models import Group

    def codenames(role: str) -> set[str]:
        group = Group.objects.get(name=role)
        return set(
            group.permissions.filter(content_type__app_label="experiments").values_list(
                "codename", flat=True
            )
        )

    assert codenames("viewer") == {"view_experiment", "view_variant"}
    assert "change_experiment" in codenames("author")
    assert "change_experiment" in codenames("administrator")
