"""Django admin of Verdict: entry points, rules and templates edited through the services.

Every save, delete and revert calls `rules_engine.services`, so the admin gets the same
compile checks, version bumps, history rows and cache invalidation as the API: a change made
here is served from the next request on. The history page lists each version with what changed
from the one before; reverting stores an old version's content as a new version (history only
grows). Audit rows (executions) and the answers clients recorded are read-only.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, router, transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from simple_history.admin import SimpleHistoryAdmin

from rules_engine import engine, selectors, services
from rules_engine.errors import ErrorDetail, InvalidContext, InvalidInput, NotFound
from rules_engine.forms import (
    DryRunForm,
    EntryPointAdminForm,
    MessageTemplateAdminForm,
    RuleAdminForm,
    pretty_json,
)
from rules_engine.models import (
    Acknowledgement,
    EntryPoint,
    Execution,
    MessageTemplate,
    Preference,
    Rule,
    RuleChange,
    SubjectState,
)

admin.site.site_header = "Verdict administration"
admin.site.site_title = "Verdict administration"
admin.site.index_title = "Rules, entry points and decisions"

# Set on the request when a service refused a save the form had accepted (see changeform_view).
REFUSED_ATTR = "_verdict_refused_details"
JSON_PRE_STYLE = "margin: 0; white-space: pre-wrap; font-size: 12px;"
_T = TypeVar("_T")


def json_block(value: Any) -> SafeString:
    """JSON indented inside an escaped `<pre>`, for read-only fields."""
    return format_html(
        '<pre class="verdict-json" style="{}">{}</pre>', JSON_PRE_STYLE, pretty_json(value)
    )


def details_text(details: Iterable[ErrorDetail]) -> str:
    """Error details as one line: `path: message; path: message`."""
    return "; ".join(f"{d['path']}: {d['message']}" for d in details)


def object_or_404(model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: str) -> Any:
    """The admin's object `object_id` as this user may see it; Http404 when there is none."""
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(f"no {model_admin.opts.verbose_name} {object_id}")
    return obj


# Set on a request whose save changed no field (save_model wrote nothing).
UNCHANGED_ATTR = "_verdict_unchanged"


class ServiceRefused(Exception):
    """A service refused a write the admin had accepted; `details` are its errors."""

    def __init__(self, details: Sequence[ErrorDetail], subject: str = "") -> None:
        self.details = list(details)
        self.subject = subject
        super().__init__(details_text(self.details))


# --- diffs between versions ----------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    """One line of a line diff: `kind` is add, del, ctx (unchanged) or hunk (a gap)."""

    kind: str
    text: str


@dataclass(frozen=True)
class FieldChange:
    """How one field differs between two versions, as text (JSON indented) and line diff.

    `lines` is empty when both values fit on one line; templates then show `old -> new`.
    """

    name: str
    label: str
    old: str
    new: str
    lines: tuple[DiffLine, ...]


