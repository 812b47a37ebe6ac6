"""Django admin of egress: destinations (written through the services) and deliveries.

A destination's signing secret is shown in full once, right after it is generated (on
creation or rotation); lists and forms only ever show its first characters. Deliveries are
read-only with their attempts inline; dead ones can be retried and open ones cancelled.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import SafeString

from egress import services
from egress.models import Delivery, DeliveryAttempt, Destination
from rules_engine.admin import RefusedSaveAdmin, details_text, json_block
from rules_engine.errors import InvalidInput

FORM_FIELDS = (
    "name",
    "kind",
    "description",
    "url",
    "stream",
    "active",
    "timeout_seconds",
    "max_attempts",
)


class DestinationAdminForm(forms.ModelForm):
    """A destination's fields; the secret is write-only (set, generated or rotated)."""

    new_secret = forms.CharField(
        label="Signing secret",
        required=False,
        strip=True,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhooks: leave blank to generate one (new destination) or keep the "
        "current one.",
    )
    rotate_secret = forms.BooleanField(
        required=False,
        help_text="Replace the secret with a newly generated one, shown once after saving.",
    )

    class Meta:
        model = Destination
        fields = FORM_FIELDS

    def service_data(self) -> dict[str, Any]:
        """The cleaned fields as the services take them."""
        data = {name: self.cleaned_data[name] for name in FORM_FIELDS if name in self.cleaned_data}
        if self.cleaned_data.get("new_secret"):
            data["secret"] = self.cleaned_data["new_secret"]
        return data

    def clean(self) -> dict[str, Any]:
        """Add the services' checks beyond single fields (the model validates the fields)."""
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        destination = self.instance if self.instance.pk else None
        data = self.service_data()
        for error in services.destination_consistency_errors(data=data, destination=destination):
            field = error["path"].removeprefix("$.")
            self.add_error(field if field in self.fields else None, error["message"])
        return cleaned


@admin.register(Destination)
class DestinationAdmin(RefusedSaveAdmin):
    """Destinations: created, changed and deleted through `egress.services` (a save refused
    after the form's checks, e.g. a rule started using the destination meanwhile, comes back
    with the reason)."""

    form = DestinationAdminForm
    list_display = (
        "name",
        "kind",
        "target",
        "active",
        "secret_prefix",
        "timeout_seconds",
        "max_attempts",
        "updated_at",
    )
    list_filter = ("kind", "active")
    search_fields = ("name", "url", "stream", "description")
    readonly_fields = ("secret_prefix", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "description", "active")}),
        ("Webhook", {"fields": ("url", "secret_prefix", "new_secret", "rotate_secret")}),
        ("Redis stream", {"fields": ("stream",)}),
        ("Sending", {"fields": ("timeout_seconds", "max_attempts")}),
        ("Times", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Secret")
    def secret_prefix(self, obj: Destination) -> str:
        """Only the first characters: enough to tell secrets apart, useless to forge with."""
        return obj.secret_hint

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """No bulk delete: each deletion is checked by the service one by one."""
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Create or update through the services; show a generated secret once."""
        data = form.service_data()
        if change:
            services.destination_update(destination=obj, data=data)
        else:
            created = services.destination_create(data=data)
            obj.pk = created.pk
            obj.refresh_from_db()
            obj._state.adding = False
            if created.kind == Destination.Kind.WEBHOOK and "secret" not in data:
                self._show_secret(request, obj, obj.secret, "generated")
        if form.cleaned_data.get("rotate_secret") and obj.kind == Destination.Kind.WEBHOOK:
            secret = services.destination_rotate_secret(destination=obj)
            self._show_secret(request, obj, secret, "rotated")

    def _show_secret(self, request: HttpRequest, obj: Destination, secret: str, how: str) -> None:
        self.message_user(
            request,
            f"The signing secret of {obj.name!r} was {how}: {secret} — copy it to the receiver "
            "now; it is not shown again.",
            messages.WARNING,
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """Delete through the service (refused while rules or deliveries refer to it)."""
        services.destination_delete(destination=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The delete page; a refused deletion returns to the destination with the reason."""
        try:
            return super().delete_view(request, object_id, extra_context)
        except InvalidInput as exc:
            self.message_user(request, f"Not deleted: {details_text(exc.details)}", messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:egress_destination_change", args=[unquote(object_id)])
            )


class DeliveryAttemptInline(admin.TabularInline):
    """Every attempt of a delivery, in order, read-only."""

    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "ok", "status_code", "error", "response")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("number",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Attempts are only recorded by the workers."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Attempts are history."""
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Deliveries (the outbox), read-only; dead ones retried, open ones cancelled."""

    list_display = (
        "id",
        "destination",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "short_error",
    )
    list_filter = ("status", "destination")
    list_select_related = ("destination",)
    search_fields = ("=id", "=idempotency_key")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "destination",
        "status",
        "attempts",
        "attempts_before_retry",
        "idempotency_key",
        "event",
        "execution",
        "created_at",
        "next_attempt_at",
        "lease_until",
        "delivered_at",
        "last_error",
        "payload_json",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = ("retry_dead", "cancel")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Deliveries are written by actions only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deliveries are a record: changed only by the retry and cancel actions."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deliveries are the record of what was sent."""
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Retrying and cancelling need the change permission of deliveries."""
        return request.user.has_perm("egress.change_delivery")

    @admin.display(description="Last error")
    def short_error(self, obj: Delivery) -> str:
        """The start of the last error."""
        return obj.last_error[:80] + ("…" if len(obj.last_error) > 80 else "")

    @admin.display(description="Payload")
    def payload_json(self, obj: Delivery) -> SafeString:
        """The payload as indented JSON."""
        return json_block(obj.payload)

    @admin.action(description="Retry selected dead deliveries", permissions=["resend"])
    def retry_dead(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Send the selected dead deliveries again (others are left alone)."""
        ids = list(queryset.values_list("pk", flat=True))
        retried = services.delivery_retry(delivery_ids=ids)
        skipped = len(ids) - retried
        note = f"; {skipped} not dead, left alone" if skipped else ""
        self.message_user(request, f"{retried} dead deliveries will be sent again{note}.")

    @admin.action(description="Cancel selected deliveries", permissions=["resend"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Give up on the selected open or dead deliveries."""
        cancelled = services.delivery_cancel(delivery_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{cancelled} deliveries cancelled.")
