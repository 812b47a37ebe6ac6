"""Admin of experiments: variants inline, start/stop/promote buttons, the results table.

Saves go through `experiments.services` (the variant formset is checked with the service's
own validation first, so a refused change shows on the form). Once started, an experiment's
split is read-only; its page shows exposures, matches and outcomes per variant with the
sample-ratio-mismatch flag, and a Promote button per variant.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from experiments import selectors, services
from experiments.models import CONTROL, Experiment, Variant
from rules_engine.admin import RefusedSaveAdmin, details_text, object_or_404
from rules_engine.errors import InvalidInput
from rules_engine.models import Rule


class VariantFormSet(BaseInlineFormSet):
    """Variants checked as the service checks them (keys, control, content compiling)."""

    def clean(self) -> None:
        """Raise ValidationError with every problem of the variant list."""
        super().clean()
        experiment = self.instance
        variants = [
            {
                "key": form.cleaned_data.get("key", ""),
                "weight": form.cleaned_data.get("weight", 1),
                "content": form.cleaned_data.get("content") or {},
            }
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        rule = experiment.rule if experiment.rule_id else None
        errors = services.variant_errors(rule, variants, kind=experiment.kind)
        if errors:
            raise ValidationError([f"{e['path']}: {e['message']}" for e in errors])

    def variants(self) -> list[dict[str, Any]]:
        """The variant list the formset holds, in the service's shape."""
        return [
            {
                "key": form.cleaned_data["key"],
                "weight": form.cleaned_data["weight"],
                "content": form.cleaned_data.get("content") or {},
            }
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]


class VariantInline(admin.TabularInline):
    """The variants of an experiment (editable while it is a draft)."""

    model = Variant
    formset = VariantFormSet
    fields = ("key", "weight", "content")
    extra = 0

    def _draft(self, obj: Any) -> bool:
        return obj is None or obj.status == Experiment.Status.DRAFT

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Variants are added to drafts only."""
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A started experiment's split is fixed."""
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A started experiment's split is fixed."""
        return self._draft(obj) and super().has_delete_permission(request, obj)


class ExperimentForm(forms.ModelForm):
    """The experiment's own fields (the rule picks the entry point)."""

    class Meta:
        model = Experiment
        fields = (
            "key",
            "description",
            "kind",
            "shadow",
            "rule",
            "salt",
            "outcome_action_type",
            "outcome_labels",
        )


