"""The HTTP API: execute, answers, CRUD with history and rollback, executions, error shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from rules_engine import services
from rules_engine.models import Acknowledgement, Execution, Preference, Rule

pytestmark = pytest.mark.django_db

EXECUTE = "/api/rules/engine/execute/"


@pytest.fixture
def client(api_client: APIClient) -> APIClient:
    """An application's client: every request carries an API key with every scope."""
    return api_client


@pytest.fixture
def staff(django_user_model: Any) -> APIClient:
    """A staff user holding every permission of the rules engine (a session, no key)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("author", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="rules_engine"))
    api = APIClient()
    api.force_login(user)
    return api


def post_json(client: APIClient, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def test_execute_returns_the_decision(client, demo, demo_context):
    # when the demo context is posted
    response = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    # then the decision has exactly the documented fields
    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == [
        "blocking",
        "dry_run",
        "duration_ms",
        "effects",
        "entry_point",
        "execution_id",
        "matched_rules",
        "outcome",
    ]
    assert (body["entry_point"], body["outcome"], body["blocking"]) == ("checkout", "matched", True)
    assert [r["name"] for r in body["matched_rules"]] == [
        "Free shipping banner",
        "Age-restricted items need confirmation",
        "Count checkouts and show loyalty",
    ]
    assert Execution.objects.filter(pk=body["execution_id"]).count() == 1


def test_unknown_entry_point_is_404(client, demo):
    response = post_json(client, EXECUTE, {"entry_point": "nope", "context": {}})
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_entry_point",
        "detail": "no active entry point 'nope'",
    }


def test_invalid_context_is_400_with_every_error(client, demo):
    context = {"user": {"id": 1.5}, "cart": {"items": [], "total": -1}}
    response = post_json(client, EXECUTE, {"entry_point": "checkout", "context": context})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_context"
    assert [d["path"] for d in body["details"]] == [
        "$.cart.currency",
        "$.cart.total",
        "$.user.id",
    ]
    assert all(d["message"] for d in body["details"])


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "error"),
    [
        ('{"entry_point": "checkout", "context": {', "application/json", 400, "malformed_json"),
        ('{"entry_point": "checkout", "context": NaN}', "application/json", 400, "malformed_json"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
        (
            "entry_point=checkout",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        ("[1, 2]", "application/json", 400, "invalid_request"),
    ],
)
def test_malformed_bodies_are_clear_4xx(client, demo, raw, content_type, status, error):
    response = client.post(EXECUTE, raw, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_deep_nesting_is_refused(client, demo):
    nested: Any = {}
    for _ in range(40):
        nested = {"a": nested}
    response = post_json(client, EXECUTE, {"entry_point": "checkout", "context": nested})
    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "detail": "JSON nested deeper than 32 levels.",
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            {"entry_point": "checkout", "context": {"user": {"name": "Ada\u0000"}}},
            "$.context.user.name",
        ),
        ({"entry_point": "checkout", "context": {"tags": ["ok", "b\u0000d"]}}, "$.context.tags[1]"),
        ({"entry_point": "checkout", "context": {"k\u0000": 1}}, '$.context["k\\u0000"]'),
    ],
)
def test_nul_in_a_string_is_refused_with_its_path(client, demo, body, where):
    # given a body PostgreSQL could never store (NUL inside a JSON string)
    response = post_json(client, EXECUTE, body)
    # then it is a 400 naming where, not a 500 from the database
    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "detail": f"JSON strings may not contain NUL (\\u0000): at {where}.",
    }


def test_an_escaped_backslash_before_u0000_is_ordinary_text(client, demo, demo_context):
    # given the six characters \u0000 as text (an escaped backslash), not a NUL
    demo_context["user"]["name"] = "C:\\u0000"
    response = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    assert response.status_code == 200


def test_extreme_nesting_is_refused_not_crashed(client, demo):
    raw = '{"entry_point": "checkout", "context": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(EXECUTE, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_oversized_body_is_413(client, demo, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"entry_point": "checkout", "context": {"pad": "x" * 2000}}
    response = post_json(client, EXECUTE, body)
    assert response.status_code == 413
    assert response.json() == {
        "error": "request_too_large",
        "detail": "Request body is larger than 1000 bytes.",
    }


@pytest.mark.parametrize("dry_run", ["yes", "true", 1])
def test_wrong_types_are_400_with_paths_never_coerced(client, demo, dry_run):
    # a number is not an entry point key, and "yes" (or 1) is not true: both are named
    body = {"entry_point": 5, "context": [], "dry_run": dry_run}
    response = post_json(client, EXECUTE, body)
    assert response.status_code == 400
    kind = "number" if dry_run == 1 else "string"
    assert response.json() == {
        "error": "invalid_request",
        "details": [
            {"path": "$.entry_point", "message": "must be a string, not number"},
            {"path": "$.context", "message": "must be a JSON object, not array"},
            {"path": "$.dry_run", "message": f"must be true or false, not {kind}"},
        ],
    }
    assert Execution.objects.count() == 0


def test_acknowledgement_unblocks_the_same_request(client, demo, demo_context):
    # given a blocking decision
    first = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context}).json()
    assert first["blocking"] is True
    # when the acknowledgement is recorded (twice: idempotent)
    ack = {"execution_id": first["execution_id"], "ack_key": "age-check-v1"}
    recorded = post_json(client, "/api/rules/engine/acknowledgements/", ack)
    again = post_json(client, "/api/rules/engine/acknowledgements/", ack)
    # then the same request is no longer blocking
    assert (recorded.status_code, again.status_code) == (201, 200)
    assert Acknowledgement.objects.get().subject == "42"
    second = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context}).json()
    assert second["blocking"] is False
    [effect] = [e for e in second["effects"] if e["type"] == "user_acknowledge"]
    assert (effect["acknowledged"], effect["blocking"]) == (True, False)


def test_acknowledgement_of_something_not_asked_is_refused(client, demo, demo_context):
    first = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context}).json()
    body = {"execution_id": first["execution_id"], "ack_key": "other-terms"}
    response = post_json(client, "/api/rules/engine/acknowledgements/", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_answer"
    missing = {"execution_id": "00000000-0000-0000-0000-000000000000", "ack_key": "x"}
    assert post_json(client, "/api/rules/engine/acknowledgements/", missing).status_code == 404


def test_preference_answer_is_stored_and_returned(client, demo, demo_context):
    # given a returning customer who is asked the newsletter question
    post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    asked = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context}).json()
    [question] = [e for e in asked["effects"] if e["type"] == "user_preference"]
    assert (question["value"], question["answered"]) == ("never", False)
    # when answered with an option, and once with a value that is not one
    url = "/api/rules/engine/preferences/"
    good = {
        "execution_id": asked["execution_id"],
        "preference_key": "newsletter",
        "value": "weekly",
    }
    bad = {**good, "value": "daily"}
    assert post_json(client, url, good).status_code == 200
    assert post_json(client, url, bad).status_code == 400
    # then the stored answer comes back with the next question
    assert Preference.objects.get().value == "weekly"
    later = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context}).json()
    [question] = [e for e in later["effects"] if e["type"] == "user_preference"]
    assert (question["value"], question["answered"]) == ("weekly", True)


def test_rule_management_requires_credentials(demo):
    anonymous = APIClient()
    assert anonymous.get("/api/rules/").status_code == 401
    assert post_json(anonymous, "/api/rules/", {"name": "x"}).status_code == 401


def test_create_rule_with_bad_condition_is_400_with_path(staff, demo):
    body = {
        "name": "Broken",
        "entry_point": "checkout",
        "condition": {"or": [True, {"method": ["os", "system"]}]},
        "actions": [],
    }
    response = post_json(staff, "/api/rules/", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_rule"
    assert [d["path"] for d in response.json()["details"]] == ["$.condition.or[1]"]
    assert not Rule.objects.filter(name="Broken").exists()


def test_create_update_and_list_rules(staff, demo):
    # Direct saves: on a critical entry point they are drafts (tests/rules_engine/
    # test_rule_changes.py), so checkout is made non-critical here.
    services.entry_point_update(entry_point=demo, data={"critical": False})
    body = {
        "name": "Big spender",
        "entry_point": "checkout",
        "priority": 5,
        "condition": {">": [{"var": "cart.total"}, 100]},
        "actions": [{"type": "display_message", "params": {"template": "large-order"}}],
        "change_note": "new promo",
    }
    created = post_json(staff, "/api/rules/", body)
    assert created.status_code == 201
    rule = created.json()
    assert (rule["version"], rule["created_by"], rule["updated_by"]) == (1, "author", "author")
    patched = staff.patch(
        f"/api/rules/{rule['id']}/", json.dumps({"priority": 6}), content_type="application/json"
    )
    assert (patched.status_code, patched.json()["version"], patched.json()["priority"]) == (
        200,
        2,
        6,
    )
    listed = staff.get("/api/rules/?entry_point=checkout&active=true").json()
    assert listed["count"] == 6


def test_history_and_rollback_restore_older_behaviour(staff, client, demo, demo_context):
    # Direct saves and rollbacks: checkout is made non-critical (else they are drafts).
    services.entry_point_update(entry_point=demo, data={"critical": False})
    # given the free shipping rule changed so that it no longer matches
    rule = Rule.objects.get(name="Free shipping banner")
    staff.patch(
        f"/api/rules/{rule.pk}/",
        json.dumps({"condition": {">=": [{"var": "cart.total"}, 500]}, "change_note": "raise"}),
        content_type="application/json",
    )
    decided = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    assert "Free shipping banner" not in [r["name"] for r in decided.json()["matched_rules"]]
    # when the history is read and version 1 rolled back
    history = staff.get(f"/api/rules/{rule.pk}/history/").json()["results"]
    assert [(h["version"], h["change_note"]) for h in history] == [(2, "raise"), (1, "Demo")]
    assert history[0]["changes"] == [
        {
            "field": "condition",
            "old": {">=": [{"var": "cart.total"}, 50]},
            "new": {">=": [{"var": "cart.total"}, 500]},
        }
    ]
    rolled = post_json(staff, f"/api/rules/{rule.pk}/rollback/", {"version": 1})
    # then version 3 equals version 1 and the next request behaves like version 1
    assert rolled.status_code == 200
    assert (rolled.json()["version"], rolled.json()["condition"]) == (
        3,
        {">=": [{"var": "cart.total"}, 50]},
    )
    decided = post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    matched = decided.json()["matched_rules"]
    assert {"id": str(rule.pk), "name": "Free shipping banner", "version": 3, "priority": 10} in (
        matched
    )


def test_rollback_to_missing_version_is_404(staff, demo):
    rule = Rule.objects.get(name="Free shipping banner")
    response = post_json(staff, f"/api/rules/{rule.pk}/rollback/", {"version": 9})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_version"


def test_entry_points_and_templates_crud(staff, demo):
    created = post_json(
        staff,
        "/api/entry-points/",
        {"key": "refund.requested", "context_schema": {"type": "object"}, "critical": False},
    )
    assert created.status_code == 201
    assert staff.get("/api/entry-points/refund.requested/").json()["version"] == 1
    bad = post_json(staff, "/api/templates/", {"key": "t1", "format": "html", "body": "{% for %}"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_template"
    ok = post_json(staff, "/api/templates/", {"key": "t1", "format": "text", "body": "Hi"})
    assert ok.status_code == 201
    in_use = staff.delete("/api/templates/free-shipping/")
    assert in_use.status_code == 400


def test_executions_list_and_filters(staff, client, demo, demo_context):
    post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    demo_context["cart"]["total"] = 10
    demo_context["cart"]["items"] = []
    post_json(client, EXECUTE, {"entry_point": "checkout", "context": demo_context})
    rule = Rule.objects.get(name="Free shipping banner")
    everything = staff.get("/api/executions/").json()
    by_rule = staff.get(f"/api/executions/?rule={rule.pk}").json()
    by_outcome = staff.get("/api/executions/?entry_point=checkout&outcome=matched").json()
    assert (everything["count"], by_rule["count"], by_outcome["count"]) == (2, 1, 2)
    detail = staff.get(f"/api/executions/{by_rule['results'][0]['id']}/").json()
    assert detail["context_snapshot"]["payment"]["card_number"] == "***"
    assert staff.get("/api/executions/?outcome=bogus").status_code == 400


def test_browsable_api_root_lists_the_resources(staff):
    response = staff.get("/api/", HTTP_ACCEPT="application/json")
    assert sorted(response.json()) == [
        "cooldowns",
        "entry-points",
        "executions",
        "rule-changes",
        "rules",
        "templates",
    ]
