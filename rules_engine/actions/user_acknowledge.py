"""`user_acknowledge`: terms the subject must accept, recorded server-side.

On a critical entry point an unrecorded acknowledgement makes the decision `blocking`; once the
acknowledgement is recorded (POST /api/rules/engine/acknowledgements/) the same request is no
longer blocking.
"""

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
class UserAcknowledge(SubjectActionHandler):
    """Asks the subject to accept terms named `ack_key`; blocking on critical entry points."""

    type = "user_acknowledge"
    params_schema = {
        "type": "object",
        "properties": {
            "ack_key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,99}$"},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "template": {"type": "string", "minLength": 1},
            "subject": {},
        },
        "required": ["ack_key", "title", "template"],
        "additionalProperties": False,
    }

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Look up whether the subject already accepted; block critical flows until then."""
        params = prepared.params
        subject = self.subject_for(prepared, ctx)
        acknowledged = subject is not None and selectors.acknowledgement_exists(
            ack_key=params["ack_key"], subject=subject
        )
        effect = {
            "type": self.type,
            "ack_key": params["ack_key"],
            "title": params["title"],
            "template": params["template"],
            "acknowledged": acknowledged,
            "blocking": ctx.critical and not acknowledged,
        }
        return ActionOutcome(
            effect=effect,
            result={"ack_key": params["ack_key"], "subject": subject, "acknowledged": acknowledged},
        )
