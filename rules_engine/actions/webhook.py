"""`webhook`: send a signed JSON POST to a registered webhook destination, through the outbox.

    {"type": "webhook", "params": {"destination": "crm"}}
    {"type": "webhook", "params": {"destination": "crm", "payload": {"var": "order"}}}
    {"type": "webhook", "params": {"destination": "crm",
                                   "fields": {"order_id": {"var": "order.id"}, "vip": true}}}

`destination` names a Destination registered in the admin (checked when the rule is saved
and again when the action runs). The body is, by default, an envelope with the decision's
ids, the rule and the context (sensitive paths masked, `$state` left out); `payload` (one
JSONLogic expression) or `fields` (an object of JSONLogic expressions, since JSONLogic itself
cannot build objects) replaces it. The action writes a Delivery row in the decision's
transaction; sending starts once it commits (see `egress.services`). `publish` (Redis
streams) is the same action for another kind of destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

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
from rules_engine.paths import json_path

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024


def destination_problem(destination: Any, name: str, kind: str, action_type: str) -> str | None:
    """Why `action_type` may not send to the destination `name`, or None when it may."""
    if destination is None:
        return f"no destination {name!r} is registered"
    if destination.kind != kind:
        return (
            f"destination {name!r} is a {destination.kind} destination; "
            f"{action_type} sends to {kind} destinations"
        )
    if not destination.active:
        return f"destination {name!r} is inactive"
    return None


def _sensitive_paths(entry_point_key: str) -> tuple[str, ...]:
    from rules_engine import selectors
    from rules_engine.cache import rulesets

    ruleset = rulesets.get(entry_point_key)
    if ruleset is not None:
        return ruleset.sensitive_paths
    # A delayed action may run after its entry point was deactivated: still mask.
    entry_point = selectors.entry_point_get(key=entry_point_key)
    return tuple(entry_point.sensitive_paths or ()) if entry_point else ()


def default_payload(ctx: ActionContext) -> dict[str, Any]:
    """The envelope sent when the action names no payload: ids, rule, subject, context.

    The context has the entry point's sensitive paths masked, as in the audit, and no
    `$state` (the subject's stored attributes are not the event's data).
    """
    from rules_engine.cache import STATE_VAR
    from rules_engine.masking import mask_paths

    context = {key: value for key, value in ctx.data.items() if key != STATE_VAR}
    return {
        "entry_point": ctx.entry_point_key,
        "event_id": ctx.event_id,
        "execution_id": ctx.execution_id,
        "rule": {"id": ctx.rule_id, "name": ctx.rule_name, "version": ctx.rule_version},
        "subject": ctx.subject,
        "context": mask_paths(context, _sensitive_paths(ctx.entry_point_key)),
    }


class EgressActionHandler(ActionHandler):
    """Base of `webhook` and `publish`: a registered destination of `kind`, and a payload."""

    kind: ClassVar[str]
    writes = True
    params_schema = {
        "type": "object",
        "properties": {
            "destination": {"type": "string", "minLength": 1, "maxLength": 100},
            "payload": {},
            "fields": {"type": "object", "minProperties": 1, "maxProperties": 100},
        },
        "required": ["destination"],
        "additionalProperties": False,
    }

    def check_references(self, params: Mapping[str, Any], path: str) -> None:
        """The destination must be registered, active and of this action's kind.

        Raises ActionSpecError at `<path>.destination`.
        """
        from egress import selectors

        name = params["destination"]
        problem = destination_problem(
            selectors.destination_get(name=name), name, self.kind, self.type
        )
        if problem:
            raise ActionSpecError(f"{path}.destination", problem)

    def compile_params(self, params: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Compile the payload expressions. Raises ActionSpecError at the one that fails."""
        if "payload" in params and "fields" in params:
            raise ActionSpecError(f"{path}.fields", "use either payload or fields, not both")
        compiled: dict[str, Any] = {}
        if "payload" in params:
            compiled["payload"] = compile_expression(params["payload"], f"{path}.payload")
        if "fields" in params:
            compiled["fields"] = {
                key: compile_expression(expression, json_path(["fields", key], prefix=path))
                for key, expression in params["fields"].items()
            }
        return compiled

    def payload_for(self, prepared: PreparedAction, ctx: ActionContext) -> Any:
        """The JSON to send. Raises ActionRuntimeError when it is not JSON or too large."""
        from egress.channels import canonical_body

        try:
            if "payload" in prepared.compiled:
                payload = to_json(prepared.compiled["payload"](ctx.data))
            elif "fields" in prepared.compiled:
                payload = {
                    key: to_json(expression(ctx.data))
                    for key, expression in prepared.compiled["fields"].items()
                }
            else:
                payload = default_payload(ctx)
            size = len(canonical_body(payload))
        except (TypeError, ValueError) as exc:
            raise ActionRuntimeError(f"the payload is not JSON: {exc}") from exc
        limit = int(
            getattr(settings, "VERDICT", {}).get(
                "EGRESS_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES
            )
        )
        if size > limit:
            raise ActionRuntimeError(f"the payload is {size} bytes; at most {limit} are sent")
        return payload

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Write the delivery (once per action run) in the decision's transaction.

        A dry run writes nothing and reports what would be sent. Raises ActionRuntimeError
        when the destination is no longer registered, active and of the right kind, or the
        payload is not JSON or too large.
        """
        from egress import selectors, services

        name = prepared.params["destination"]
        destination = selectors.destination_get(name=name)
        problem = destination_problem(destination, name, self.kind, self.type)
        if problem:
            raise ActionRuntimeError(problem)
        assert destination is not None
        payload = self.payload_for(prepared, ctx)
        if ctx.dry_run:
            return ActionOutcome(
                effect=None,
                result={"status": "would_send", "destination": name, "payload": payload},
            )
        delivery, _created = services.delivery_enqueue(
            destination=destination, payload=payload, ctx=ctx
        )
        return ActionOutcome(
            effect=None,
            result={
                "destination": name,
                "delivery_id": str(delivery.pk),
                "delivery_status": delivery.status,
            },
        )


@registry.register
class Webhook(EgressActionHandler):
    """Sends a signed JSON POST to a registered webhook destination, through the outbox."""

    type = "webhook"
    kind = "webhook"
