"""Admin of rules' saved test cases (issue 7): edited through the services, and run.

The "Run selected test cases" action decides each selected case with its entry point's live
rule set (an inactive rule's cases as if it were activated) and shows pass/fail, why, and the
rule's explanation of failures. Imported by `rules_engine.admin`, which registers it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from rules_engine import testcases
from rules_engine.admin import explanation_rows
from rules_engine.forms import PrettyJSONField, ServiceModelForm
from rules_engine.models import EntryPoint, RuleTestCase


class RuleTestCaseAdminForm(ServiceModelForm):
    """Test case form: the context checked against the entry point's schema, the action types
    against the registry, as `rule_test_case_create` does."""

    context = PrettyJSONField(
        empty=dict, required=False, help_text="A context as the entry point receives it."
    )
    expect_actions = PrettyJSONField(
        empty=list,
        required=False,
        help_text='Action types the matched rule must dispatch, e.g. ["display_message"] '
        "(empty: not checked).",
    )

    class Meta:
        model = RuleTestCase
        fields = ["rule", *testcases.TEST_CASE_FIELDS]

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Report what the service would refuse, each problem on its field."""
        rule = cleaned.get("rule") or getattr(self.instance, "rule", None)
        if rule is None:
            return
        data = {name: cleaned[name] for name in testcases.TEST_CASE_FIELDS if name in cleaned}
        existing = self.instance if self.instance.pk else None
        self.add_details(testcases.rule_test_case_errors(rule=rule, data=data, test_case=existing))


@admin.register(RuleTestCase)
class RuleTestCaseAdmin(admin.ModelAdmin):
    """Test cases by rule; saved and deleted through the services; "Run" shows the results."""

    form = RuleTestCaseAdminForm
    list_display = ("name", "rule", "entry_point", "expect_match", "expect_actions", "updated_at")
    list_filter = ("rule__entry_point", "rule")
    list_select_related = ("rule__entry_point",)
    search_fields = ("name", "rule__name")
    actions = ["run_test_cases"]

    @admin.display(description="Entry point", ordering="rule__entry_point__key")
    def entry_point(self, obj: RuleTestCase) -> str:
        """The key of the case's entry point."""
        return obj.rule.entry_point.key

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """A case stays with its rule."""
        return ("rule", "created_at", "updated_at") if obj else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Create or update through the service (the form ran the same checks)."""
        data = {
            name: form.cleaned_data[name]
            for name in testcases.TEST_CASE_FIELDS
            if name in form.cleaned_data
        }
        if change:
            testcases.rule_test_case_update(test_case=obj, data=data)
        else:
            obj.pk = testcases.rule_test_case_create(rule=obj.rule, data=data).pk
            obj.refresh_from_db()
        # Saving does not run the case (a failing case is how a change starts), but its
        # author should know at once that it fails: until it passes, changes to the entry
        # point's active rules are refused.
        result = testcases.rule_test_case_result(test_case=obj)
        if result is not None and not result.passed:
            entry_point = obj.rule.entry_point.key
            self.message_user(
                request,
                f"Test case {result.case!r} fails with the rules as they are: "
                f"{'; '.join(result.reasons)}. Until it passes, activating or changing "
                f"rules on {entry_point!r} is refused.",
                messages.WARNING,
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """Delete through the service."""
        testcases.rule_test_case_delete(test_case=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Delete each selected case through the service."""
        for obj in queryset:
            testcases.rule_test_case_delete(test_case=obj)

    @admin.action(description="Run selected test cases", permissions=["view"])
    def run_test_cases(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse:
        """Run the selected cases and show pass/fail with the explanation of failures."""
        selected = set(queryset.values_list("pk", flat=True))
        keys = queryset.values_list("rule__entry_point", flat=True).distinct()
        results: list[dict[str, Any]] = []
        for entry_point in EntryPoint.objects.filter(pk__in=keys).order_by("key"):
            for report in testcases.rule_tests_run_all(entry_point=entry_point):
                results.extend(
                    {
                        **result.as_json(),
                        "entry_point": report.entry_point,
                        "rows": [] if result.passed else explanation_rows(result.explanation),
                    }
                    for result in report.results
                    if result.case_id in selected
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Test case results",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "results": results,
            "failed": sum(1 for result in results if not result["passed"]),
        }
        return TemplateResponse(request, "admin/rules_engine/ruletestcase/run.html", context)
