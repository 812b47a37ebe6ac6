"""Accepting an event without DRF's dispatch, for the common call.

Most calls of `POST /new-event` (and `POST /api/events/`) are alike: an application's API key
and a JSON body `{"type", "key", "payload", "subject"?, "source"?}`. For those, DRF's request
wrapper, negotiation, serializer and renderer cost more CPU than storing the event, so `answer`
does the same checks directly, with the execute endpoint's helpers (`rules_engine.api.hot_path`:
same key cache, scopes, origins and rate limit). A body the serializer would change or refuse,
and every other request, gets None back and goes through DRF, which answers it: the two paths
cannot disagree on what is refused or how.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from ingress import services
from ingress.serializers import SOURCE_PATTERN
from rules_engine.api.hot_path import ENTRY_POINT, checked_key, json_body, respond

_SOURCE = re.compile(SOURCE_PATTERN.removeprefix("^").removesuffix("$"))


def answer(view: Any, request: HttpRequest) -> HttpResponse | None:
    """202 (or 200 for a known source and key) for a plain API-key call, or None for DRF.

    `view` is the events view (its scopes and default headers apply).
    """
    admitted = admit(view, request)
    return None if admitted is None else admitted()


def admit(view: Any, request: HttpRequest) -> Callable[[], HttpResponse] | None:
    """`answer`'s checks without the work: a callable giving the accept's response, or None
    (DRF's case). Reads the body and the key cache; writes nothing (see config/express.py)."""
    key = checked_key(view, request)
    if key is None:
        return None
    body = _event_body(json_body(request))
    if body is None or not key.allows_entry_point(body["type"]):
        return None

    def accept() -> tuple[Any, int]:
        event, created = services.event_accept(**body)
        return {"id": str(event.pk), "status": event.status}, 202 if created else 200

    return lambda: respond(view, request, key, accept)


def _event_body(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The service's arguments from a body EventCreateSerializer would accept unchanged."""
    if data is None:
        return None
    event_type, key, payload = data.get("type"), data.get("key"), data.get("payload")
    subject, source = data.get("subject", ""), data.get("source", "api")
    if (
        # An event type is an entry point key; anything else is DRF's to refuse (404).
        type(event_type) is not str
        or not ENTRY_POINT.fullmatch(event_type)
        or not _plain(key, 200)
        or not key
        or not _plain(subject, 200)
        or type(payload) is not dict
        or type(source) is not str
        or not _SOURCE.fullmatch(source)
    ):
        return None
    return {
        "type": event_type,
        "key": key,
        "payload": payload,
        "subject": subject,
        "source": source,
    }


def _plain(value: Any, max_length: int) -> bool:
    """Whether DRF's CharField would take `value` as it is (a string it neither trims nor
    refuses; NUL and lone surrogates never get this far: the parser refuses them)."""
    return type(value) is str and len(value) <= max_length and value == value.strip()
