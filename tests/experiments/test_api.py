"""The experiments API: create with variants, start, results, promote, stop, refusals."""

from __future__ import annotations

from typing import Any

from experiments import services
from experiments.models import Experiment
from rules_engine.models import Rule
from tests.experiments.conftest import BYE, make_promo

URL = "/api/experiments/"


def _create(api_client: Any, rule: Rule, **extra: Any) -> Any:
    body = {
        "key": "greet-ab",
        "rule": str(rule.pk),
        "salt": "salt-1",
        "variants": [
            {"key": "control", "weight": 50},
            {"key": "b", "weight": 50, "content": BYE},
        ],
        **extra,
    }
    return api_client.post(URL, body, format="json")


def test_create_start_and_read_results(api_client: Any, promo_rule: Rule) -> None:
    # when an experiment is created and started through the API
    created = _create(api_client, promo_rule)
    started = api_client.post(f"{URL}greet-ab/start/")
    results = api_client.get(f"{URL}greet-ab/results/")
    # then it is stored with its variants, runs, and has (empty) results
    assert created.status_code == 201, created.json()
    assert created.json()["entry_point"] == "promo"
    assert [v["key"] for v in created.json()["variants"]] == ["b", "control"]
    assert (started.status_code, started.json()["status"]) == (200, "running")
    assert results.status_code == 200
    assert results.json()["srm"] == {
        "chi_square": 0.0,
        "degrees_of_freedom": 1,
        "p_value": 1.0,
        "flagged": False,
    }
    assert [(v["key"], v["exposures"]) for v in results.json()["variants"]] == [
        ("b", 0),
        ("control", 0),
    ]


def test_invalid_content_is_a_400_with_paths(api_client: Any, promo_rule: Rule) -> None:
    response = _create(
        api_client,
        promo_rule,
        variants=[
            {"key": "control", "weight": 1},
            {"key": "b", "content": {"condition": {"x": 1}}},
        ],
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_experiment"
    assert [d["path"] for d in response.json()["details"]] == ["$.variants[1].content.condition"]


def test_promote_answers_with_the_updated_rule(api_client: Any, promo_rule: Rule) -> None:
    _create(api_client, promo_rule)
    api_client.post(f"{URL}greet-ab/start/")
    response = api_client.post(f"{URL}greet-ab/promote/", {"variant": "b"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["experiment"]["status"], body["experiment"]["winner"]) == ("stopped", "b")
    assert (body["rule"]["version"], body["rule"]["condition"]) == (2, BYE["condition"])
    assert body["rule_change"] is None


def test_promote_on_a_critical_entry_point_answers_with_the_draft(api_client: Any, db: Any) -> None:
    rule = make_promo(critical=True)
    _create(api_client, rule)
    # Its creator may not start it on a critical entry point (four-eyes); another may.
    refused = api_client.post(f"{URL}greet-ab/start/")
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    services.experiment_start(experiment=Experiment.objects.get(key="greet-ab"))
    response = api_client.post(f"{URL}greet-ab/promote/", {"variant": "b"}, format="json")
    assert response.status_code == 200
    assert response.json()["rule"] is None
    assert response.json()["rule_change"]["status"] == "draft"


def test_starting_twice_is_a_400_and_stop_stops(api_client: Any, promo_rule: Rule) -> None:
    _create(api_client, promo_rule)
    api_client.post(f"{URL}greet-ab/start/")
    again = api_client.post(f"{URL}greet-ab/start/")
    stopped = api_client.post(f"{URL}greet-ab/stop/")
    assert again.status_code == 400
    assert again.json()["details"] == [
        {"path": "$.status", "message": "only a draft can start; this one is running"}
    ]
    assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")


def test_list_filters_by_status(api_client: Any, promo_rule: Rule) -> None:
    _create(api_client, promo_rule)
    _create(api_client, promo_rule, key="other")
    api_client.post(f"{URL}other/start/")
    response = api_client.get(URL, {"status": "running"})
    assert [e["key"] for e in response.json()["results"]] == ["other"]


def test_a_read_only_key_cannot_start(promo_rule: Rule) -> None:
    from tests.support.keys import application_client

    Experiment.objects.create(key="greet-ab", entry_point=promo_rule.entry_point, rule=promo_rule)
    response = application_client(scopes=["read"]).post(f"{URL}greet-ab/start/")
    assert response.status_code == 403
    assert Experiment.objects.get().status == "draft"
