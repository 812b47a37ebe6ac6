"""Admin forms of named lists and WASM functions, running the services' checks in `clean()`."""

from __future__ import annotations

from typing import Any

from django import forms

from rules_engine.forms import MonospaceTextarea, PrettyJSONField, ServiceModelForm
from rules_engine.functions import services
from rules_engine.functions.models import NamedList, WasmFunction


class NamedListAdminForm(ServiceModelForm):
    """Named list form: items as a JSON array, validated for the kind as the service does."""

    items = PrettyJSONField(
        empty=list,
        required=False,
        help_text='A JSON array, e.g. ["a@example.com"], [1, 2] or ["10.0.0.0/8", "::1"].',
    )

    class Meta:
        model = NamedList
        fields = list(services.NAMED_LIST_FIELDS)

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Validate the items for the kind; refuse renaming a list active rules use."""
        data = {name: cleaned[name] for name in services.NAMED_LIST_FIELDS if name in cleaned}
        # A copy: the check applies the data to the instance it is given.
        probe = NamedList.objects.get(pk=self.instance.pk) if self.instance.pk else NamedList()
        self.add_details(services.named_list_errors(named_list=probe, data=data))


class WasmFunctionAdminForm(ServiceModelForm):
    """WASM function form: upload a .wasm file or type WAT; the module is checked on clean."""

    upload = forms.FileField(
        required=False,
        label="Module (.wasm)",
        help_text="A WebAssembly binary; replaces the module (and clears the WAT below).",
    )

    class Meta:
        model = WasmFunction
        fields = [name for name in services.WASM_FUNCTION_FIELDS if name != "module"]
        widgets = {"wat": MonospaceTextarea()}

    def clean_upload(self) -> bytes | None:
        """The uploaded module's bytes, or None. Raises ValidationError above the size limit."""
        upload = self.cleaned_data.get("upload")
        if not upload:
            return None
        from django.conf import settings

        limit = int(settings.VERDICT["WASM_MAX_MODULE_BYTES"])
        if upload.size > limit:
            raise forms.ValidationError(f"the module is larger than {limit} bytes")
        return bytes(upload.read())

    def service_data(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The data for the services: an upload replaces the module and clears the WAT."""
        data = {
            name: cleaned[name]
            for name in services.WASM_FUNCTION_FIELDS
            if name in cleaned and name != "module"
        }
        if cleaned.get("upload"):
            data["module"] = cleaned["upload"]
            data["wat"] = ""
        return data

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Compile and check the module under its limits, as the services do."""
        if not self.instance.pk and not cleaned.get("upload") and not cleaned.get("wat"):
            self.add_details([{"path": "$.wat", "message": "upload a .wasm module or enter WAT"}])
            return
        probe = (
            WasmFunction.objects.get(pk=self.instance.pk) if self.instance.pk else WasmFunction()
        )
        self.add_details(
            services.wasm_function_errors(function=probe, data=self.service_data(cleaned))
        )
