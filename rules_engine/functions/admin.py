"""Admin of named lists and WASM functions: edits, uploads, history and revert via services.

Both reuse the rules engine's history admin (`ServiceHistoryAdmin`): every save, delete and
revert calls `rules_engine.functions.services`, so the admin gets the same checks, version
bumps, history rows and ruleset invalidation as any other caller.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from rules_engine.admin import ServiceHistoryAdmin, ServiceRefused, object_or_404
from rules_engine.errors import InvalidInput
from rules_engine.functions import services
from rules_engine.functions.forms import NamedListAdminForm, WasmFunctionAdminForm
from rules_engine.functions.models import NamedList, WasmFunction
from rules_engine.services import VersionedWrites

NAMED_LIST_WRITES = VersionedWrites(
    fields=services.NAMED_LIST_FIELDS,
    create=services.named_list_create,
    update=lambda obj, **kw: services.named_list_update(named_list=obj, **kw),
    delete=lambda obj, **kw: services.named_list_delete(named_list=obj, **kw),
    rollback=lambda obj, **kw: services.named_list_rollback(named_list=obj, **kw),
)
# History compares the module by its digest, not its bytes.
WASM_HISTORY_FIELDS = (
    *(name for name in services.WASM_FUNCTION_FIELDS if name != "module"),
    "sha256",
)
WASM_FUNCTION_WRITES = VersionedWrites(
    fields=WASM_HISTORY_FIELDS,
    create=services.wasm_function_create,
    update=lambda obj, **kw: services.wasm_function_update(function=obj, **kw),
    delete=lambda obj, **kw: services.wasm_function_delete(function=obj, **kw),
    rollback=lambda obj, **kw: services.wasm_function_rollback(function=obj, **kw),
)


@admin.register(NamedList)
class NamedListAdmin(ServiceHistoryAdmin):
    """Named lists: kind and items as JSON; history with revert through the services."""

    form = NamedListAdminForm
    list_display = ("name", "kind", "item_count", "version", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name", "description")
    readonly_fields = ("version", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "description", "items")}),
        ("Change", {"fields": ("change_note",)}),
        ("Version", {"fields": readonly_fields}),
    )

    @property
    def writes(self) -> VersionedWrites:
        """The named list services."""
        return NAMED_LIST_WRITES

    @admin.display(description="Items")
    def item_count(self, obj: NamedList) -> int:
        """How many items the list holds."""
        return len(obj.items or [])

    # CSV upload (issue 7 §5): the page and its service live in `lifecycle`.
    change_form_template = "admin/functions/namedlist/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs plus `<id>/upload/` (before the catch-all object URL)."""
        upload = path(
            "<path:object_id>/upload/",
            self.admin_site.admin_view(self.upload_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_upload",
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Append or replace the list's items from a one-column CSV, as one new version."""
        from lifecycle.admin import named_list_upload_view

        named_list = object_or_404(self, request, object_id)
        if not self.has_change_permission(request, named_list):
            raise PermissionDenied
        return named_list_upload_view(self, request, named_list)


@admin.register(WasmFunction)
class WasmFunctionAdmin(ServiceHistoryAdmin):
    """WASM functions: upload a .wasm file or type WAT, set ABI and limits, version, revert."""

    form = WasmFunctionAdminForm
    list_display = ("name", "abi", "export", "active", "version", "sha256_short", "updated_at")
    list_filter = ("active", "abi")
    search_fields = ("name", "description")
    readonly_fields = ("sha256", "module_size", "version", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "active")}),
        ("Module", {"fields": ("upload", "wat", "export", "abi", "sha256", "module_size")}),
        ("Limits per call", {"fields": ("fuel", "max_memory_bytes", "timeout_ms")}),
        ("Change", {"fields": ("change_note",)}),
        ("Version", {"fields": ("version", "created_at", "updated_at")}),
    )

    @property
    def writes(self) -> VersionedWrites:
        """The WASM function services."""
        return WASM_FUNCTION_WRITES

    @admin.display(description="SHA-256")
    def sha256_short(self, obj: WasmFunction) -> str:
        """The first 12 hex digits of the module's digest."""
        return obj.sha256[:12]

    @admin.display(description="Module size (bytes)")
    def module_size(self, obj: WasmFunction) -> int:
        """The module's size in bytes."""
        return len(obj.module_bytes)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Create or update through the services, the upload (if any) as the new module.

        Raises ServiceRefused when the service refuses the data.
        """
        data = form.service_data(form.cleaned_data)
        note = form.cleaned_data.get("change_note", "")
        try:
            if not change:
                obj.pk = services.wasm_function_create(
                    data=data, user=request.user, change_note=note
                ).pk
            elif set(form.changed_data) - {"change_note"}:
                services.wasm_function_update(
                    function=obj, data=data, user=request.user, change_note=note
                )
            else:
                self.message_user(
                    request, f"No field changed; version {obj.version} was kept.", messages.INFO
                )
                return
        except InvalidInput as exc:
            raise ServiceRefused(exc.details) from exc
        obj.refresh_from_db()
        obj._state.adding = False
