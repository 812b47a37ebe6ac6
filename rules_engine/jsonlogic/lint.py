"""Authoring checks: operations json-logic-js runs without complaint but that are mistakes.

The compiler follows json-logic-js to the letter, so `{"==": [a, b, c]}` compares a and b and
drops c, `{">": [x]}` compares x with nothing, and `{"==": [1, 1], "!=": [1, 2]}` (two
operators in one object) is not an operation at all but a data object, which is truthy: the
rule always matches. Stored rules must keep evaluating exactly as JsonLogic says, so these
checks run when a rule is saved (`rules_engine.services.rule_compile`), never when a stored
rule is loaded or evaluated. Each problem names the operation's path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from rules_engine.jsonlogic.operators import OPERATORS
from rules_engine.paths import json_type

Path = tuple[str | int, ...]

# Operator -> (fewest, most) arguments an author can mean; None: no upper bound. Operators
# not listed take any number (cat, merge, missing, +, *, ...) or are checked by the compiler.
ARITY: dict[str, tuple[int, int | None]] = {
    "==": (2, 2),
    "===": (2, 2),
    "!=": (2, 2),
    "!==": (2, 2),
    ">": (2, 2),
    ">=": (2, 2),
    "<": (2, 3),
    "<=": (2, 3),
    "!": (1, 1),
    "!!": (1, 1),
    "and": (1, None),
    "or": (1, None),
    "if": (1, None),
    "?:": (1, None),
    "in": (2, 2),
    "substr": (2, 3),
    "%": (2, 2),
    "/": (2, 2),
    "-": (1, 2),
    "max": (1, None),
    "min": (1, None),
    "map": (2, 2),
    "filter": (2, 2),
    "all": (2, 2),
    "some": (2, 2),
    "none": (2, 2),
    "reduce": (2, 3),
    "var": (0, 2),
}


def _takes(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


def lint(rule: Any, is_function: Callable[[str], bool] = lambda _: False) -> list[tuple[Path, str]]:
    """(path, message) of every operation in `rule` with an argument count no author means,
    and of every object that mixes an operator with other keys. `is_function` tells custom
    function names (operators too). Raises nothing."""
    return list(_problems(rule, (), is_function))


def lint_condition(
    rule: Any, is_function: Callable[[str], bool] = lambda _: False
) -> list[tuple[Path, str]]:
    """`lint` for a rule's condition, which must also not be a bare string, number or array:
    such a literal gives the same answer for every context, never what is meant."""
    problems = lint(rule, is_function)
    if isinstance(rule, str | list) or type(rule) in (int, float):
        problems.insert(
            0,
            (
                (),
                f"a condition is an operation, true or false, not a {json_type(rule)} "
                "(the same answer for every context)",
            ),
        )
    return problems


def _problems(
    node: Any, path: Path, is_function: Callable[[str], bool]
) -> Iterator[tuple[Path, str]]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _problems(item, (*path, index), is_function)
        return
    if not isinstance(node, dict):
        return
    if len(node) != 1:
        operators = [k for k in node if isinstance(k, str) and (k in OPERATORS or is_function(k))]
        if operators:
            keys = ", ".join(repr(k) for k in node)
            yield (
                path,
                f"an operation has exactly one operator; this object has {len(node)} keys ({keys})",
            )
        return  # anything else is a data object, as JsonLogic reads it
    ((operator, values),) = node.items()
    args = values if isinstance(values, list) else [values]
    bounds = ARITY.get(operator) if isinstance(operator, str) else None
    if bounds is not None:
        low, high = bounds
        if len(args) < low or (high is not None and len(args) > high):
            yield path, f"{operator} takes {_takes(low, high)}, got {len(args)}"
    args_path: Path = (*path, str(operator))
    if isinstance(values, list):
        for index, item in enumerate(values):
            yield from _problems(item, (*args_path, index), is_function)
    else:
        yield from _problems(values, args_path, is_function)
