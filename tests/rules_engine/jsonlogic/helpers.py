"""Strict JSON comparison shared by the JSONLogic test modules.

Python's ``==`` says ``True == 1`` and ``1 == 1.0``; JSON (and json-logic-js) distinguish
booleans from numbers but have a single number type. ``json_equal`` compares accordingly,
recursively through lists and dicts.
"""

from __future__ import annotations

from typing import Any


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(actual: Any, expected: Any) -> bool:
    """True if both are the same JSON value: bool vs number distinguished, 1 == 1.0."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if _is_number(actual) and _is_number(expected):
        return bool(actual == expected)
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            json_equal(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            json_equal(actual[key], expected[key]) for key in expected
        )
    if actual is None or expected is None:
        return actual is expected
    return type(actual) is type(expected) and bool(actual == expected)
