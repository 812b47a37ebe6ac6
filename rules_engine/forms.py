"""Admin forms: pretty-printed JSON fields and model forms that run the services' checks.

The model forms refuse in `clean()` what the services would refuse on save, with the same
JSON paths (`$.condition.and[1]: unknown operator 'foo'`), so authors see every problem as a
form error next to the field instead of after a failed save. The admin still saves through
the services, which check again inside their transaction.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from django import forms
from django.core.serializers.json import DjangoJSONEncoder
from django.forms.fields import InvalidJSONInput

from rules_engine import services
from rules_engine.errors import ErrorDetail, InvalidInput
from rules_engine.json_text import duplicate_key_path
from rules_engine.models import EntryPoint, MessageTemplate, Rule

MONOSPACE = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; width: 90%;"
# A path such as `$.actions[0].params.template` belongs to the form field `actions`.
_TOP_LEVEL_NAME = re.compile(r"^\$\.([A-Za-z_][A-Za-z0-9_]*)")


def pretty_json(value: Any) -> str:
    """JSON text indented by two spaces, keys in their stored order, non-ASCII kept readable."""
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, cls=DjangoJSONEncoder)


class MonospaceTextarea(forms.Textarea):
    """A textarea in a monospace font that grows with its content (6 to 40 rows)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"class": "vLargeTextField", "style": MONOSPACE, **(attrs or {})})

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        """The usual textarea context, with `rows` fitted to the text being shown."""
        context = super().get_context(name, value, attrs)
        lines = str(value or "").count("\n") + 2
        context["widget"]["attrs"]["rows"] = max(6, min(lines, 40))
        return context


class _NotJSON(ValueError):
    """A number Python's parser takes but JSON (and PostgreSQL) does not."""


def _not_json(constant: str) -> Any:
    raise _NotJSON(f"{constant} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _NotJSON(f"{text} is too large for a JSON number")
    return number


class PrettyJSONField(forms.JSONField):
    """A JSON form field shown indented in a monospace textarea.

    Invalid JSON is refused with the parser's reason and position; an empty textarea means
    `empty()` (e.g. `{}` or `[]`, the model defaults) rather than JSON null.
    """

    widget = MonospaceTextarea
    default_error_messages = {"invalid": "Invalid JSON: %(reason)s."}

    def __init__(self, *, empty: Callable[[], Any] = dict, **kwargs: Any) -> None:
        self.empty = empty
        # An add page starts from the empty value ({} or []), not from JSON null.
        kwargs.setdefault("initial", empty)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        """Parse the submitted text. Raises ValidationError naming the parse error's position."""
        if self.disabled:
            return value
        if value in self.empty_values:
            return self.empty()
        if isinstance(value, (list, dict, int, float)):
            return value
        try:
            parsed = json.loads(
                value, cls=self.decoder, parse_constant=_not_json, parse_float=_finite
            )
        except json.JSONDecodeError as exc:
            reason = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"reason": reason}
            ) from exc
        except _NotJSON as exc:
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"reason": str(exc)}
            ) from exc
        # As over the API: a key typed twice would silently lose its first value.
        if (where := duplicate_key_path(str(value).encode())) is not None:
            reason = f"a key is named twice in one object, at {where}"
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"reason": reason}
            )
        return parsed

    def prepare_value(self, value: Any) -> Any:
        """The text shown in the widget: indented JSON, or the invalid text as it was typed
        (blank for a missing optional value, e.g. no cooldown key)."""
        if isinstance(value, InvalidJSONInput):
            return value
        if value is None and self.empty() is None:
            return ""
        return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, cls=self.encoder)


def field_of_path(path: str, field_names: Iterable[str]) -> str | None:
    """The form field a JSON path points into (`$.condition.and[0]` -> `condition`), or None."""
    match = _TOP_LEVEL_NAME.match(path)
    if match and match.group(1) in set(field_names):
        return match.group(1)
    return None


