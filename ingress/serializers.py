"""Serializers of the events API: shapes and types only; services do the rest."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ingress.models import Event
from rules_engine.api.fields import JSONObjectField, JSONStringField

SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,99}$"


class EventCreateSerializer(serializers.Serializer):
    """Body of POST /new-event and POST /api/events/."""

    type = JSONStringField(max_length=100)
    key = JSONStringField(max_length=200)
    subject = JSONStringField(max_length=200, required=False, allow_blank=True, default="")
    # The decision's context: a JSON object.
    payload = JSONObjectField()
    # DRF's metaclass moves declared fields off the class, so this does not shadow .source.
    source = serializers.RegexField(SOURCE_PATTERN, required=False, default="api")  # type: ignore[assignment]


class CancelByKeySerializer(serializers.Serializer):
    """Body of POST /api/events/cancel/."""

    # DRF's metaclass moves declared fields off the class, so this does not shadow .source.
    source = serializers.RegexField(SOURCE_PATTERN, required=False, default="api")  # type: ignore[assignment]
    key = JSONStringField(max_length=200)
    reason = JSONStringField(max_length=200, required=False, allow_blank=True, default="")


class CancelSerializer(serializers.Serializer):
    """Body of POST /api/events/<id>/cancel/ (optional)."""

    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class EventSerializer(serializers.ModelSerializer):
    """An event with its decision, scheduled actions and deliveries (GET /status/<id>)."""

    payload = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField()
    scheduled_actions = serializers.SerializerMethodField()
    deliveries = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = [
            "id",
            "type",
            "source",
            "key",
            "subject",
            "status",
            "depth",
            "parent",
            "payload",
            "error",
            "cancel_reason",
            "attempts",
            "received_at",
            "processed_at",
            "finished_at",
            "decision",
            "scheduled_actions",
            "deliveries",
        ]
        read_only_fields = fields

    def get_payload(self, event: Event) -> Any:
        """The payload as received, with the entry point's sensitive paths masked (as in the
        audit snapshot): reading an event must not reveal a card number."""
        from rules_engine.masking import mask_paths
        from rules_engine.selectors import entry_point_sensitive_paths

        return mask_paths(event.payload, entry_point_sensitive_paths(key=event.type))

    def get_decision(self, event: Event) -> dict[str, Any] | None:
        """The decision made for the event: execution id, outcome, matched rules, effects."""
        execution = event.execution
        if execution is None:
            return None
        return {
            "execution_id": str(execution.pk),
            "outcome": execution.outcome,
            "matched_rules": execution.matched_rules,
            "effects": execution.effects,
            "action_results": execution.action_results,
        }

    def get_scheduled_actions(self, event: Event) -> list[dict[str, Any]]:
        """Every delayed action of the event with its status and times."""
        return [
            {
                "id": str(action.pk),
                "type": action.spec.get("type"),
                "rule_id": str(action.rule_id),
                "status": action.status,
                "due_at": action.due_at,
                "enqueued_at": action.enqueued_at,
                "started_at": action.started_at,
                "finished_at": action.finished_at,
                "attempts": action.attempts,
                "error": action.error,
            }
            for action in event.scheduled_actions.all().order_by("due_at")
        ]

    def get_deliveries(self, event: Event) -> list[dict[str, Any]]:
        """Every egress delivery the event's actions produced, with status and attempts."""
        from egress.selectors import deliveries_for_event

        return deliveries_for_event(event_id=event.pk)


class EventFilterSerializer(serializers.Serializer):
    """Query parameters of the events list."""

    status = serializers.ChoiceField(choices=Event.Status.choices, required=False)
    type = serializers.CharField(required=False, max_length=100)
    # DRF's metaclass moves declared fields off the class, so this does not shadow .source.
    source = serializers.RegexField(SOURCE_PATTERN, required=False)  # type: ignore[assignment]


class EventAcceptedSerializer(serializers.Serializer):
    """Answer of accepting or cancelling an event: its id and status."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Event.Status.choices)


class PendingCancellationSerializer(serializers.Serializer):
    """Answer of cancelling by key before the event arrived (remembered)."""

    status = serializers.ChoiceField(choices=["pending_cancellation"])
