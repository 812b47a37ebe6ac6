"""The official JsonLogic conformance suite (jsonlogic.com/tests.json), all 277 cases.

The suite is vendored byte-for-byte in ``data/jsonlogic-tests.json`` (see ``data/README.md``
for source and license). Results are compared strictly: booleans are not numbers, but an int
equals a float of the same value (JSON has one number type).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from rules_engine.jsonlogic import apply, compile, to_json

from .helpers import json_equal

SUITE = Path(__file__).parent / "data" / "jsonlogic-tests.json"
SUITE_SHA256 = "3f2ef4252eb0285e5e0105b2c2fc14155d6e691519ecf46a4591c6f480587c31"


def _load() -> tuple[list[str], list[tuple[Any, Any, Any]]]:
    entries = json.loads(SUITE.read_text(encoding="utf-8"))
    comments = [entry for entry in entries if isinstance(entry, str)]
    cases = [tuple(entry) for entry in entries if not isinstance(entry, str)]
    return comments, cases


COMMENTS, CASES = _load()


def _case_id(index: int, rule: Any) -> str:
    text = json.dumps(rule, ensure_ascii=True)
    return f"{index:03d}:{text[:60]}"


def test_suite_is_the_vendored_file() -> None:
    assert hashlib.sha256(SUITE.read_bytes()).hexdigest() == SUITE_SHA256


def test_suite_has_exactly_277_cases() -> None:
    assert len(CASES) == 277
    assert len(COMMENTS) == 24
    assert all(len(case) == 3 for case in CASES)


@pytest.mark.parametrize(
    ("rule", "data", "expected"),
    [pytest.param(*case, id=_case_id(index, case[0])) for index, case in enumerate(CASES)],
)
def test_conformance(rule: Any, data: Any, expected: Any) -> None:
    result = to_json(compile(rule)(data))
    assert json_equal(result, expected), f"got {result!r}, expected {expected!r}"
    # apply() (cached) must agree with a fresh compile.
    assert json_equal(to_json(apply(rule, data)), expected)


def test_json_equal_is_strict() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert json_equal([1, {"a": [True]}], [1.0, {"a": [True]}])
    assert not json_equal([1, {"a": [1]}], [1, {"a": [True]}])
    assert not json_equal(None, 0)
    assert not json_equal("1", 1)
    assert not json_equal([1], [1, 2])
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
