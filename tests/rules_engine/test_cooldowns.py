"""Cooldowns: once per subject per period, atomic across processes, listed and cleared."""

from __future__ import annotations

import importlib
import json
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection
from django.test import Client
from rest_framework.test import APIClient

from rules_engine import cooldowns, engine, services
from rules_engine.models import Rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def cooled(demo: Any) -> Rule:
    """The free shipping rule with a one-hour cooldown per subject (the entry point's user.id)."""
    rule = Rule.objects.get(name="Free shipping banner")
    return services.rule_update(rule=rule, data={"cooldown_seconds": 3600})


def outcome_of(decision: engine.Decision, name: str) -> str:
    [row] = [r for r in decision.rule_results if r["name"] == name]
    return row["outcome"]


def test_rule_fires_once_per_subject_then_is_suppressed(cooled, demo_context):
    # when the same customer checks out twice, and another customer once
    first = engine.execute(entry_point="checkout", context=demo_context)
    second = engine.execute(entry_point="checkout", context=demo_context)
    demo_context["user"]["id"] = 43
    other = engine.execute(entry_point="checkout", context=demo_context)
    # then the rule fired for each subject once and the repeat was suppressed
    assert outcome_of(first, cooled.name) == "matched"
    assert outcome_of(second, cooled.name) == "suppressed"
    assert outcome_of(other, cooled.name) == "matched"
    assert next(r for r in second.rule_results if r["name"] == cooled.name)["error"] == (
        "cooldown active"
    )
    assert [e["template"] for e in second.effects if e["type"] == "display_message"] == [
        "loyalty-status"
    ]


def test_cooldown_key_expression_names_the_subject(cooled, demo_context):
    # given a cooldown keyed by the cart currency instead of the customer
    services.rule_update(rule=cooled, data={"cooldown_key": {"var": "cart.currency"}})
    engine.execute(entry_point="checkout", context=demo_context)
    # when another customer pays in the same currency
    demo_context["user"]["id"] = 99
    decision = engine.execute(entry_point="checkout", context=demo_context)
    # then the cooldown of that currency applies
    assert outcome_of(decision, cooled.name) == "suppressed"
    assert [(c.rule_id, c.subject) for c in cooldowns.store().list(str(cooled.pk))] == [
        (str(cooled.pk), "EUR")
    ]


def test_dry_run_checks_without_claiming(cooled, demo_context):
    dry = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    real = engine.execute(entry_point="checkout", context=demo_context)
    assert (outcome_of(dry, cooled.name), outcome_of(real, cooled.name)) == ("matched", "matched")


def test_failed_decision_releases_its_cooldown(cooled, demo_context):
    # given the audit insert fails (a real trigger), so the decision never happens
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON rules_engine_execution "
            "FOR EACH ROW EXECUTE FUNCTION refuse();"
        )
    with pytest.raises(DatabaseError):
        engine.execute(entry_point="checkout", context=demo_context)
    # then the cooldown it claimed was released
    assert cooldowns.store().list(str(cooled.pk)) == []


@pytest.mark.parametrize("store", [cooldowns.DatabaseCooldownStore, None])
def test_concurrent_claims_have_exactly_one_winner(store, transactional_db, settings):
    # given the Redis store (None) or the embedded database store, and 8 racing claims
    chosen = store() if store else cooldowns.store()
    rule_id = "00000000-0000-0000-0000-000000000001"

    def claim(_: int) -> bool:
        try:
            return chosen.claim(rule_id, "subject-1", 60)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(claim, range(8)))
    # then exactly one claim started the cooldown
    assert wins.count(True) == 1
    assert chosen.active(rule_id, "subject-1") is True
    assert chosen.clear(rule_id) == 1


def test_api_lists_and_clears_cooldowns(cooled, demo_context, django_user_model):
    # given an active cooldown
    engine.execute(entry_point="checkout", context=demo_context)
    staff = APIClient()
    from django.contrib.auth.models import Permission

    ops = django_user_model.objects.create_user("ops", is_staff=True)
    ops.user_permissions.set(
        Permission.objects.filter(codename__in=["view_cooldown", "add_cooldown"])
    )
    staff.force_login(ops)
    # when listed and cleared through the API
    listed = staff.get(f"/api/cooldowns/?rule={cooled.pk}").json()
    cleared = staff.post(
        "/api/cooldowns/clear/",
        json.dumps({"rule": str(cooled.pk), "subject": "42"}),
        content_type="application/json",
    ).json()
    # then it was there, and after clearing the rule fires again
    assert [(c["rule_name"], c["subject"]) for c in listed] == [(cooled.name, "42")]
    assert 3_500_000 < listed[0]["remaining_ms"] <= 3_600_000
    assert cleared == {"cleared": 1}
    again = engine.execute(entry_point="checkout", context=demo_context)
    assert outcome_of(again, cooled.name) == "matched"
    assert APIClient().get("/api/cooldowns/").status_code == 401


def test_admin_lists_and_clears_cooldowns(cooled, demo_context, admin_client):
    engine.execute(entry_point="checkout", context=demo_context)
    page = admin_client.get("/admin/rules_engine/rule/cooldowns/")
    assert page.status_code == 200
    assert "Free shipping banner" in page.content.decode()
    response = admin_client.post(
        "/admin/rules_engine/rule/cooldowns/", {"rule": str(cooled.pk), "subject": "42"}
    )
    assert response.status_code == 302
    assert cooldowns.store().list(str(cooled.pk)) == []


def test_an_author_sees_cooldowns_in_the_admin_but_only_a_publisher_clears_them(
    cooled, demo_context, django_user_model
):
    # given an active cooldown, an author and a publisher (roles as migrated)
    roles = importlib.import_module("rules_engine.migrations.0004_roles")
    roles.create_roles(django_apps, SimpleNamespace(connection=connection))
    engine.execute(entry_point="checkout", context=demo_context)
    clients = {}
    for name, role in (("alice", "author"), ("pete", "publisher")):
        user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        clients[role] = Client()
        clients[role].force_login(user)
    page = "/admin/rules_engine/rule/cooldowns/"
    form = {"rule": str(cooled.pk), "subject": "42"}
    # when each looks and tries to clear it
    author_page = clients["author"].get(page)
    author_post = clients["author"].post(page, form)
    kept = cooldowns.store().list(str(cooled.pk))
    publisher_page = clients["publisher"].get(page)
    publisher_post = clients["publisher"].post(page, form)
    # then the author sees it without a Clear button and is refused; the publisher clears it
    assert (author_page.status_code, author_page.context["can_clear"]) == (200, False)
    assert 'value="Clear"' not in author_page.content.decode()
    assert author_post.status_code == 403
    assert [c.subject for c in kept] == ["42"]
    assert 'value="Clear"' in publisher_page.content.decode()
    assert publisher_post.status_code == 302
    assert cooldowns.store().list(str(cooled.pk)) == []
