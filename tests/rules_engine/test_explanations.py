"""Explanations of decisions: dry runs (engine, API, admin) list every rule with the trace of
its condition; real decisions never trace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from rules_engine import engine, services
from rules_engine.jsonlogic import trace
from rules_engine.models import EntryPoint, Execution, Rule
from tests.support.explanations import literal_node, var_node

pytestmark = pytest.mark.django_db

EXECUTE = "/api/rules/engine/execute/"


def _summary(name: str) -> dict[str, Any]:
    rule = Rule.objects.get(name=name)
    return {"id": str(rule.pk), "name": name, "version": 1, "priority": rule.priority}


@pytest.fixture
def no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any call of the tracer fail the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a real decision must not trace")

    monkeypatch.setattr(trace, "explain", refuse)
    monkeypatch.setattr(trace.Explainer, "explain", refuse)


def test_dry_run_explains_every_rule_of_the_checkout_demo(demo, demo_context):
    # when the demo example is dry run
    decision = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)

    # then every active rule comes in priority order with its outcome and explanation
    items = demo_context["cart"]["items"]
    assert decision.as_response()["rules"] == [
        {
            **_summary("Free shipping banner"),
            "outcome": "matched",
            "explanation": {
                "op": ">=",
                "expression": "cart.total >= 50",
                "result": True,
                "truthy": True,
                "args": [var_node("cart.total", 120.5), literal_node(50)],
            },
        },
        {
            **_summary("Age-restricted items need confirmation"),
            "outcome": "matched",
            "explanation": {
                "op": "some",
                "expression": 'some(cart.items, category == "alcohol")',
                "result": True,
                "truthy": True,
                "args": [
                    var_node("cart.items", items),
                    {
                        "op": "==",
                        "expression": 'category == "alcohol"',
                        "result": True,
                        "truthy": True,
                        "args": [var_node("category", "alcohol"), literal_node("alcohol")],
                        "item": 0,
                    },
                ],
                "iterations": 1,
            },
        },
        {
            **_summary("Large order confirmation"),
            "outcome": "not_matched",
            "explanation": {
                "op": ">",
                "expression": "cart.total > 1000",
                "result": False,
                "truthy": False,
                "args": [var_node("cart.total", 120.5), literal_node(1000)],
            },
        },
        {
            **_summary("Newsletter opt-in for returning customers"),
            "outcome": "not_matched",
            "explanation": {
                "op": "and",
                "expression": "all of 2",
                "result": False,
                "truthy": False,
                "args": [
                    {
                        "op": "!",
                        "expression": 'not missing("user.email")',
                        "result": True,
                        "truthy": True,
                        "args": [
                            {
                                "op": "missing",
                                "expression": 'missing("user.email")',
                                "result": [],
                                "truthy": False,
                                "args": [literal_node("user.email")],
                            }
                        ],
                    },
                    {
                        "op": ">=",
                        "expression": "($state.checkout_count ?? 0) >= 1",
                        "result": False,
                        "truthy": False,
                        "args": [
                            var_node(
                                "$state.checkout_count",
                                0,
                                truthy=False,
                                expression="var $state.checkout_count ?? 0",
                            ),
                            literal_node(1),
                        ],
                    },
                ],
            },
        },
        {
            **_summary("Count checkouts and show loyalty"),
            "outcome": "matched",
            "explanation": literal_node(True),
        },
    ]
    # and the rest of the response is the usual decision
    assert decision.as_response()["matched_rules"] == decision.matched_rules


def test_dry_run_masks_the_entry_points_sensitive_paths(demo, demo_context):
    # given a rule reading the card number, a sensitive path of the checkout
    services.rule_create(
        data={
            "name": "Test card",
            "entry_point": demo,
            "priority": 5,
            "condition": {"==": [{"var": "payment.card_number"}, "4111111111111111"]},
            "actions": [],
        }
    )

    # when the example (which pays with that card) is dry run
    decision = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)

    # then the rule matched, and its explanation shows the card as ***
    assert decision.rules is not None
    [row] = [row for row in decision.rules if row["name"] == "Test card"]
    assert row["outcome"] == "matched"
    assert row["explanation"]["args"] == [
        var_node("payment.card_number", "***"),
        literal_node("4111111111111111"),
    ]


def test_dry_run_explains_skipped_and_failing_rules(demo, demo_context):
    # given a rule that fails at run time, before the demo's rules
    services.rule_create(
        data={
            "name": "Broken",
            "entry_point": demo,
            "priority": 1,
            "condition": {"missing_some": [1, {"var": "nothing"}]},
            "actions": [],
        }
    )

    # when the example is dry run
    decision = engine.execute(entry_point="checkout", context=demo_context, dry_run=True)

    # then its row has the error and an explanation naming the failing node
    assert decision.rules is not None
    broken = decision.rules[0]
    assert (broken["name"], broken["outcome"]) == ("Broken", "error")
    assert broken["error"] == (
        "JsonLogicRuntimeError: missing_some needs an array of keys, got null "
        "(at $.missing_some[1])"
    )
    assert broken["explanation"]["error"] == "missing_some needs an array of keys, got null"


def test_real_decisions_do_not_trace(demo, demo_context, no_tracing):
    # when a real decision is made while the tracer refuses to run
    decision = engine.execute(entry_point="checkout", context=demo_context)

    # then it succeeds, has no explanations, and is audited as usual
    assert decision.rules is None
    assert "rules" not in decision.as_response()
    assert Execution.objects.count() == 1


def test_dry_runs_do_trace(demo, demo_context, no_tracing):
    # (the guard of the test above is effective: dry runs go through it)
    with pytest.raises(AssertionError, match="must not trace"):
        engine.execute(entry_point="checkout", context=demo_context, dry_run=True)


def test_dry_run_rule_explains_the_one_rule(demo, demo_context):
    rule = Rule.objects.get(name="Large order confirmation")
    decision = engine.dry_run_rule(rule=rule, context=demo_context)
    assert decision.rules is not None
    assert [
        (row["name"], row["outcome"], row["explanation"]["result"]) for row in decision.rules
    ] == [("Large order confirmation", "not_matched", False)]


# --------------------------------------------------------------------------- API


def test_api_dry_run_returns_rules_with_explanations(api_client, demo, demo_context):
    # when the demo example is dry run over the API
    response = api_client.post(
        EXECUTE,
        json.dumps({"entry_point": "checkout", "context": demo_context, "dry_run": True}),
        content_type="application/json",
    )

    # then every rule is listed with its outcome and explanation
    assert response.status_code == 200
    body = response.json()
    assert [(row["name"], row["outcome"]) for row in body["rules"]] == [
        ("Free shipping banner", "matched"),
        ("Age-restricted items need confirmation", "matched"),
        ("Large order confirmation", "not_matched"),
        ("Newsletter opt-in for returning customers", "not_matched"),
        ("Count checkouts and show loyalty", "matched"),
    ]
    assert body["rules"][2]["explanation"] == {
        "op": ">",
        "expression": "cart.total > 1000",
        "result": False,
        "truthy": False,
        "args": [var_node("cart.total", 120.5), literal_node(1000)],
    }


def test_api_real_run_has_no_rules(api_client, demo, demo_context, no_tracing):
    response = api_client.post(
        EXECUTE,
        json.dumps({"entry_point": "checkout", "context": demo_context}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert "rules" not in response.json()


# --------------------------------------------------------------------------- admin


def test_admin_dry_run_shows_the_explanation_tree(
    admin_client: Client, demo: EntryPoint, demo_context
):
    # given the large order rule
    rule = Rule.objects.get(name="Large order confirmation")

    # when it is dry run in the admin
    response = admin_client.post(
        reverse("admin:rules_engine_rule_dry_run", args=[rule.pk]),
        {"context": json.dumps(demo_context)},
    )

    # then the explanation is an indented list: the false comparison, then its values
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h2>Why: Large order confirmation — not_matched</h2>" in html
    assert (
        '<li style="padding-left: 0px;">✗ <code>cart.total &gt; 1000</code> → '
        "<code>false</code></li>" in html
    )
    assert (
        '<li style="padding-left: 20px;">✓ <code>var cart.total</code> → <code>120.5</code></li>'
        in html
    )
    assert '<li style="padding-left: 20px;">✓ <code>1000</code> → <code>1000</code></li>' in html
