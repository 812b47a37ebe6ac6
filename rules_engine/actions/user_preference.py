"""`user_preference`: an optional question whose answer is stored for the subject."""

from __future__ import annotations

from rules_engine import selectors
from rules_engine.actions.base import (
    ActionContext,
    ActionOutcome,
    PreparedAction,
    SubjectActionHandler,
    registry,
)


@registry.register
class UserPreference(SubjectActionHandler):
    """Asks an optional question with fixed options; the current answer comes back with it."""

    type = "user_preference"
    params_schema = {
        "type": "object",
        "properties": {
            "preference_key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,99}$"},
            "template": {"type": "string", "minLength": 1},
            "options": {
                "type": "array",
                "minItems": 2,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "properties": {
                        "value": {"type": ["string", "number", "boolean"]},
                        "label": {"type": "string", "minLength": 1, "maxLength": 120},
                    },
                    "required": ["value", "label"],
                    "additionalProperties": False,
                },
            },
            "default": {"type": ["string", "number", "boolean", "null"]},
            "subject": {},
        },
        "required": ["preference_key", "template", "options"],
        "additionalProperties": False,
    }

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Return the question with the subject's current answer (or the default)."""
        params = prepared.params
        subject = self.subject_for(prepared, ctx)
        stored = (
            selectors.preference_value(preference_key=params["preference_key"], subject=subject)
            if subject is not None
            else None
        )
        answered = stored is not None
        effect = {
            "type": self.type,
            "preference_key": params["preference_key"],
            "template": params["template"],
            "options": params["options"],
            "value": stored.value if stored is not None else params.get("default"),
            "answered": answered,
            "blocking": False,
        }
        return ActionOutcome(
            effect=effect,
            result={
                "preference_key": params["preference_key"],
                "subject": subject,
                "answered": answered,
            },
        )
