"""Reads of egress."""

from __future__ import annotations

from typing import Any


def deliveries_for_event(*, event_id: Any) -> list[dict[str, Any]]:
    """Every delivery produced by an event's actions, with status and attempts (none yet)."""
    return []
