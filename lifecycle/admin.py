"""Admin of lifecycle: labels (with CSV upload), backtests (start, progress, cancel, results)
and backfill runs. Every write goes through `lifecycle.services`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from lifecycle import services
from lifecycle.forms import BacktestStartForm, LabelUploadForm, NamedListUploadForm
from lifecycle.models import BackfillRun, Backtest, Label
from rules_engine.admin import object_or_404
from rules_engine.errors import ErrorDetail, InvalidInput, NotFound
from rules_engine.functions.models import NamedList


def _page(admin_view: admin.ModelAdmin, request: HttpRequest, title: str) -> dict[str, Any]:
    opts = admin_view.opts
    return {
        **admin_view.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "app_label": opts.app_label,
    }


def named_list_upload_view(
    list_admin: admin.ModelAdmin, request: HttpRequest, named_list: NamedList
) -> HttpResponse:
    """The named list CSV upload page (`functions` admin's `<id>/upload/`): the form, and
    after a POST the summary or every refused row."""
    summary = None
    errors: list[ErrorDetail] = []
    if request.method == "POST":
        form = NamedListUploadForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                summary = services.named_list_import_csv(
                    named_list=named_list,
                    file=data["file"],
                    mode=data["mode"],
                    has_header=data["has_header"],
                    user=request.user,
                    change_note=data["change_note"],
                )
            except InvalidInput as exc:
                errors = exc.details
            named_list.refresh_from_db()
    else:
        form = NamedListUploadForm()
    context = {
        **_page(list_admin, request, f"Upload items: {named_list.name}"),
        "original": named_list,
        "form": form,
        "summary": summary,
        "errors": errors,
    }
    return TemplateResponse(request, "admin/functions/namedlist/upload.html", context)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    """Labels of executions and events; imported from CSV (upload page), read-only here."""

    list_display = ("label", "execution_id", "event_id", "source", "updated_at")
    list_filter = ("label", "source")
    search_fields = ("=execution__id", "=event__id", "source")
    readonly_fields = ("execution", "event", "label", "source", "created_by", "created_at")
    change_list_template = "admin/lifecycle/label/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Labels are added by CSV upload, not one by one."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Labels are changed by uploading them again."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs plus `upload/`."""
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_upload",
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a labels CSV and show the summary: accepted rows and rejected rows with why."""
        if not request.user.has_perm("lifecycle.add_label"):
            raise PermissionDenied
        summary = None
        errors: list[ErrorDetail] = []
        if request.method == "POST":
            form = LabelUploadForm(request.POST, request.FILES)
            if form.is_valid():
                upload = request.FILES.get("file")
                source = form.cleaned_data["source"] or f"csv:{getattr(upload, 'name', '')}"
                try:
                    summary = services.labels_import_csv(
                        file=form.cleaned_data["file"], user=request.user, source=source
                    )
                except InvalidInput as exc:
                    errors = exc.details
        else:
            form = LabelUploadForm()
        context = {**_page(self, request, "Upload labels (CSV)"), "form": form}
        context.update(summary=summary, errors=errors)
        return TemplateResponse(request, "admin/lifecycle/label/upload.html", context)


def _example_tables(results: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    examples = results.get("examples") or {}
    return [
        ("First changed decisions", examples.get("first_changed") or []),
        ("A random sample of changed decisions", examples.get("sampled_changed") or []),
    ]


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    """Backtests: the start form, progress while running, cancel, and the result tables."""

    list_display = ("id", "entry_point", "mode", "source", "status", "progress", "created_at")
    list_filter = ("status", "source", "mode")
    actions = ("cancel_selected",)
    readonly_fields = (
        "entry_point",
        "mode",
        "rule",
        "candidate",
        "source",
        "window_from",
        "window_to",
        "positive_labels",
        "sample_size",
        "note",
        "status",
        "progress",
        "error",
        "attempt",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    exclude = ("results", "processed", "total")
    change_form_template = "admin/lifecycle/backtest/change_form.html"

    @admin.display(description="Progress")
    def progress(self, obj: Backtest) -> str:
        """`processed/total (percent)`."""
        if not obj.total:
            return f"{obj.processed}/{obj.total}"
        return f"{obj.processed}/{obj.total} ({100 * obj.processed // obj.total}%)"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Viewing only: a backtest is started, cancelled or deleted, never edited."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs plus `<id>/cancel/`; `add/` is the start form."""
        cancel = path(
            "<path:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_cancel",
        )
        return [cancel, *super().get_urls()]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The start form: compile the candidate, queue the backtest, show its page."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        errors: list[ErrorDetail] = []
        if request.method == "POST":
            form = BacktestStartForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    backtest = services.backtest_start(
                        entry_point=data["entry_point"],
                        rule=data["rule"],
                        candidate=data["candidate"],
                        source=data["source"],
                        window_from=data["window_from"],
                        window_to=data["window_to"],
                        positive_labels=data["positive_labels"] or None,
                        sample_size=data["sample_size"],
                        user=request.user,
                    )
                except InvalidInput as exc:
                    errors = exc.details
                except NotFound as exc:
                    errors = [{"path": "$.entry_point", "message": exc.message}]
                else:
                    self.message_user(request, f"Backtest #{backtest.pk} queued.", messages.SUCCESS)
                    url = reverse(
                        f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                        args=[backtest.pk],
                    )
                    return HttpResponseRedirect(url)
        else:
            form = BacktestStartForm()
        context = {**_page(self, request, "Start a backtest"), "form": form, "errors": errors}
        return TemplateResponse(request, "admin/lifecycle/backtest/start.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The backtest's fields, its progress (refreshing while open) and result tables."""
        backtest = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if backtest is not None:
            extra.update(
                backtest=backtest,
                results=backtest.results or None,
                is_open=backtest.status in Backtest.OPEN_STATUSES,
                can_cancel=self._may_cancel(request),
                example_tables=_example_tables(backtest.results or {}),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _may_cancel(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("lifecycle.change_backtest"))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: cancel the backtest (a running one stops after its current chunk)."""
        backtest = object_or_404(self, request, object_id)
        if request.method != "POST" or not self._may_cancel(request):
            raise PermissionDenied
        if services.backtest_cancel(backtest=backtest):
            self.message_user(request, f"Backtest #{backtest.pk} cancelled.", messages.SUCCESS)
        else:
            self.message_user(request, f"Backtest #{backtest.pk} had already ended.", messages.INFO)
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[backtest.pk]
        )
        return HttpResponseRedirect(url)

    @admin.action(description="Cancel the selected backtests", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        """Cancel every selected open backtest."""
        cancelled = sum(services.backtest_cancel(backtest=b) for b in queryset)
        self.message_user(request, f"Cancelled {cancelled} backtest(s).", messages.SUCCESS)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Who may cancel: holders of the change permission."""
        return self._may_cancel(request)


@admin.register(BackfillRun)
class BackfillRunAdmin(admin.ModelAdmin):
    """Applied `events_backfill` runs (read-only; the command writes them)."""

    list_display = ("key", "event_type", "window_from", "window_to", "applied", "runs")
    readonly_fields = (
        "key",
        "event_type",
        "window_from",
        "window_to",
        "total",
        "applied",
        "skipped",
        "failed",
        "runs",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Runs are recorded by the command."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only."""
        return False
