"""`in_list` and `wasm` in rules: names checked when a rule is saved, with the node's path."""

from __future__ import annotations

from typing import Any

import pytest

from rules_engine import services as rule_services
from rules_engine.conditions import compile_condition
from rules_engine.errors import ErrorDetail, InvalidInput
from rules_engine.functions import services
from tests.functions.conftest import ADD_WAT, ECHO_WAT

pytestmark = pytest.mark.django_db


@pytest.fixture
def pay() -> Any:
    return rule_services.entry_point_create(data={"key": "pay"})


def save(pay: Any, condition: Any) -> Any:
    return rule_services.rule_create(data={"name": "R", "entry_point": pay, "condition": condition})


def refusal(pay: Any, condition: Any) -> list[ErrorDetail]:
    with pytest.raises(InvalidInput) as caught:
        save(pay, condition)
    return caught.value.details


def test_a_rule_naming_an_unknown_list_is_refused_at_the_name(pay):
    assert refusal(pay, {"and": [True, {"in_list": ["nope", {"var": "email"}]}]}) == [
        {"path": "$.condition.and[1].in_list[0]", "message": "no named list 'nope'"}
    ]


def test_a_list_name_must_be_a_literal(pay):
    assert refusal(pay, {"in_list": [{"var": "which"}, 1]}) == [
        {"path": "$.condition.in_list[0]", "message": "the list name must be a literal string"}
    ]


def test_in_list_tests_membership():
    services.named_list_create(data={"name": "vip", "kind": "strings", "items": ["ann"]})
    rule = compile_condition({"in_list": ["vip", {"var": "user"}]})
    assert (rule({"user": "ann"}), rule({"user": "bob"}), rule({})) == (True, False, False)


def test_a_rule_calling_an_unknown_function_is_refused(pay):
    assert refusal(pay, {"==": [{"wasm": ["score", 1]}, 2]}) == [
        {"path": '$.condition["=="][0].wasm[0]', "message": "no active WASM function 'score'"}
    ]


def test_a_rule_calling_an_inactive_function_is_refused(pay):
    services.wasm_function_create(data={"name": "score", "wat": ECHO_WAT, "active": False})
    assert refusal(pay, {"wasm": ["score"]}) == [
        {"path": "$.condition.wasm[0]", "message": "no active WASM function 'score'"}
    ]


def test_a_numeric_function_is_called_with_its_arity(pay):
    services.wasm_function_create(
        data={"name": "add", "wat": ADD_WAT, "export": "add", "abi": "numeric"}
    )
    assert refusal(pay, {"wasm": ["add", 1]}) == [
        {"path": "$.condition", "message": "WASM function 'add' takes 2 arguments, got 1"}
    ]
    rule = compile_condition({"wasm": ["add", {"var": "a"}, 2]})
    assert rule({"a": 40}) == 42


def test_wasm_passes_evaluated_arguments():
    services.wasm_function_create(data={"name": "echo", "wat": ECHO_WAT})
    rule = compile_condition({"wasm": ["echo", {"var": "a"}, {"+": [1, 2]}]})
    assert rule({"a": "x"}) == ["x", 3]


def test_a_function_used_by_an_active_rule_cannot_be_deactivated(pay):
    function = services.wasm_function_create(data={"name": "echo", "wat": ECHO_WAT})
    save(pay, {"wasm": ["echo"]})
    with pytest.raises(InvalidInput) as caught:
        services.wasm_function_update(function=function, data={"active": False})
    assert caught.value.details == [
        {"path": "$.active", "message": "WASM function 'echo' is used by active rules: 'R'"}
    ]
