"""`emit_event`: raise another event, processed like any other, with a bounded chain depth.

The new event's key is derived from the emitting action (`ActionContext.idempotency_key`), so
running the same action again after a crash finds the event instead of raising a second one.
Its depth is the emitting event's plus one; beyond VERDICT["MAX_EVENT_DEPTH"] the action
fails, so rules that emit each other's events cannot loop forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from rules_engine.actions.base import (
    ActionContext,
    ActionHandler,
    ActionOutcome,
    ActionRuntimeError,
    ActionSpecError,
    PreparedAction,
    compile_expression,
    registry,
)
from rules_engine.jsonlogic import to_json


@registry.register
class EmitEvent(ActionHandler):
    """Raises an event of `type` (an entry point key) with a payload computed by JSONLogic."""

    type = "emit_event"
    writes = True
    params_schema = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,99}$"},
            "payload": {},
            "subject": {},
        },
        "required": ["type"],
        "additionalProperties": False,
    }

    def check_references(self, params: Mapping[str, Any], path: str) -> None:
        """The event type must be an existing entry point (as templates and destinations
        must exist). Raises ActionSpecError at `<path>.type`."""
        from rules_engine.models import EntryPoint

        if not EntryPoint.objects.filter(key=params["type"]).exists():
            raise ActionSpecError(f"{path}.type", f"no entry point {params['type']!r}")

    def compile_params(self, params: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Compile `payload` (default: the whole context) and the optional `subject`."""
        compiled = {}
        if "payload" in params:
            compiled["payload"] = compile_expression(params["payload"], f"{path}.payload")
        if "subject" in params:
            compiled["subject"] = compile_expression(params["subject"], f"{path}.subject")
        return compiled

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Accept the new event (processed after commit). Raises ActionRuntimeError."""
        from ingress.services import event_accept
        from rules_engine.cache import STATE_VAR

        depth = ctx.event_depth + 1
        limit = int(settings.VERDICT.get("MAX_EVENT_DEPTH", 5))
        if depth > limit:
            raise ActionRuntimeError(f"event chain deeper than {limit}: not emitted")
        if "payload" in prepared.compiled:
            payload = to_json(prepared.compiled["payload"](ctx.data))
        else:
            payload = {k: v for k, v in ctx.data.items() if k != STATE_VAR}
        if not isinstance(payload, dict):
            raise ActionRuntimeError("the emitted payload must be a JSON object")
        subject = ""
        if "subject" in prepared.compiled:
            subject = str(to_json(prepared.compiled["subject"](ctx.data)) or "")
        if ctx.dry_run:
            return ActionOutcome(
                effect=None, result={"type": prepared.params["type"], "depth": depth}
            )
        event, created = event_accept(
            type=prepared.params["type"],
            key=ctx.idempotency_key(),
            source="emit_event",
            payload=payload,
            subject=subject,
            depth=depth,
            parent_id=ctx.event_id,
        )
        return ActionOutcome(
            effect=None,
            result={"event_id": str(event.pk), "depth": depth, "created": created},
        )
