"""Authoring checks: operations JsonLogic runs quietly but no author means (refused at save)."""

from __future__ import annotations

from typing import Any

import pytest

from rules_engine.jsonlogic.lint import lint


@pytest.mark.parametrize(
    ("rule", "problems"),
    [
        # a third operand JsonLogic would drop, a comparison with nothing
        ({"==": [{"var": "a"}, 1, 2]}, [((), "== takes 2 arguments, got 3")]),
        ({">": [{"var": "a"}]}, [((), "> takes 2 arguments, got 1")]),
        ({"!": [1, 2, 3]}, [((), "! takes 1 argument, got 3")]),
        ({"if": []}, [((), "if takes at least 1 argument, got 0")]),
        ({"and": []}, [((), "and takes at least 1 argument, got 0")]),
        ({"substr": ["abc"]}, [((), "substr takes 2 to 3 arguments, got 1")]),
        # nested: the path of the operation
        (
            {"and": [True, {"or": [{"<": [1]}, True]}]},
            [(("and", 1, "or", 0), "< takes 2 to 3 arguments, got 1")],
        ),
        # two operators in one object: a data object, always truthy
        (
            {"==": [1, 1], "!=": [1, 2]},
            [((), "an operation has exactly one operator; this object has 2 keys ('==', '!=')")],
        ),
        (
            {"and": [{"var": "a", "==": 1}]},
            [
                (
                    ("and", 0),
                    "an operation has exactly one operator; this object has 2 keys ('var', '==')",
                )
            ],
        ),
    ],
)
def test_mistakes_are_named_with_their_path(rule: Any, problems: Any) -> None:
    assert lint(rule) == problems


@pytest.mark.parametrize(
    "rule",
    [
        {"==": [{"var": "a"}, 1]},
        {"<": [0, {"var": "a"}, 10]},
        {"!": {"var": "a"}},
        {"!!": [{"var": "a"}]},
        {"if": [{"var": "a"}, "yes"]},
        {"-": [{"var": "a"}]},
        {"var": []},
        {"var": ["a", 0]},
        {"cat": []},
        {"missing": []},
        {"in": ["x", {"var": "tags"}]},
        {"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]},
        # a data object without operators is left alone, as JsonLogic reads it
        {"merge": [[{"a": 1, "b": 2}], []]},
        True,
        {},
    ],
)
def test_what_authors_mean_passes(rule: Any) -> None:
    assert lint(rule) == []


def test_custom_function_names_count_as_operators() -> None:
    rule = {"in_list": ["vip", {"var": "u"}], "extra": 1}
    assert lint(rule, is_function=lambda name: name == "in_list") == [
        ((), "an operation has exactly one operator; this object has 2 keys ('in_list', 'extra')")
    ]
    assert lint(rule) == []
