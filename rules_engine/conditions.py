"""JSONLogic compilation with the project's limits (the compiler itself knows no settings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from rules_engine import jsonlogic


def compile_condition(expression: Any) -> jsonlogic.Compiled:
    """Compile a JSONLogic expression under VERDICT_MAX_RULE_DEPTH / _NODES.

    Raises JsonLogicError (with the JSON path of the offending node).
    """
    limits = settings.VERDICT
    return jsonlogic.compile(
        expression,
        max_depth=int(limits["MAX_RULE_DEPTH"]),
        max_nodes=int(limits["MAX_RULE_NODES"]),
    )
