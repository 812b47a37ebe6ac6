"""Reads of ingress."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from ingress.models import Event


def event_get(*, event_id: Any) -> Event | None:
    """One event with its execution, or None (also for an id that is not a UUID)."""
    try:
        return Event.objects.select_related("execution").filter(pk=event_id).first()
    except ValidationError:
        return None


def event_list(
    *, status: str | None = None, type: str | None = None, source: str | None = None
) -> QuerySet[Event]:
    """Events newest first, filtered by status, type and source."""
    queryset = Event.objects.select_related("execution").order_by("-received_at")
    if status:
        queryset = queryset.filter(status=status)
    if type:
        queryset = queryset.filter(type=type)
    if source:
        queryset = queryset.filter(source=source)
    return queryset


def event_type_by_key(*, source: str, key: str) -> str | None:
    """The type of the event (source, key), or None when it has not arrived."""
    return Event.objects.filter(source=source, key=key).values_list("type", flat=True).first()