def value_text(field: models.Field[Any, Any] | Any, value: Any) -> str:
    """A field value as text: JSON indented, related objects by name, yes/no, None as a dash."""
    if isinstance(field, models.JSONField):
        return pretty_json(value)
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def line_diff(old: str, new: str) -> tuple[DiffLine, ...]:
    """A unified diff of two texts with two lines of context, without the file headers."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return tuple(DiffLine(kinds.get(line[:1], "ctx"), line) for line in list(lines)[2:])


def field_change(model: type[models.Model], name: str, old: Any, new: Any) -> FieldChange:
    """Describe the change of field `name` from `old` to `new` for the history pages."""
    field = model._meta.get_field(name)
    old_text, new_text = value_text(field, old), value_text(field, new)
    multiline = "\n" in old_text or "\n" in new_text
    label = capfirst(str(getattr(field, "verbose_name", name)))
    return FieldChange(
        name, label, old_text, new_text, line_diff(old_text, new_text) if multiline else ()
    )


# --- base class: history admin whose writes go through the services -----------------------


class ServiceHistoryAdmin(SimpleHistoryAdmin):
    """History admin whose saves, deletes and reverts call the model's services.

    The services come from `services.VERSIONED_WRITES` for the admin's model.
    django-simple-history's own revert saves the old row directly, which would skip the compile
    check, the version bump and the cache invalidation; `history_form_view` is replaced by a
    version page whose Revert button calls the model's rollback service instead.
    """

    object_history_template = "admin/rules_engine/object_history.html"
    object_history_list_template = "admin/rules_engine/object_history_list.html"
    object_history_form_template = "admin/rules_engine/object_history_version.html"
    save_on_top = False

    @property
    def writes(self) -> services.VersionedWrites:
        """The model's write services (create, update, delete, rollback)."""
        return services.VERSIONED_WRITES[self.model]

    @property
    def service_fields(self) -> tuple[str, ...]:
        """The fields the services accept, also the fields compared between versions."""
        return self.writes.fields

    # Saving -----------------------------------------------------------------------------

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        """The model form, carrying the errors of a refused save when the form is shown again."""
        form: type[ModelForm[Any]] = super().get_form(request, obj, change, **kwargs)
        refused = getattr(request, REFUSED_ATTR, None)
        if refused:
            return type(form.__name__, (form,), {"service_errors": refused})
        return form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The add/change page; a save the service refuses shows the form again with errors."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as exc:
            # clean() runs the service's checks, so this only happens when something changed
            # between validation and save (e.g. a template was deleted meanwhile). The view's
            # transaction was rolled back; the second pass re-validates and, with the refused
            # details added by the form, renders the user's input with the errors.
            setattr(request, REFUSED_ATTR, exc.details)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Create or update through the service, with the form's change note.

        An edit that changes no field writes nothing, so versions only mark real changes.
        Raises ServiceRefused when the service refuses the data.
        """
        data = {
            name: form.cleaned_data[name]
            for name in self.service_fields
            if name in form.cleaned_data
        }
        note = form.cleaned_data.get("change_note", "")
        try:
            if not change:
                obj.pk = self.writes.create(data=data, user=request.user, change_note=note).pk
            elif set(form.changed_data) - {"change_note"}:
                self.writes.update(obj, data=data, user=request.user, change_note=note)
            else:
                self.message_user(
                    request, f"No field changed; version {obj.version} was kept.", messages.INFO
                )
                setattr(request, UNCHANGED_ATTR, True)
                return
        except InvalidInput as exc:
            raise ServiceRefused(exc.details) from exc
        # The service saved its own instance; the admin redirects and logs with this one.
        obj.refresh_from_db()
        obj._state.adding = False

    def message_user(
        self,
        request: HttpRequest,
        message: str,
        level: int = messages.INFO,
        extra_tags: str = "",
        fail_silently: bool = False,
    ) -> None:
        """Django's message, except its "changed successfully" after a save that changed
        nothing (the page already says the version was kept)."""
        if level == messages.SUCCESS and getattr(request, UNCHANGED_ATTR, False):
            return
        super().message_user(request, message, level, extra_tags, fail_silently)

    # Deleting ---------------------------------------------------------------------------

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """Delete through the service. Raises ServiceRefused when the service refuses."""
        try:
            self.writes.delete(obj, user=request.user)
        except InvalidInput as exc:
            raise ServiceRefused(exc.details, str(obj)) from exc

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Delete each selected object through the service.

        All or nothing: `response_action` runs the bulk action in one transaction.
        """
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The delete page; a refused deletion returns to the object with the reason."""
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefused as exc:
            self.message_refused(request, "Not deleted", exc)
            info = self.opts.app_label, self.opts.model_name
            return HttpResponseRedirect(
                reverse("admin:{}_{}_change".format(*info), args=[object_id])
            )

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        """Run a bulk action in one transaction, so a refused deletion deletes nothing."""
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().response_action(request, queryset)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The list page; a bulk deletion the service refuses is reported, nothing deleted."""
        try:
            return super().changelist_view(request, extra_context)
        except ServiceRefused as exc:
            self.message_refused(request, "Nothing was deleted", exc)
            return HttpResponseRedirect(request.get_full_path())

    def message_refused(self, request: HttpRequest, prefix: str, exc: ServiceRefused) -> None:
        """Show a service refusal as an error message."""
        subject = f" {exc.subject!r}" if exc.subject else ""
        self.message_user(
            request, f"{prefix}{subject}: {details_text(exc.details)}", messages.ERROR
        )

    # History ----------------------------------------------------------------------------

    def version_changes(self, record: Any, previous: Any) -> list[FieldChange]:
        """What changed in the service fields from `previous` to `record` (both history rows)."""
        if previous is None:
            return []
        delta = record.diff_against(
            previous, included_fields=self.service_fields, foreign_keys_are_objs=True
        )
        order = {name: index for index, name in enumerate(self.service_fields)}
        changes = sorted(delta.changes, key=lambda change: order.get(change.field, len(order)))
        return [field_change(self.model, c.field, c.old, c.new) for c in changes]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The history page: every version with its changes and a Revert button on older ones.
        Raises Http404 for an id that names no object (a malformed one included)."""
        obj = object_or_404(self, request, object_id)
        context = {"current_version": getattr(obj, "version", None), **(extra_context or {})}
        return super().history_view(request, object_id, context)

    def set_history_delta_changes(
        self,
        request: HttpRequest,
        historical_records: Iterable[Any],
        foreign_keys_are_objs: bool = True,
    ) -> None:
        """Attach `verdict_changes` (list of FieldChange) to each history row on the page."""
        records = list(historical_records)
        for index, record in enumerate(records):
            # Rows are newest first; the oldest row of a page has its predecessor on the next.
            previous = records[index + 1] if index + 1 < len(records) else record.prev_record
            record.verdict_changes = self.version_changes(record, previous)

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """One stored version with its changes; POST reverts to it through the service."""
        object_id = unquote(object_id)
        history_model = self.model.history.model
        try:
            record = get_object_or_404(
                history_model, **{self.opts.pk.attname: object_id, "history_id": version_id}
            )
        except (ValueError, ValidationError) as exc:
            # A malformed id in the URL is a missing page, not a server error.
            raise Http404(f"no version {version_id} of {object_id}") from exc
        obj = self.get_object(request, object_id)
        if not self.has_view_history_or_change_history_permission(request, obj):
            raise PermissionDenied
        is_current = obj is not None and record.version == obj.version
        can_revert = (
            obj is not None
            and not is_current
            and record.history_type != "-"
            and self.has_change_permission(request, obj)
            and not self.revert_disabled(request, obj)
        )
        if request.method == "POST":
            if not can_revert:
                raise PermissionDenied
            return self.revert(request, obj, record)
        info = self.opts.app_label, self.opts.model_name
        context = {
            **self.admin_site.each_context(request),
            "title": f"Version {record.version} of {record.history_object}",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "object": obj if obj is not None else record.history_object,
            "record": record,
            "values": self.version_values(record),
            "changes": self.version_changes(record, record.prev_record),
            "is_current": is_current,
            "can_revert": can_revert,
            "history_url": reverse("admin:{}_{}_history".format(*info), args=[object_id]),
            "change_url": (
                reverse("admin:{}_{}_change".format(*info), args=[object_id]) if obj else None
            ),
            **(extra_context or {}),
        }
        return self.render_history_view(request, self.object_history_form_template, context)

    def version_values(self, record: Any) -> list[tuple[str, str, bool]]:
        """(label, text, multiline) of each service field of a history row."""
        values = []
        for name in self.service_fields:
            field = self.model._meta.get_field(name)
            text = value_text(field, getattr(record, name))
            values.append((capfirst(str(getattr(field, "verbose_name", name))), text, "\n" in text))
        return values

    def revert(self, request: HttpRequest, obj: Any, record: Any) -> HttpResponse:
        """Store `record`'s content as a new version via the service, then show the object."""
        try:
            saved = self.writes.rollback(obj, version=record.version, user=request.user)
        except InvalidInput as exc:
            self.message_refused(
                request, f"Not rolled back to version {record.version}", ServiceRefused(exc.details)
            )
            return HttpResponseRedirect(request.path)
        except NotFound as exc:
            self.message_user(request, f"Not rolled back: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.path)
        message = f"Rolled back to version {record.version} as version {saved.version}"
        self.log_change(request, saved, message)
        self.message_user(request, f"{message}.", messages.SUCCESS)
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))


