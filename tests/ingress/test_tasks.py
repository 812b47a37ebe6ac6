"""Event processing by a real Celery worker: REST in, decision and status out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingress.models import Event
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_event_posted_over_rest_is_decided_by_the_worker(worker, demo, demo_context, api_client):
    # given a running worker
    client = api_client
    body = {"type": "checkout", "key": "order-1", "payload": demo_context}
    # when an event is posted
    response = client.post("/new-event", json.dumps(body), content_type="application/json")
    # then it is accepted at once and the worker completes it with the decision
    assert response.status_code == 202
    event_id = response.json()["id"]
    event: Any = wait_for(
        lambda: (
            Event.objects.filter(pk=event_id, status="completed")
            .select_related("execution")
            .first()
        )
    )
    assert [r["name"] for r in event.execution.matched_rules] == [
        "Free shipping banner",
        "Age-restricted items need confirmation",
        "Count checkouts and show loyalty",
    ]
    status = client.get(f"/status/{event_id}").json()
    assert (status["status"], status["decision"]["outcome"]) == ("completed", "matched")
