"""Egress through a real Celery worker: on-commit sending, retries, the scan, streams."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from egress import services
from egress.models import Delivery, DeliveryAttempt
from rules_engine import services as rules_services
from rules_engine.models import EntryPoint
from tests.egress.conftest import ORDER, stream_entries
from tests.support.keys import application_client as application
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def rule_with(entry_point: EntryPoint, action: dict[str, Any]) -> None:
    rules_services.rule_create(
        data={
            "name": "Tell the CRM",
            "entry_point": entry_point,
            "condition": {">": [{"var": "order.total"}, 100]},
            "actions": [action],
        }
    )


def post_event(key: str) -> str:
    body = {"type": "order.created", "key": key, "payload": ORDER}
    response = application().post("/new-event", json.dumps(body), content_type="application/json")
    assert response.status_code == 202
    return str(response.json()["id"])


def delivered(event_id: str) -> Delivery | None:
    return Delivery.objects.filter(event_id=event_id, status="delivered").first()


def test_event_posted_is_delivered_to_the_receiver_once(worker, order_created, crm, receiver):
    # given a rule that sends a webhook for big orders
    rule_with(order_created, {"type": "webhook", "params": {"destination": "crm"}})
    # when an event is posted over REST
    event_id = post_event("order-1")
    # then the worker decides it and, after commit, the receiver gets the delivery once
    delivery: Any = wait_for(lambda: delivered(event_id))
    [request] = receiver.requests
    body = json.loads(request.body)
    assert (body["event_id"], body["context"]["card"]) == (event_id, {"number": "***"})
    assert request.headers["idempotency-key"] == str(delivery.pk)
    # and the event's status lists the delivery
    [row] = application().get(f"/status/{event_id}").json()["deliveries"]
    assert (row["id"], row["destination"], row["status"], row["attempts"]) == (
        str(delivery.pk),
        "crm",
        "delivered",
        1,
    )


def test_receiver_that_fails_times_out_and_recovers(worker, order_created, crm, receiver):
    # given a receiver that answers 500, then stalls past the 0.3 s timeout, then recovers
    receiver.answer(500, "stall")
    rule_with(order_created, {"type": "webhook", "params": {"destination": "crm"}})
    # when an event is posted
    event_id = post_event("order-2")
    # then the worker retries with backoff until the receiver takes it
    delivery: Any = wait_for(lambda: delivered(event_id), timeout=30)
    attempts = DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")
    assert [(a.number, a.ok, a.status_code, a.error) for a in attempts] == [
        (1, False, 500, "HTTP 500"),
        (2, False, None, "timed out after 0.3 s (ReadTimeout)"),
        (3, True, 200, ""),
    ]
    # and each of the three requests carried the same idempotency key
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [str(delivery.pk)] * 3


def test_delivery_whose_publish_was_lost_is_sent_by_the_scan(worker, crm, receiver):
    # given a committed delivery whose task never reached the broker (due a minute ago)
    delivery = Delivery.objects.create(
        idempotency_key="lost-publish",
        destination=crm,
        payload={"n": 1},
        next_attempt_at=timezone.now() - timedelta(minutes=1),
    )
    # when the periodic scan runs
    assert services.delivery_retry_due() == 1
    # then the worker delivers it
    wait_for(lambda: Delivery.objects.filter(pk=delivery.pk, status="delivered").exists())
    assert [r.body for r in receiver.requests] == [b'{"n":1}']


def test_published_event_lands_in_the_stream_once(worker, order_created, orders_stream, stream_key):
    # given a rule publishing big orders to a stream destination
    rule_with(order_created, {"type": "publish", "params": {"destination": "orders-stream"}})
    # when an event is posted
    event_id = post_event("order-3")
    # then the stream gets one entry naming the delivery
    delivery: Any = wait_for(lambda: delivered(event_id))
    [(_entry_id, fields)] = stream_entries(stream_key)
    assert fields[b"delivery_id"] == str(delivery.pk).encode()
    assert json.loads(fields[b"data"])["event_id"] == event_id


def test_worker_killed_mid_send_is_delivered_again_under_the_same_key(
    worker, order_created, receiver
):
    # given a receiver that holds the first request for 3 s (within the 5 s timeout)
    services.destination_create(data={"name": "crm", "url": receiver.url(), "timeout_seconds": 5})
    receiver.stall_seconds = 3
    receiver.answer("stall")
    rule_with(order_created, {"type": "webhook", "params": {"destination": "crm"}})
    event_id = post_event("order-4")
    # when the worker is killed with SIGKILL while the request is on the wire
    wait_for(lambda: receiver.requests)
    worker.kill()
    delivery = Delivery.objects.get(event_id=event_id)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.lease_until is not None
    # and another worker takes the delivery once the dead worker's lease has run out
    services.delivery_attempt(
        delivery_id=str(delivery.pk), now=delivery.lease_until + timedelta(seconds=1)
    )
    # then it is delivered, the lost attempt is recorded as such, and the receiver saw the
    # same idempotency key twice (so it can drop the repeat)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    attempts = DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")
    assert [(a.number, a.ok, a.error) for a in attempts] == [
        (1, False, services.LOST_ATTEMPT),
        (2, True, ""),
    ]
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [str(delivery.pk)] * 2
