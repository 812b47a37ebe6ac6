"""API keys limited to entry points: the management API shows and changes only their rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.generics import GenericAPIView
from rest_framework.test import APIClient

from ingress import services as ingress_services
from rules_engine import engine, services
from rules_engine.models import EntryPoint, Execution, Rule
from tests.support.keys import new_key


def client_for(**options: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {new_key(**options)}")
    return client


def rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    data = response.json()
    return data["results"] if isinstance(data, dict) else data


@pytest.fixture
def two_teams(banner: EntryPoint) -> dict[str, Any]:
    """Two entry points, each with a rule under a cooldown, one decision and one event."""
    signup = services.entry_point_create(data={"key": "signup", "context_schema": {}})
    cooling = {"cooldown_seconds": 600, "cooldown_key": {"var": "name"}}
    greet = Rule.objects.get(name="Greet")
    services.rule_update(rule=greet, data=cooling)
    welcome = services.rule_create(
        data={"name": "Welcome", "entry_point": signup, "condition": True, "actions": [], **cooling}
    )
    decided = {
        key: engine.execute(entry_point=key, context={"name": "ada"}).execution_id
        for key in ("banner", "signup")
    }
    for key in ("banner", "signup"):
        ingress_services.event_accept(type=key, key=f"{key}-1", payload={"name": "bob"})
    return {"greet": greet, "welcome": welcome, "executions": decided}


@pytest.mark.django_db
def test_a_limited_key_lists_only_its_entry_points_rows(two_teams):
    # given a reading key limited to the banner entry point
    limited = client_for(scopes=["read"], entry_points=["banner"])
    # when it lists what the management API shows
    executions = rows(limited.get("/api/executions/"))
    events = rows(limited.get("/api/events/"))
    rules = rows(limited.get("/api/rules/"))
    entry_points = rows(limited.get("/api/entry-points/"))
    cooldowns = rows(limited.get("/api/cooldowns/"))
    templates = rows(limited.get("/api/templates/"))
    # then it sees banner's rows only (templates belong to no entry point)
    assert [e["id"] for e in executions] == [str(two_teams["executions"]["banner"])]
    assert [e["type"] for e in events] == ["banner"]
    assert [r["name"] for r in rules] == ["Greet"]
    assert [e["key"] for e in entry_points] == ["banner"]
    assert [(c["rule_name"], c["subject"]) for c in cooldowns] == [("Greet", "ada")]
    assert [t["key"] for t in templates] == ["hi"]


@pytest.mark.django_db
def test_an_unlimited_key_lists_every_entry_points_rows(two_teams):
    reader = client_for(scopes=["read"])
    assert len(rows(reader.get("/api/executions/"))) == 2
    assert sorted(e["type"] for e in rows(reader.get("/api/events/"))) == ["banner", "signup"]
    assert sorted(r["name"] for r in rows(reader.get("/api/rules/"))) == ["Greet", "Welcome"]
    assert len(rows(reader.get("/api/cooldowns/"))) == 2


@pytest.mark.django_db
def test_a_limited_key_cannot_read_another_entry_points_row_by_id(two_teams):
    limited = client_for(scopes=["read"], entry_points=["banner"])
    welcome = two_teams["welcome"].pk
    signup_execution = two_teams["executions"]["signup"]
    assert limited.get(f"/api/executions/{signup_execution}/").status_code == 404
    assert limited.get(f"/api/rules/{welcome}/").status_code == 404
    assert limited.get(f"/api/rules/{welcome}/history/").status_code == 404
    assert limited.get(f"/api/rules/{welcome}/test-cases/").status_code == 404
    assert limited.get("/api/entry-points/signup/").status_code == 404
    # while its own entry point's rows stay reachable
    banner_execution = two_teams["executions"]["banner"]
    assert limited.get(f"/api/executions/{banner_execution}/").status_code == 200
    assert limited.get(f"/api/rules/{two_teams['greet'].pk}/").status_code == 200


@pytest.mark.django_db
def test_a_limited_key_cannot_change_another_entry_points_rules(two_teams):
    # given a managing key limited to banner
    manager = client_for(scopes=["manage"], entry_points=["banner"])
    greet, welcome = two_teams["greet"], two_teams["welcome"]

    def send(method: str, path: str, body: dict[str, Any]) -> Any:
        return getattr(manager, method)(path, json.dumps(body), content_type="application/json")

    # when it creates a rule on signup, moves its own rule there, edits signup's rule,
    # makes an entry point of its own or clears signup's cooldowns
    created = send("post", "/api/rules/", {"name": "x", "entry_point": "signup", "condition": True})
    moved = send("patch", f"/api/rules/{greet.pk}/", {"entry_point": "signup"})
    edited = send("patch", f"/api/rules/{welcome.pk}/", {"name": "Hijacked"})
    new_entry_point = send("post", "/api/entry-points/", {"key": "other", "context_schema": {}})
    cleared = send("post", "/api/cooldowns/clear/", {"rule": str(welcome.pk)})
    # then each is refused and nothing changed
    not_allowed = "entry_point_not_allowed"
    assert (created.status_code, created.json()["error"]) == (403, not_allowed)
    assert (moved.status_code, moved.json()["error"]) == (403, not_allowed)
    assert edited.status_code == 404
    assert (new_entry_point.status_code, new_entry_point.json()["error"]) == (403, not_allowed)
    assert (cleared.status_code, cleared.json()["error"]) == (403, not_allowed)
    assert sorted(Rule.objects.values_list("name", "entry_point__key")) == [
        ("Greet", "banner"),
        ("Welcome", "signup"),
    ]
    assert not EntryPoint.objects.filter(key="other").exists()
    assert len(rows(client_for(scopes=["read"]).get("/api/cooldowns/"))) == 2
    # and its own entry point's rule still changes
    renamed = send("patch", f"/api/rules/{greet.pk}/", {"name": "Hello"})
    assert (renamed.status_code, renamed.json()["name"]) == (200, "Hello")
    assert Execution.objects.count() == 2


def _views(patterns: list[Any]) -> list[type]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None)
            if view is not None and issubclass(view, GenericAPIView):
                found.append(view)
    return found


def test_every_generic_api_view_says_which_field_names_its_entry_point():
    # A view that lists rows to keys must say how a key's entry-point limit applies to them;
    # the filter refuses (ImproperlyConfigured) rather than show an unfiltered list.
    views = set(_views(get_resolver().url_patterns))
    assert len(views) >= 8
    assert [v.__name__ for v in views if not hasattr(v, "key_entry_point_field")] == []
