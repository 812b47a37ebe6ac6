"""Reads of egress: destinations by name, the rules that use one, an event's deliveries."""

from __future__ import annotations

from typing import Any

from egress.models import ACTION_KINDS, Delivery, Destination


def destination_get(*, name: str) -> Destination | None:
    """The destination registered under `name`, active or not, or None."""
    return Destination.objects.filter(name=name).first()


def rules_using_destination(*, name: str) -> list[Any]:
    """Active rules with a `webhook` or `publish` action naming the destination `name`."""
    from rules_engine.models import Rule

    # The text filter narrows the scan in the database; the loop checks the real reference.
    candidates = Rule.objects.filter(active=True, actions__icontains=name).order_by("name")
    return [
        rule
        for rule in candidates
        if any(
            isinstance(action, dict)
            and action.get("type") in ACTION_KINDS
            and isinstance(action.get("params"), dict)
            and action["params"].get("destination") == name
            for action in rule.actions
        )
    ]


def deliveries_for_event(*, event_id: Any) -> list[dict[str, Any]]:
    """Every delivery produced by an event's actions, oldest first, with status and attempts."""
    rows = (
        Delivery.objects.filter(event_id=event_id)
        .select_related("destination")
        .order_by("created_at", "id")
    )
    return [
        {
            "id": str(row.pk),
            "destination": row.destination.name,
            "kind": row.destination.kind,
            "status": row.status,
            "attempts": row.attempts,
            "created_at": row.created_at,
            "delivered_at": row.delivered_at,
            "next_attempt_at": row.next_attempt_at,
            "last_error": row.last_error,
        }
        for row in rows
    ]
