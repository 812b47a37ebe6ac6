"""`display_modal`: a dialog the user must answer by pressing one of its buttons."""

from __future__ import annotations

from rules_engine.actions.base import (
    ActionContext,
    ActionHandler,
    ActionOutcome,
    PreparedAction,
    registry,
)


@registry.register
class DisplayModal(ActionHandler):
    """Shows a modal with a title, a rendered body and buttons; answered on the client."""

    type = "display_modal"
    params_schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "template": {"type": "string", "minLength": 1},
            "buttons": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[a-z0-9_-]{1,50}$"},
                        "label": {"type": "string", "minLength": 1, "maxLength": 80},
                        "style": {"enum": ["primary", "secondary", "danger"]},
                    },
                    "required": ["id", "label"],
                    "additionalProperties": False,
                },
            },
            "dismissible": {"type": "boolean"},
        },
        "required": ["title", "template"],
        "additionalProperties": False,
    }

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Return the modal effect; the engine renders its template afterwards."""
        params = prepared.params
        buttons = params.get("buttons") or [{"id": "ok", "label": "OK", "style": "primary"}]
        effect = {
            "type": self.type,
            "title": params["title"],
            "template": params["template"],
            "buttons": [{"style": "secondary", **button} for button in buttons],
            "dismissible": params.get("dismissible", False),
            "blocking": False,
        }
        return ActionOutcome(effect=effect)
