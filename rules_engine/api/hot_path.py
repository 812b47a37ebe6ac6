"""The execute endpoint's common case without DRF's dispatch (and the helpers the events
endpoint's hot path shares, `ingress/hot_path.py`).

Most calls of `POST /api/rules/engine/execute/` are alike: an application's API key, a JSON
body `{"entry_point", "context"}`, a JSON answer. For those, DRF's request wrapper, content
negotiation, serializer and renderer cost more CPU than the decision itself (100 rules), so
`answer` handles them with the same checks done directly: the key (same cache, same origin and
scope rules, same rate limit), the body (same parser and caps), the entry point limit. Every
other request (a session, the browsable API, a malformed or unusual body, a key that fails a
check) gets None back and goes through DRF, which then answers it, errors included. So the two
paths cannot disagree on what is refused or how: the hot path only ever says yes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import APIException, Throttled
from rest_framework.response import Response

from access.authentication import ApiKeyUser, origin_allowed, presented_key
from access.selectors import VerifiedKey, api_key_verify
from access.throttling import key_rate, rate_wait
from rules_engine import engine
from rules_engine.api.errors import exception_handler
from rules_engine.api.parsers import SafeJSONParser
from rules_engine.errors import Conflict, InvalidInput, NotFound

# An entry point key as the serializer would take it unchanged (no whitespace to trim).
ENTRY_POINT = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,99}")
_JSON_ACCEPT = frozenset({"", "*/*", "application/json"})
_PARSER = SafeJSONParser()


def answer(view: Any, request: HttpRequest) -> HttpResponse | None:
    """The decision for a plain API-key JSON call, or None to let DRF handle the request.

    `view` is the ExecuteView instance (its scopes and default headers apply). Raises what
    `engine.execute` raises beyond its input errors (those are answered as DRF would).
    """
    admitted = admit(view, request)
    return None if admitted is None else admitted()


def admit(view: Any, request: HttpRequest) -> Callable[[], HttpResponse] | None:
    """`answer`'s checks without the work: a callable giving the decision's response, or None
    (DRF's case). Reads the body and the key cache; writes nothing.

    The express lane (config/express.py) admits a request before choosing its middleware
    chain; the callable runs at the end of that chain.
    """
    key = checked_key(view, request)
    if key is None:
        return None
    body = _execute_body(json_body(request))
    if body is None or not key.allows_entry_point(body[0]):
        return None
    entry_point, context, dry_run = body
    if dry_run and key.publishable:
        return None  # refused by DRF (ExecuteView.post)

    def decide() -> tuple[Any, int]:
        decision = engine.execute(
            entry_point=entry_point,
            context=context,
            dry_run=dry_run,
            caller=f"key:{key.prefix}",
            # RequestIdMiddleware always sets it.
            request_id=request.META.get("HTTP_X_REQUEST_ID", ""),
        )
        return decision.as_response(), 200

    return lambda: respond(view, request, key, decide)


def checked_key(view: Any, request: HttpRequest) -> VerifiedKey | None:
    """The verified API key of a plain JSON POST that may call `view`, or None (DRF's case).

    Plain: POST, no query string, a JSON body with a declared length, a JSON (or any) Accept,
    `Authorization: Api-Key`; the key valid, from an allowed origin, with one of the view's
    `key_scopes` for POST.
    """
    meta = request.META
    if (
        request.method != "POST"
        or meta.get("QUERY_STRING")
        or meta.get("HTTP_ACCEPT", "") not in _JSON_ACCEPT
        or request.content_type != "application/json"
    ):
        return None
    raw_key = presented_key(meta)
    length = meta.get("CONTENT_LENGTH") or ""
    if raw_key is None or not length.isdigit():
        return None
    key = api_key_verify(raw=raw_key)
    scopes = view.key_scopes
    if (
        key is None
        or not origin_allowed(key, meta)
        or not key.scopes.intersection(scopes.get("POST", scopes.get("*", ())))
    ):
        return None
    return key


def json_body(request: HttpRequest) -> dict[str, Any] | None:
    """The body as a JSON object, parsed as DRF's parser would, or None (anything else,
    errors included, is left to DRF)."""
    # `request.body` (kept so DRF can read the body again) would raise for a declared length
    # over the limit before the parser could refuse it with 413: leave those to DRF.
    if int(request.META["CONTENT_LENGTH"]) > (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 256 * 1024):
        return None
    try:
        data = _PARSER.parse(io.BytesIO(request.body), parser_context={"request": request})
    except APIException:
        return None
    return data if type(data) is dict else None


def respond(
    view: Any, request: HttpRequest, key: VerifiedKey, work: Callable[[], tuple[Any, int]]
) -> HttpResponse:
    """Run `work` as `key` (after its rate limit) and answer with its (data, status) as JSON.

    A throttled key gets DRF's 429; InvalidInput, NotFound and Conflict from `work` get DRF's
    answers.
    """
    request.user = ApiKeyUser(key)  # type: ignore[assignment]  # as DRF sets it
    wait = rate_wait(who=f"key:{key.id}", rate=key_rate(key))
    if wait is not None:
        return _error(Throttled(wait), view, request)
    try:
        data, status = work()
    except (InvalidInput, NotFound, Conflict) as exc:
        return _error(exc, view, request)
    response = HttpResponse(
        orjson.dumps(data, default=str), status=status, content_type="application/json"
    )
    for name, value in view.default_response_headers.items():
        response[name] = value
    return response


def _execute_body(data: dict[str, Any] | None) -> tuple[str, dict[str, Any], bool] | None:
    """(entry_point, context, dry_run) of a body the serializer would accept unchanged."""
    if data is None:
        return None
    entry_point, context = data.get("entry_point"), data.get("context")
    dry_run = data.get("dry_run", False)
    if (
        type(entry_point) is not str
        or not ENTRY_POINT.fullmatch(entry_point)
        or type(context) is not dict
        or type(dry_run) is not bool
        or data.get("now") is not None
    ):
        return None
    return entry_point, context, dry_run


def _error(exc: Exception, view: Any, request: HttpRequest) -> HttpResponse:
    """The error response DRF's exception handler gives for `exc`, rendered as JSON."""
    handled = exception_handler(exc, {"view": view, "request": request})
    assert isinstance(handled, Response)
    response = HttpResponse(
        orjson.dumps(handled.data, default=str),
        status=handled.status_code,
        content_type="application/json",
    )
    for name, value in (*view.default_response_headers.items(), *handled.items()):
        if name.lower() != "content-type":  # an unrendered Response's placeholder
            response[name] = value
    return response
