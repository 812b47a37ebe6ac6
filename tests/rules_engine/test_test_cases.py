"""Saved test cases of rules: they gate activation and changes, explain failures, and run from
`manage.py rules_test`, the admin and the API."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse

from rules_engine import services, testcases
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint, Execution, Rule, RuleChange, RuleTestCase
from tests.support.rules import BIG_CART, SAY_HI

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "properties": {"cart": {"type": "object", "properties": {"total": {"type": "number"}}}},
}
CART_80 = {"cart": {"total": 80}}
CART_150 = {"cart": {"total": 150}}


@pytest.fixture
def shop() -> EntryPoint:
    services.template_create(data={"key": "hi", "format": "text", "body": "Hi"})
    return services.entry_point_create(data={"key": "shop", "context_schema": SCHEMA})


def big_cart_rule(shop: EntryPoint, **data: Any) -> Rule:
    return services.rule_create(
        data={
            "name": "Big cart",
            "entry_point": shop,
            "priority": 10,
            "condition": BIG_CART,
            "actions": SAY_HI,
            **data,
        }
    )


def case(rule: Rule, name: str, context: Any, **data: Any) -> RuleTestCase:
    return testcases.rule_test_case_create(
        rule=rule, data={"name": name, "context": context, **data}
    )


def refusal(exc: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, list[dict[str, str]]]:
    return exc.value.code, [{"path": d["path"], "message": d["message"]} for d in exc.value.details]


FALSE_AT_80 = (
    "rule 'Big cart', case 'cart of 80 matches': expected a match, got not_matched; "
    "cart.total > 100: cart.total was 80, false"
)


# --- the gate -------------------------------------------------------------------------------


def test_a_failing_case_blocks_activation_and_nothing_is_written(shop):
    # given an inactive rule with a case its condition does not satisfy
    rule = big_cart_rule(shop, active=False)
    case(rule, "cart of 80 matches", CART_80, expect_match=True)

    # when it is activated
    with pytest.raises(InvalidInput) as exc:
        services.rule_update(rule=rule, data={"active": True})

    # then the change is refused naming the case and why, and the rule is untouched
    assert refusal(exc) == (
        "failing_test_cases",
        [{"path": '$.test_cases["cart of 80 matches"]', "message": FALSE_AT_80}],
    )
    rule.refresh_from_db()
    assert (rule.active, rule.version, rule.history.count()) == (False, 1, 1)
    assert Execution.objects.count() == 0


def test_passing_cases_allow_activation(shop):
    # given an inactive rule whose cases hold
    rule = big_cart_rule(shop, active=False)
    case(rule, "150 matches", CART_150, expect_match=True, expect_actions=["display_message"])
    case(rule, "80 does not", CART_80, expect_match=False)

    # when it is activated
    services.rule_update(rule=rule, data={"active": True})

    # then it is live at version 2, and running the cases wrote no audit row
    rule.refresh_from_db()
    assert (rule.active, rule.version) == (True, 2)
    assert Execution.objects.count() == 0


def test_a_change_to_an_active_rules_condition_is_gated(shop):
    # given an active rule with a passing case
    rule = big_cart_rule(shop)
    case(rule, "150 matches", CART_150)

    # when its condition is changed so the case no longer holds
    with pytest.raises(InvalidInput) as exc:
        services.rule_update(rule=rule, data={"condition": {">": [{"var": "cart.total"}, 200]}})

    # then it is refused and the live rule keeps its condition
    assert refusal(exc) == (
        "failing_test_cases",
        [
            {
                "path": '$.test_cases["150 matches"]',
                "message": "rule 'Big cart', case '150 matches': expected a match, got "
                "not_matched; cart.total > 200: cart.total was 150, false",
            }
        ],
    )
    rule.refresh_from_db()
    assert (rule.condition, rule.version) == (BIG_CART, 1)


def test_creating_an_active_rule_that_breaks_another_rules_case_is_refused(shop):
    # given an active rule with a passing case
    rule = big_cart_rule(shop)
    case(rule, "150 matches", CART_150)

    # when a higher-priority rule that matches everything and stops processing is created
    with pytest.raises(InvalidInput) as exc:
        services.rule_create(
            data={
                "name": "Catch all",
                "entry_point": shop,
                "priority": 1,
                "condition": True,
                "actions": SAY_HI,
                "stop_processing": True,
            }
        )

    # then it is refused with the other rule's case, and not stored
    assert refusal(exc) == (
        "failing_test_cases",
        [
            {
                "path": '$.test_cases["150 matches"]',
                "message": "rule 'Big cart', case '150 matches': expected a match, got skipped "
                "(rule 'Catch all' matched first and stops processing)",
            }
        ],
    )
    assert list(Rule.objects.values_list("name", flat=True)) == ["Big cart"]


def test_changing_another_active_rule_that_breaks_this_rules_case_is_refused(shop):
    # given a live lower-priority rule with a case, and a live higher-priority rule that
    # does not stop processing
    rule = big_cart_rule(shop)
    case(rule, "150 matches", CART_150)
    other = services.rule_create(
        data={
            "name": "Greeter",
            "entry_point": shop,
            "priority": 1,
            "condition": True,
            "actions": SAY_HI,
        }
    )

    # when the other rule is changed to stop processing
    with pytest.raises(InvalidInput) as exc:
        services.rule_update(rule=other, data={"stop_processing": True})

    # then the change is refused on Big cart's case
    assert refusal(exc)[1] == [
        {
            "path": '$.test_cases["150 matches"]',
            "message": "rule 'Big cart', case '150 matches': expected a match, got skipped "
            "(rule 'Greeter' matched first and stops processing)",
        }
    ]
    other.refresh_from_db()
    assert (other.stop_processing, other.version) == (False, 1)


def test_deactivating_and_unrelated_edits_are_not_gated(shop):
    # given an active rule whose case fails (cases are saved without being run)
    rule = big_cart_rule(shop)
    case(rule, "cart of 80 matches", CART_80)

    # when its description changes, then it is deactivated
    services.rule_update(rule=rule, data={"description": "big carts"})
    services.rule_update(rule=rule, data={"active": False})

    # then both changes are stored
    rule.refresh_from_db()
    assert (rule.description, rule.active, rule.version) == ("big carts", False, 3)


def test_rollback_is_gated(shop):
    # given a rule changed from > 100 to > 50, and a case that needs > 50
    rule = big_cart_rule(shop)
    services.rule_update(rule=rule, data={"condition": {">": [{"var": "cart.total"}, 50]}})
    case(rule, "cart of 80 matches", CART_80)

    # when it is rolled back to version 1
    with pytest.raises(InvalidInput) as exc:
        services.rule_rollback(rule=rule, version=1)

    # then the rollback is refused by the case
    assert refusal(exc) == (
        "failing_test_cases",
        [{"path": '$.test_cases["cart of 80 matches"]', "message": FALSE_AT_80}],
    )
    rule.refresh_from_db()
    assert rule.version == 2


def test_expected_actions_are_checked(shop):
    # given an inactive rule whose case expects a modal while it shows a message
    rule = big_cart_rule(shop, active=False)
    case(rule, "150 shows a modal", CART_150, expect_actions=["display_modal"])

    # when the cases run as if it were activated
    rule.active = True
    report = testcases.rule_tests_run(entry_point=shop, replacing=rule)

    # then the case fails on its actions
    assert [(r.case, r.passed, r.outcome, r.actions, r.reasons) for r in report.results] == [
        (
            "150 shows a modal",
            False,
            "matched",
            ["display_message"],
            ["expected actions ['display_modal'], got ['display_message']"],
        )
    ]


def test_a_context_the_schema_refuses_fails_its_case(shop):
    # given a case saved while the schema accepted it, then a stricter schema
    rule = big_cart_rule(shop)
    case(rule, "no user", CART_80, expect_match=False)
    services.entry_point_update(
        entry_point=shop, data={"context_schema": {**SCHEMA, "required": ["user"]}}
    )

    # when the cases run
    report = testcases.rule_tests_run(entry_point=shop)

    # then it fails with the schema's complaint
    assert [(r.outcome, r.reasons) for r in report.results] == [
        (
            "invalid_context",
            [
                "the entry point's schema refuses the context ($.user: 'user' is a required "
                "property)"
            ],
        )
    ]


def test_report_carries_the_failing_rules_explanation(shop):
    # given a case that fails
    rule = big_cart_rule(shop)
    case(rule, "cart of 80 matches", CART_80)

    # when the live cases run
    report = testcases.rule_tests_run(entry_point=shop)

    # then its result holds the rule's explanation: the false clause and the value it saw
    (result,) = report.results
    assert result.explanation == {
        "op": ">",
        "expression": "cart.total > 100",
        "result": False,
        "truthy": False,
        "args": [
            {
                "op": "var",
                "expression": "var cart.total",
                "var": "cart.total",
                "result": 80,
                "truthy": True,
                "args": [],
            },
            {"op": "literal", "expression": "100", "result": 100, "truthy": True, "args": []},
        ],
    }
    assert report.as_json()["failed"] == 1


def test_the_explanation_names_the_false_clause_under_and():
    # given the explanation of an `and` whose second clause was false
    explanation = {
        "op": "and",
        "expression": "all of 2",
        "result": False,
        "truthy": False,
        "args": [
            {"op": "==", "expression": 'country == "FR"', "truthy": True, "args": []},
            {
                "op": ">",
                "expression": "amount > 100",
                "truthy": False,
                "args": [{"op": "var", "var": "amount", "result": 80, "truthy": True}],
            },
        ],
    }

    # then the text names only the false clause, with its value
    assert testcases.clauses_text(explanation, want=True) == "amount > 100: amount was 80, false"


def test_proposing_a_draft_that_breaks_a_case_is_refused(shop, django_user_model):
    # given a critical entry point and a rule with a case
    services.entry_point_update(entry_point=shop, data={"critical": True})
    rule = big_cart_rule(shop)
    case(rule, "150 matches", CART_150)
    alice = django_user_model.objects.create_user("alice", is_staff=True)
    # when an author proposes a change the case fails
    with pytest.raises(InvalidInput) as exc:
        services.rule_change_propose(
            operation="update",
            rule=rule,
            data={"condition": {">": [{"var": "cart.total"}, 200]}},
            user=alice,
        )
    # then it is refused as the direct save would be, and no draft waits for review
    assert refusal(exc)[0] == "failing_test_cases"
    assert [d["path"] for d in exc.value.details] == ['$.test_cases["150 matches"]']
    assert RuleChange.objects.count() == 0


def test_approving_a_draft_is_gated(shop, django_user_model):
    # given a critical entry point, a rule, a draft, and then a case the draft breaks
    services.entry_point_update(entry_point=shop, data={"critical": True})
    rule = big_cart_rule(shop)
    alice = django_user_model.objects.create_user("alice", is_staff=True)
    bob = django_user_model.objects.create_superuser("bob", password="pw")
    draft = services.rule_change_propose(
        operation="update",
        rule=rule,
        data={"condition": {">": [{"var": "cart.total"}, 200]}},
        user=alice,
    )
    case(rule, "150 matches", CART_150)

    # when another publisher approves it
    with pytest.raises(InvalidInput) as exc:
        services.rule_change_approve(change=draft, user=bob)

    # then the approval is refused by the case, the draft stays a draft, the rule unchanged
    assert refusal(exc)[0] == "failing_test_cases"
    assert [d["path"] for d in exc.value.details] == ['$.test_cases["150 matches"]']
    draft.refresh_from_db()
    rule.refresh_from_db()
    assert (draft.status, rule.version) == (RuleChange.Status.DRAFT, 1)


# --- writes of test cases -------------------------------------------------------------------


def test_a_case_is_checked_when_saved(shop):
    rule = big_cart_rule(shop)

    with pytest.raises(InvalidInput) as exc:
        testcases.rule_test_case_create(
            rule=rule,
            data={
                "name": "",
                "context": {"cart": {"total": "x"}},
                "expect_match": False,
                "expect_actions": ["display_message", "teleport"],
                "colour": "red",
            },
        )
    assert refusal(exc)[1] == [{"path": "$.colour", "message": "unknown field"}]

    with pytest.raises(InvalidInput) as exc:
        testcases.rule_test_case_create(
            rule=rule,
            data={
                "name": "",
                "context": {"cart": {"total": "x"}},
                "expect_match": False,
                "expect_actions": ["display_message", "teleport"],
            },
        )
    code, details = refusal(exc)
    assert code == "invalid_test_case"
    assert [d["path"] for d in details] == [
        "$.context.cart.total",
        "$.expect_actions",
        "$.expect_actions[1]",
        "$.name",
    ]
    assert RuleTestCase.objects.count() == 0


def test_case_names_are_unique_per_rule_and_updates_and_deletes_work(shop):
    rule = big_cart_rule(shop)
    first = case(rule, "150 matches", CART_150)

    with pytest.raises(InvalidInput) as exc:
        case(rule, "150 matches", CART_80)
    assert refusal(exc)[1] == [
        {"path": "$.name", "message": "the rule already has a case of this name"}
    ]

    testcases.rule_test_case_update(
        test_case=first, data={"context": CART_80, "expect_match": False}
    )
    assert (first.context, first.expect_match) == (CART_80, False)
    testcases.rule_test_case_delete(test_case=first)
    assert RuleTestCase.objects.count() == 0


def test_deleting_a_rule_deletes_its_cases(shop):
    rule = big_cart_rule(shop)
    case(rule, "150 matches", CART_150)
    services.rule_delete(rule=rule)
    assert RuleTestCase.objects.count() == 0


def test_the_demo_loads_and_its_rules_change_without_cases(demo):
    # entry points without any case pass trivially
    rule = Rule.objects.filter(entry_point=demo).first()
    assert rule is not None
    services.rule_update(rule=rule, data={"priority": rule.priority + 1})
    assert testcases.rule_tests_run(entry_point=demo).as_json() == {
        "entry_point": "checkout",
        "passed": True,
        "total": 0,
        "failed": 0,
        "results": [],
    }


# --- manage.py rules_test -------------------------------------------------------------------


def test_rules_test_passes_with_exit_code_zero(shop):
    rule = big_cart_rule(shop)
    case(rule, "150 matches", CART_150)
    case(rule, "80 does not", CART_80, expect_match=False)
    out = StringIO()

    call_command("rules_test", stdout=out)

    assert out.getvalue().splitlines() == [
        "PASS shop / Big cart / 150 matches",
        "PASS shop / Big cart / 80 does not",
        "2 cases: 2 passed, 0 failed",
    ]


def test_rules_test_fails_with_exit_code_one_and_says_why(shop):
    rule = big_cart_rule(shop)
    case(rule, "cart of 80 matches", CART_80)
    inactive = big_cart_rule(shop, name="Inactive", active=False)
    case(inactive, "150 matches", CART_150)
    out = StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("rules_test", "--entry-point", "shop", stdout=out)

    assert exit_info.value.code == 1
    assert out.getvalue().splitlines() == [
        "FAIL shop / Big cart / cart of 80 matches: expected a match, got not_matched; "
        "cart.total > 100: cart.total was 80, false",
        "PASS shop / Inactive (inactive) / 150 matches",
        "2 cases: 1 passed, 1 failed",
    ]


def test_rules_test_refuses_an_unknown_entry_point(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no entry point 'nope'"):
        call_command("rules_test", "--entry-point", "nope", stdout=StringIO())


# --- API ------------------------------------------------------------------------------------


def test_api_creates_lists_updates_and_deletes_cases(api_client, shop):
    rule = big_cart_rule(shop)
    url = f"/api/rules/{rule.pk}/test-cases/"

    created = api_client.post(
        url,
        {"name": "150 matches", "context": CART_150, "expect_actions": ["display_message"]},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert {k: body[k] for k in ("rule", "name", "context", "expect_match", "expect_actions")} == {
        "rule": str(rule.pk),
        "name": "150 matches",
        "context": CART_150,
        "expect_match": True,
        "expect_actions": ["display_message"],
    }

    listed = api_client.get(url)
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["results"]] == ["150 matches"]

    detail = f"/api/test-cases/{body['id']}/"
    changed = api_client.patch(detail, {"name": "big one"}, format="json")
    assert (changed.status_code, changed.json()["name"]) == (200, "big one")
    assert api_client.get(detail).json()["name"] == "big one"
    assert api_client.delete(detail).status_code == 204
    assert RuleTestCase.objects.count() == 0


@pytest.mark.parametrize(
    ("context", "passed", "reasons"),
    [
        (CART_80, False, [FALSE_AT_80.split(": ", 1)[1]]),
        (CART_150, True, []),
    ],
)
def test_api_save_says_how_the_case_fares(api_client, shop, context, passed, reasons):
    # given an active rule matching carts over 100
    rule = big_cart_rule(shop)
    # when a case expecting a match is saved through the API
    response = api_client.post(
        f"/api/rules/{rule.pk}/test-cases/", {"name": "big", "context": context}, format="json"
    )
    # then it is saved either way, and the answer says whether it passes and why not
    assert response.status_code == 201
    result = response.json()["result"]
    assert (result["case"], result["passed"], result["outcome"], result["reasons"]) == (
        "big",
        passed,
        "matched" if passed else "not_matched",
        reasons,
    )
    assert RuleTestCase.objects.filter(name="big").count() == 1


def test_api_save_on_an_inactive_rule_decides_it_as_if_activated(api_client, shop):
    # given an inactive rule matching carts over 100
    rule = big_cart_rule(shop, active=False)
    # when a case expecting a match for 80 is saved
    response = api_client.post(
        f"/api/rules/{rule.pk}/test-cases/", {"name": "big", "context": CART_80}, format="json"
    )
    # then it is decided as if the rule were active, and fails
    result = response.json()["result"]
    assert (result["rule_active"], result["passed"], result["outcome"]) == (
        False,
        False,
        "not_matched",
    )
    assert Rule.objects.get(pk=rule.pk).active is False


def test_api_change_says_how_the_case_fares_now(api_client, shop):
    # given a passing case
    rule = big_cart_rule(shop)
    saved = case(rule, "big", CART_150)
    # when its context is changed to one the rule does not match
    response = api_client.patch(f"/api/test-cases/{saved.pk}/", {"context": CART_80}, format="json")
    # then the answer says it now fails, and why
    assert response.status_code == 200
    result = response.json()["result"]
    assert (result["passed"], result["reasons"]) == (False, [FALSE_AT_80.split(": ", 1)[1]])


def test_api_refuses_a_bad_case_with_paths(api_client, shop):
    rule = big_cart_rule(shop)

    response = api_client.post(
        f"/api/rules/{rule.pk}/test-cases/",
        {"name": "bad", "context": {"cart": {"total": "x"}}, "expect_actions": ["teleport"]},
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_test_case"
    assert [d["path"] for d in body["details"]] == ["$.context.cart.total", "$.expect_actions[0]"]


def test_api_run_tests_returns_the_report_with_explanations(api_client, shop):
    rule = big_cart_rule(shop)
    case(rule, "cart of 80 matches", CART_80)

    response = api_client.post(f"/api/rules/{rule.pk}/run-tests/", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["entry_point"], body["passed"], body["total"], body["failed"]) == (
        "shop",
        False,
        1,
        1,
    )
    (result,) = body["results"]
    assert result["reasons"] == [FALSE_AT_80.split(": ", 1)[1]]
    assert result["explanation"]["expression"] == "cart.total > 100"
    assert result["explanation"]["args"][0]["result"] == 80


def test_api_activation_refused_by_a_case_is_a_400_with_paths(api_client, shop):
    rule = big_cart_rule(shop, active=False)
    case(rule, "cart of 80 matches", CART_80)

    response = api_client.patch(f"/api/rules/{rule.pk}/", {"active": True}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "failing_test_cases",
        "details": [{"path": '$.test_cases["cart of 80 matches"]', "message": FALSE_AT_80}],
    }


def test_api_unknown_rule_is_a_404(api_client, db):
    response = api_client.get("/api/rules/00000000-0000-0000-0000-000000000000/test-cases/")
    assert response.status_code == 404


# --- admin ----------------------------------------------------------------------------------


def test_admin_activation_refused_by_a_case_shows_the_case_as_a_form_error(admin_client, shop):
    rule = big_cart_rule(shop, active=False)
    case(rule, "cart of 80 matches", CART_80)
    url = reverse("admin:rules_engine_rule_change", args=[rule.pk])
    form = {
        "name": "Big cart",
        "description": "",
        "entry_point": shop.pk,
        "priority": 10,
        "active": "on",
        "condition": json.dumps(BIG_CART),
        "actions": json.dumps(SAY_HI),
        "cooldown_seconds": 0,
        "cooldown_key": "",
        "metadata": "{}",
        "change_note": "go live",
    }

    response = admin_client.post(url, form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert list(errors) == [f'$.test_cases["cart of 80 matches"]: {FALSE_AT_80}']
    rule.refresh_from_db()
    assert (rule.active, rule.version) == (False, 1)


def test_admin_run_action_shows_pass_fail_and_the_explanation(admin_client, shop):
    rule = big_cart_rule(shop)
    failing = case(rule, "cart of 80 matches", CART_80)
    passing = case(rule, "150 matches", CART_150)

    response = admin_client.post(
        reverse("admin:rules_engine_ruletestcase_changelist"),
        {"action": "run_test_cases", "_selected_action": [failing.pk, passing.pk]},
    )

    assert response.status_code == 200
    rows = [(r["case"], r["passed"]) for r in response.context["results"]]
    assert rows == [("150 matches", True), ("cart of 80 matches", False)]
    html = response.content.decode()
    assert "cart.total &gt; 100" in html
    assert "<code>80</code>" in html


def test_admin_saves_cases_through_the_service(admin_client, shop):
    rule = big_cart_rule(shop)

    response = admin_client.post(
        reverse("admin:rules_engine_ruletestcase_add"),
        {
            "rule": rule.pk,
            "name": "bad",
            "context": json.dumps({"cart": {"total": "x"}}),
            "expect_actions": "[]",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["context"] == ["$.context.cart.total: 'x' is not of type 'number'"]
    assert RuleTestCase.objects.count() == 0


@pytest.mark.parametrize(
    ("context", "warned"),
    [
        (
            CART_80,
            [
                "Test case 'big' fails with the rules as they are: expected a match, got "
                "not_matched; cart.total > 100: cart.total was 80, false. Until it passes, "
                "activating or changing rules on 'shop' is refused."
            ],
        ),
        (CART_150, []),
    ],
)
def test_admin_warns_when_a_saved_case_fails(admin_client, shop, context, warned):
    # given an active rule matching carts over 100
    rule = big_cart_rule(shop)
    # when a case expecting a match is saved in the admin
    response = admin_client.post(
        reverse("admin:rules_engine_ruletestcase_add"),
        {
            "rule": rule.pk,
            "name": "big",
            "context": json.dumps(context),
            "expect_match": "on",
            "expect_actions": "[]",
        },
    )
    # then it is saved either way, and a failing one says so and what it will block
    assert response.status_code == 302
    assert RuleTestCase.objects.filter(name="big").count() == 1
    notes = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]
    assert notes == warned


def test_roles_hold_their_permissions_on_test_cases(db):
    import importlib
    from types import SimpleNamespace

    from django.apps import apps as django_apps
    from django.contrib.auth.models import Group
    from django.db import connection

    # given the role groups and the test case migration's grant (a transactional test may
    # have flushed both earlier in the session)
    connection_ns = SimpleNamespace(connection=connection)
    importlib.import_module("rules_engine.migrations.0004_roles").create_roles(
        django_apps, connection_ns
    )
    importlib.import_module("rules_engine.migrations.0005_ruletestcase").grant(
        django_apps, connection_ns
    )

    # then viewers read test cases and authors and publishers also write them
    def codenames(role: str) -> list[str]:
        return sorted(
            Group.objects.get(name=role)
            .permissions.filter(codename__endswith="_ruletestcase")
            .values_list("codename", flat=True)
        )

    writes = ["add_ruletestcase", "change_ruletestcase", "delete_ruletestcase", "view_ruletestcase"]
    assert codenames("viewer") == ["view_ruletestcase"]
    assert codenames("author") == writes
    assert codenames("publisher") == writes
    assert codenames("administrator") == writes
