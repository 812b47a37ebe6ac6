"""Named lists and WASM functions in decisions: bound at compile time, isolated per rule."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rules_engine import engine
from rules_engine import services as rule_services
from rules_engine.functions import services
from rules_engine.functions.models import NamedList
from tests.functions.conftest import LOOP_WAT

pytestmark = pytest.mark.django_db


def message_rule(pay: Any, name: str, priority: int, condition: Any) -> Any:
    return rule_services.rule_create(
        data={
            "name": name,
            "entry_point": pay,
            "priority": priority,
            "condition": condition,
            "actions": [{"type": "display_message", "params": {"template": name.lower()}}],
        }
    )


@pytest.fixture
def pay() -> Any:
    entry_point = rule_services.entry_point_create(data={"key": "pay"})
    for key in ("spin", "blocked"):
        rule_services.template_create(data={"key": key, "format": "text", "body": f"{key}!"})
    return entry_point


@pytest.fixture
def runaway(pay: Any, settings: Any) -> Any:
    """A rule calling a function that loops forever (50 ms, unlimited fuel), then a list rule.

    The decision budget is 1 s here: the shared test machine can stall a thread for longer
    than the default 200 ms, which would fail the list rule on the budget instead.
    """
    settings.VERDICT = {**settings.VERDICT, "EVALUATION_BUDGET_MS": 1000}
    services.wasm_function_create(
        data={"name": "spin", "wat": LOOP_WAT, "fuel": 10**15, "timeout_ms": 50}
    )
    services.named_list_create(
        data={"name": "blocked", "kind": "strings", "items": ["eve@example.com"]}
    )
    message_rule(pay, "Spin", 10, {"wasm": ["spin", {"var": "email"}]})
    message_rule(pay, "Blocked", 20, {"in_list": ["blocked", {"var": "email"}]})
    return pay


def test_a_runaway_function_fails_its_rule_only(runaway):
    started = time.perf_counter()
    # when a context is decided
    decision = engine.execute(entry_point="pay", context={"email": "eve@example.com"})
    elapsed = time.perf_counter() - started
    # then the runaway rule is an error, stopped by its wall-clock limit
    outcomes = {r["name"]: (r["outcome"], r.get("error", "")) for r in decision.rule_results}
    assert outcomes["Spin"][0] == "error"
    assert "WASM function 'spin' v1 timed out (limit 50 ms)" in outcomes["Spin"][1]
    # and the other rule still matched with its effect
    assert outcomes["Blocked"] == ("matched", "")
    assert [(e["type"], e["message"]["content"]) for e in decision.effects] == [
        ("display_message", "blocked!")
    ]
    # and the decision came back well within its budget (compiling included)
    assert elapsed < 1.0


def test_a_call_never_outlasts_the_evaluation_budget(pay, settings):
    # given a decision budget of 100 ms and a function allowed 10 s with unlimited fuel
    settings.VERDICT = {**settings.VERDICT, "EVALUATION_BUDGET_MS": 100}
    services.wasm_function_create(
        data={"name": "spin", "wat": LOOP_WAT, "fuel": 10**15, "timeout_ms": 10_000}
    )
    message_rule(pay, "Spin", 10, {"wasm": ["spin", 1]})
    engine.execute(entry_point="pay", context={}, dry_run=True)  # compiled: not timed
    started = time.perf_counter()
    # when decided
    decision = engine.execute(entry_point="pay", context={})
    elapsed = time.perf_counter() - started
    # then the call was cut at the budget and the decision answered
    [result] = decision.rule_results
    assert (result["outcome"], result["error"]) == (
        "error",
        "JsonLogicBudgetError: evaluation budget of 100 ms exceeded (EVALUATION_BUDGET_MS) (at $)",
    )
    assert elapsed < 0.6


def test_the_warm_path_reads_no_list_or_module(runaway):
    engine.execute(entry_point="pay", context={"email": "bob@example.com"}, dry_run=True)
    with CaptureQueriesContext(connection) as queries:
        decision = engine.execute(
            entry_point="pay", context={"email": "eve@example.com"}, dry_run=True
        )
    assert [r["name"] for r in decision.matched_rules] == ["Blocked"]
    assert [q["sql"] for q in queries.captured_queries if "functions_" in q["sql"]] == []


def test_a_list_change_is_served_from_the_next_decision(runaway):
    context = {"email": "bob@example.com"}
    assert engine.execute(entry_point="pay", context=context).matched_rules == []
    named = services.named_list_update(
        named_list=NamedList.objects.get(name="blocked"),
        data={"items": ["eve@example.com", "bob@example.com"]},
    )
    decision = engine.execute(entry_point="pay", context=context)
    assert [(r["name"], named.version) for r in decision.matched_rules] == [("Blocked", 2)]
