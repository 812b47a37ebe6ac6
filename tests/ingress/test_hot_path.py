"""Accepting events on the hot path: API-key JSON calls answered without DRF's dispatch, with
exactly the answers DRF gives (a query string sends the same request through DRF)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from access.services import api_key_create
from ingress.models import Event
from ingress.views import EventViewSet, NewEventView
from tests.support.keys import key_header, new_key

pytestmark = pytest.mark.django_db

NEW_EVENT = "/new-event"
EVENTS = "/api/events/"


@pytest.fixture
def drf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of requests that went through DRF's `initial` (authentication, permissions,
    throttles, negotiation)."""
    calls: list[str] = []
    for view in (NewEventView, EventViewSet):
        original = view.initial

        def initial(self: Any, request: Any, *args: Any, _original: Any = original) -> None:
            calls.append(request.path)
            _original(self, request, *args)

        monkeypatch.setattr(view, "initial", initial)
    return calls


def post(url: str, body: Any, headers: dict[str, str]) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return APIClient().post(url, raw, content_type="application/json", headers=headers)


def comparable(response: Any) -> tuple[int, Any, dict[str, str]]:
    """Status, body without the event id, and the headers DRF sets."""
    body = response.json()
    if isinstance(body, dict) and "id" in body:
        body = {**body, "id": "<id>"}
    headers = {name: response.get(name) for name in ("Content-Type", "Allow", "Vary")}
    return response.status_code, body, headers


def event(demo_context: dict[str, Any], key: str, **extra: Any) -> dict[str, Any]:
    return {"type": "checkout", "key": key, "payload": demo_context, **extra}


def test_a_plain_key_call_skips_drf_and_stores_the_event_once(demo, demo_context, drf_calls):
    # given an application key with the events scope
    headers = key_header(new_key(scopes=["events"]))
    body = event(demo_context, "order-1", subject="ada", source="shop")
    # when it sends the same event twice, to both routes
    first = post(NEW_EVENT, body, headers)
    again = post(EVENTS, body, headers)
    # then the hot path stored it once and answered 202, then 200 with the same id
    stored = Event.objects.get()
    assert (first.status_code, first.json()) == (202, {"id": str(stored.pk), "status": "received"})
    assert (again.status_code, again.json()) == (200, {"id": str(stored.pk), "status": "received"})
    assert (stored.source, stored.key, stored.subject, stored.payload) == (
        "shop",
        "order-1",
        "ada",
        demo_context,
    )
    assert drf_calls == []


def test_the_hot_path_answers_as_drf_does(demo, demo_context, drf_calls):
    # given the same calls sent to the hot path and, with a query string, through DRF
    headers = key_header(new_key(scopes=["events"]))
    cases: list[dict[str, Any]] = [
        {},
        {"subject": "", "source": "shop.eu-1"},
        {"type": "nowhere"},
        {"payload": {**demo_context, "cart": {"total": "lots"}}},
    ]
    for number, extra in enumerate(cases):
        # when each goes both ways (with keys of their own: a key is accepted once)
        fast = post(NEW_EVENT, event(demo_context, f"fast-{number}", **extra), headers)
        slow = post(NEW_EVENT + "?via=drf", event(demo_context, f"slow-{number}", **extra), headers)
        # then status, body and headers agree
        assert comparable(fast) == comparable(slow), extra
    # and only the query-string calls went through DRF
    assert drf_calls == [NEW_EVENT] * len(cases)
    # (the stored ones answer 200 when sent again)
    assert [
        comparable(post(NEW_EVENT, event(demo_context, f"fast-{n}", **e), headers))[0]
        for n, e in enumerate(cases)
    ] == [200, 200, 404, 400]


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong scope", 403, "permission_denied"),
        ("other entry point", 403, "entry_point_not_allowed"),
        ("unknown key", 401, "invalid_api_key"),
        ("malformed JSON", 400, "malformed_json"),
        ("payload not an object", 400, "invalid_request"),
        ("key missing", 400, "invalid_request"),
        ("key too long", 400, "invalid_request"),
        ("key with a NUL", 400, "malformed_json"),
        ("bad source", 400, "invalid_request"),
        ("key with spaces around", 202, None),
    ],
)
def test_everything_unusual_is_left_to_drf(demo, demo_context, drf_calls, case, status, error):
    # given a call the hot path must not answer itself
    body: Any = event(demo_context, "order-1")
    options: dict[str, Any] = {"scopes": ["events"]}
    if case == "wrong scope":
        options["scopes"] = ["execute"]
    elif case == "other entry point":
        options["entry_points"] = ["order.created"]
    elif case == "malformed JSON":
        body = b'{"type": "checkout",'
    elif case == "payload not an object":
        body["payload"] = [1, 2]
    elif case == "key missing":
        del body["key"]
    elif case == "key too long":
        body["key"] = "k" * 201
    elif case == "key with a NUL":
        body["key"] = "order\x00-1"
    elif case == "bad source":
        body["source"] = "Shop!"
    elif case == "key with spaces around":
        body["key"] = "  order-1 "
    _, raw = api_key_create(name=case, **options)
    headers = key_header(raw + "x" if case == "unknown key" else raw)
    # when it is sent
    response = post(NEW_EVENT, body, headers)
    # then DRF answered it, as it always has
    assert response.status_code == status, response.content
    assert drf_calls == [NEW_EVENT]
    if error is not None:
        assert response.json()["error"] == error
        assert not Event.objects.exists()
    else:
        assert Event.objects.get().key == "order-1"  # trimmed by the serializer


def test_other_event_routes_go_through_drf(demo, demo_context, drf_calls):
    # given a stored event
    headers = key_header(new_key(scopes=["events"]))
    post(EVENTS, event(demo_context, "order-1"), headers)
    # when it is cancelled by key (a POST on another route of the same viewset)
    response = post(EVENTS + "cancel/", {"key": "order-1"}, headers)
    # then DRF answered it
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    assert drf_calls == [EVENTS + "cancel/"]


def test_the_hot_path_counts_the_rate_and_answers_429(demo, demo_context, monkeypatch, drf_calls):
    # given a key allowed 2 calls a minute, the clock 30 s into the minute
    monkeypatch.setattr("access.throttling.time.time", lambda: 2_000_000_010.0)
    _, raw = api_key_create(name="tight", scopes=["events"], rate="2/minute")
    # when it sends 3 events
    responses = [post(NEW_EVENT, event(demo_context, f"o-{n}"), key_header(raw)) for n in range(3)]
    # then the third is throttled by the hot path itself, in DRF's words, and not stored
    assert [r.status_code for r in responses] == [202, 202, 429]
    assert responses[2].json() == {
        "error": "throttled",
        "detail": "Request was throttled. Expected available in 30 seconds.",
    }
    assert (responses[2]["Retry-After"], drf_calls) == ("30", [])
    assert sorted(Event.objects.values_list("key", flat=True)) == ["o-0", "o-1"]
