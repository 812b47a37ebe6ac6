"""JSONLogic compilation with the project's limits (the compiler itself knows no settings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from rules_engine import jsonlogic
from rules_engine.jsonlogic import limits


def compile_condition(expression: Any) -> jsonlogic.Compiled:
    """Compile a JSONLogic expression under VERDICT_MAX_RULE_DEPTH / _NODES.

    Raises JsonLogicError (with the JSON path of the offending node).
    """
    verdict = settings.VERDICT
    return jsonlogic.compile(
        expression,
        max_depth=int(verdict["MAX_RULE_DEPTH"]),
        max_nodes=int(verdict["MAX_RULE_NODES"]),
    )


def configure_limits() -> None:
    """Apply the run-time limits of settings.VERDICT to rule evaluation in this process.

    Reads MAX_ARRAY_ITEMS, MAX_STRING_LENGTH and MAX_PATTERN_LENGTH (missing keys keep the
    defaults of rules_engine.jsonlogic.limits). Called at startup and whenever a test
    overrides VERDICT. Raises ValueError for a value below 1.
    """
    verdict = settings.VERDICT
    defaults = limits.Limits()
    limits.configure(
        max_items=int(verdict.get("MAX_ARRAY_ITEMS", defaults.max_items)),
        max_string_length=int(verdict.get("MAX_STRING_LENGTH", defaults.max_string_length)),
        max_pattern_length=int(verdict.get("MAX_PATTERN_LENGTH", defaults.max_pattern_length)),
    )


def evaluation_budget_seconds() -> float | None:
    """The per-decision evaluation budget (VERDICT EVALUATION_BUDGET_MS) in seconds, or None
    when it is 0 (unbounded). Raises nothing."""
    milliseconds = float(settings.VERDICT.get("EVALUATION_BUDGET_MS", 0) or 0)
    return milliseconds / 1000 if milliseconds > 0 else None
