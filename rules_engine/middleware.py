"""Request guards that must run before anything reads the body."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class BodySizeLimitMiddleware:
    """Answer 413 for a declared body larger than DATA_UPLOAD_MAX_MEMORY_SIZE, before any read.

    Later middleware (metrics) reads `request.body`; without this guard an oversized body would
    surface as Django's generic 400 page instead of a clear 413.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = request.META.get("CONTENT_LENGTH") or ""
        if limit is not None and declared.isdigit() and int(declared) > limit:
            return JsonResponse(
                {
                    "error": "request_too_large",
                    "detail": f"Request body is larger than {limit} bytes.",
                },
                status=413,
            )
        return self.get_response(request)
