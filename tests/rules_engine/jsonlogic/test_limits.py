"""Run-time bounds of evaluation: array items, string sizes, the evaluation budget.

Every behaviour is checked on the single-rule path (closures) and on the rule-set path
(generated code, which hands a failing context to the closures).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rules_engine.functions import FunctionRegistry
from rules_engine.jsonlogic import (
    JsonLogicRuntimeError,
    RuleError,
    compile,
    compile_ruleset,
    limits,
)
from rules_engine.jsonlogic.errors import JsonLogicBudgetError, JsonLogicLimitError

ITEMS = {"var": "items"}


@pytest.fixture
def small_limits() -> Iterator[None]:
    """max_items 5 and max_string_length 20 for the test, the previous values after it."""
    saved = (limits.LIMITS.max_items, limits.LIMITS.max_string_length)
    limits.configure(max_items=5, max_string_length=20)
    yield
    limits.configure(max_items=saved[0], max_string_length=saved[1])


def _expired() -> limits.budget:
    """A budget that has already run out (set, then waited past)."""
    return limits.budget(1e-9)


def collect(rules: list[Any], data: Any) -> list[Any]:
    return compile_ruleset(rules).evaluate(data, errors="collect")


# --------------------------------------------------------------------------- array items


@pytest.mark.parametrize("operator", ["map", "filter", "all", "some", "none", "reduce"])
def test_iterations_refuse_arrays_beyond_the_limit(small_limits: None, operator: str) -> None:
    # given a rule iterating over the context's items
    rule = {operator: [ITEMS, {"var": "current" if operator == "reduce" else ""}]}
    # when it gets 5 items it works; with 6 it is an error naming the limit, at the node
    compile(rule)({"items": [1, 2, 3, 4, 5]})
    with pytest.raises(JsonLogicLimitError) as raised:
        compile(rule)({"items": [1, 2, 3, 4, 5, 6]})
    assert raised.value.message == (f"{operator}: 6 items exceed the limit of 5 (MAX_ARRAY_ITEMS)")
    assert raised.value.path == ()


@pytest.mark.parametrize("operator", ["map", "filter", "all", "some", "none"])
def test_generated_loops_are_bounded_too(small_limits: None, operator: str) -> None:
    # given the rule in a rule set, behind another rule, inside an `and`
    rules = [True, {"and": [True, {operator: [ITEMS, {"var": ""}]}]}]
    # when the items exceed the limit
    first, failed = collect(rules, {"items": [1] * 6})
    # then only that rule fails, with the path of its iteration
    assert first is True
    assert isinstance(failed, RuleError)
    assert failed.error.message == f"{operator}: 6 items exceed the limit of 5 (MAX_ARRAY_ITEMS)"
    assert failed.error.json_path() == "$.and[1]"


def test_merge_result_is_bounded(small_limits: None) -> None:
    rule = {"merge": [ITEMS, ITEMS]}
    assert compile(rule)({"items": [1, 2]}) == [1, 2, 1, 2]
    with pytest.raises(JsonLogicLimitError, match=r"merge: 6 items exceed the limit of 5"):
        compile(rule)({"items": [1, 2, 3]})


def test_reduce_cannot_grow_its_accumulator_without_bound(small_limits: None) -> None:
    # given a reduce doubling a text each step: 2**n characters after n items
    rule = {"reduce": [ITEMS, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "ab"]}
    # when the text would pass 20 characters, the rule fails instead of growing
    assert compile(rule)({"items": [1, 2]}) == "ab" * 4
    with pytest.raises(JsonLogicLimitError) as raised:
        compile(rule)({"items": [1, 2, 3, 4]})
    assert "more than 20 characters (MAX_STRING_LENGTH)" in raised.value.message


def test_reduce_accumulator_nesting_itself_is_bounded(small_limits: None) -> None:
    # given an accumulator holding itself twice per step (shared, so cheap, until counted)
    grow = {"merge": [[{"var": "accumulator"}], [{"var": "accumulator"}]]}
    rule = {"reduce": [ITEMS, grow, []]}
    with pytest.raises(JsonLogicLimitError, match=r"more than 5 values \(MAX_ARRAY_ITEMS\)"):
        compile(rule)({"items": [1, 2, 3, 4, 5]})


def test_split_is_bounded(small_limits: None) -> None:
    rule = {"split": [{"var": "s"}, ","]}
    assert compile(rule)({"s": "a,b,c,d,e"}) == ["a", "b", "c", "d", "e"]
    with pytest.raises(JsonLogicLimitError) as raised:
        compile(rule)({"s": "a,b,c,d,e,f"})
    assert raised.value.message == (
        "function 'split': split: 6 items exceed the limit of 5 (MAX_ARRAY_ITEMS)"
    )


def test_string_functions_are_bounded(small_limits: None) -> None:
    # given a replace that would make 8 characters into 24
    with pytest.raises(JsonLogicLimitError, match=r"24 characters exceeds the limit of 20"):
        compile({"replace": ["aaaaaaaa", "a", "aaa"]})()
    # and an input longer than the limit
    with pytest.raises(JsonLogicLimitError, match=r"MAX_STRING_LENGTH"):
        compile({"lower": {"var": "s"}})({"s": "x" * 21})


def test_limits_refuse_nonsense_values() -> None:
    with pytest.raises(ValueError, match="max_items must be a positive int"):
        limits.configure(max_items=0)


# --------------------------------------------------------------------------- the budget


def test_no_budget_means_no_deadline() -> None:
    assert limits.remaining() == float("inf")
    with limits.budget(None):
        assert limits.remaining() == float("inf")


def test_nested_budgets_never_extend_the_outer_one() -> None:
    with limits.budget(0.05):
        with limits.budget(10):
            assert limits.remaining() <= 0.05
        assert limits.remaining() <= 0.05
    assert limits.remaining() == float("inf")


def test_loops_past_the_budget_fail_their_rule() -> None:
    # given a spent budget
    with _expired():
        time.sleep(0.001)
        # when a loop starts, its rule fails with the budget error at the loop's path
        with pytest.raises(JsonLogicBudgetError) as raised:
            compile({"!": {"some": [ITEMS, {"var": ""}]}})({"items": [1]})
    assert raised.value.path == ("!",)
    assert "evaluation budget of" in raised.value.message
    assert "(EVALUATION_BUDGET_MS)" in raised.value.message


def test_rules_without_loops_still_evaluate_past_the_budget() -> None:
    # given a rule set with a looping rule and a plain one
    rules = [{"map": [ITEMS, {"var": ""}]}, {"==": [{"var": "x"}, 1]}]
    with _expired():
        time.sleep(0.001)
        looped, plain = collect(rules, {"items": [1, 2], "x": 1})
    # then the loop failed on the budget and the comparison still answered
    assert isinstance(looped, RuleError)
    assert isinstance(looped.error, JsonLogicBudgetError)
    assert plain is True


def test_long_loops_check_the_deadline_as_they_go() -> None:
    # given a loop over many items whose every item takes a millisecond
    functions = FunctionRegistry()

    def slow(x: Any) -> Any:
        time.sleep(0.001)
        return x

    functions.register("slow", slow, arity=1)
    rule = compile({"map": [ITEMS, {"+": [{"var": ""}, 1]}]}, functions=functions)
    slow_rule = compile({"map": [ITEMS, {"slow": {"var": ""}}]}, functions=functions)
    items = {"items": list(range(1000))}
    assert len(rule(items)) == 1000
    # when it runs under a 20 ms budget, it stops long before the 1 s it would take
    started = time.monotonic()
    with limits.budget(0.02), pytest.raises(JsonLogicBudgetError):
        slow_rule(items)
    assert time.monotonic() - started < 0.5


def test_function_calls_past_the_budget_fail() -> None:
    functions = FunctionRegistry()
    calls: list[Any] = []
    functions.register("record", calls.append, arity=1)
    rule = compile({"record": 1}, functions=functions)
    with _expired():
        time.sleep(0.001)
        with pytest.raises(JsonLogicBudgetError):
            rule(None)
    assert calls == []


def test_budget_errors_are_runtime_errors() -> None:
    # the engine records any JsonLogicRuntimeError as that rule's error
    assert issubclass(JsonLogicBudgetError, JsonLogicLimitError)
    assert issubclass(JsonLogicLimitError, JsonLogicRuntimeError)


# --------------------------------------------------------------------------- compile time


def test_folding_huge_constant_loops_is_bounded() -> None:
    # given loops over constant arrays nested three deep: 800**3 steps if folded naively
    numbers = list(range(800))
    rule = {"map": [numbers, {"map": [numbers, {"map": [numbers, {"+": [{"var": ""}, 1]}]}]}]}
    # when compiled, folding gives up on what is too large or too slow
    started = time.monotonic()
    compiled = compile(rule)
    assert time.monotonic() - started < 5
    # and evaluating it is bounded by the request's budget
    with limits.budget(0.05), pytest.raises(JsonLogicBudgetError):
        compiled(None)
