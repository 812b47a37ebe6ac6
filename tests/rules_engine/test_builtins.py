"""Built-in functions (rules_engine/functions/builtins.py), `$now` and the evaluation limits
as the engine applies them: per decision, per rule, recorded in the audit.

The functions' values are covered by the golden file tests/rules_engine/jsonlogic/golden/
builtins.json (single-rule and rule-set paths); this module covers registration, rules
refused when saved, and the engine's side.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from ingress import services as ingress_services
from rules_engine import engine, services
from rules_engine.errors import InvalidInput
from rules_engine.functions import FunctionRegistry, registry
from rules_engine.functions.builtins import BUILTINS, names, register_builtins
from rules_engine.jsonlogic import JsonLogicCompileError, compile, limits
from rules_engine.models import EntryPoint, Execution, Rule

EXECUTE = "/api/rules/engine/execute/"
BEFORE_JUNE = {"date_before": [{"var": "$now"}, "2024-06-01T00:00:00Z"]}


@pytest.fixture
def clock(db: Any) -> EntryPoint:
    """An entry point `clock` whose context is any object, with no rules yet."""
    return services.entry_point_create(data={"key": "clock", "context_schema": {"type": "object"}})


def add_rule(entry_point: EntryPoint, name: str, condition: Any, priority: int = 10) -> Rule:
    return services.rule_create(
        data={
            "name": name,
            "entry_point": entry_point,
            "priority": priority,
            "condition": condition,
            "actions": [],
        }
    )


def outcomes(decision: engine.Decision) -> dict[str, str]:
    return {r["name"]: r["outcome"] for r in decision.rule_results}


# --------------------------------------------------------------------------- registration


def test_every_builtin_is_registered_with_a_description() -> None:
    for name in names():
        function = registry.get(name)
        assert function is not None, name
        assert function.description.startswith(f"{name}("), name


def test_registering_again_is_harmless() -> None:
    before = registry.generation
    register_builtins()
    assert registry.generation == before


def test_a_taken_name_is_refused_loudly() -> None:
    private = FunctionRegistry()
    private.register("lower", str.lower, arity=1)
    with pytest.raises(ValueError, match="'lower' is already registered"):
        register_builtins(private)


def test_builtin_names() -> None:
    # The README documents these names: renaming one is a breaking change for stored rules.
    assert [builtin.name for builtin in BUILTINS] == [
        "date_parse",
        "is_date",
        "date_add",
        "date_diff",
        "date_before",
        "date_after",
        "day_of_week",
        "hour_of_day",
        "local_date",
        "local_time",
        "lower",
        "upper",
        "trim",
        "starts_with",
        "ends_with",
        "contains",
        "length",
        "split",
        "replace",
        "regex_match",
        "regex_search",
        "regex_extract",
        "bucket",
        "sha256",
    ]


# --------------------------------------------------------------------------- saving rules


def test_a_pattern_re2_cannot_compile_is_refused_when_the_rule_is_saved(clock: EntryPoint) -> None:
    # when a rule with a backtracking-only pattern is saved
    condition = {"and": [True, {"regex_match": [{"var": "s"}, "(\\w+)\\1"]}]}
    with pytest.raises(InvalidInput) as raised:
        add_rule(clock, "Repeated word", condition)
    # then nothing is stored and the error points at the pattern
    assert Rule.objects.count() == 0
    assert "$.condition.and[1].regex_match[1]" in json.dumps(raised.value.details)


def test_a_pattern_beyond_the_limit_is_refused() -> None:
    with pytest.raises(JsonLogicCompileError) as raised:
        compile({"regex_search": [{"var": "s"}, "a" * (limits.LIMITS.max_pattern_length + 1)]})
    assert "(MAX_PATTERN_LENGTH)" in raised.value.message
    assert raised.value.json_path() == "$.regex_search[1]"


# --------------------------------------------------------------------------- $now


def test_rules_read_the_requests_now(clock: EntryPoint) -> None:
    # given a rule true before June 2024
    add_rule(clock, "Spring sale", BEFORE_JUNE)
    may = datetime(2024, 5, 1, 12, tzinfo=UTC)
    july = datetime(2024, 7, 1, 12, tzinfo=UTC)
    # when decided "in May" and "in July"
    in_may = engine.execute(entry_point="clock", context={}, now=may)
    in_july = engine.execute(entry_point="clock", context={}, now=july)
    # then only May matches, and each audit row records the instant the rules read
    assert outcomes(in_may) == {"Spring sale": "matched"}
    assert outcomes(in_july) == {"Spring sale": "not_matched"}
    assert in_may.now == "2024-05-01T12:00:00Z"
    row = Execution.objects.get(pk=str(in_july.execution_id))
    assert row.context_snapshot == {"$now": "2024-07-01T12:00:00Z"}


def test_now_defaults_to_the_time_of_the_request(clock: EntryPoint) -> None:
    add_rule(clock, "Any time", {"is_date": {"var": "$now"}})
    before = timezone.now()
    decision = engine.execute(entry_point="clock", context={})
    after = timezone.now()
    assert outcomes(decision) == {"Any time": "matched"}
    assert decision.now is not None
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(decision.now) <= after


def test_a_context_cannot_choose_its_own_now(clock: EntryPoint) -> None:
    # given a caller putting "$now" in the context itself
    add_rule(clock, "Spring sale", BEFORE_JUNE)
    context = {"$now": "2024-05-01T00:00:00Z"}
    # when decided in July, the engine's instant wins
    decision = engine.execute(
        entry_point="clock", context=context, now=datetime(2024, 7, 1, tzinfo=UTC)
    )
    assert outcomes(decision) == {"Spring sale": "not_matched"}


def test_now_is_left_out_when_no_rule_reads_it(clock: EntryPoint) -> None:
    add_rule(clock, "Big", {">": [{"var": "total"}, 10]})
    decision = engine.execute(entry_point="clock", context={"total": 11})
    assert decision.now is None
    row = Execution.objects.get(pk=str(decision.execution_id))
    assert row.context_snapshot == {"total": 11}


def test_dry_run_accepts_a_chosen_now(clock: EntryPoint, api_client: APIClient) -> None:
    add_rule(clock, "Spring sale", BEFORE_JUNE)
    body = {
        "entry_point": "clock",
        "context": {},
        "now": "2024-05-01T14:00:00+02:00",
        "dry_run": True,
    }
    response = api_client.post(EXECUTE, json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    assert [r["name"] for r in response.json()["matched_rules"]] == ["Spring sale"]


def test_real_decisions_refuse_a_chosen_now(clock: EntryPoint, api_client: APIClient) -> None:
    # a client must not move itself inside a time window ("promo until June")
    add_rule(clock, "Spring sale", BEFORE_JUNE)
    body = {"entry_point": "clock", "context": {}, "now": "2024-05-01T14:00:00+02:00"}
    response = api_client.post(EXECUTE, json.dumps(body), content_type="application/json")
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_request",
            "details": [{"path": "$.now", "message": "now may only be given with dry_run: true"}],
        },
    )
    assert Execution.objects.count() == 0


@pytest.mark.parametrize(
    ("now", "message"),
    [
        ("2024-05-01T14:00:00", "Include a UTC offset, e.g. 2024-03-01T12:00:00Z."),
        ("tomorrow", "Datetime has wrong format."),
    ],
)
def test_execute_api_refuses_a_now_without_offset(
    clock: EntryPoint, api_client: APIClient, now: str, message: str
) -> None:
    body = {"entry_point": "clock", "context": {}, "now": now}
    response = api_client.post(EXECUTE, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert message in json.dumps(response.json())


def test_events_are_decided_at_their_received_time(clock: EntryPoint) -> None:
    # given an event received in May, decided much later
    add_rule(clock, "Spring sale", BEFORE_JUNE)
    event, _ = ingress_services.event_accept(type="clock", key="e-1", payload={})
    received = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    type(event).objects.filter(pk=event.pk).update(received_at=received)
    # when it is processed
    decided = ingress_services.event_process(event_id=str(event.pk))
    # then its rules read its received time as $now
    assert decided is not None
    row = Execution.objects.get(pk=str(decided.execution_id))
    assert row.context_snapshot == {"$now": "2024-05-01T09:30:00Z"}
    assert [r["outcome"] for r in row.rule_results] == ["matched"]


# --------------------------------------------------------------------------- limits


def test_a_rule_over_the_array_limit_fails_alone(clock: EntryPoint) -> None:
    # given a rule iterating over the context's items and another, plain rule
    add_rule(clock, "Any expensive", {"some": [{"var": "items"}, {">": [{"var": ""}, 100]}]}, 1)
    add_rule(clock, "Has items", {"!!": {"var": "items"}}, 2)
    verdict = {**settings.VERDICT, "MAX_ARRAY_ITEMS": 3}
    # when the items exceed the limit
    with override_settings(VERDICT=verdict):
        decision = engine.execute(entry_point="clock", context={"items": [1, 2, 3, 4]})
    # then that rule is an error naming the limit and the other one still matched
    assert outcomes(decision) == {"Any expensive": "error", "Has items": "matched"}
    [failed] = [r for r in decision.rule_results if r["outcome"] == "error"]
    assert "some: 4 items exceed the limit of 3 (MAX_ARRAY_ITEMS)" in failed["error"]
    # and the limit is back once the setting is
    assert limits.LIMITS.max_items == settings.VERDICT["MAX_ARRAY_ITEMS"]


def test_a_rule_over_the_budget_fails_and_the_decision_still_answers(
    clock: EntryPoint,
) -> None:
    # given a rule whose nested loops take far longer than the budget, and a plain rule
    numbers = {"var": "numbers"}
    slow = {"some": [numbers, {"some": [{"merge": [numbers]}, {"<": [{"var": ""}, -1]}]}]}
    add_rule(clock, "Runaway", {"some": [{"var": "rows"}, slow]}, 1)
    add_rule(clock, "Plain", {"==": [{"var": "x"}, 1]}, 2)
    row = {"numbers": list(range(3000))}
    context = {"rows": [row] * 50, "x": 1}
    verdict = {**settings.VERDICT, "EVALUATION_BUDGET_MS": 20}
    # when decided under a 20 ms budget
    with override_settings(VERDICT=verdict):
        decision = engine.execute(entry_point="clock", context=context)
    # then the runaway rule is an error of the budget and the plain rule matched
    assert outcomes(decision) == {"Runaway": "error", "Plain": "matched"}
    [failed] = [r for r in decision.rule_results if r["outcome"] == "error"]
    assert "evaluation budget of 20 ms exceeded (EVALUATION_BUDGET_MS)" in failed["error"]
    assert decision.duration_ms < 5000
