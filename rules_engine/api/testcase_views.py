"""API of rules' saved test cases (issue 7): CRUD and running them. Writes call the services.

GET/POST            /api/rules/{rule_id}/test-cases/
GET/PUT/PATCH/DELETE /api/test-cases/{id}/
POST                /api/rules/{rule_id}/run-tests/
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from access.filters import KeyEntryPointFilter
from rules_engine import testcases
from rules_engine.api.parsers import SafeJSONParser
from rules_engine.api.schema import error_responses
from rules_engine.api.views import RuleViewSet
from rules_engine.models import Rule, RuleTestCase


class RuleTestCaseSerializer(serializers.ModelSerializer):
    """A saved test case of a rule; the service checks the context and the action types."""

    rule = serializers.UUIDField(source="rule_id", read_only=True)
    context = serializers.JSONField(  # type: ignore[assignment]
        help_text="A context as the entry point receives it."
    )
    expect_actions = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Action type names the matched rule must dispatch (empty: not checked).",
    )

    class Meta:
        model = RuleTestCase
        fields = [
            "id",
            "rule",
            "name",
            "context",
            "expect_match",
            "expect_actions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "rule", "created_at", "updated_at"]


class CaseResultSerializer(serializers.Serializer):
    """How one case fared, and if it failed, why (with the rule's explanation)."""

    case_id = serializers.IntegerField()
    case = serializers.CharField()
    rule_id = serializers.CharField()
    rule = serializers.CharField()
    rule_active = serializers.BooleanField()
    passed = serializers.BooleanField()
    expect_match = serializers.BooleanField()
    outcome = serializers.CharField(
        help_text="matched, not_matched, skipped, error, or invalid_context."
    )
    expect_actions = serializers.ListField(child=serializers.CharField())
    actions = serializers.ListField(child=serializers.CharField())
    reasons = serializers.ListField(child=serializers.CharField())
    explanation = serializers.JSONField(
        allow_null=True, help_text="The rule's traced condition for the case's context."
    )


class SavedRuleTestCaseSerializer(RuleTestCaseSerializer):
    """A test case as saved, with how it fares with the rules as they are."""

    result = CaseResultSerializer(
        read_only=True,
        allow_null=True,
        help_text=(
            "The case run against the rules as they are (its rule inactive: as if activated); "
            "null when it did not run. A failing case is saved, and until it passes changes "
            "to the entry point's active rules are refused with failing_test_cases."
        ),
    )

    class Meta(RuleTestCaseSerializer.Meta):
        fields = [*RuleTestCaseSerializer.Meta.fields, "result"]


class TestReportSerializer(serializers.Serializer):
    """Every case of an entry point decided with one rule set (nothing written)."""

    entry_point = serializers.CharField()
    passed = serializers.BooleanField()
    total = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = CaseResultSerializer(many=True)


class RuleTestCaseViewSet(viewsets.ModelViewSet):
    """Test cases of a rule: list and create under the rule, read and change by id, and run.

    Activating a rule (or changing an active one) runs every case of its entry point and is
    refused with `failing_test_cases` when one fails.
    """

    queryset = RuleTestCase.objects.all()
    serializer_class = RuleTestCaseSerializer
    parser_classes = [SafeJSONParser]
    key_entry_point_field = "rule__entry_point__key"

    def _rule(self) -> Rule:
        rules = Rule.objects.select_related("entry_point").filter(pk=self.kwargs["rule_id"])
        # A key limited to other entry points does not see the rule (as the rules API).
        rule = KeyEntryPointFilter().filter_queryset(self.request, rules, RuleViewSet).first()
        if rule is None:
            raise NotFound(f"no rule {self.kwargs['rule_id']}")
        return rule

    def get_queryset(self) -> QuerySet[RuleTestCase]:
        queryset = RuleTestCase.objects.select_related("rule__entry_point").order_by("name", "id")
        if "rule_id" in self.kwargs:
            queryset = queryset.filter(rule=self._rule())
        return queryset

    @extend_schema(responses={200: RuleTestCaseSerializer(many=True), **error_responses(404)})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The rule's test cases, by name."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={201: SavedRuleTestCaseSerializer, **error_responses(400, 404)})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Save a test case of the rule, and say how it fares with the rules as they are.

        A failing case is saved (it is how a change starts), and `result` says so at once.
        """
        return self._with_result(super().create(request, *args, **kwargs))

    @extend_schema(responses={200: RuleTestCaseSerializer, **error_responses(404)})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One test case."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(responses={200: SavedRuleTestCaseSerializer, **error_responses(400, 404)})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change a test case (its rule stays); `result` says how it fares now."""
        return self._with_result(super().update(request, *args, **kwargs))

    @extend_schema(responses={200: SavedRuleTestCaseSerializer, **error_responses(400, 404)})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change some fields of a test case; `result` says how it fares now."""
        return self._with_result(super().partial_update(request, *args, **kwargs))

    @extend_schema(responses={204: None, **error_responses(404)})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete a test case."""
        return super().destroy(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: TestReportSerializer, **error_responses(404)})
    def run(self, request: Request, rule_id: Any = None) -> Response:
        """Run every case of the rule's entry point, with this rule as if active; no writes.

        The report says whether activating (or keeping) the rule would pass the gate: each
        case with its outcome, the reasons it failed and the rule's explanation.
        """
        rule = self._rule()
        rule.active = True
        report = testcases.rule_tests_run(entry_point=rule.entry_point, replacing=rule)
        return Response(report.as_json())

    def _with_result(self, response: Response) -> Response:
        # Saving does not gate on the case, but its author should learn at once that it
        # fails: until it passes, changes to the entry point's active rules are refused.
        test_case = RuleTestCase.objects.select_related("rule__entry_point").get(
            pk=response.data["id"]
        )
        result = testcases.rule_test_case_result(test_case=test_case)
        response.data["result"] = None if result is None else result.as_json()
        return response

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = testcases.rule_test_case_create(
            rule=self._rule(), data=dict(serializer.validated_data)
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = testcases.rule_test_case_update(
            test_case=self.get_object(), data=dict(serializer.validated_data)
        )

    def perform_destroy(self, instance: Any) -> None:
        testcases.rule_test_case_delete(test_case=instance)


urlpatterns = [
    path(
        "rules/<uuid:rule_id>/test-cases/",
        RuleTestCaseViewSet.as_view({"get": "list", "post": "create"}),
        name="rule-test-cases",
    ),
    path(
        "rules/<uuid:rule_id>/run-tests/",
        RuleTestCaseViewSet.as_view({"post": "run"}),
        name="rule-run-tests",
    ),
    path(
        "test-cases/<int:pk>/",
        RuleTestCaseViewSet.as_view(
            {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
        ),
        name="test-case-detail",
    ),
]