class ServiceModelForm(forms.ModelForm):
    """A model form whose `clean()` reports the services' errors on the matching fields.

    `service_errors` holds details the service raised on save after the form had validated
    (e.g. a template deleted meanwhile); the admin sets it on a subclass and shows the form
    again with them, so such a refusal is a form error, never a 500.
    """

    change_note = forms.CharField(
        label="Change note (why)",
        required=False,
        max_length=100,
        help_text="Stored with this version in the history.",
        widget=forms.TextInput(attrs={"class": "vLargeTextField"}),
    )
    service_errors: ClassVar[list[ErrorDetail]] = []

    def add_details(self, details: Iterable[ErrorDetail]) -> None:
        """Add each `{path, message}` as an error on its field (non-field when none matches).

        The message keeps its JSON path, which locates the problem inside a JSON document.
        """
        reported: set[str] = self.__dict__.setdefault("_reported_details", set())
        for detail in details:
            text = f"{detail['path']}: {detail['message']}"
            if text in reported:
                # The same refusal can come from clean() and from a service on save.
                continue
            reported.add(text)
            self.add_error(field_of_path(detail["path"], self.fields), text)

    def clean(self) -> dict[str, Any]:
        """Run Django's checks, then the service checks of the subclass (`service_clean`)."""
        cleaned = super().clean() or {}
        self.service_clean(cleaned)
        self.add_details(self.service_errors)
        return cleaned

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Add the errors the service would raise for this data (overridden per model)."""


class RuleAdminForm(ServiceModelForm):
    """Rule form: compiles the condition and prepares every action, as `rule_create` does."""

    condition = PrettyJSONField(
        empty=dict,
        required=False,
        help_text='JSONLogic, e.g. {"==": [{"var": "user.country"}, "FR"]}.',
    )
    actions = PrettyJSONField(
        empty=list,
        required=False,
        help_text='A list of {"type": ..., "params": {...}} action specs.',
    )
    metadata = PrettyJSONField(empty=dict, required=False)
    cooldown_seconds = forms.IntegerField(
        min_value=0,
        required=False,
        initial=0,
        help_text="Fire at most once per subject in this many seconds (0: no cooldown).",
    )
    cooldown_key = PrettyJSONField(
        empty=lambda: None,
        required=False,
        help_text='JSONLogic naming the subject, e.g. {"var": "user.id"}; empty: the entry '
        "point's subject.",
    )

    class Meta:
        model = Rule
        fields = list(services.RULE_FIELDS)

    def clean_cooldown_seconds(self) -> int:
        """An empty cooldown means none (0)."""
        return self.cleaned_data.get("cooldown_seconds") or 0

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Compile condition and actions; report each problem on its field with its path."""
        if "metadata" in cleaned and not isinstance(cleaned["metadata"], dict):
            self.add_details([{"path": "$.metadata", "message": "metadata must be an object"}])
        if not {"condition", "actions", "cooldown_key"} & set(cleaned):
            return
        try:
            # A field that failed to parse is compiled as a harmless placeholder and its
            # errors dropped below: its JSON error is the one to show.
            services.rule_compile(
                condition=cleaned.get("condition", True),
                actions=cleaned.get("actions", []),
                cooldown_key=cleaned.get("cooldown_key"),
            )
        except InvalidInput as exc:
            self.add_details(
                d for d in exc.details if field_of_path(d["path"], self.fields) in (None, *cleaned)
            )


class EntryPointAdminForm(ServiceModelForm):
    """Entry point form: checks the JSON Schema and sensitive paths as the service does."""

    context_schema = PrettyJSONField(
        empty=dict,
        required=False,
        help_text='JSON Schema of the context; an "examples" list pre-fills dry runs.',
    )
    sensitive_paths = PrettyJSONField(
        empty=list,
        required=False,
        help_text='Dotted paths masked in the audit, e.g. ["card.number", "users.*.email"].',
    )

    class Meta:
        model = EntryPoint
        fields = list(services.ENTRY_POINT_FIELDS)

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Check the schema against its meta-schema and the shape of the sensitive paths."""
        self.add_details(
            services.entry_point_content_errors(
                context_schema=cleaned.get("context_schema"),
                sensitive_paths=cleaned.get("sensitive_paths"),
            )
        )


class MessageTemplateAdminForm(ServiceModelForm):
    """Template form: compiles the body in its format and refuses renaming a used key."""

    class Meta:
        model = MessageTemplate
        fields = list(services.TEMPLATE_FIELDS)
        widgets = {"body": MonospaceTextarea()}

    def service_clean(self, cleaned: dict[str, Any]) -> None:
        """Compile the body; refuse a new key while rules reference the old one."""
        if "format" in cleaned and "body" in cleaned:
            self.add_details(
                services.template_body_errors(format=cleaned["format"], body=cleaned["body"])
            )
        if self.instance.pk:
            self.add_details(
                services.template_rename_errors(
                    old_key=self.initial.get("key") or "", new_key=cleaned.get("key") or ""
                )
            )


class DryRunForm(forms.Form):
    """The dry run page's input: a context as JSON (an empty box means `{}`)."""

    context = PrettyJSONField(
        empty=dict,
        required=False,
        label="Context (JSON)",
        help_text="Validated with the entry point's schema; nothing is written.",
    )
