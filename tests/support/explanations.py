"""Expected explanation nodes (the tracer's tree) for the rules engine's tests."""

from __future__ import annotations

import json
from typing import Any


def var_node(
    path: str, result: Any, *, truthy: bool = True, expression: str = ""
) -> dict[str, Any]:
    """The node of a `var` read of `path` that gave `result`."""
    return {
        "op": "var",
        "expression": expression or f"var {path}",
        "var": path,
        "result": result,
        "truthy": truthy,
        "args": [],
    }


def literal_node(value: Any, *, truthy: bool = True) -> dict[str, Any]:
    """The node of a literal `value`."""
    return {
        "op": "literal",
        "expression": json.dumps(value),
        "result": value,
        "truthy": truthy,
        "args": [],
    }
