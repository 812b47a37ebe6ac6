"""OpenAPI (drf-spectacular) pieces shared by every app's views: the error body, the error
responses each operation documents, and the hooks named in settings.SPECTACULAR_SETTINGS."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_mock_request as spectacular_mock_request
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.test import APIRequestFactory


class ErrorDetailSerializer(serializers.Serializer):
    """One problem in a request: the JSON path of the offending value and what is wrong."""

    path = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every 4xx body of the API (rules_engine/api/errors.py): a code, then either one
    `detail` sentence or `details`, a list of problems each with its JSON path."""

    error = serializers.CharField(help_text="Machine-readable code, e.g. invalid_request.")
    detail = serializers.CharField(required=False, help_text="What went wrong, in one sentence.")
    details = ErrorDetailSerializer(many=True, required=False)


_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON (with the JSON path), a field of the wrong type, or a value refused.",
    401: "No or invalid credentials.",
    403: "The credentials do not allow this.",
    404: "Unknown resource (or page).",
    405: "Method not allowed.",
    406: "No acceptable response media type.",
    409: "Conflicts with the current state.",
    413: "Request body larger than the configured limit.",
    415: "Only application/json bodies are accepted.",
    429: "Too many requests (see Retry-After).",
}

# Answers any operation may give before its view runs (middleware, parser, content
# negotiation, authentication, throttling); the schema hook adds them where not declared.
COMMON_ERRORS: tuple[int, ...] = (400, 401, 403, 405, 406, 413, 415, 429)


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """`responses=` entries for `@extend_schema`: each code with the error body."""
    return {
        code: OpenApiResponse(response=ErrorSerializer, description=_DESCRIPTIONS[code])
        for code in codes
    }


def add_common_errors(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Postprocessing hook: give every operation the error answers it can always produce.

    Declared responses win; the Error component is referenced, so it must exist (any
    `@extend_schema` using `error_responses` registers it; otherwise it is added here).
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "detail": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ErrorDetail"},
                },
            },
            "required": ["error"],
        },
    )
    schemas.setdefault(
        "ErrorDetail",
        {
            "type": "object",
            "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            "required": ["path", "message"],
        },
    )
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = list(COMMON_ERRORS)
            if method in {"get", "head", "options", "delete"} and "requestBody" not in operation:
                # No body: no parser errors (413 can still come from a declared length).
                codes = [code for code in codes if code not in {415}]
            parameters = {p.get("name") for p in operation.get("parameters", [])}
            # An unknown object, or a page past the end (DRF's paginator answers 404).
            if "{" in path or "page" in parameters:
                codes.append(404)
            for code in codes:
                operation["responses"].setdefault(
                    str(code), {"description": _DESCRIPTIONS[code], "content": error_body}
                )
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """`Authorization: Api-Key <key>` (access.authentication) as an OpenAPI security scheme.

    Registered by being defined: drf-spectacular finds extensions by subclassing, and this
    module is imported with the API views.
    """

    target_class = "access.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        """An API key in the Authorization header, prefixed with `Api-Key `."""
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a key created in the admin, with scopes.",
        }


def build_mock_request(
    method: str, path: str, view: Any, original_request: Any, **kwargs: Any
) -> Any:
    """drf-spectacular's mock request, with `view.request` set first.

    Views may look at `self.request` while choosing authenticators or parsers (as DRF's own
    dispatch allows: `View.setup` sets it before `initialize_request`); the stock builder
    calls `initialize_request` before anything set it.
    """
    if getattr(view, "request", None) is None:
        view.request = getattr(APIRequestFactory(), method.lower())(path=path)
    return spectacular_mock_request(method, path, view, original_request, **kwargs)
