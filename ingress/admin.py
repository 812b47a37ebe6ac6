"""Admin for events: read-only lists and details, and cancelling through the service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from ingress import services
from ingress.models import Event, PendingCancellation
from rules_engine.admin import ReadOnlyAdmin, json_block


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Events with their status and decision; "Cancel selected events" uses `event_cancel`."""

    list_display = ("key", "type", "source", "status", "subject", "depth", "received_at")
    list_filter = ("status", "type", "source")
    search_fields = ("key", "subject")
    date_hierarchy = "received_at"
    actions = ["cancel_events"]
    readonly_fields = (
        "id",
        "type",
        "source",
        "key",
        "subject",
        "status",
        "depth",
        "parent",
        "execution",
        "error",
        "cancel_reason",
        "attempts",
        "received_at",
        "processed_at",
        "finished_at",
        "payload_pretty",
        "scheduled",
    )
    exclude = ("payload",)

    @admin.display(description="Payload")
    def payload_pretty(self, event: Event) -> SafeString:
        """The payload as indented, escaped JSON."""
        return json_block(event.payload)

    @admin.display(description="Delayed actions")
    def scheduled(self, event: Event) -> SafeString:
        """Each delayed action with its status and times."""
        return json_block(
            [
                {
                    "type": action.spec.get("type"),
                    "status": action.status,
                    "due_at": action.due_at.isoformat(),
                    "started_at": action.started_at.isoformat() if action.started_at else None,
                    "attempts": action.attempts,
                }
                for action in event.scheduled_actions.order_by("due_at")
            ]
        )

    @admin.action(description="Cancel selected events (and their pending actions)")
    def cancel_events(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        """Cancel each selected event through the service; finished ones stay as they are."""
        cancelled = 0
        for event in queryset:
            if services.event_cancel(event=event, reason=f"admin: {request.user}").status == (
                Event.Status.CANCELLED
            ):
                cancelled += 1
        self.message_user(request, f"{cancelled} event(s) cancelled.", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only detail; actions still need the permission to act on the list."""
        return obj is None and admin.ModelAdmin.has_change_permission(self, request)


@admin.register(PendingCancellation)
class PendingCancellationAdmin(ReadOnlyAdmin):
    """Cancellations that arrived before their events."""

    list_display = ("source", "key", "reason", "received_at")
    search_fields = ("key",)
