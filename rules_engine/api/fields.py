"""Serializer fields for JSON request bodies: types as sent, never coerced.

DRF's CharField turns a number into text and its BooleanField takes "yes", "on" or 1 for true:
right for HTML forms, wrong for a JSON API, where `"dry_run": "yes"` is a client's mistake
that should be named, not a dry run. Every API body is parsed as JSON (SafeJSONParser), so
these fields see JSON types only.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rules_engine.paths import json_type


class JSONStringField(serializers.CharField):
    """A JSON string (a number or anything else is refused, not turned into text)."""

    default_error_messages = {"not_a_string": "must be a string, not {kind}"}

    def to_internal_value(self, data: Any) -> str:
        """The string, trimmed and checked as CharField does. Raises ValidationError."""
        if not isinstance(data, str):
            self.fail("not_a_string", kind=json_type(data))
        return str(super().to_internal_value(data))


class JSONBooleanField(serializers.BooleanField):
    """A JSON true or false (strings and numbers are refused)."""

    default_error_messages = {"not_a_boolean": "must be true or false, not {kind}"}

    def to_internal_value(self, data: Any) -> bool:
        """The boolean. Raises ValidationError."""
        if not isinstance(data, bool):
            self.fail("not_a_boolean", kind=json_type(data))
        return data


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """A JSON object (described as one in the OpenAPI schema; `{}` otherwise)."""

    default_error_messages = {"not_an_object": "must be a JSON object, not {kind}"}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """The object. Raises ValidationError."""
        if not isinstance(data, dict):
            self.fail("not_an_object", kind=json_type(data))
        return data
