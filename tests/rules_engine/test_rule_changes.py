"""Four-eyes review: rules on critical entry points change through drafts another publisher
approves; services, admin (django test client, users in the role groups) and API."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from rules_engine import engine, selectors, services
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint, Execution, MessageTemplate, Rule, RuleChange
from tests.support.rules import BIG_CART, SAY_HI, rule_form

pytestmark = pytest.mark.django_db

HUGE_CART = {">": [{"var": "cart.total"}, 500]}
CART_300 = {"cart": {"total": 300}}
SCHEMA = {
    "type": "object",
    "properties": {"cart": {"type": "object", "properties": {"total": {"type": "number"}}}},
    "examples": [{"cart": {"total": 42}}],
}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def roles(db: Any) -> None:
    """The role groups as the migration creates them (a transactional test may have flushed
    them earlier in the session)."""
    migration = importlib.import_module("rules_engine.migrations.0004_roles")
    migration.create_roles(django_apps, SimpleNamespace(connection=connection))


def member(django_user_model: Any, username: str, role: str) -> Any:
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return django_user_model.objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return member(django_user_model, "alice", "author")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return member(django_user_model, "bob", "publisher")


@pytest.fixture
def carol(django_user_model: Any) -> Any:
    return member(django_user_model, "carol", "publisher")


@pytest.fixture
def vic(django_user_model: Any) -> Any:
    return member(django_user_model, "vic", "viewer")


@pytest.fixture
def payment() -> EntryPoint:
    return services.entry_point_create(
        data={"key": "payment", "critical": True, "context_schema": SCHEMA}
    )


@pytest.fixture
def newsletter() -> EntryPoint:
    return services.entry_point_create(data={"key": "newsletter", "context_schema": SCHEMA})


@pytest.fixture
def template() -> MessageTemplate:
    return services.template_create(data={"key": "hi", "format": "text", "body": "Hi"})


@pytest.fixture
def rule(payment: EntryPoint, template: MessageTemplate) -> Rule:
    """A live rule on the critical entry point: matches carts above 100 (version 1)."""
    return services.rule_create(
        data={"name": "Big cart", "entry_point": payment, "condition": BIG_CART, "actions": SAY_HI}
    )


def propose_raise(rule: Rule, author: Any, note: str = "raise the threshold") -> RuleChange:
    return services.rule_change_propose(
        operation="update",
        rule=rule,
        data={"condition": HUGE_CART},
        user=author,
        change_note=note,
    )


def decide(context: dict[str, Any]) -> list[str]:
    decision = engine.execute(entry_point="payment", context=context)
    return [r["name"] for r in decision.matched_rules]


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_as(user: Any) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def post_json(client: APIClient, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def admin_url(name: str, *args: Any) -> str:
    return reverse(f"admin:rules_engine_{name}", args=args)


# --- services ------------------------------------------------------------------------------


def test_a_proposed_change_is_a_draft_and_the_rule_stays_live(rule, alice):
    # when an author proposes a new condition for a rule on a critical entry point
    change = propose_raise(rule, alice)
    # then the draft records who, why, against which version and what changes
    assert (change.status, change.operation, change.author, change.base_version) == (
        "draft",
        "update",
        alice,
        1,
    )
    assert change.change_note == "raise the threshold"
    assert selectors.rule_change_diff(change=change) == [
        {"field": "condition", "old": BIG_CART, "new": HUGE_CART}
    ]
    # and the live rule is untouched: version 1 still decides
    rule.refresh_from_db()
    assert (rule.version, rule.condition) == (1, BIG_CART)
    assert decide(CART_300) == ["Big cart"]


def test_a_draft_that_does_not_compile_is_refused_and_not_stored(rule, alice):
    with pytest.raises(InvalidInput) as refused:
        services.rule_change_propose(
            operation="update", rule=rule, data={"condition": {"nope": [1]}}, user=alice
        )
    assert refused.value.code == "invalid_rule"
    assert [d["path"] for d in refused.value.details] == ["$.condition"]
    assert RuleChange.objects.count() == 0


def test_a_draft_that_changes_nothing_is_refused(rule, alice):
    with pytest.raises(InvalidInput) as refused:
        services.rule_change_propose(
            operation="update", rule=rule, data={"condition": BIG_CART}, user=alice
        )
    assert refused.value.details == [{"path": "$", "message": "the draft changes nothing"}]


def test_the_author_cannot_approve_their_own_draft_even_as_publisher(rule, bob):
    # given a publisher's own draft
    change = propose_raise(rule, bob)
    # when they approve it themselves, then it is refused and nothing changes
    with pytest.raises(PermissionDenied, match="another publisher must"):
        services.rule_change_approve(change=change, user=bob)
    rule.refresh_from_db()
    change.refresh_from_db()
    assert (rule.version, change.status) == (1, "draft")


def test_an_author_without_the_publisher_role_cannot_approve(rule, alice, django_user_model):
    other_author = member(django_user_model, "dave", "author")
    change = propose_raise(rule, alice)
    with pytest.raises(PermissionDenied, match="publisher role"):
        services.rule_change_approve(change=change, user=other_author)
    assert RuleChange.objects.get().status == "draft"


def test_a_publisher_approves_and_the_rule_goes_live_with_history(rule, alice, bob):
    # given an author's draft
    change = propose_raise(rule, alice)
    # when another person with the publisher role approves it
    applied = services.rule_change_approve(change=change, user=bob, review_note="ok")
    # then the rule is at version 2 with the draft's content, decided from the next request
    rule.refresh_from_db()
    assert (rule.version, rule.condition, rule.updated_by) == (2, HUGE_CART, alice)
    assert decide(CART_300) == []
    # and the history names the author as the one who made it, the approver and the note
    latest = rule.history.order_by("-history_id").first()
    assert latest is not None
    assert (latest.version, latest.history_user) == (2, alice)
    assert latest.history_change_reason == (
        f"raise the threshold [#{change.pk} by alice, approved by bob]"
    )
    # and the draft records the review
    assert (applied.status, applied.reviewer, applied.review_note, applied.applied_version) == (
        "applied",
        bob,
        "ok",
        2,
    )
    assert applied.reviewed_at is not None


def test_a_long_note_is_shortened_in_history_but_the_review_trail_is_kept(rule, alice, bob):
    change = propose_raise(rule, alice, note="x" * 150)
    services.rule_change_approve(change=change, user=bob)
    reason = rule.history.order_by("-history_id").first().history_change_reason
    trail = f" [#{change.pk} by alice, approved by bob]"
    assert len(reason) == 100
    assert reason.endswith("x…" + trail)
    assert RuleChange.objects.get().change_note == "x" * 150


def test_a_stale_draft_is_refused(rule, alice, bob):
    # given a draft made against version 1, then the rule changed to version 2 meanwhile
    change = propose_raise(rule, alice)
    services.rule_update(rule=rule, data={"priority": 5}, user=bob, change_note="reorder")
    assert selectors.rule_change_is_stale(change=change) is True
    # when the draft is approved, then it is refused as stale and nothing is written
    with pytest.raises(services.StaleDraft) as refused:
        services.rule_change_approve(change=change, user=bob)
    assert refused.value.code == "stale_draft"
    assert refused.value.details == [
        {
            "path": "$.base_version",
            "message": "the draft was made against version 1 and the rule is now version 2;"
            " propose it again",
        }
    ]
    rule.refresh_from_db()
    assert (rule.version, rule.condition, rule.priority) == (2, BIG_CART, 5)
    assert RuleChange.objects.get().status == "draft"


def test_a_rejected_draft_leaves_the_rule_and_cannot_be_approved_later(rule, alice, bob, carol):
    change = propose_raise(rule, alice)
    rejected = services.rule_change_reject(change=change, user=bob, review_note="too strict")
    assert (rejected.status, rejected.reviewer, rejected.review_note) == (
        "rejected",
        bob,
        "too strict",
    )
    with pytest.raises(InvalidInput) as refused:
        services.rule_change_approve(change=change, user=carol)
    assert refused.value.code == "invalid_review"
    rule.refresh_from_db()
    assert rule.version == 1


def test_the_author_cannot_reject_their_own_draft(rule, bob):
    change = propose_raise(rule, bob)
    with pytest.raises(PermissionDenied):
        services.rule_change_reject(change=change, user=bob)


def test_a_new_rule_draft_creates_the_rule_when_approved(payment, template, alice, bob):
    # given a draft of a new rule on the critical entry point
    change = services.rule_change_propose(
        operation="create",
        data={"name": "Huge cart", "entry_point": payment, "condition": HUGE_CART, "actions": []},
        user=alice,
        change_note="new check",
    )
    assert (change.rule, (change.content or {})["entry_point"], Rule.objects.count()) == (
        None,
        "payment",
        0,
    )
    # when approved, then the rule exists at version 1, created by the author
    applied = services.rule_change_approve(change=change, user=bob)
    rule = Rule.objects.get(name="Huge cart")
    assert (applied.rule, applied.rule_key, applied.applied_version) == (rule, rule.pk, 1)
    assert (rule.created_by, rule.history.get().history_change_reason) == (
        alice,
        f"new check [#{change.pk} by alice, approved by bob]",
    )


def test_a_deletion_draft_deletes_the_rule_when_approved(rule, alice, bob):
    change = services.rule_change_propose(
        operation="delete", rule=rule, user=alice, change_note="obsolete"
    )
    assert Rule.objects.filter(pk=rule.pk).exists()
    services.rule_change_approve(change=change, user=bob)
    assert not Rule.objects.filter(pk=rule.pk).exists()
    deleted = Rule.history.filter(id=rule.pk, history_type="-").get()
    assert (deleted.history_user, deleted.history_change_reason) == (
        alice,
        f"obsolete [#{change.pk} by alice, approved by bob]",
    )
    assert RuleChange.objects.get().rule_key == rule.pk


def test_a_rollback_draft_restores_the_old_version_when_approved(rule, alice, bob, carol):
    # given the rule at version 2 (approved earlier) and a draft rolling back to version 1
    services.rule_change_approve(change=propose_raise(rule, alice), user=bob)
    change = services.rule_change_propose(
        operation="rollback", rule=rule, version=1, user=alice, change_note="too strict"
    )
    assert selectors.rule_change_diff(change=change) == [
        {"field": "condition", "old": HUGE_CART, "new": BIG_CART}
    ]
    # when another publisher approves it
    services.rule_change_approve(change=change, user=carol)
    # then version 3 equals version 1
    rule.refresh_from_db()
    assert (rule.version, rule.condition) == (3, BIG_CART)
    assert rule.history.get(version=3).history_change_reason == (
        f"Rolled back to version 1: too strict [#{change.pk} by alice, approved by carol]"
    )


def test_moving_a_rule_onto_or_off_a_critical_entry_point_needs_review(rule, newsletter):
    assert selectors.rule_needs_review(rule_id=rule.pk) is True
    assert selectors.rule_needs_review(rule_id=rule.pk, entry_point=newsletter) is True
    assert selectors.rule_needs_review(entry_point=newsletter) is False
    assert selectors.rule_needs_review(entry_point=rule.entry_point) is True


def test_dry_run_of_a_draft_shows_its_effect_without_writing(rule, alice):
    # given a draft raising the threshold above the context's cart total
    change = propose_raise(rule, alice)
    # when the draft is dry-run
    result = services.rule_change_dry_run(change=change, context=CART_300)
    # then the live rules match and the draft does not
    assert (result.entry_point, result.stale) == ("payment", False)
    assert [r["name"] for r in result.live.matched_rules] == ["Big cart"]
    assert result.draft.matched_rules == []
    assert [(r["name"], r["version"], r["outcome"]) for r in result.draft.rule_results] == [
        ("Big cart", 2, "not_matched")
    ]
    # and nothing was written: no audit row, the rule still at version 1, the draft a draft
    rule.refresh_from_db()
    assert (Execution.objects.count(), rule.version, RuleChange.objects.get().status) == (
        0,
        1,
        "draft",
    )
    assert decide(CART_300) == ["Big cart"]


def test_dry_run_of_a_new_rule_adds_it_to_the_live_rules(rule, alice):
    change = services.rule_change_propose(
        operation="create",
        data={"name": "A first", "entry_point": rule.entry_point, "priority": 1, "actions": SAY_HI},
        user=alice,
    )
    result = services.rule_change_dry_run(change=change, context=CART_300)
    assert [r["name"] for r in result.draft.matched_rules] == ["A first", "Big cart"]
    assert [e["rule_id"] for e in result.draft.effects][1] == str(rule.pk)
    assert not Rule.objects.filter(name="A first").exists()


def test_dry_run_of_a_deletion_drops_the_rule(rule, alice):
    change = services.rule_change_propose(operation="delete", rule=rule, user=alice)
    result = services.rule_change_dry_run(change=change, context=CART_300)
    assert (result.live.outcome, result.draft.outcome, result.draft.rule_results) == (
        "matched",
        "no_match",
        [],
    )


# --- admin ---------------------------------------------------------------------------------


def test_admin_save_on_a_critical_entry_point_creates_a_draft(rule, alice):
    # when an author saves a changed rule on the critical entry point in the admin
    response = logged_in(alice).post(
        admin_url("rule_change", rule.pk),
        rule_form(rule.entry_point, condition=HUGE_CART, change_note="raise"),
    )
    # then a draft is stored, the author is told and sent to it; the rule is unchanged
    change = RuleChange.objects.get()
    assert response.status_code == 302
    assert response["Location"] == admin_url("rulechange_change", change.pk)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"payment is a critical entry point: your change was saved as draft #{change.pk} and "
        "goes live once another publisher approves it."
    ]
    assert (change.author, change.change_note, (change.content or {})["condition"]) == (
        alice,
        "raise",
        HUGE_CART,
    )
    rule.refresh_from_db()
    assert rule.version == 1


def test_admin_add_on_a_critical_entry_point_creates_a_draft_not_a_rule(payment, template, alice):
    response = logged_in(alice).post(admin_url("rule_add"), rule_form(payment, name="New"))
    change = RuleChange.objects.get()
    assert (response.status_code, response["Location"]) == (
        302,
        admin_url("rulechange_change", change.pk),
    )
    assert (change.operation, Rule.objects.count()) == ("create", 0)


def test_admin_save_on_a_non_critical_entry_point_saves_directly(newsletter, template, alice):
    response = logged_in(alice).post(admin_url("rule_add"), rule_form(newsletter))
    assert response.status_code == 302
    assert (Rule.objects.get().version, RuleChange.objects.count()) == (1, 0)


def test_admin_delete_on_a_critical_entry_point_creates_a_draft(rule, alice):
    response = logged_in(alice).post(admin_url("rule_delete", rule.pk), {"post": "yes"})
    change = RuleChange.objects.get()
    assert (response.status_code, response["Location"]) == (
        302,
        admin_url("rulechange_change", change.pk),
    )
    assert (change.operation, Rule.objects.filter(pk=rule.pk).exists()) == ("delete", True)


def test_admin_revert_on_a_critical_entry_point_creates_a_draft(rule, alice, bob):
    services.rule_change_approve(change=propose_raise(rule, alice), user=bob)
    record = rule.history.get(version=1)
    response = logged_in(alice).post(admin_url("rule_simple_history", rule.pk, record.history_id))
    change = RuleChange.objects.get(status="draft")
    assert (response.status_code, change.operation, change.rollback_version) == (
        302,
        "rollback",
        1,
    )
    rule.refresh_from_db()
    assert rule.version == 2


def test_admin_draft_page_shows_the_diff_and_review_buttons_only_to_another_publisher(
    rule, alice, bob
):
    change = propose_raise(rule, alice)
    page = admin_url("rulechange_change", change.pk)
    # the author sees the diff but no buttons, and why
    as_author = logged_in(alice).get(page)
    assert as_author.status_code == 200
    html = as_author.content.decode()
    assert 'id="rule-change-diff"' in html and "500" in html
    assert 'id="rule-change-approve"' not in html
    assert "needs the publisher role" in html
    # another publisher sees Approve and Reject
    html = logged_in(bob).get(page).content.decode()
    assert 'id="rule-change-approve"' in html and 'id="rule-change-reject"' in html
    # a publisher's own draft shows them no buttons either
    own = propose_raise(rule, bob, note="mine")
    html = logged_in(bob).get(admin_url("rulechange_change", own.pk)).content.decode()
    assert 'id="rule-change-approve"' not in html
    assert "another publisher must" in html


def test_admin_approve_is_refused_to_the_author(rule, alice):
    change = propose_raise(rule, alice)
    response = logged_in(alice).post(admin_url("rulechange_approve", change.pk))
    assert response.status_code == 403
    assert RuleChange.objects.get().status == "draft"


def test_admin_approve_by_another_publisher_publishes(rule, alice, bob):
    change = propose_raise(rule, alice)
    response = logged_in(bob).post(
        admin_url("rulechange_approve", change.pk), {"review_note": "fine"}
    )
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Approved draft #{change.pk}: Big cart is live as version 2."
    ]
    rule.refresh_from_db()
    change.refresh_from_db()
    assert (rule.version, change.status, change.review_note) == (2, "applied", "fine")


def test_admin_approve_of_a_stale_draft_is_an_error_message(rule, alice, bob):
    change = propose_raise(rule, alice)
    services.rule_update(rule=rule, data={"priority": 5}, user=bob)
    response = logged_in(bob).post(admin_url("rulechange_approve", change.pk))
    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Not approved: $.base_version: the draft was made against version 1")
    assert RuleChange.objects.get().status == "draft"


def test_admin_reject_by_another_publisher(rule, alice, bob):
    change = propose_raise(rule, alice)
    response = logged_in(bob).post(admin_url("rulechange_reject", change.pk))
    assert response.status_code == 302
    assert RuleChange.objects.get().status == "rejected"


def test_admin_dry_run_of_a_draft_shows_both_decisions(rule, alice):
    change = propose_raise(rule, alice)
    response = logged_in(alice).post(
        admin_url("rulechange_dry_run", change.pk), {"context": json.dumps(CART_300)}
    )
    assert response.status_code == 200
    [live, draft] = response.context["decisions"]
    assert (live["matched"], draft["matched"]) == ("Big cart", "—")
    assert Execution.objects.count() == 0
    # and each side explains the changed rule clause by clause
    assert [(r["outcome"], r["rows"][0]["expression"]) for r in live["explained"]] == [
        ("matched", "cart.total > 100")
    ]
    assert [(r["outcome"], r["rows"][0]["expression"]) for r in draft["explained"]] == [
        ("not_matched", "cart.total > 500")
    ]
    page = response.content.decode()
    assert "Why: Big cart — matched" in page
    assert "Why: Big cart — not_matched" in page


def test_admin_drafts_cannot_be_added_edited_or_deleted(rule, alice, bob):
    change = propose_raise(rule, alice)
    client = logged_in(bob)
    assert client.get(admin_url("rulechange_add")).status_code == 403
    assert (
        client.post(admin_url("rulechange_delete", change.pk), {"post": "yes"}).status_code == 403
    )
    assert client.get(admin_url("rulechange_changelist")).status_code == 200


# --- API -----------------------------------------------------------------------------------


def test_api_write_to_a_critical_rule_answers_202_with_the_draft(rule, alice):
    response = api_as(alice).patch(
        f"/api/rules/{rule.pk}/",
        json.dumps({"condition": HUGE_CART, "change_note": "raise"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    body = response.json()
    change = RuleChange.objects.get()
    assert (body["id"], body["status"], body["operation"], body["author"]) == (
        change.pk,
        "draft",
        "update",
        "alice",
    )
    assert (body["rule"], body["entry_point"], body["base_version"]) == (str(rule.pk), "payment", 1)
    assert body["diff"] == [{"field": "condition", "old": BIG_CART, "new": HUGE_CART}]
    rule.refresh_from_db()
    assert rule.version == 1


def test_api_create_delete_and_rollback_on_a_critical_entry_point_are_drafts(rule, alice):
    api = api_as(alice)
    created = post_json(
        api, "/api/rules/", {"name": "New", "entry_point": "payment", "condition": HUGE_CART}
    )
    deleted = api.delete(f"/api/rules/{rule.pk}/")
    rolled = post_json(api, f"/api/rules/{rule.pk}/rollback/", {"version": 1})
    assert [created.status_code, deleted.status_code] == [202, 202]
    assert (created.json()["operation"], deleted.json()["operation"]) == ("create", "delete")
    # rolling back to the live content changes nothing
    assert (rolled.status_code, rolled.json()["error"]) == (400, "invalid_rule")
    assert (Rule.objects.count(), Rule.objects.get().version) == (1, 1)


def test_api_write_on_a_non_critical_entry_point_saves_directly(newsletter, template, alice):
    response = post_json(
        api_as(alice),
        "/api/rules/",
        {"name": "Promo", "entry_point": "newsletter", "condition": BIG_CART, "actions": SAY_HI},
    )
    assert (response.status_code, response.json()["version"]) == (201, 1)
    assert RuleChange.objects.count() == 0


def test_api_the_author_cannot_approve_and_another_publisher_can(rule, alice, bob):
    change = propose_raise(rule, alice)
    url = f"/api/rule-changes/{change.pk}/approve/"
    refused = post_json(api_as(alice), url, {})
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    approved = post_json(api_as(bob), url, {"review_note": "ok"})
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["reviewer"]) == ("applied", "bob")
    assert approved.json()["applied_version"] == 2
    history = api_as(bob).get(f"/api/rules/{rule.pk}/history/").json()["results"]
    assert (history[0]["history_user"], history[0]["change_note"]) == (
        "alice",
        f"raise the threshold [#{change.pk} by alice, approved by bob]",
    )


def test_api_stale_draft_is_409(rule, alice, bob):
    change = propose_raise(rule, alice)
    services.rule_update(rule=rule, data={"priority": 5}, user=bob)
    response = post_json(api_as(bob), f"/api/rule-changes/{change.pk}/approve/", {})
    assert response.status_code == 409
    assert response.json()["error"] == "stale_draft"


def test_api_reject(rule, alice, bob):
    change = propose_raise(rule, alice)
    response = post_json(
        api_as(bob), f"/api/rule-changes/{change.pk}/reject/", {"review_note": "no"}
    )
    assert (response.status_code, response.json()["status"]) == (200, "rejected")


def test_api_lists_and_filters_drafts(rule, alice, bob):
    first = propose_raise(rule, alice)
    services.rule_change_reject(change=first, user=bob)
    second = propose_raise(rule, alice, note="again")
    api = api_as(alice)
    drafts = api.get("/api/rule-changes/?status=draft").json()
    assert [c["id"] for c in drafts["results"]] == [second.pk]
    everything = api.get(f"/api/rule-changes/?rule={rule.pk}&entry_point=payment").json()
    assert [c["id"] for c in everything["results"]] == [second.pk, first.pk]
    assert api.get(f"/api/rule-changes/{first.pk}/").json()["status"] == "rejected"
    assert api.get("/api/rule-changes/?status=bogus").status_code == 400


def test_api_dry_run_of_a_draft_writes_nothing(rule, alice):
    change = propose_raise(rule, alice)
    response = post_json(
        api_as(alice), f"/api/rule-changes/{change.pk}/dry-run/", {"context": CART_300}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["entry_point"], body["stale"]) == ("payment", False)
    assert (body["live"]["outcome"], body["draft"]["outcome"]) == ("matched", "no_match")
    assert Execution.objects.count() == 0


def test_api_dry_run_with_a_context_the_schema_refuses_is_400(rule, alice):
    change = propose_raise(rule, alice)
    response = post_json(
        api_as(alice),
        f"/api/rule-changes/{change.pk}/dry-run/",
        {"context": {"cart": {"total": "lots"}}},
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_context")


def test_api_viewer_can_read_but_not_write_or_review(rule, alice, vic):
    change = propose_raise(rule, alice)
    api = api_as(vic)
    assert api.get("/api/rule-changes/").status_code == 200
    assert api.get("/api/rules/").status_code == 200
    assert post_json(api, "/api/rules/", {"name": "x"}).status_code == 403
    assert post_json(api, f"/api/rule-changes/{change.pk}/approve/", {}).status_code == 403
    assert RuleChange.objects.get().status == "draft"


# --- withdrawing a draft (its author only) ----------------------------------------------


def test_the_author_withdraws_their_draft_and_the_rule_stays_live(rule, alice):
    # given alice's draft raising the threshold
    change = propose_raise(rule, alice)
    # when she withdraws it
    withdrawn = services.rule_change_withdraw(change=change, user=alice, note="wrong idea")
    # then it is withdrawn, recorded as closed by her, and the live rule is unchanged
    assert (withdrawn.status, withdrawn.reviewer, withdrawn.review_note) == (
        "withdrawn",
        alice,
        "wrong idea",
    )
    assert withdrawn.reviewed_at is not None
    assert RuleChange.objects.get().status == "withdrawn"
    rule.refresh_from_db()
    assert (rule.version, rule.condition) == (1, BIG_CART)
    assert decide(CART_300) == ["Big cart"]


def test_another_user_cannot_withdraw_a_draft_even_as_publisher(rule, alice, bob):
    change = propose_raise(rule, alice)
    with pytest.raises(PermissionDenied) as refused:
        services.rule_change_withdraw(change=change, user=bob)
    assert str(refused.value) == "only the author of a draft can withdraw it"
    assert RuleChange.objects.get().status == "draft"


def test_a_withdrawn_draft_cannot_be_approved_or_rejected(rule, alice, bob):
    change = propose_raise(rule, alice)
    services.rule_change_withdraw(change=change, user=alice)
    for review in (services.rule_change_approve, services.rule_change_reject):
        with pytest.raises(InvalidInput) as refused:
            review(change=change, user=bob)
        assert refused.value.code == "invalid_review"
        assert refused.value.details == [
            {"path": "$.status", "message": f"change #{change.pk} is withdrawn, not a draft"}
        ]
    rule.refresh_from_db()
    assert rule.version == 1
    assert RuleChange.objects.get().reviewer == alice


def test_withdrawing_twice_or_after_a_review_is_refused(rule, alice, bob):
    first = propose_raise(rule, alice)
    services.rule_change_withdraw(change=first, user=alice, note="first")
    with pytest.raises(InvalidInput) as twice:
        services.rule_change_withdraw(change=first, user=alice, note="again")
    assert twice.value.code == "invalid_review"
    first.refresh_from_db()
    assert first.review_note == "first"
    second = propose_raise(rule, alice, note="second try")
    services.rule_change_reject(change=second, user=bob, review_note="no")
    with pytest.raises(InvalidInput):
        services.rule_change_withdraw(change=second, user=alice)
    second.refresh_from_db()
    assert (second.status, second.reviewer) == ("rejected", bob)


def test_admin_shows_withdraw_only_to_the_author_of_a_draft(rule, alice, bob):
    change = propose_raise(rule, alice)
    page = admin_url("rulechange_change", change.pk)
    assert 'id="rule-change-withdraw"' in logged_in(alice).get(page).content.decode()
    html = logged_in(bob).get(page).content.decode()
    assert 'id="rule-change-approve"' in html
    assert 'id="rule-change-withdraw"' not in html
    services.rule_change_withdraw(change=change, user=alice)
    assert 'id="rule-change-withdraw"' not in logged_in(alice).get(page).content.decode()


def test_admin_withdraw_by_the_author(rule, alice):
    change = propose_raise(rule, alice)
    response = logged_in(alice).post(
        admin_url("rulechange_withdraw", change.pk), {"review_note": "not now"}
    )
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Withdrew draft #{change.pk}."
    ]
    change.refresh_from_db()
    assert (change.status, change.reviewer, change.review_note) == ("withdrawn", alice, "not now")


def test_admin_withdraw_is_refused_to_others_to_get_and_to_a_closed_draft(rule, alice, bob):
    change = propose_raise(rule, alice)
    url = admin_url("rulechange_withdraw", change.pk)
    assert logged_in(bob).post(url).status_code == 403
    assert logged_in(alice).get(url).status_code == 403
    assert RuleChange.objects.get().status == "draft"
    services.rule_change_withdraw(change=change, user=alice)
    assert logged_in(alice).post(url).status_code == 403


def test_api_the_author_withdraws_and_another_user_cannot(rule, alice, bob):
    change = propose_raise(rule, alice)
    url = f"/api/rule-changes/{change.pk}/withdraw/"
    refused = post_json(api_as(bob), url, {})
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    assert RuleChange.objects.get().status == "draft"
    withdrawn = post_json(api_as(alice), url, {"review_note": "changed my mind"})
    assert withdrawn.status_code == 200
    body = withdrawn.json()
    assert (body["status"], body["reviewer"], body["review_note"]) == (
        "withdrawn",
        "alice",
        "changed my mind",
    )
    again = post_json(api_as(alice), url, {})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_review")
    approve = post_json(api_as(bob), f"/api/rule-changes/{change.pk}/approve/", {})
    assert (approve.status_code, approve.json()["error"]) == (400, "invalid_review")
    listed = api_as(alice).get("/api/rule-changes/?status=withdrawn").json()["results"]
    assert [c["id"] for c in listed] == [change.pk]
    rule.refresh_from_db()
    assert rule.version == 1


def test_api_a_viewer_cannot_withdraw(rule, alice, vic):
    change = propose_raise(rule, alice)
    response = post_json(api_as(vic), f"/api/rule-changes/{change.pk}/withdraw/", {})
    assert response.status_code == 403
    assert RuleChange.objects.get().status == "draft"
