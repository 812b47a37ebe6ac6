"""Serializers: shape and type checks only; every write is done by `rules_engine.services`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from rules_engine import selectors
from rules_engine.api.fields import JSONBooleanField, JSONObjectField, JSONStringField
from rules_engine.models import EntryPoint, Execution, MessageTemplate, Rule, RuleChange


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO-8601 date-time that must carry its UTC offset (a bare local time is refused)."""

    default_error_messages = {
        "naive": "Include a UTC offset, e.g. 2024-03-01T12:00:00Z.",
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        """Refuse a date-time without offset instead of assuming the server's time zone."""
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class ExecuteRequestSerializer(serializers.Serializer):
    """Body of POST /api/rules/engine/execute/."""

    entry_point = JSONStringField(max_length=100)
    # DRF's metaclass moves declared fields off the class, so this does not shadow .context.
    context = JSONObjectField()  # type: ignore[assignment]
    dry_run = JSONBooleanField(required=False, default=False)
    now = AwareDateTimeField(
        required=False,
        default=None,
        allow_null=True,
        help_text=(
            "Dry runs only: the instant rules read as `$now` (ISO-8601 with a UTC offset). "
            "Real decisions always use the time the server received the request."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A caller-chosen `now` is for trying rules out, never for real decisions: a client
        could otherwise step outside a time window ("promo until June")."""
        if attrs.get("now") is not None and not attrs.get("dry_run"):
            raise serializers.ValidationError({"now": ["now may only be given with dry_run: true"]})
        return attrs


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
        slug_field="username", read_only=True, allow_null=True
    )
    updated_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
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


class RuleSummarySerializer(serializers.Serializer):
    """A rule as a decision lists it (its matched rules): id, name, version, priority."""

    id = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    priority = serializers.IntegerField()


class RenderedMessageSerializer(serializers.Serializer):
    """An effect's message template rendered for the client (escaped, sanitised)."""

    format = serializers.ChoiceField(choices=MessageTemplate.Format.choices)
    content_type = serializers.CharField(
        help_text="text/plain, text/html (escaped and sanitised) or application/json."
    )
    content = serializers.JSONField(help_text="A string; any JSON value for the json format.")


class EffectSerializer(serializers.Serializer):
    """What every effect carries: where it comes from, whether it blocks, its message."""

    rule_id = serializers.CharField()
    action_index = serializers.IntegerField(help_text="The action's position in its rule.")
    blocking = serializers.BooleanField(
        help_text="The caller must not proceed until it is resolved (critical entry points)."
    )
    template = serializers.CharField(help_text="The message template's key.")
    message = RenderedMessageSerializer(
        allow_null=True, help_text="Null when the template could not be rendered."
    )
    render_error = serializers.CharField(
        required=False, help_text="Why the message is null (the rest of the effect stands)."
    )


class DisplayMessageEffectSerializer(EffectSerializer):
    """A non-blocking message."""

    type = serializers.ChoiceField(choices=["display_message"])
    level = serializers.ChoiceField(choices=["info", "success", "warning", "error"])
    placement = serializers.ChoiceField(choices=["banner", "toast", "inline"])
    dismissible = serializers.BooleanField()


class ModalButtonSerializer(serializers.Serializer):
    """One button of a modal."""

    # `label` and `style` are also attributes of DRF's Field (a serializer is one); as
    # declared fields they are the button's keys, which DRF allows and stubs do not know.
    id = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    style = serializers.CharField()  # type: ignore[assignment]


class DisplayModalEffectSerializer(EffectSerializer):
    """A modal that needs an answer (one of its buttons)."""

    type = serializers.ChoiceField(choices=["display_modal"])
    title = serializers.CharField()
    buttons = ModalButtonSerializer(many=True)
    dismissible = serializers.BooleanField()


class UserAcknowledgeEffectSerializer(EffectSerializer):
    """Terms to accept; blocking on a critical entry point until acknowledged server-side."""

    type = serializers.ChoiceField(choices=["user_acknowledge"])
    ack_key = serializers.CharField(
        help_text="Send it to POST /api/rules/engine/acknowledgements/."
    )
    title = serializers.CharField()
    acknowledged = serializers.BooleanField()


class PreferenceOptionSerializer(serializers.Serializer):
    """One choice of a preference question."""

    value = serializers.JSONField(help_text="A string, number or boolean.")
    label = serializers.CharField()  # type: ignore[assignment]  # the option's key, as above


class UserPreferenceEffectSerializer(EffectSerializer):
    """An optional preference question; the answer is stored."""

    type = serializers.ChoiceField(choices=["user_preference"])
    preference_key = serializers.CharField(
        help_text="Send it to POST /api/rules/engine/preferences/."
    )
    options = PreferenceOptionSerializer(many=True)
    value = serializers.JSONField(
        allow_null=True, help_text="The stored answer, else the default (null if none)."
    )
    answered = serializers.BooleanField()


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="Effect",
        serializers={
            "display_message": DisplayMessageEffectSerializer,
            "display_modal": DisplayModalEffectSerializer,
            "user_acknowledge": UserAcknowledgeEffectSerializer,
            "user_preference": UserPreferenceEffectSerializer,
        },
        resource_type_field_name="type",
        many=False,
    )
)
class EffectField(serializers.JSONField):
    """One effect of a decision, documented by its type (for the OpenAPI schema only)."""


class ExecutionSerializer(serializers.ModelSerializer):
    """An audit row (read-only), with every rule's result (see `execution_rule_results`)."""

    entry_point: serializers.SlugRelatedField[EntryPoint] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    matched_rules = serializers.SerializerMethodField()
    effects = serializers.SerializerMethodField()
    rule_results = serializers.SerializerMethodField()

    @extend_schema_field(RuleSummarySerializer(many=True))
    def get_matched_rules(self, obj: Execution) -> list[dict[str, Any]]:
        """The rules that matched, as the decision listed them."""
        return list(obj.matched_rules or [])

    @extend_schema_field(serializers.ListField(child=EffectField()))
    def get_effects(self, obj: Execution) -> list[dict[str, Any]]:
        """The effects the decision returned."""
        return list(obj.effects or [])

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_rule_results(self, obj: Execution) -> list[dict[str, Any]]:
        """Every rule's outcome, in evaluation order."""
        return selectors.execution_rule_results(execution=obj)

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


# Response bodies of the engine endpoints, for the OpenAPI schema (the views build plain dicts).


class RuleExplanationSerializer(RuleSummarySerializer):
    """One rule of a dry run: its result and the explanation of its condition."""

    outcome = serializers.CharField(
        help_text="matched, not_matched, error, suppressed (cooldown) or skipped."
    )
    error = serializers.CharField(required=False)
    explanation = serializers.JSONField(
        allow_null=True,
        help_text=(
            "The condition's evaluation tree (null when the rule does not compile). Each node: "
            '{"op", "expression", "result", "truthy", "args": [nodes]}; var nodes add "var" '
            '(the path), failing nodes "error", iterations "iterations"/"omitted", per-item '
            'nodes "item"; a cut trace ends in an {"op": "truncated"} node. Sensitive paths '
            'show "***".'
        ),
    )


class ExecuteResponseSerializer(serializers.Serializer):
    """Answer of POST /api/rules/engine/execute/: the decision."""

    execution_id = serializers.UUIDField(allow_null=True, help_text="Null on dry runs.")
    entry_point = serializers.CharField()
    outcome = serializers.ChoiceField(choices=Execution.Outcome.choices)
    matched_rules = RuleSummarySerializer(many=True)
    effects = serializers.ListField(child=EffectField())
    blocking = serializers.BooleanField()
    duration_ms = serializers.FloatField()
    dry_run = serializers.BooleanField()
    rules = RuleExplanationSerializer(
        many=True,
        required=False,
        help_text="Dry runs only: every active rule in priority order, explained.",
    )


class AcknowledgementResponseSerializer(serializers.Serializer):
    """Answer of POST /api/rules/engine/acknowledgements/."""

    ack_key = serializers.CharField()
    acknowledged = serializers.BooleanField()
    accepted_at = serializers.DateTimeField()


class PreferenceResponseSerializer(serializers.Serializer):
    """Answer of POST /api/rules/engine/preferences/: the stored answer."""

    preference_key = serializers.CharField()
    value = serializers.JSONField()


class CooldownSerializer(serializers.Serializer):
    """One active cooldown (GET /api/cooldowns/)."""

    rule_id = serializers.CharField()
    rule_name = serializers.CharField()
    subject = serializers.CharField()
    remaining_ms = serializers.IntegerField()


class CooldownClearResponseSerializer(serializers.Serializer):
    """Answer of POST /api/cooldowns/clear/: how many cooldowns ended."""

    cleared = serializers.IntegerField()


class RuleHistoryPageSerializer(serializers.Serializer):
    """One page of GET /api/rules/{id}/history/."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RuleHistorySerializer(many=True)


class RuleFilterSerializer(serializers.Serializer):
    """Query parameters of the rules list."""

    entry_point = serializers.CharField(required=False, max_length=100)
    active = serializers.BooleanField(required=False)


class RuleChangeSerializer(serializers.ModelSerializer):
    """A rule change draft (read-only): what it changes, who proposed it and why, its review."""

    entry_point: serializers.SlugRelatedField[EntryPoint] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    rule = serializers.UUIDField(source="rule_key", read_only=True, allow_null=True)
    author: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    reviewer: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    diff = serializers.SerializerMethodField()

    class Meta:
        model = RuleChange
        fields = [
            "id",
            "operation",
            "status",
            "rule",
            "rule_name",
            "entry_point",
            "base_version",
            "rollback_version",
            "content",
            "diff",
            "author",
            "change_note",
            "created_at",
            "reviewer",
            "reviewed_at",
            "review_note",
            "applied_version",
        ]
        read_only_fields = fields

    def get_diff(self, change: RuleChange) -> list[dict[str, Any]]:
        """What the draft changes in the live content it was made against: field, old, new."""
        return selectors.rule_change_diff(change=change)


class RuleChangeReviewSerializer(serializers.Serializer):
    """Body of POST /api/rule-changes/{id}/approve/, /reject/ and /withdraw/."""

    review_note = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class RuleChangeDryRunSerializer(serializers.Serializer):
    """Body of POST /api/rule-changes/{id}/dry-run/."""

    context = serializers.JSONField()  # type: ignore[assignment]

    def validate_context(self, value: Any) -> dict[str, Any]:
        """The context must be a JSON object."""
        if not isinstance(value, dict):
            raise serializers.ValidationError("context must be a JSON object")
        return value


class RuleChangeFilterSerializer(serializers.Serializer):
    """Query parameters of the rule changes list."""

    status = serializers.ChoiceField(choices=RuleChange.Status.choices, required=False)
    entry_point = serializers.CharField(required=False, max_length=100)
    rule = serializers.UUIDField(required=False)


class DraftDecisionSerializer(serializers.Serializer):
    """One dry-run decision of POST /api/rule-changes/{id}/dry-run/."""

    outcome = serializers.ChoiceField(choices=Execution.Outcome.choices)
    matched_rules = RuleSummarySerializer(many=True)
    rule_results = serializers.ListField(child=serializers.DictField())
    effects = serializers.ListField(child=EffectField())
    action_results = serializers.ListField(child=serializers.DictField())
    blocking = serializers.BooleanField()


class RuleChangeDryRunResponseSerializer(serializers.Serializer):
    """Answer of POST /api/rule-changes/{id}/dry-run/: the context decided with the live rules
    and with the draft in place of the live rule (nothing written)."""

    entry_point = serializers.CharField()
    stale = serializers.BooleanField(help_text="The live rule changed since the draft was made.")
    live = DraftDecisionSerializer()
    draft = DraftDecisionSerializer()
