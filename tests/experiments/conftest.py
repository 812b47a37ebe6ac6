"""Fixtures of the experiment tests: an entry point keyed by user id with one rule on it."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import runtime
from rules_engine.models import Rule

SALT = "salt-1"
# The variant content the tests' experiments run: matches everyone, says bye.
BYE = {
    "condition": {"!!": [{"var": "user.id"}]},
    "actions": [{"type": "display_message", "params": {"template": "bye"}}],
}


def subject_for(variant: str, *, salt: str = SALT, weights: Any = None) -> str:
    """The first subject `u<n>` that the 50/50 split with `salt` assigns to `variant`."""
    weights = weights or [("b", 50), ("control", 50)]
    return next(
        f"u{n}"
        for n in range(1000)
        if runtime.assign(salt=salt, subject=f"u{n}", weights=weights) == variant
    )


def make_promo(*, critical: bool = False) -> Rule:
    """Entry point `promo` (subject: user.id), templates hello/bye, and rule "Greet gold":
    shows `hello` when tier is gold."""
    from rules_engine import services

    entry_point = services.entry_point_create(
        data={
            "key": "promo",
            "context_schema": {"type": "object"},
            "subject_path": "user.id",
            "critical": critical,
        }
    )
    services.template_create(data={"key": "hello", "format": "text", "body": "Hi"})
    services.template_create(data={"key": "bye", "format": "text", "body": "Bye"})
    return services.rule_create(
        data={
            "name": "Greet gold",
            "entry_point": entry_point,
            "condition": {"==": [{"var": "tier"}, "gold"]},
            "actions": [{"type": "display_message", "params": {"template": "hello"}}],
        }
    )


@pytest.fixture
def promo_rule(db: Any) -> Rule:
    """The rule "Greet gold" on the non-critical entry point `promo`."""
    return make_promo()


def experiment_data(rule: Rule, **overrides: Any) -> dict[str, Any]:
    """Service data of a 50/50 experiment `greet-ab` on `rule` with variant b = BYE."""
    return {
        "key": "greet-ab",
        "rule": rule,
        "salt": SALT,
        "variants": [
            {"key": "control", "weight": 50},
            {"key": "b", "weight": 50, "content": BYE},
        ],
        **overrides,
    }
