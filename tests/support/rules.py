"""Rule content and admin form data shared by the rules engine's tests."""

from __future__ import annotations

import json
from typing import Any

from rules_engine.models import EntryPoint

BIG_CART = {">": [{"var": "cart.total"}, 100]}
SAY_HI = [{"type": "display_message", "params": {"template": "hi"}}]


def rule_form(entry_point: EntryPoint, **overrides: Any) -> dict[str, str]:
    """POST data of the rule add/change form; JSON fields given as Python values."""
    data: dict[str, Any] = {
        "name": "Big cart",
        "description": "",
        "entry_point": str(entry_point.pk),
        "priority": "100",
        "active": "on",
        "condition": BIG_CART,
        "actions": SAY_HI,
        "metadata": {},
        "cooldown_seconds": "0",
        "cooldown_key": "",
        "change_note": "",
    }
    data.update(overrides)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def entry_point_with_rule(entry_point: dict[str, Any], rule: dict[str, Any]) -> EntryPoint:
    """Create an entry point (any object as context unless given) with one rule, by services."""
    from rules_engine import services

    created = services.entry_point_create(
        data={"context_schema": {"type": "object"}, **entry_point}
    )
    services.rule_create(data={**rule, "entry_point": created})
    return created
