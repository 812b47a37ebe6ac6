"""The events API: POST /new-event, GET /status/<id>, cancel by id and by key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from ingress.models import Event

pytestmark = pytest.mark.django_db

# The application's client of the current test: an API key with every scope.
CLIENT = APIClient()


@pytest.fixture(autouse=True)
def _application_client(api_client: APIClient) -> None:
    global CLIENT
    CLIENT = api_client


def post(url: str, body: Any) -> Any:
    return CLIENT.post(url, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("url", ["/new-event", "/api/events/"])
def test_event_is_accepted_once(url, demo, demo_context):
    body = {"type": "checkout", "key": "o-1", "payload": demo_context}
    first = post(url, body)
    again = post(url, body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json() == {"id": first.json()["id"], "status": "received"}
    assert again.json()["id"] == first.json()["id"]
    assert Event.objects.count() == 1


@pytest.mark.parametrize("url", ["/new-event", "/api/events/"])
@pytest.mark.parametrize("other_type", ["order.created", "no.such.type"])
def test_a_key_used_by_another_type_of_event_is_a_409(url, demo, demo_context, other_type):
    # given an event stored under a key (the demo has checkout and order.created)
    first = post(url, {"type": "checkout", "key": "o-1", "payload": demo_context})
    # when another type of event comes with the same key
    again = post(url, {"type": other_type, "key": "o-1", "payload": demo_context})
    # then it is refused without naming the stored event's type, and nothing else is stored
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (
        409,
        {
            "error": "idempotency_key_conflict",
            "detail": "key 'o-1' of source 'api' is already used by an event of another type",
        },
    )
    assert list(Event.objects.values_list("type", flat=True)) == ["checkout"]


def test_bad_events_are_clear_4xx(demo, demo_context):
    unknown = post("/new-event", {"type": "nope", "key": "k", "payload": {}})
    invalid = post("/new-event", {"type": "checkout", "key": "k", "payload": {"user": {"id": 1}}})
    shape = post("/new-event", {"type": "checkout", "payload": [], "source": "Bad Source"})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_event_type")
    assert (invalid.status_code, invalid.json()["error"]) == (400, "invalid_context")
    assert [d["path"] for d in invalid.json()["details"]] == ["$.cart"]
    assert shape.status_code == 400
    assert [d["path"] for d in shape.json()["details"]] == ["$.key", "$.payload", "$.source"]
    assert Event.objects.count() == 0


def test_status_shows_event_decision_and_actions(demo, demo_context):
    from ingress import services

    event_id = post("/new-event", {"type": "checkout", "key": "o-2", "payload": demo_context})
    services.event_process(event_id=event_id.json()["id"])
    status = CLIENT.get(f"/status/{event_id.json()['id']}").json()
    assert (status["status"], status["type"], status["key"], status["subject"]) == (
        "completed",
        "checkout",
        "o-2",
        "42",
    )
    assert [r["name"] for r in status["decision"]["matched_rules"]] == [
        "Free shipping banner",
        "Age-restricted items need confirmation",
        "Count checkouts and show loyalty",
    ]
    assert (status["scheduled_actions"], status["deliveries"]) == ([], [])
    same = CLIENT.get(f"/api/events/{event_id.json()['id']}/").json()
    assert same == status


def test_unknown_event_status_is_404(db):
    assert CLIENT.get("/status/00000000-0000-0000-0000-000000000000").status_code == 404
    assert CLIENT.get("/status/not-a-uuid").status_code == 404


def test_cancel_by_id_and_by_key(demo, demo_context):
    created = post("/new-event", {"type": "checkout", "key": "o-3", "payload": demo_context})
    event_id = created.json()["id"]
    by_id = post(f"/api/events/{event_id}/cancel/", {"reason": "fraud"})
    early = post("/api/events/cancel/", {"key": "o-4"})
    later = post("/new-event", {"type": "checkout", "key": "o-4", "payload": demo_context})
    assert by_id.json() == {"id": event_id, "status": "cancelled"}
    assert (early.status_code, early.json()) == (202, {"status": "pending_cancellation"})
    assert (later.status_code, later.json()["status"]) == (202, "cancelled")


def test_listing_events_is_for_staff(demo, admin_client):
    assert APIClient().get("/api/events/").status_code == 401
    assert admin_client.get("/api/events/?status=received").status_code == 200


def test_an_event_with_nul_in_a_string_is_a_400_and_not_stored(demo, demo_context):
    # given a payload PostgreSQL could never store (NUL inside a string)
    demo_context["user"]["name"] = "Ada\u0000"
    # when it is posted
    response = post("/new-event", {"type": "checkout", "key": "nul", "payload": demo_context})
    # then it is refused with where, and nothing is stored
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "malformed_json",
            "detail": "JSON strings may not contain NUL (\\u0000): at $.payload.user.name.",
        },
    )
    assert Event.objects.count() == 0
