"""API of analytics: GET /api/rules/{id}/analytics/ and GET /api/entry-points/{key}/analytics/.

Thin views: parse the query, resolve the window, call a selector, serialise. Permission as the
rest of the management API: an API key with the `read` (or `manage`) scope, or a staff user
allowed to view rules (entry points for the entry point analytics).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import require_entry_point
from analytics import selectors
from rules_engine.api.schema import error_responses
from rules_engine.models import EntryPoint, Rule

# Far enough from datetime's limits that a window and its default span never overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class AnalyticsQuerySerializer(serializers.Serializer):
    """Query parameters of the analytics endpoints (`from` is a keyword: see get_fields)."""

    from_ = serializers.DateTimeField(
        required=False,
        help_text="Start (ISO-8601; rounded down to its bucket). Default: `to` minus 24 hours "
        "(hour buckets) or 30 days (day buckets).",
    )
    to = serializers.DateTimeField(
        required=False,
        help_text="End, exclusive (rounded up to a whole bucket). Default: `from` plus the "
        "default span, or now.",
    )
    bucket = serializers.ChoiceField(
        choices=["hour", "day"], default="hour", help_text="UTC hours or UTC days."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        """The declared fields, with `from_` named `from` as in the query string."""
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Refuse dates out of range and windows that cannot be answered (400 with the path)."""
        for name in ("from", "to"):
            value = attrs.get(name)
            if value is not None and not EARLIEST <= value < LATEST:
                raise ValidationError({name: ["must be between 1970 and 9000"]})
        try:
            attrs["window"] = selectors.window_resolve(
                start=attrs.get("from"),
                end=attrs.get("to"),
                bucket=attrs["bucket"],
                now=timezone.now(),
            )
        except selectors.WindowError as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc
        return attrs


def _window(request: Request) -> selectors.Window:
    query = AnalyticsQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    window: selectors.Window = query.validated_data["window"]
    return window


# Response bodies, for the OpenAPI schema and to shape the selectors' dicts.


class _Latency(serializers.Serializer):
    latency_p50_ms = serializers.FloatField(
        allow_null=True,
        help_text="Median decision time: the upper bound of the histogram bucket holding it, "
        "capped at the slowest decision (null without decisions).",
    )
    latency_p95_ms = serializers.FloatField(allow_null=True, help_text="As p50, 95th percentile.")
    match_rate = serializers.FloatField(allow_null=True, help_text="null when nothing ran.")


class RuleStatsSerializer(_Latency):
    """A rule's counts over one bucket, one variant or the whole window."""

    evaluations = serializers.IntegerField(help_text="Results whose condition ran.")
    matches = serializers.IntegerField()
    # A field named like Serializer.errors: DRF moves declared fields off the class.
    errors = serializers.IntegerField()  # type: ignore[assignment]
    suppressions = serializers.IntegerField(help_text="Matches suppressed by the cooldown.")
    skipped = serializers.IntegerField(help_text="Not run: an earlier rule stopped processing.")


class RuleVariantStatsSerializer(RuleStatsSerializer):
    """A rule's counts for one experiment variant ("" when none)."""

    variant = serializers.CharField(allow_blank=True)


class RuleBucketSerializer(RuleStatsSerializer):
    """One bucket of a rule: all variants together, then each variant."""

    start = serializers.DateTimeField()
    variants = RuleVariantStatsSerializer(many=True)


class RuleRefSerializer(serializers.Serializer):
    """The rule the analytics are of."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    entry_point = serializers.CharField()


class _Window(serializers.Serializer):
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    bucket = serializers.ChoiceField(choices=["hour", "day"])
    latency_bounds_ms = serializers.ListField(
        child=serializers.FloatField(), help_text="Upper bounds of the latency histogram buckets."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class RuleAnalyticsSerializer(_Window):
    """GET /api/rules/{id}/analytics/: a rule's statistics per bucket and per variant."""

    rule = RuleRefSerializer()
    totals = RuleStatsSerializer()
    variants = RuleVariantStatsSerializer(many=True)
    buckets = RuleBucketSerializer(many=True)


class EntryPointStatsSerializer(_Latency):
    """An entry point's decisions over one bucket or the whole window."""

    decisions = serializers.IntegerField()
    matched = serializers.IntegerField()
    no_match = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Decisions whose outcome is error.")  # type: ignore[assignment]
    blocking = serializers.IntegerField()
    action_errors = serializers.IntegerField(help_text="Actions that failed.")


class EntryPointBucketSerializer(EntryPointStatsSerializer):
    """One bucket of an entry point."""

    start = serializers.DateTimeField()


class RuleTotalsSerializer(RuleStatsSerializer):
    """One rule of an entry point over the window (all variants)."""

    rule_id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    exists = serializers.BooleanField(help_text="False once the rule has been deleted.")


class EntryPointAnalyticsSerializer(_Window):
    """GET /api/entry-points/{key}/analytics/: decisions over time, top and failing rules."""

    entry_point = serializers.CharField()
    totals = EntryPointStatsSerializer()
    buckets = EntryPointBucketSerializer(many=True)
    top_rules = RuleTotalsSerializer(many=True, help_text="Most matches first (at most 10).")
    error_rules = RuleTotalsSerializer(many=True, help_text="Most errors first (at most 10).")


QUERY = [AnalyticsQuerySerializer]


class RuleAnalyticsView(APIView):
    """A rule's evaluations, matches, match rate, errors, suppressions and latency."""

    queryset = Rule.objects.all()  # the model whose view permission staff users need

    @extend_schema(
        operation_id="rules_analytics",
        parameters=QUERY,
        responses={200: RuleAnalyticsSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request, pk: str) -> Response:
        """Statistics per bucket and variant, from the rollups (400 on a bad window)."""
        window = _window(request)
        rule = _get(Rule.objects.select_related("entry_point"), pk=pk)
        require_entry_point(request, rule.entry_point.key)
        data = selectors.rule_analytics(rule=rule, window=window)
        return Response(RuleAnalyticsSerializer(data).data)


class EntryPointAnalyticsView(APIView):
    """An entry point's decisions over time, its top rules and its errors."""

    queryset = EntryPoint.objects.all()

    @extend_schema(
        operation_id="entry_points_analytics",
        parameters=QUERY,
        responses={200: EntryPointAnalyticsSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request, key: str) -> Response:
        """Decisions per bucket, top rules and failing rules (400 on a bad window)."""
        window = _window(request)
        require_entry_point(request, key)
        entry_point = _get(EntryPoint.objects.all(), key=key)
        data = selectors.entry_point_analytics(entry_point=entry_point, window=window)
        return Response(EntryPointAnalyticsSerializer(data).data)


def _get(queryset: QuerySet[Any], **lookup: str) -> Any:
    # DRF's helper: a malformed id (36 dashes passes the route) is a 404 too, not a 500.
    return get_object_or_404(queryset, **lookup)