# --- entry points, rules, templates -------------------------------------------------------


@admin.register(EntryPoint)
class EntryPointAdmin(ServiceHistoryAdmin):
    """Entry points: key, JSON Schema, sensitive paths; reverted through `entry_point_rollback`."""

    form = EntryPointAdminForm
    list_display = ("key", "description", "critical", "active", "version", "updated_at")
    list_filter = ("critical", "active")
    search_fields = ("key", "description")
    readonly_fields = ("version", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("key", "description", "subject_path", "critical", "active")}),
        ("Context", {"fields": ("context_schema", "sensitive_paths")}),
        ("Change", {"fields": ("change_note",)}),
        ("Version", {"fields": readonly_fields}),
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A critical entry point is read-only to anyone but a publisher (four-eyes: an author
        could otherwise switch its review off, or its masking)."""
        return _publisher_or_not_critical(request, obj) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """As changing: a critical entry point is deleted by a publisher only."""
        return _publisher_or_not_critical(request, obj) and super().has_delete_permission(
            request, obj
        )


def _publisher_or_not_critical(request: HttpRequest, entry_point: Any) -> bool:
    return entry_point is None or not selectors.critical_entry_point_change_refusal(
        entry_point=entry_point, user=request.user
    )


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ServiceHistoryAdmin):
    """Message templates; compiled on save and reverted through `template_rollback`."""

    form = MessageTemplateAdminForm
    list_display = ("key", "format", "description", "version", "updated_at")
    list_filter = ("format",)
    search_fields = ("key", "description", "body")
    readonly_fields = ("version", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("key", "format", "description", "body")}),
        ("Change", {"fields": ("change_note",)}),
        ("Version", {"fields": readonly_fields}),
    )


def example_context(entry_point: EntryPoint) -> Any:
    """The first of the schema's `examples`, to pre-fill a dry run ({} when there is none)."""
    schema = entry_point.context_schema if isinstance(entry_point.context_schema, dict) else {}
    examples = schema.get("examples")
    return examples[0] if isinstance(examples, list) and examples else {}


