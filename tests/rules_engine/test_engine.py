"""The decision pipeline end to end against PostgreSQL: load, validate, evaluate, dispatch,
render, audit."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection
from prometheus_client import REGISTRY

from rules_engine import cache, engine, services
from rules_engine.errors import InvalidContext, NotFound
from rules_engine.functions import registry as functions
from rules_engine.models import Execution, Rule, SubjectState

pytestmark = pytest.mark.django_db

DEMO_RULES = [
    "Free shipping banner",
    "Age-restricted items need confirmation",
    "Large order confirmation",
    "Newsletter opt-in for returning customers",
    "Count checkouts and show loyalty",
]


def names(decision: engine.Decision) -> list[str]:
    return [rule["name"] for rule in decision.matched_rules]


def effect(decision: engine.Decision, type_name: str) -> dict[str, Any]:
    [found] = [e for e in decision.effects if e["type"] == type_name]
    return found


def test_demo_context_matches_in_priority_order(demo, demo_context):
    # when the demo example is decided
    decision = engine.execute(entry_point="checkout", context=demo_context)
    # then the matching rules come in priority order with their versions
    assert [(r["name"], r["priority"], r["version"]) for r in decision.matched_rules] == [
        ("Free shipping banner", 10, 1),
        ("Age-restricted items need confirmation", 20, 1),
        ("Count checkouts and show loyalty", 50, 1),
    ]
    assert decision.outcome == "matched"
    assert [e["type"] for e in decision.effects] == [
        "display_message",
        "user_acknowledge",
        "display_message",
    ]
    # and the unacknowledged terms block the critical checkout
    assert decision.blocking is True


def test_rule_results_record_every_rule(demo, demo_context):
    decision = engine.execute(entry_point="checkout", context=demo_context)
    assert [(r["name"], r["outcome"]) for r in decision.rule_results] == [
        ("Free shipping banner", "matched"),
        ("Age-restricted items need confirmation", "matched"),
        ("Large order confirmation", "not_matched"),
        ("Newsletter opt-in for returning customers", "not_matched"),
        ("Count checkouts and show loyalty", "matched"),
    ]


def test_unknown_and_inactive_entry_points_are_not_found(demo, demo_context):
    with pytest.raises(NotFound) as caught:
        engine.execute(entry_point="nowhere", context={})
    assert caught.value.code == "unknown_entry_point"
    services.entry_point_update(entry_point=demo, data={"active": False})
    with pytest.raises(NotFound):
        engine.execute(entry_point="checkout", context=demo_context)


def test_invalid_context_lists_every_error_with_its_path(demo, demo_context):
    # given a context with three problems
    demo_context["cart"]["items"][1]["price"] = "100"
    demo_context["cart"]["currency"] = "BTC"
    del demo_context["user"]["id"]
    # when decided
    with pytest.raises(InvalidContext) as caught:
        engine.execute(entry_point="checkout", context=demo_context)
    # then all three come back with their paths and nothing is audited
    assert [d["path"] for d in caught.value.details] == [
        "$.cart.currency",
        "$.cart.items[1].price",
        "$.user.id",
    ]
    assert Execution.objects.count() == 0


def test_audit_row_matches_the_decision_and_masks_sensitive_paths(demo, demo_context):
    decision = engine.execute(
        entry_point="checkout", context=demo_context, caller="test", request_id="r-1"
    )
    row = Execution.objects.get(pk=str(decision.execution_id))
    assert row.outcome == "matched"
    assert row.matched_rules == decision.matched_rules
    assert row.effects == decision.effects
    assert row.blocking is True
    assert (row.caller, row.request_id, row.subject) == ("test", "r-1", "42")
    assert row.context_snapshot["payment"] == {"method": "card", "card_number": "***"}
    assert row.context_snapshot["user"]["email"] == "***"
    assert row.context_snapshot["cart"] == demo_context["cart"]


def test_update_writes_state_that_rules_read_back(demo, demo_context):
    # given a first checkout (no state yet: the newsletter rule needs one earlier checkout)
    first = engine.execute(entry_point="checkout", context=demo_context)
    assert "Newsletter opt-in for returning customers" not in names(first)
    [update] = [r for r in first.action_results if r["type"] == "update"]
    assert (update["before"], update["after"]) == (
        {"checkout_count": None, "last_cart_total": None},
        {"checkout_count": 1, "last_cart_total": 120.5},
    )
    # when the same customer checks out again
    second = engine.execute(entry_point="checkout", context=demo_context)
    # then the rule reading $state.checkout_count matches and the state counted twice
    assert "Newsletter opt-in for returning customers" in names(second)
    assert SubjectState.objects.get(subject="42").attributes == {
        "checkout_count": 2,
        "last_cart_total": 120.5,
    }
    # and the audit shows the values the second update replaced
    [update] = [r for r in second.action_results if r["type"] == "update"]
    assert (update["before"], update["after"]) == (
        {"checkout_count": 1, "last_cart_total": 120.5},
        {"checkout_count": 2, "last_cart_total": 120.5},
    )


def test_dry_run_writes_nothing(demo, demo_context):
    decision = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    assert decision.execution_id is None
    assert decision.dry_run is True
    assert names(decision) == [DEMO_RULES[0], DEMO_RULES[1], DEMO_RULES[4]]
    [update] = [r for r in decision.action_results if r["type"] == "update"]
    assert update["written"] is False
    assert Execution.objects.count() == 0
    assert SubjectState.objects.count() == 0


def test_stop_processing_skips_later_rules(demo, demo_context):
    # given the first rule stops processing
    first = Rule.objects.get(name=DEMO_RULES[0])
    services.rule_update(rule=first, data={"stop_processing": True})
    # when decided
    decision = engine.execute(entry_point="checkout", context=demo_context)
    # then only it matched and the others were skipped
    assert names(decision) == [DEMO_RULES[0]]
    assert [r["outcome"] for r in decision.rule_results] == ["matched"] + ["skipped"] * 4


def test_rule_failing_at_runtime_is_recorded_and_others_still_run(demo, demo_context):
    # given a custom function that fails, used by the large-order rule
    def explode(*args: Any) -> Any:
        raise ValueError("boom")

    functions.register("explode", explode)
    try:
        rule = Rule.objects.get(name=DEMO_RULES[2])
        services.rule_update(rule=rule, data={"condition": {"explode": [1]}})
        # when decided
        decision = engine.execute(entry_point="checkout", context=demo_context)
    finally:
        functions.unregister("explode")
    # then that rule is an error in the audit and the others matched as usual
    assert names(decision) == [DEMO_RULES[0], DEMO_RULES[1], DEMO_RULES[4]]
    [failed] = [r for r in decision.rule_results if r["outcome"] == "error"]
    assert failed["name"] == DEMO_RULES[2]
    assert "boom" in failed["error"]
    row = Execution.objects.get(pk=str(decision.execution_id))
    assert [r["outcome"] for r in row.rule_results].count("error") == 1


def test_failed_action_is_recorded_and_others_still_run(demo, demo_context):
    # given a context without a subject, so the update has nobody to write to
    services.entry_point_update(entry_point=demo, data={"subject_path": "user.missing"})
    # when decided
    decision = engine.execute(entry_point="checkout", context=demo_context)
    # then the update failed in the audit and the other actions ran
    [update] = [r for r in decision.action_results if r["type"] == "update"]
    assert update["status"] == "error"
    assert update["error"] == "update has no subject (the subject expression gave null)"
    assert len(decision.effects) == 3
    assert SubjectState.objects.count() == 0


def test_audit_failure_rolls_back_the_decisions_writes(demo, demo_context):
    # given the audit table refuses inserts (a real PostgreSQL trigger)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no audit'; "
            "END $$ LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON "
            "rules_engine_execution FOR EACH ROW EXECUTE FUNCTION refuse();"
        )
    # when a decision with an update runs
    with pytest.raises(DatabaseError):
        engine.execute(entry_point="checkout", context=demo_context)
    # then its update was rolled back with it: no decision without its audit row
    assert SubjectState.objects.count() == 0


def test_context_values_are_escaped_in_html_messages(demo, demo_context):
    # given a hostile value in the context
    demo_context["user"]["name"] = "<script>alert(1)</script>"
    decision = engine.execute(entry_point="checkout", context=demo_context)
    html = decision.effects[0]["message"]
    # then the HTML message carries them as text only
    assert html["format"] == "html"
    assert "<script>" not in html["content"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html["content"]


def test_effects_carry_rendered_messages(demo, demo_context):
    decision = engine.execute(entry_point="checkout", context=demo_context)
    banner, ack, loyalty = decision.effects
    assert banner["message"] == {
        "format": "html",
        "content_type": "text/html",
        "content": (
            "<p>Good news, <strong>Ada</strong>: orders over 50 EUR ship free. "
            "Your total is 120.50 EUR.</p>"
        ),
    }
    assert ack["ack_key"] == "age-check-v1"
    assert ack["acknowledged"] is False
    assert ack["message"]["format"] == "markdown"
    assert ack["message"]["content"].startswith(
        "<p>Your cart contains <strong>age-restricted items</strong>.</p>"
    )
    assert loyalty["message"] == {
        "format": "json",
        "content_type": "application/json",
        "content": {"title": "Loyalty", "customer": "Ada", "previous_checkouts": "0"},
    }


def test_rule_change_is_served_on_the_next_request(demo, demo_context):
    # given a warm cache
    engine.execute(entry_point="checkout", context=demo_context)
    # when a rule changes through the service
    rule = Rule.objects.get(name=DEMO_RULES[0])
    services.rule_update(rule=rule, data={"condition": {">=": [{"var": "cart.total"}, 500]}})
    # then the very next decision uses the new version
    decision = engine.execute(entry_point="checkout", context=demo_context)
    assert DEMO_RULES[0] not in names(decision)


def test_change_from_another_process_is_seen_after_its_generation_bump(demo, demo_context):
    # given a warm cache in this process
    engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    # when another process changes a rule: the row changes, then the shared stamp
    Rule.objects.filter(name=DEMO_RULES[0]).update(condition=False)
    stale = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    cache.bump_generation()
    fresh = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    # then this process served the compiled copy until the stamp moved, then the new rule
    assert DEMO_RULES[0] in names(stale)
    assert DEMO_RULES[0] not in names(fresh)


def test_dry_run_rule_runs_one_unsaved_rule(demo, demo_context):
    # given an unsaved edit of a rule
    rule = Rule.objects.get(name=DEMO_RULES[2])
    rule.condition = {">": [{"var": "cart.total"}, 100]}
    # when dry-run
    decision = engine.dry_run_rule(rule=rule, context=demo_context)
    # then only that rule ran, as edited, and nothing was written
    assert names(decision) == [DEMO_RULES[2]]
    assert effect(decision, "display_modal")["title"] == "Large order"
    assert Execution.objects.count() == 0


def test_decisions_are_counted_in_prometheus_metrics(demo, demo_context, client):
    # given the counters before
    labels = {"entry_point": "checkout", "outcome": "matched"}
    before = REGISTRY.get_sample_value("verdict_decisions_total", labels) or 0.0
    # when two decisions and a dry run are made
    engine.execute(entry_point="checkout", context=demo_context)
    engine.execute(entry_point="checkout", context=demo_context)
    engine.execute(entry_point="checkout", context=demo_context, dry_run=True)
    # then two are counted and /metrics exports them
    assert REGISTRY.get_sample_value("verdict_decisions_total", labels) == before + 2
    body = client.get("/metrics").content.decode()
    assert 'verdict_decisions_total{entry_point="checkout",outcome="matched"}' in body