@admin.register(Experiment)
class ExperimentAdmin(RefusedSaveAdmin):
    """A/B experiments and rollouts: edit drafts, start, stop, read results, promote."""

    form = ExperimentForm
    inlines = [VariantInline]
    list_display = (
        "key",
        "kind",
        "shadow",
        "entry_point",
        "rule",
        "status",
        "winner",
        "started_at",
        "stopped_at",
    )
    list_filter = ("status", "kind", "entry_point")
    list_select_related = ("entry_point", "rule")
    search_fields = ("key", "description")
    actions = ["start_selected", "stop_selected"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        """The form's fields, then the state and, for a saved experiment, its results."""
        fields = list(ExperimentForm.Meta.fields)
        if obj is not None:
            fields += ["entry_point", "status", "started_at", "stopped_at", "winner", "results"]
        return tuple(fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        """State is read-only; so is the split once started."""
        readonly = ["entry_point", "status", "started_at", "stopped_at", "winner", "results"]
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            readonly += [f for f in ExperimentForm.Meta.fields if f not in services.LIVE_FIELDS]
        return readonly

    # --- saving through the services -----------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing yet: the experiment and its variants are written together in save_related."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Write the experiment and its variants through the services (InvalidInput if refused)."""
        data = {name: form.cleaned_data[name] for name in form.changed_data}
        if not change:
            data = {
                name: form.cleaned_data[name]
                for name in ExperimentForm.Meta.fields
                if name in form.cleaned_data
            }
        for formset in formsets:
            if isinstance(formset, VariantFormSet) and (not change or formset.has_changed()):
                data["variants"] = formset.variants()
            # The admin's change message reads what a formset saved; the service saved it.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if change:
            saved = services.experiment_update(
                experiment=Experiment.objects.get(pk=form.instance.pk), data=data, user=request.user
            )
        else:
            saved = services.experiment_create(data=data, user=request.user)
        form.instance.pk = saved.pk
        form.instance.entry_point_id = saved.entry_point_id

    # --- start, stop, promote --------------------------------------------------------------

    @admin.action(description="Start selected drafts", permissions=["change"])
    def start_selected(self, request: HttpRequest, queryset: Any) -> None:
        """Start each selected draft; report the ones refused."""
        self._each(request, queryset, services.experiment_start, "Started")

    @admin.action(description="Stop selected experiments", permissions=["change"])
    def stop_selected(self, request: HttpRequest, queryset: Any) -> None:
        """Stop each selected running experiment; report the ones refused."""
        self._each(request, queryset, services.experiment_stop, "Stopped")

    def _each(self, request: HttpRequest, queryset: Any, service: Any, verb: str) -> None:
        for experiment in queryset:
            try:
                service(experiment=experiment, user=request.user)
            except InvalidInput as exc:
                self.message_user(
                    request, f"{experiment.key}: {details_text(exc.details)}", messages.ERROR
                )
            except PermissionDenied as exc:
                self.message_user(request, f"{experiment.key}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{verb} {experiment.key}.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs plus `<id>/start/`, `<id>/stop/` and `<id>/promote/<variant>/`."""
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/start/",
                wrap(self.start_view),
                name="{}_{}_start".format(*info),
            ),
            path("<path:object_id>/stop/", wrap(self.stop_view), name="{}_{}_stop".format(*info)),
            path(
                "<path:object_id>/promote/<str:variant>/",
                wrap(self.promote_view),
                name="{}_{}_promote".format(*info),
            ),
            *super().get_urls(),
        ]

    def _changeable(self, request: HttpRequest, object_id: str) -> Experiment:
        if request.method != "POST":
            raise PermissionDenied
        experiment = object_or_404(self, request, object_id)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        return experiment

    def _back(self, experiment: Experiment) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:experiments_experiment_change", args=[experiment.pk])
        )

    def start_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: start the draft."""
        experiment = self._changeable(request, object_id)
        self._each(request, [experiment], services.experiment_start, "Started")
        return self._back(experiment)

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: stop the experiment."""
        experiment = self._changeable(request, object_id)
        self._each(request, [experiment], services.experiment_stop, "Stopped")
        return self._back(experiment)

    def promote_view(self, request: HttpRequest, object_id: str, variant: str) -> HttpResponse:
        """POST: promote a variant to the live rule (a draft on a critical entry point)."""
        experiment = self._changeable(request, object_id)
        if not request.user.has_perm("rules_engine.change_rule"):
            raise PermissionDenied
        try:
            result = services.experiment_promote(
                experiment=experiment, variant_key=variant, user=request.user
            )
        except InvalidInput as exc:
            self.message_user(request, f"Not promoted: {details_text(exc.details)}", messages.ERROR)
            return self._back(experiment)
        if isinstance(result, Rule):
            done = f"{result.name} is live as version {result.version}"
        else:
            done = f"draft #{result.pk} waits for review (critical entry point)"
        self.message_user(request, f"Promoted {variant}: {done}.", messages.SUCCESS)
        return self._back(experiment)

    # --- the results table -----------------------------------------------------------------

    @admin.display(description="Results")
    def results(self, obj: Experiment) -> SafeString:
        """Per variant exposures, matches and outcomes, the SRM check, and the buttons."""
        if obj.pk is None:
            return format_html("{}", "")
        results = selectors.experiment_results(experiment=obj)
        base = reverse("admin:experiments_experiment_change", args=[obj.pk])
        promotable = obj.status != Experiment.Status.DRAFT and not obj.winner

        def button(url: str, label: str) -> SafeString:
            # Inside the change form (forms do not nest): the button posts it elsewhere.
            return format_html(
                '<button type="submit" class="button" formaction="{}" formmethod="post">{}'
                "</button>",
                url,
                label,
            )

        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    v.key,
                    v.weight,
                    f"{v.expected_share:.1%}",
                    v.exposures,
                    f"{v.share:.1%}",
                    v.matches,
                    "-" if v.match_rate is None else f"{v.match_rate:.1%}",
                    "-" if v.outcomes is None else f"{v.outcomes} / {v.outcome_eligible}",
                    "-" if v.outcome_rate is None else f"{v.outcome_rate:.1%}",
                    button(f"{base}promote/{v.key}/", "Promote")
                    if promotable and (v.key != CONTROL or obj.status == "running")
                    else "",
                )
                for v in results.variants
            ),
        )
        srm = results.srm
        flag = (
            format_html('<strong style="color: #ba2121">{}</strong>', "SRM: sample ratio mismatch")
            if srm.flagged
            else format_html("{}", "no sample ratio mismatch")
        )
        controls = ""
        if obj.status == Experiment.Status.DRAFT:
            controls = button(f"{base}start/", "Start")
        elif obj.status == Experiment.Status.RUNNING:
            controls = button(f"{base}stop/", "Stop")
        return format_html(
            "<table><thead><tr><th>variant</th><th>weight</th><th>expected</th>"
            "<th>exposures</th><th>share</th><th>matches</th><th>match rate</th>"
            "<th>outcomes ({})</th><th>outcome rate</th><th></th></tr></thead>"
            "<tbody>{}</tbody></table><p>{} (chi-square {}, p = {})</p><p>{}</p>",
            results.outcome_source or "none chosen",
            rows,
            flag,
            f"{srm.chi_square:.3f}",
            f"{srm.p_value:.3g}",
            controls,
        )
