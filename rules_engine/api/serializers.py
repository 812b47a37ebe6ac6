"""Serializers: shape and type checks only; every write is done by `rules_engine.services`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from rules_engine.models import EntryPoint, Execution, MessageTemplate, Rule


class ExecuteRequestSerializer(serializers.Serializer):
    """Body of POST /api/rules/engine/execute/."""

    entry_point = serializers.CharField(max_length=100)
    # DRF's metaclass moves declared fields off the class, so this does not shadow .context.
    context = serializers.JSONField()  # type: ignore[assignment]
    dry_run = serializers.BooleanField(required=False, default=False)

    def validate_context(self, value: Any) -> dict[str, Any]:
        """The context must be a JSON object."""
        if not isinstance(value, dict):
            raise serializers.ValidationError("context must be a JSON object")
        return value


class AcknowledgementRequestSerializer(serializers.Serializer):
    """Body of POST /api/rules/engine/acknowledgements/."""

    execution_id = serializers.UUIDField()
    ack_key = serializers.CharField(max_length=100)


class PreferenceRequestSerializer(serializers.Serializer):
    """Body of POST /api/rules/engine/preferences/."""

    execution_id = serializers.UUIDField()
    preference_key = serializers.CharField(max_length=100)
    value = serializers.JSONField()


class RollbackRequestSerializer(serializers.Serializer):
    """Body of POST /api/rules/{id}/rollback/."""

    version = serializers.IntegerField(min_value=1)


class ChangeNoteMixin(serializers.Serializer):
    """A write-only `change_note` recorded in the history of the change (why it was made)."""

    change_note = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=100
    )


class EntryPointSerializer(ChangeNoteMixin, serializers.ModelSerializer):
    """An entry point; its schema and sensitive paths are checked by the service."""

    class Meta:
        model = EntryPoint
        fields = [
            "key",
            "description",
            "context_schema",
            "sensitive_paths",
            "subject_path",
            "critical",
            "active",
            "version",
            "created_at",
            "updated_at",
            "change_note",
        ]
        read_only_fields = ["version", "created_at", "updated_at"]
        # Uniqueness is checked by the service inside its transaction.
        extra_kwargs: dict[str, Any] = {"key": {"validators": []}}


class MessageTemplateSerializer(ChangeNoteMixin, serializers.ModelSerializer):
    """A message template; the body is compiled by the service before it is stored."""

    class Meta:
        model = MessageTemplate
        fields = [
            "key",
            "format",
            "body",
            "description",
            "version",
            "created_at",
            "updated_at",
            "change_note",
        ]
        read_only_fields = ["version", "created_at", "updated_at"]
        extra_kwargs: dict[str, Any] = {"key": {"validators": []}}


class RuleSerializer(ChangeNoteMixin, serializers.ModelSerializer):
    """A rule; its condition and actions are compiled by the service before it is stored."""

    entry_point: serializers.SlugRelatedField[EntryPoint] = serializers.SlugRelatedField(
        slug_field="key", queryset=EntryPoint.objects.all()
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    updated_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Rule
        fields = [
            "id",
            "name",
            "description",
            "entry_point",
            "priority",
            "active",
            "version",
            "condition",
            "actions",
            "stop_processing",
            "cooldown_seconds",
            "cooldown_key",
            "metadata",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
            "change_note",
        ]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


class RuleHistorySerializer(serializers.Serializer):
    """One stored version of a rule, with the fields that changed from the version before."""

    version = serializers.IntegerField()
    history_id = serializers.IntegerField()
    history_date = serializers.DateTimeField()
    history_type = serializers.CharField()
    history_user = serializers.SerializerMethodField()
    change_note = serializers.CharField(source="history_change_reason", allow_null=True)
    name = serializers.CharField()
    priority = serializers.IntegerField()
    active = serializers.BooleanField()
    condition = serializers.JSONField()
    actions = serializers.JSONField()
    stop_processing = serializers.BooleanField()
    metadata = serializers.JSONField()
    changes = serializers.SerializerMethodField()

    def get_history_user(self, record: Any) -> str | None:
        """Who made this version (username), if known."""
        user = record.history_user
        return user.get_username() if user is not None else None

    def get_changes(self, record: Any) -> list[dict[str, Any]]:
        """Fields that differ from the previous version: field, old, new."""
        previous = record.prev_record
        if previous is None:
            return []
        delta = record.diff_against(
            previous, excluded_fields=["updated_at", "version", "updated_by"]
        )
        return [{"field": c.field, "old": c.old, "new": c.new} for c in delta.changes]


class ExecutionSerializer(serializers.ModelSerializer):
    """An audit row (read-only)."""

    entry_point: serializers.SlugRelatedField[EntryPoint] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )

    class Meta:
        model = Execution
        fields = [
            "id",
            "entry_point",
            "outcome",
            "matched_rules",
            "rule_results",
            "context_snapshot",
            "effects",
            "action_results",
            "blocking",
            "duration_ms",
            "caller",
            "request_id",
            "subject",
            "created_at",
        ]
        read_only_fields = fields


class ExecutionFilterSerializer(serializers.Serializer):
    """Query parameters of the executions list."""

    entry_point = serializers.CharField(required=False, max_length=100)
    outcome = serializers.ChoiceField(choices=Execution.Outcome.choices, required=False)
    rule = serializers.UUIDField(required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class CooldownFilterSerializer(serializers.Serializer):
    """Query of GET /api/cooldowns/ and body of POST /api/cooldowns/clear/."""

    rule = serializers.UUIDField(required=False)
    subject = serializers.CharField(required=False, max_length=200)
