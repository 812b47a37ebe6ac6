"""Admin of scheduling: delayed actions, read-only, with a cancel action through the service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduling import services
from scheduling.models import ScheduledAction


@admin.register(ScheduledAction)
class ScheduledActionAdmin(admin.ModelAdmin):
    """Lists delayed actions by due time; rows change only through services (cancel here)."""

    list_display = (
        "due_at",
        "action_type",
        "status",
        "entry_point_key",
        "rule_name",
        "subject",
        "attempts",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "entry_point_key")
    search_fields = ("=id", "=event__id", "subject", "rule_name")
    date_hierarchy = "due_at"
    ordering = ("-due_at",)
    list_select_related = False
    show_full_result_count = False
    actions = ["cancel_selected"]

    @admin.display(description="type")
    def action_type(self, obj: ScheduledAction) -> str:
        """The action's type name from its spec."""
        return str(obj.spec.get("type", "")) if isinstance(obj.spec, dict) else ""

    @admin.action(description="Cancel selected pending or enqueued actions")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[ScheduledAction]) -> None:
        """Cancel the selected rows that have not started; reports how many were cancelled."""
        selected = list(queryset.values_list("pk", flat=True))
        cancelled = services.scheduled_actions_cancel(ids=selected)
        self.message_user(
            request,
            f"Cancelled {cancelled} of {len(selected)} selected actions "
            "(running and finished ones are left as they are).",
            messages.SUCCESS if cancelled else messages.WARNING,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Delayed actions are created by decisions only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only: status changes go through the services."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never deleted by hand (they are the audit of what ran)."""
        return False
