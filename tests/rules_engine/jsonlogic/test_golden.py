"""Golden cases of our own, one file per area, in ``golden/*.json``.

Each file is ``{"about": ..., "cases": [{"rule", "data", "expected", "note"}]}`` with
``expected`` written as :func:`to_json` output (NaN/±Infinity as null). Expected values were
derived from json-logic-js 2.x semantics and cross-checked by hand against the reference
implementation; no JavaScript runtime is needed to run these tests. ``errors.json`` holds
cases that must fail, with ``{"error": {"type", "json_path", "message"}}`` instead of
``expected``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rules_engine.jsonlogic import (
    JsonLogicCompileError,
    JsonLogicError,
    JsonLogicRuntimeError,
    compile,
    to_json,
)

from .helpers import json_equal

GOLDEN = Path(__file__).parent / "golden"
AREAS = (
    "truthiness",
    "equality",
    "relational",
    "in",
    "var",
    "missing",
    "arithmetic",
    "cat",
    "substr",
    "min_max",
    "merge",
    "if",
    "logic",
    "iteration",
    "literals_and_passthrough",
    "builtins",
    "errors",
)
ERROR_TYPES: dict[str, type[JsonLogicError]] = {
    "compile": JsonLogicCompileError,
    "runtime": JsonLogicRuntimeError,
}


def _load(area: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{area}.json").read_text(encoding="utf-8"))


def _cases() -> list[Any]:
    params = []
    for area in AREAS:
        for index, case in enumerate(_load(area)["cases"]):
            rule_text = json.dumps(case["rule"], ensure_ascii=True)[:50]
            params.append(pytest.param(case, id=f"{area}-{index:02d}:{rule_text}"))
    return params


def test_every_area_has_a_golden_file() -> None:
    assert sorted(path.stem for path in GOLDEN.glob("*.json")) == sorted(AREAS)


@pytest.mark.parametrize("area", AREAS)
def test_golden_file_shape(area: str) -> None:
    document = _load(area)
    assert set(document) == {"about", "cases"}
    assert document["about"].strip()
    assert len(document["cases"]) >= 5
    for case in document["cases"]:
        outcome = "error" if area == "errors" else "expected"
        assert set(case) == {"rule", "data", outcome, "note"}, case
        assert case["note"].strip()


@pytest.mark.parametrize("case", _cases())
def test_golden(case: dict[str, Any]) -> None:
    if "error" in case:
        expected = case["error"]
        with pytest.raises(ERROR_TYPES[expected["type"]]) as raised:
            compile(case["rule"])(case["data"])
        assert raised.value.json_path() == expected["json_path"]
        assert expected["message"] in raised.value.message
        assert expected["json_path"] in str(raised.value)
        return
    result = to_json(compile(case["rule"])(case["data"]))
    assert json_equal(result, case["expected"]), (
        f"{case['note']}: got {result!r}, expected {case['expected']!r}"
    )
