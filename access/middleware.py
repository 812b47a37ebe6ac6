"""CORS for the browser-facing engine endpoints, limited to the origins of publishable keys."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from access.selectors import cors_allowed_origins

# Only these endpoints are meant to be called from browsers, with publishable keys.
CORS_PATH_PREFIX = "/api/rules/engine/"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
# Headers a page's script may read: the request id, and when to retry after a 429.
EXPOSE_HEADERS = "X-Request-ID, Retry-After"
MAX_AGE = "600"


class PublishableKeyCorsMiddleware:
    """Answer CORS preflights and add CORS headers for origins a publishable key allows.

    The origin list is the union over active publishable keys (cached with the verified
    keys); each request's own key is then checked against its own origins by
    `ApiKeyAuthentication`, so one shop's key cannot be used from another shop's site.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        origin = request.META.get("HTTP_ORIGIN")
        if origin is None or not request.path.startswith(CORS_PATH_PREFIX):
            return self.get_response(request)
        allowed = origin in cors_allowed_origins()
        preflight = request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in (
            request.META
        )
        if preflight:
            response = HttpResponse(status=204)
            if allowed:
                response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
                response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response["Access-Control-Max-Age"] = MAX_AGE
        else:
            response = self.get_response(request)
        if allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response["Vary"] = ", ".join(part for part in (response.get("Vary"), "Origin") if part)
        return response