def effect_view(effect: Mapping[str, Any]) -> dict[str, Any]:
    """An effect for the dry run page: its rendered message as text and its full JSON.

    HTML and Markdown messages are shown as their source (escaped by the template), never as
    markup in the admin page.
    """
    message = effect.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return {
        "type": effect.get("type"),
        "level": effect.get("level"),
        "blocking": bool(effect.get("blocking")),
        "format": message.get("format") if isinstance(message, dict) else None,
        "content": content if isinstance(content, str) or content is None else pretty_json(content),
        "render_error": effect.get("render_error"),
        "json": pretty_json(effect),
    }


def explanation_rows(node: Mapping[str, Any] | None, depth: int = 0) -> list[dict[str, Any]]:
    """A rule's explanation tree (rules_engine.jsonlogic.trace) as rows of an indented list:
    expression, the value it saw, ✓/✗ for its truthiness. Values are shown as JSON text."""
    if node is None:
        return []
    notes = []
    if node.get("item") is not None:
        notes.append(f"item {node['item']}")
    if node.get("omitted"):
        notes.append(f"{node['omitted']} of {node['iterations']} items not shown")
    rows = [
        {
            "indent": depth * 20,
            "mark": "✓" if node.get("truthy") else "✗",
            "expression": node.get("expression", ""),
            "value": json.dumps(node.get("result"), ensure_ascii=False),
            "error": node.get("error"),
            "note": ", ".join(notes),
        }
    ]
    for child in node.get("args", ()):
        rows.extend(explanation_rows(child, depth + 1))
    return rows


def explained_rules(decision: engine.Decision, *, rule_id: str | None = None) -> list[Any]:
    """A dry-run decision's rules (or only `rule_id`) with their explanations as rows."""
    return [
        {**row, "rows": explanation_rows(row.get("explanation"))}
        for row in decision.rules or ()
        if rule_id is None or str(row.get("id")) == rule_id
    ]


# --- four-eyes review: drafts of rules on critical entry points ----------------------------

# Set on the request when a rule save, deletion or revert became a draft (see RuleAdmin).
DRAFT_ATTR = "_verdict_rule_draft"


def drafted(request: HttpRequest) -> RuleChange | None:
    """The draft the current request's rule save created instead of saving, if any."""
    return getattr(request, DRAFT_ATTR, None)


def rule_change_url(change: RuleChange, name: str = "change") -> str:
    """The admin URL `name` (change, approve, reject, dry_run) of a rule change."""
    return reverse(f"admin:rules_engine_rulechange_{name}", args=[change.pk])


