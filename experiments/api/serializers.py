"""API shapes of experiments: the experiment with its variants, promote and results bodies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from experiments.models import Experiment, Variant
from rules_engine.api.serializers import RuleChangeSerializer, RuleSerializer
from rules_engine.models import EntryPoint, Rule


class VariantSerializer(serializers.ModelSerializer):
    """One variant: its key, weight (share of subjects) and rule content (control: empty)."""

    weight = serializers.IntegerField(min_value=0, max_value=1_000_000, default=1)
    content = serializers.JSONField(
        required=False,
        help_text="Any of condition, actions, priority, stop_processing; empty for control.",
    )

    class Meta:
        model = Variant
        fields = ["key", "weight", "content"]
        # Uniqueness per experiment is the service's check (the experiment is not known here).
        validators: list[Any] = []


class ExperimentSerializer(serializers.ModelSerializer):
    """An experiment or rollout on one rule; writes go through `experiments.services`."""

    entry_point: serializers.SlugRelatedField[EntryPoint] = serializers.SlugRelatedField(
        slug_field="key", queryset=EntryPoint.objects.all(), required=False
    )
    rule: serializers.PrimaryKeyRelatedField[Rule] = serializers.PrimaryKeyRelatedField(
        queryset=Rule.objects.all(), allow_null=False
    )
    salt = serializers.CharField(max_length=64, required=False)
    outcome_labels = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=100
    )
    variants = VariantSerializer(many=True, required=False)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Experiment
        fields = [
            "id",
            "key",
            "description",
            "kind",
            "shadow",
            "entry_point",
            "rule",
            "salt",
            "status",
            "started_at",
            "stopped_at",
            "winner",
            "outcome_action_type",
            "outcome_labels",
            "variants",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "started_at",
            "stopped_at",
            "winner",
            "created_by",
            "created_at",
            "updated_at",
        ]


class ExperimentFilterSerializer(serializers.Serializer):
    """Query parameters of the experiments list."""

    entry_point = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=Experiment.Status.choices, required=False)


class PromoteRequestSerializer(serializers.Serializer):
    """Which variant becomes the live rule."""

    variant = serializers.CharField(max_length=50)


class PromoteResponseSerializer(serializers.Serializer):
    """The stopped experiment and either the updated rule or, on a critical entry point, the
    four-eyes draft waiting for review."""

    experiment = ExperimentSerializer()
    rule = RuleSerializer(allow_null=True)
    rule_change = RuleChangeSerializer(allow_null=True)


class VariantResultSerializer(serializers.Serializer):
    """One variant's exposures, matches and downstream outcomes."""

    key = serializers.CharField()
    weight = serializers.IntegerField()
    expected_share = serializers.FloatField()
    exposures = serializers.IntegerField()
    share = serializers.FloatField()
    matches = serializers.IntegerField()
    match_rate = serializers.FloatField(allow_null=True)
    outcome_eligible = serializers.IntegerField(allow_null=True)
    outcomes = serializers.IntegerField(allow_null=True)
    outcome_rate = serializers.FloatField(allow_null=True)


class SampleRatioSerializer(serializers.Serializer):
    """The sample-ratio-mismatch check (chi-square goodness of fit; flagged when p < 0.001)."""

    chi_square = serializers.FloatField(allow_null=True, help_text="null when infinite")
    degrees_of_freedom = serializers.IntegerField()
    p_value = serializers.FloatField()
    flagged = serializers.BooleanField()


class ExperimentResultsSerializer(serializers.Serializer):
    """An experiment's results per variant, the outcome source, and the SRM check."""

    experiment = serializers.CharField()
    status = serializers.CharField()
    outcome_source = serializers.CharField(allow_null=True)
    variants = VariantResultSerializer(many=True)
    srm = SampleRatioSerializer()
