"""`display_message`: a non-blocking message shown to the user (banner, toast or inline)."""

from __future__ import annotations

from rules_engine.actions.base import (
    ActionContext,
    ActionHandler,
    ActionOutcome,
    PreparedAction,
    registry,
)

LEVELS = ["info", "success", "warning", "error"]
PLACEMENTS = ["banner", "toast", "inline"]


@registry.register
class DisplayMessage(ActionHandler):
    """Shows a rendered message template; never blocks the caller."""

    type = "display_message"
    params_schema = {
        "type": "object",
        "properties": {
            "template": {"type": "string", "minLength": 1},
            "level": {"enum": LEVELS},
            "placement": {"enum": PLACEMENTS},
            "dismissible": {"type": "boolean"},
        },
        "required": ["template"],
        "additionalProperties": False,
    }

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Return the message effect; the engine renders its template afterwards."""
        params = prepared.params
        effect = {
            "type": self.type,
            "level": params.get("level", "info"),
            "placement": params.get("placement", "banner"),
            "dismissible": params.get("dismissible", True),
            "template": params["template"],
            "blocking": False,
        }
        return ActionOutcome(effect=effect)