@admin.register(Rule)
class RuleAdmin(ServiceHistoryAdmin):
    """Rules: list by entry point and priority, edit as JSON, history with revert, dry run.

    Saving, deleting or reverting a rule on a critical entry point (or saving a rule onto one)
    stores a RuleChange draft for another publisher to approve instead; the user is told so
    and sent to the draft (four-eyes review).
    """

    form = RuleAdminForm
    list_display = (
        "name",
        "entry_point",
        "priority",
        "active",
        "version",
        "updated_at",
        "updated_by",
    )
    list_filter = ("entry_point", "active")
    list_select_related = ("entry_point", "updated_by")
    search_fields = ("name",)
    ordering = ("entry_point__key", "priority", "name")
    readonly_fields = ("version", "created_by", "created_at", "updated_by", "updated_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "description",
                    "entry_point",
                    "priority",
                    "active",
                    "stop_processing",
                )
            },
        ),
        ("Logic", {"fields": ("condition", "actions")}),
        ("Cooldown", {"fields": ("cooldown_seconds", "cooldown_key")}),
        ("Metadata", {"fields": ("metadata",), "classes": ("collapse",)}),
        ("Change", {"fields": ("change_note",)}),
        ("Version", {"fields": readonly_fields}),
    )

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs plus `<id>/dry-run/` (before the catch-all object URL)."""
        info = self.opts.app_label, self.opts.model_name
        dry_run = path(
            "<path:object_id>/dry-run/",
            self.admin_site.admin_view(self.dry_run_view),
            name="{}_{}_dry_run".format(*info),
        )
        cooldowns = path(
            "cooldowns/",
            self.admin_site.admin_view(self.cooldowns_view),
            name="{}_{}_cooldowns".format(*info),
        )
        return [cooldowns, dry_run, *super().get_urls()]

    def cooldowns_view(self, request: HttpRequest) -> HttpResponse:
        """List active cooldowns (`?rule=<id>` for one rule); POST clears one or a rule's."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rule_id = request.GET.get("rule") or None
        if rule_id is not None and selectors.parse_uuid(rule_id) is None:
            raise Http404(f"no rule {rule_id}")
        # As the API: ending cooldowns is the publisher's (add_cooldown), not an author's.
        can_clear = request.user.has_perm("rules_engine.add_cooldown")
        if request.method == "POST":
            if not can_clear:
                raise PermissionDenied
            target = request.POST.get("rule", "")
            subject = request.POST.get("subject") or None
            cleared = services.cooldown_clear(rule_id=target, subject=subject)
            self.message_user(request, f"Cleared {cleared} cooldown(s).", messages.SUCCESS)
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "title": "Active cooldowns",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "rule_id": rule_id,
            "can_clear": can_clear,
            "cooldowns": selectors.cooldowns_active(rule_id=rule_id),
        }
        return TemplateResponse(request, "admin/rules_engine/rule/cooldowns.html", context)

    def dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Run the saved rule against a pasted context and show the decision; writes nothing."""
        rule = object_or_404(self, request, object_id)
        if not self.has_change_permission(request, rule):
            raise PermissionDenied
        decision, context = dry_run_page(
            self,
            request,
            rule,
            title=f"Dry run: {rule}",
            subject="The rule",
            run=lambda payload: engine.dry_run_rule(rule=rule, context=payload),
        )
        context["decision"] = decision
        if decision is not None:
            context.update(decision_fields(decision), explained=explained_rules(decision))
        return TemplateResponse(request, "admin/rules_engine/rule/dry_run.html", context)

    # Four-eyes review: rules on critical entry points are changed through drafts ---------

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Save through the service, or propose a draft when the rule needs review."""
        data = {
            name: form.cleaned_data[name]
            for name in services.RULE_FIELDS
            if name in form.cleaned_data
        }
        needs_review = selectors.rule_needs_review(
            rule_id=obj.pk if change else None, entry_point=data.get("entry_point")
        )
        if not needs_review or (change and not set(form.changed_data) - {"change_note"}):
            super().save_model(request, obj, form, change)
            return
        try:
            draft = services.rule_change_propose(
                operation=RuleChange.Operation.UPDATE if change else RuleChange.Operation.CREATE,
                rule=obj if change else None,
                data=data,
                user=request.user,
                change_note=form.cleaned_data.get("change_note", ""),
            )
        except InvalidInput as exc:
            raise ServiceRefused(exc.details) from exc
        setattr(request, DRAFT_ATTR, draft)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        """Log an addition, unless it became a draft (the RuleChange row is the record)."""
        return None if drafted(request) else super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        """Log a change, unless it became a draft."""
        return None if drafted(request) else super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        """Log deletions of rules that are really deleted (not those turned into drafts)."""
        direct = [obj for obj in queryset if not selectors.rule_needs_review(rule_id=obj.pk)]
        return super().log_deletions(request, direct)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        """After adding: the new rule, or the draft when it needs review."""
        draft = drafted(request)
        if draft is not None:
            return self.response_drafted(request, draft)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        """After changing: the rule, or the draft when it needs review."""
        draft = drafted(request)
        if draft is not None:
            return self.response_drafted(request, draft)
        return super().response_change(request, obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """Delete through the service, or propose the deletion when the rule needs review."""
        if not selectors.rule_needs_review(rule_id=obj.pk):
            super().delete_model(request, obj)
            return
        draft = services.rule_change_propose(
            operation=RuleChange.Operation.DELETE, rule=obj, user=request.user
        )
        setattr(request, DRAFT_ATTR, draft)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Delete the selected rules; refused (nothing deleted) if any needs review."""
        reviewed = [obj.name for obj in queryset if selectors.rule_needs_review(rule_id=obj.pk)]
        if reviewed:
            message = (
                "rules on critical entry points are deleted one at a time, after review: "
                + ", ".join(sorted(reviewed))
            )
            raise ServiceRefused([{"path": "$", "message": message}])
        super().delete_queryset(request, queryset)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> Any:
        """After deleting: the list, or the draft when the deletion needs review."""
        draft = drafted(request)
        if draft is not None:
            return self.response_drafted(request, draft)
        return super().response_delete(request, obj_display, obj_id)

    def revert(self, request: HttpRequest, obj: Any, record: Any) -> HttpResponse:
        """Revert through the service, or propose the rollback when the rule needs review."""
        if not selectors.rule_needs_review(rule_id=obj.pk):
            return super().revert(request, obj, record)
        try:
            draft = services.rule_change_propose(
                operation=RuleChange.Operation.ROLLBACK,
                rule=obj,
                version=record.version,
                user=request.user,
            )
        except (InvalidInput, NotFound) as exc:
            details = exc.details if isinstance(exc, InvalidInput) else []
            text = details_text(details) if details else str(exc)
            self.message_user(
                request, f"Not rolled back to version {record.version}: {text}", messages.ERROR
            )
            return HttpResponseRedirect(request.path)
        return self.response_drafted(request, draft)

    def response_drafted(self, request: HttpRequest, draft: RuleChange) -> HttpResponse:
        """Tell the user their change waits for review and show the draft."""
        self.message_user(
            request,
            f"{draft.entry_point.key} is a critical entry point: your change was saved as draft "
            f"#{draft.pk} and goes live once another publisher approves it.",
            messages.WARNING,
        )
        return HttpResponseRedirect(rule_change_url(draft))


@admin.register(RuleChange)
class RuleChangeAdmin(admin.ModelAdmin):
    """Drafts of rule changes (four-eyes): the diff, a dry run, and approve/reject.

    Drafts are made by saving rules on critical entry points, never here; they are never
    edited or deleted (they are the review record). Approve and Reject are shown to, and
    accepted from, only a user with `approve_rulechange` who is not the draft's author;
    Withdraw only to the draft's author.
    """

    list_display = (
        "id",
        "rule_name",
        "operation",
        "entry_point",
        "status",
        "author",
        "created_at",
        "reviewer",
        "reviewed_at",
    )
    list_filter = ("status", "operation", "entry_point")
    list_select_related = ("entry_point", "author", "reviewer")
    search_fields = ("rule_name", "change_note", "=rule_key")
    date_hierarchy = "created_at"
    change_form_template = "admin/rules_engine/rulechange/change_form.html"
    fields = (
        "operation",
        "status",
        "rule",
        "rule_name",
        "entry_point",
        "base_version",
        "rollback_version",
        "author",
        "created_at",
        "change_note",
        "reviewer",
        "reviewed_at",
        "review_note",
        "applied_version",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Drafts come from saving rules, not from this page."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Drafts are not edited: propose a new one instead (the page is view-only)."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Drafts are the record of a review; they are never deleted."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs plus `<id>/approve/`, `<id>/reject/`, `<id>/withdraw/` and
        `<id>/dry-run/`."""
        info = self.opts.app_label, self.opts.model_name
        extra = [
            path(
                f"<path:object_id>/{segment}/",
                self.admin_site.admin_view(view),
                name="{}_{}_{}".format(*info, name),
            )
            for segment, name, view in (
                ("approve", "approve", self.approve_view),
                ("reject", "reject", self.reject_view),
                ("withdraw", "withdraw", self.withdraw_view),
                ("dry-run", "dry_run", self.dry_run_view),
            )
        ]
        return [*extra, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The draft (view-only) with its diff, staleness, and the review buttons if allowed."""
        change = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if change is not None:
            context.update(self.review_context(request, change))
        return super().change_view(request, object_id, form_url, context)

    def review_context(self, request: HttpRequest, change: RuleChange) -> dict[str, Any]:
        """Template context of a draft: diff, staleness, whether this user may review it."""
        refusal = selectors.rule_change_review_refusal(change=change, user=request.user)
        return {
            "changes": [
                field_change(Rule, d["field"], d["old"], d["new"])
                for d in selectors.rule_change_diff(change=change)
            ],
            "stale": change.status == RuleChange.Status.DRAFT
            and selectors.rule_change_is_stale(change=change),
            "can_review": refusal is None,
            "review_refusal": refusal,
            "can_withdraw": selectors.rule_change_withdraw_refusal(change=change, user=request.user)
            is None,
            "approve_url": rule_change_url(change, "approve"),
            "reject_url": rule_change_url(change, "reject"),
            "withdraw_url": rule_change_url(change, "withdraw"),
            "dry_run_url": rule_change_url(change, "dry_run"),
        }

    def _reviewable(self, request: HttpRequest, object_id: str) -> RuleChange:
        if request.method != "POST":
            raise PermissionDenied
        change = object_or_404(self, request, object_id)
        if selectors.rule_change_review_refusal(change=change, user=request.user) is not None:
            raise PermissionDenied
        return change

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: approve the draft and apply it (403 for its author or a non-publisher)."""
        change = self._reviewable(request, object_id)
        note = request.POST.get("review_note", "")
        try:
            applied = services.rule_change_approve(
                change=change, user=request.user, review_note=note
            )
        except InvalidInput as exc:
            self.message_user(request, f"Not approved: {details_text(exc.details)}", messages.ERROR)
            return HttpResponseRedirect(rule_change_url(change))
        version = f" version {applied.applied_version}" if applied.applied_version else ""
        done = (
            "deleted" if applied.operation == RuleChange.Operation.DELETE else f"live as{version}"
        )
        self.message_user(
            request,
            f"Approved draft #{applied.pk}: {applied.rule_name} is {done}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(rule_change_url(change))

    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: reject the draft (403 for its author or a non-publisher)."""
        change = self._reviewable(request, object_id)
        note = request.POST.get("review_note", "")
        try:
            services.rule_change_reject(change=change, user=request.user, review_note=note)
        except InvalidInput as exc:
            self.message_user(request, f"Not rejected: {details_text(exc.details)}", messages.ERROR)
            return HttpResponseRedirect(rule_change_url(change))
        self.message_user(request, f"Rejected draft #{change.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(rule_change_url(change))

    def withdraw_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: withdraw the draft (403 for anyone but its author, and for a GET)."""
        if request.method != "POST":
            raise PermissionDenied
        change = object_or_404(self, request, object_id)
        if selectors.rule_change_withdraw_refusal(change=change, user=request.user) is not None:
            raise PermissionDenied
        note = request.POST.get("review_note", "")
        try:
            services.rule_change_withdraw(change=change, user=request.user, note=note)
        except InvalidInput as exc:
            # Lost a race with a reviewer: the draft was closed after the check above.
            self.message_user(
                request, f"Not withdrawn: {details_text(exc.details)}", messages.ERROR
            )
            return HttpResponseRedirect(rule_change_url(change))
        self.message_user(request, f"Withdrew draft #{change.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(rule_change_url(change))

    def dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Decide a pasted context with the live rules and with the draft; writes nothing."""
        change = object_or_404(self, request, object_id)
        if not self.has_view_permission(request, change):
            raise PermissionDenied
        result, context = dry_run_page(
            self,
            request,
            change,
            title=f"Dry run of draft #{change.pk}: {change.rule_name}",
            subject="The draft",
            run=lambda payload: services.rule_change_dry_run(change=change, context=payload),
        )
        context["result"] = result
        if result is not None:
            # The changed rule explained on both sides: what a reviewer compares. The other
            # rules are the same in both decisions (their results are in "Rule results").
            rule_id = str(change.rule_key)
            context["decisions"] = [
                {
                    **decision_view(title, html_id, decision),
                    "explained": explained_rules(decision, rule_id=rule_id),
                }
                for title, html_id, decision in (
                    ("Live rules", "dry-run-live", result.live),
                    ("With the draft", "dry-run-draft", result.draft),
                )
            ]
        return TemplateResponse(request, "admin/rules_engine/rulechange/dry_run.html", context)


def dry_run_page(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    obj: Any,
    *,
    title: str,
    subject: str,
    run: Callable[[Any], _T],
) -> tuple[_T | None, dict[str, Any]]:
    """A dry-run page's form: `run` a posted context, or offer an example of `obj`'s entry point.

    Returns what `run` gave (None when it did not run) and the page's template context, with
    the errors of a context that does not validate, or of a `subject` ("The rule") that does
    not compile or cannot run. Writes nothing.
    """
    result = None
    errors: list[ErrorDetail] = []
    error_title = ""
    if request.method == "POST":
        form = DryRunForm(request.POST)
        if form.is_valid():
            try:
                result = run(form.cleaned_data["context"])
            except InvalidContext as exc:
                error_title = "The context does not match the entry point's schema"
                errors = exc.details
            except InvalidInput as exc:
                error_title, errors = f"{subject} does not compile", exc.details
            except NotFound as exc:
                error_title = f"{subject} cannot run"
                errors = [{"path": "$", "message": exc.message}]
    else:
        form = DryRunForm(initial={"context": example_context(obj.entry_point)})
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "original": obj,
        "form": form,
        "errors": errors,
        "error_title": error_title,
    }
    return result, context


def decision_fields(decision: engine.Decision) -> dict[str, Any]:
    """A dry-run decision's matched rules, rule results, effects and action results, shown."""
    return {
        "matched": ", ".join(str(r.get("name")) for r in decision.matched_rules) or "—",
        "rule_results": pretty_json(decision.rule_results),
        "effects": [effect_view(effect) for effect in decision.effects],
        "action_results": pretty_json(decision.action_results),
    }


def decision_view(title: str, html_id: str, decision: engine.Decision) -> dict[str, Any]:
    """A dry-run decision shaped for the admin's decision include."""
    return {"title": title, "id": html_id, "decision": decision, **decision_fields(decision)}


class RefusedSaveAdmin(admin.ModelAdmin):
    """A model admin whose saves go through a service: a save the service refuses after the
    form's checks passed (a race, e.g. a row changed meanwhile) comes back as an error message
    on the reloaded page."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The add/change page; a save the service refuses is reported as "Not saved: ..."."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except InvalidInput as exc:
            self.message_user(request, f"Not saved: {details_text(exc.details)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


# --- read-only: the audit trail and what clients recorded ---------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """List and detail pages only: these rows are written by the engine, never by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Nobody adds rows here."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Nobody edits rows here (the detail page is view-only)."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Nobody deletes rows here (audit rows are evidence)."""
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    """The audit trail: one row per decision, read-only."""

    list_display = (
        "created_at",
        "entry_point",
        "outcome",
        "matched_rule_names",
        "blocking",
        "duration_ms",
        "caller",
    )
    list_filter = ("entry_point", "outcome", "blocking")
    list_select_related = ("entry_point",)
    date_hierarchy = "created_at"
    search_fields = ("=id", "=request_id", "=subject", "caller")
    # Counting a large audit table on every page view is slow; the paginator shows pages.
    show_full_result_count = False
    fields = (
        "id",
        "created_at",
        "entry_point",
        "outcome",
        "blocking",
        "duration_ms",
        "caller",
        "request_id",
        "subject",
        "matched_rules_json",
        "rule_results_json",
        "context_snapshot_json",
        "effects_json",
        "action_results_json",
    )
    readonly_fields = fields

    @admin.display(description="Matched rules")
    def matched_rule_names(self, obj: Execution) -> str:
        """Names of the matched rules, in evaluation order."""
        names = [str(r.get("name")) for r in obj.matched_rules if isinstance(r, dict)]
        return ", ".join(names) or "—"

    @admin.display(description="Matched rules")
    def matched_rules_json(self, obj: Execution) -> SafeString:
        """The matched rules (id, name, version, priority) as indented JSON."""
        return json_block(obj.matched_rules)

    @admin.display(description="Rule results")
    def rule_results_json(self, obj: Execution) -> SafeString:
        """Every rule's outcome as indented JSON."""
        return json_block(selectors.execution_rule_results(execution=obj))

    @admin.display(description="Context (masked)")
    def context_snapshot_json(self, obj: Execution) -> SafeString:
        """The masked context snapshot as indented JSON."""
        return json_block(obj.context_snapshot)

    @admin.display(description="Effects")
    def effects_json(self, obj: Execution) -> SafeString:
        """The effects returned to the caller as indented JSON (messages escaped)."""
        return json_block(obj.effects)

    @admin.display(description="Action results")
    def action_results_json(self, obj: Execution) -> SafeString:
        """What each action did (e.g. update before/after) as indented JSON."""
        return json_block(obj.action_results)


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ReadOnlyAdmin):
    """Recorded acceptances of terms, read-only."""

    list_display = ("accepted_at", "subject", "ack_key", "entry_point", "rule", "rule_version")
    list_filter = ("entry_point",)
    list_select_related = ("entry_point", "rule")
    search_fields = ("=subject", "ack_key")
    date_hierarchy = "accepted_at"


@admin.register(Preference)
class PreferenceAdmin(ReadOnlyAdmin):
    """Stored answers to preference questions, read-only."""

    list_display = ("preference_key", "subject", "value", "updated_at")
    search_fields = ("=subject", "preference_key")
    fields = ("preference_key", "subject", "value_json", "execution", "updated_at")
    readonly_fields = fields

    @admin.display(description="Value")
    def value_json(self, obj: Preference) -> SafeString:
        """The stored answer as JSON."""
        return json_block(obj.value)


@admin.register(SubjectState)
class SubjectStateAdmin(ReadOnlyAdmin):
    """Per-subject attributes written by `update` actions (`$state`), read-only."""

    list_display = ("subject", "updated_at")
    search_fields = ("=subject",)
    fields = ("subject", "attributes_json", "updated_at")
    readonly_fields = fields

    @admin.display(description="Attributes")
    def attributes_json(self, obj: SubjectState) -> SafeString:
        """The stored attributes as indented JSON."""
        return json_block(obj.attributes)


# Issue 7: rules' saved test cases (registered by that module; it reuses explanation_rows).
from rules_engine import admin_testcases  # noqa: E402, F401
