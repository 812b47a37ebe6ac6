"""One error shape for the whole API: `{"error": code, "detail": ..., "details": [...]}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from rules_engine.errors import Conflict, ErrorDetail, InvalidInput, NotFound
from rules_engine.paths import json_path


def _flatten(detail: Any, segments: tuple[str | int, ...] = ()) -> list[ErrorDetail]:
    if isinstance(detail, dict):
        return [
            item
            for key, value in detail.items()
            for item in _flatten(value, segments if key == "non_field_errors" else (*segments, key))
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"path": json_path(segments), "message": str(item)} for item in detail]
        return [
            item
            for index, value in enumerate(detail)
            for item in _flatten(value, (*segments, index))
        ]
    return [{"path": json_path(segments), "message": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: domain errors and DRF errors in the shape above, never a 500 body.

    Unexpected exceptions return None so Django's own 500 handling (and logging) applies.
    """
    if isinstance(exc, InvalidInput):
        return Response({"error": exc.code, "details": exc.details}, status=400)
    if isinstance(exc, NotFound):
        return Response({"error": exc.code, "detail": exc.message}, status=404)
    if isinstance(exc, Conflict):
        return Response({"error": exc.code, "detail": exc.message}, status=409)
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        return Response({"error": "invalid_request", "details": details}, status=400)
    if isinstance(exc, exceptions.ParseError):
        return Response({"error": "malformed_json", "detail": str(exc.detail)}, status=400)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code: Any = "error"
    if isinstance(exc, Http404):
        code = "not_found"
    elif isinstance(exc, PermissionDenied):  # a service's refusal (DRF answers it with 403)
        code = "permission_denied"
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes()
        if not isinstance(code, str):
            code = exc.default_code
    detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
    response.data = {"error": str(code), "detail": str(detail)}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        response.data["error"] = "throttled"
    return response
