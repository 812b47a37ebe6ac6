"""Egress reads: an event's deliveries (GET /status/<id>) and the rules using a destination."""

from __future__ import annotations

from datetime import datetime

import pytest

from egress import selectors
from egress.models import Delivery
from ingress.models import Event
from rules_engine import services as rules_services

pytestmark = pytest.mark.django_db

T = datetime.fromisoformat("2026-03-01T12:00:00+00:00")


def test_deliveries_for_event_lists_each_with_status_and_times(crm):
    # given an event with one retrying delivery, and a delivery of another event
    event = Event.objects.create(type="order.created", key="o-1")
    other = Event.objects.create(type="order.created", key="o-2")
    delivery = Delivery.objects.create(
        idempotency_key="k1",
        destination=crm,
        event=event,
        payload={},
        status="retrying",
        attempts=2,
        next_attempt_at=T,
        last_error="HTTP 500",
    )
    Delivery.objects.create(idempotency_key="k2", destination=crm, event=other, payload={})
    # when listed for the first event
    rows = selectors.deliveries_for_event(event_id=event.pk)
    # then only its delivery is shown, with what a caller needs to follow it
    assert rows == [
        {
            "id": str(delivery.pk),
            "destination": "crm",
            "kind": "webhook",
            "status": "retrying",
            "attempts": 2,
            "created_at": delivery.created_at,
            "delivered_at": None,
            "next_attempt_at": T,
            "last_error": "HTTP 500",
        }
    ]


def test_event_without_deliveries_has_none():
    assert selectors.deliveries_for_event(event_id="6f1c1a52-8d3b-4a53-9f3e-2f7d7a1b0c11") == []


def test_rules_using_destination_are_the_active_ones_naming_it(crm, order_created):
    # given an active and an inactive rule sending to crm, and a rule merely mentioning it
    def rule(name: str, active: bool, actions: list) -> None:
        rules_services.rule_create(
            data={
                "name": name,
                "entry_point": order_created,
                "condition": True,
                "active": active,
                "actions": actions,
            }
        )

    rule("Active", True, [{"type": "webhook", "params": {"destination": "crm"}}])
    rule("Inactive", False, [{"type": "webhook", "params": {"destination": "crm"}}])
    rule(
        "Mentions",
        True,
        [{"type": "update", "params": {"target": "subject_state", "set": {"crm": "crm"}}}],
    )
    # then only the active rule sending to it counts
    assert [r.name for r in selectors.rules_using_destination(name="crm")] == ["Active"]
