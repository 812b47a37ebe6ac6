"""Egress services: destinations, attempts with backoff, dead letters, retries, the scan."""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from egress import services
from egress.models import Delivery, DeliveryAttempt, Destination
from rules_engine import services as rules_services
from rules_engine.actions import ActionContext
from rules_engine.errors import InvalidInput

pytestmark = pytest.mark.django_db


def at(seconds: float) -> datetime:
    """A fixed point in time: T0 plus `seconds`."""
    base = datetime.fromisoformat("2026-03-01T12:00:00+00:00")
    return base + timedelta(seconds=seconds)


def make_delivery(destination: Destination, **fields: Any) -> Delivery:
    """An outbox row as an action writes it, due at `at(0)` unless told otherwise."""
    values: dict[str, Any] = {
        "idempotency_key": f"test:{uuid.uuid4()}",
        "destination": destination,
        "payload": {"order": "o-1"},
        "next_attempt_at": at(0),
        **fields,
    }
    return Delivery.objects.create(**values)


def due(delivery: Delivery) -> datetime:
    """When the delivery's next attempt is due (it must have one)."""
    assert delivery.next_attempt_at is not None
    return delivery.next_attempt_at


def attempts_of(delivery: Delivery) -> list[tuple[int, bool, int | None, str]]:
    return [
        (a.number, a.ok, a.status_code, a.error)
        for a in DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")
    ]


def verifies(secret: str, request: Any) -> bool:
    parts = dict(item.split("=", 1) for item in request.headers["x-verdict-signature"].split(","))
    message = f"{parts['t']}.".encode() + request.body
    return hmac.compare_digest(
        parts["v1"], hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    )


# --- destinations --------------------------------------------------------------------------


def test_webhook_destination_gets_a_generated_secret(receiver):
    destination = services.destination_create(data={"name": "crm", "url": receiver.url()})
    assert len(destination.secret) == 43
    assert destination.secret_hint == f"{destination.secret[:4]}…"
    assert (destination.timeout_seconds, destination.max_attempts) == (5, 8)


def test_given_secret_is_kept(receiver):
    destination = services.destination_create(
        data={"name": "crm", "url": receiver.url(), "secret": "mine"}
    )
    assert destination.secret == "mine"


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            {"name": "crm", "url": "ftp://example.com/hook"},
            [{"path": "$.url", "message": "Enter an http:// or https:// URL."}],
        ),
        (
            {"name": "crm", "url": "file:///etc/passwd"},
            [{"path": "$.url", "message": "Enter an http:// or https:// URL."}],
        ),
        ({"name": "crm"}, [{"path": "$.url", "message": "a webhook destination needs a URL"}]),
        (
            {"name": "s", "kind": "redis_stream"},
            [{"path": "$.stream", "message": "a redis_stream destination needs a stream key"}],
        ),
        (
            {"name": "s", "kind": "redis_stream", "stream": "x", "url": "https://example.com"},
            [{"path": "$.url", "message": "only webhook destinations have a URL"}],
        ),
        (
            {"name": "Bad Name", "url": "https://example.com"},
            [
                {
                    "path": "$.name",
                    "message": "Use lowercase letters, digits, '.', '_' and '-' "
                    "(start with a letter or digit).",
                }
            ],
        ),
        (
            {"name": "crm", "url": "https://example.com", "bogus": 1},
            [{"path": "$.bogus", "message": "unknown field"}],
        ),
    ],
)
def test_invalid_destination_is_refused_with_paths(data, errors):
    with pytest.raises(InvalidInput) as caught:
        services.destination_create(data=data)
    assert (caught.value.code, caught.value.details) == ("invalid_destination", errors)
    assert not Destination.objects.exists()


def rule_sending_to(name: str, action: str = "webhook") -> Any:
    entry_point = rules_services.entry_point_create(data={"key": "order.created"})
    return rules_services.rule_create(
        data={
            "name": "Tell the CRM",
            "entry_point": entry_point,
            "condition": True,
            "actions": [{"type": action, "params": {"destination": name}}],
        }
    )


def test_destination_in_use_cannot_be_deactivated_renamed_or_deleted(crm):
    # given an active rule that sends to the destination
    rule_sending_to("crm")
    # when it is deactivated and renamed
    with pytest.raises(InvalidInput) as caught:
        services.destination_update(destination=crm, data={"active": False, "name": "crm2"})
    # then both are refused, naming the rule, and nothing changed
    assert caught.value.details == [
        {
            "path": "$.active",
            "message": "cannot be deactivated while active rules send to it: 'Tell the CRM'",
        },
        {
            "path": "$.name",
            "message": "cannot be renamed while active rules send to it: 'Tell the CRM'",
        },
    ]
    with pytest.raises(InvalidInput):
        services.destination_delete(destination=crm)
    crm.refresh_from_db()
    assert (crm.name, crm.active) == ("crm", True)


def test_unused_destination_is_deactivated_and_keeps_its_secret(crm):
    secret = crm.secret
    services.destination_update(destination=crm, data={"active": False, "secret": ""})
    crm.refresh_from_db()
    assert (crm.active, crm.secret) == (False, secret)


def test_destination_with_deliveries_is_not_deleted(crm):
    make_delivery(crm)
    with pytest.raises(InvalidInput) as caught:
        services.destination_delete(destination=crm)
    assert caught.value.details == [
        {"path": "$", "message": "deliveries refer to it; deactivate it instead"}
    ]


def test_rotating_the_secret_replaces_it(crm):
    old = crm.secret
    new = services.destination_rotate_secret(destination=crm)
    assert (crm.secret, len(new)) == (new, 43)
    assert new != old


# --- backoff -------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_from_the_base_up_to_the_cap():
    # rand() = 1 gives the ceiling of each wait
    ceilings = [
        services.backoff_seconds(failures=n, base=1, cap=300, rand=lambda: 1.0)
        for n in range(1, 11)
    ]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_backoff_is_full_jitter_between_zero_and_the_ceiling():
    assert services.backoff_seconds(failures=3, base=1, cap=300, rand=lambda: 0.0) == 0
    assert services.backoff_seconds(failures=3, base=1, cap=300, rand=lambda: 0.5) == 2
    waits = [services.backoff_seconds(failures=4, base=0.5, cap=300) for _ in range(500)]
    assert all(0 <= wait <= 4 for wait in waits)
    # spread over the whole range, not clustered at the ceiling
    assert min(waits) < 1 and max(waits) > 3


# --- attempts ------------------------------------------------------------------------------


def test_first_attempt_delivers(crm, receiver):
    # given a pending delivery and a receiver that answers 200
    delivery = make_delivery(crm)
    # when a worker attempts it
    attempt = services.delivery_attempt(delivery_id=str(delivery.pk), now=at(1))
    # then it is delivered, once, and the attempt is recorded
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("delivered", 1, at(1))
    assert (delivery.next_attempt_at, delivery.lease_until, delivery.last_error) == (None, None, "")
    assert attempt is not None
    assert (attempt.number, attempt.ok, attempt.status_code, attempt.response) == (
        1,
        True,
        200,
        "ok",
    )
    assert attempt.started_at == at(1) and attempt.duration_ms is not None
    assert len(receiver.requests) == 1
    # and a duplicate task for it is a no-op
    assert services.delivery_attempt(delivery_id=str(delivery.pk), now=at(2)) is None
    assert len(receiver.requests) == 1


def test_receiver_that_fails_times_out_and_recovers(crm, receiver, knobs):
    # given a receiver that answers 500, then stalls past the 0.3 s timeout, then recovers
    receiver.answer(500, "stall")
    delivery = make_delivery(crm)
    # when the first attempt is made at t=0
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(0))
    # then it is retrying, due within the first backoff (base 10 s)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("retrying", 1, "HTTP 500")
    assert at(0) <= due(delivery) <= at(10)
    # when the second attempt is made at t=100 and times out
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(100))
    # then it is retrying again, due within the doubled backoff (20 s)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("retrying", 2)
    assert delivery.last_error == "timed out after 0.3 s (ReadTimeout)"
    assert at(100) <= due(delivery) <= at(120)
    # when the third attempt is made at t=200
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(200))
    # then it is delivered, and every attempt is kept
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("delivered", 3, at(200))
    assert attempts_of(delivery) == [
        (1, False, 500, "HTTP 500"),
        (2, False, None, "timed out after 0.3 s (ReadTimeout)"),
        (3, True, 200, ""),
    ]
    # and all three requests carried the same idempotency key and body, each signed
    assert len(receiver.requests) == 3
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {str(delivery.pk)}
    assert {r.body for r in receiver.requests} == {b'{"order":"o-1"}'}
    assert all(verifies(crm.secret, r) for r in receiver.requests)


def test_attempt_before_it_is_due_is_a_no_op(crm, receiver):
    # given a delivery whose next attempt is due at t=30 (a backoff in progress)
    delivery = make_delivery(crm, status="retrying", attempts=1, next_attempt_at=at(30))
    # when an early or duplicate task runs at t=29
    assert services.delivery_attempt(delivery_id=str(delivery.pk), now=at(29)) is None
    # then nothing was sent
    assert receiver.requests == []


def test_retry_after_of_the_receiver_stretches_the_backoff(crm, receiver, knobs):
    receiver.answer((429, {"Retry-After": "45"}))
    delivery = make_delivery(crm)
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(0))
    delivery.refresh_from_db()
    # the first backoff is at most 10 s; the receiver asked for 45 (below the 60 s cap)
    assert delivery.next_attempt_at == at(45)


def test_dead_letter_after_max_attempts_then_retry_delivers(crm, receiver, knobs):
    # given a destination allowing 3 attempts and a receiver failing 3 times
    receiver.answer(500, 500, 500)
    delivery = make_delivery(crm)
    for step in range(3):
        services.delivery_attempt(delivery_id=str(delivery.pk), now=at(100 * step))
    # then the delivery is dead after the third attempt
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("dead", 3, None)
    assert delivery.last_error == "HTTP 500"
    # and no task sends it any more
    assert services.delivery_attempt(delivery_id=str(delivery.pk), now=at(1000)) is None
    assert len(receiver.requests) == 3
    # when it is retried (admin action) at t=2000
    assert services.delivery_retry(delivery_ids=[delivery.pk], now=at(2000)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts_before_retry, delivery.next_attempt_at) == (
        "pending",
        3,
        at(2000),
    )
    # then the next attempt delivers, and the history keeps every attempt
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(2000))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 4, "")
    assert attempts_of(delivery) == [
        (1, False, 500, "HTTP 500"),
        (2, False, 500, "HTTP 500"),
        (3, False, 500, "HTTP 500"),
        (4, True, 200, ""),
    ]
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {str(delivery.pk)}


def test_retried_delivery_gets_a_fresh_attempt_budget(crm, receiver, knobs):
    # given a dead delivery retried by hand
    delivery = make_delivery(crm, status="dead", attempts=3)
    services.delivery_retry(delivery_ids=[delivery.pk], now=at(0))
    # when its next attempt fails
    receiver.answer(500)
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(0))
    # then it is retrying (1 of 3 attempts since the retry), with the first backoff again
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("retrying", 4)
    assert at(0) <= due(delivery) <= at(10)


def test_retry_leaves_deliveries_that_are_not_dead_alone(crm):
    pending = make_delivery(crm)
    delivered = make_delivery(crm, status="delivered", attempts=1)
    assert services.delivery_retry(delivery_ids=[pending.pk, delivered.pk], now=at(5)) == 0
    assert list(Delivery.objects.order_by("status").values_list("status", "next_attempt_at")) == [
        ("delivered", at(0)),
        ("pending", at(0)),
    ]


def test_delivery_held_by_another_worker_is_not_sent(crm, receiver):
    # given a delivery another worker is sending (its lease runs until t=60)
    delivery = make_delivery(crm, attempts=1, lease_until=at(60))
    # when a second task runs at t=30
    assert services.delivery_attempt(delivery_id=str(delivery.pk), now=at(30)) is None
    # then it sent nothing
    assert receiver.requests == []


def test_attempt_of_a_dead_worker_is_marked_and_the_delivery_sent_after_its_lease(crm, receiver):
    # given a worker that claimed attempt 1 and died mid-send (no result, lease until t=60)
    delivery = make_delivery(crm, attempts=1, lease_until=at(60))
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=at(0))
    # when a task runs after the lease ran out
    services.delivery_attempt(delivery_id=str(delivery.pk), now=at(61))
    # then attempt 1 says what happened and attempt 2 delivered
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert attempts_of(delivery) == [(1, False, None, services.LOST_ATTEMPT), (2, True, 200, "")]


def test_delivery_to_a_deactivated_destination_is_dead_lettered_unsent(crm, receiver):
    delivery = make_delivery(crm)
    Destination.objects.filter(pk=crm.pk).update(active=False)
    assert services.delivery_attempt(delivery_id=str(delivery.pk), now=at(1)) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("dead", "destination 'crm' is inactive")
    assert (receiver.requests, attempts_of(delivery)) == ([], [])


def test_cancelled_delivery_is_not_sent(crm, receiver):
    delivery = make_delivery(crm)
    assert services.delivery_cancel(delivery_ids=[delivery.pk]) == 1
    assert services.delivery_attempt(delivery_id=str(delivery.pk), now=at(1)) is None
    delivery.refresh_from_db()
    assert (delivery.status, receiver.requests) == ("cancelled", [])


def test_lease_outlasts_several_timeouts(crm, settings):
    settings.VERDICT = {**settings.VERDICT, "EGRESS_LEASE_SECONDS": 60}
    assert services.lease_seconds(crm) == 60
    crm.timeout_seconds = 30
    assert services.lease_seconds(crm) == 125


# --- the periodic scan ---------------------------------------------------------------------


def test_scan_publishes_overdue_deliveries_only(crm, knobs, django_capture_on_commit_callbacks):
    # given deliveries due 11 s ago (their task was lost), due 5 s ago (task on its way),
    # held by a live lease, and already delivered
    overdue = make_delivery(crm, next_attempt_at=at(-11))
    make_delivery(crm, next_attempt_at=at(-5))
    make_delivery(crm, next_attempt_at=at(-60), lease_until=at(30))
    make_delivery(crm, status="delivered", next_attempt_at=at(-60))
    # when the scan runs at t=0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        published = services.delivery_retry_due(now=at(0))
    # then only the overdue one is published again, and marked due now
    assert (published, len(callbacks)) == (1, 1)
    overdue.refresh_from_db()
    assert overdue.next_attempt_at == at(0)
    # and the next scan, 5 s later, leaves it to its task (and takes the one due at -5 s)
    assert services.delivery_retry_due(now=at(5)) == 1
    overdue.refresh_from_db()
    assert overdue.next_attempt_at == at(0)


# --- the outbox write ----------------------------------------------------------------------


def context_for(*, scheduled_action_id: str) -> ActionContext:
    return ActionContext(
        entry_point_key="order.created",
        critical=False,
        data={},
        subject=None,
        rule_id="5f0c7c52-0000-4000-8000-000000000001",
        rule_name="Tell the CRM",
        rule_version=1,
        action_index=0,
        dry_run=False,
        scheduled_action_id=scheduled_action_id,
    )


def test_enqueue_twice_for_one_action_run_writes_one_row(crm, django_capture_on_commit_callbacks):
    # given the context of one run of a delayed action
    ctx = context_for(scheduled_action_id=str(uuid.uuid4()))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first, created = services.delivery_enqueue(
            destination=crm, payload={"n": 1}, ctx=ctx, now=at(0)
        )
        again, created_again = services.delivery_enqueue(
            destination=crm, payload={"n": 2}, ctx=ctx, now=at(1)
        )
    # then the re-run found the first row, and sending was published once
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert (first.idempotency_key, first.payload) == (ctx.idempotency_key(), {"n": 1})
    assert len(callbacks) == 1


# --- two workers at once -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_one_delivery_at_once(receiver):
    # given a committed delivery and a receiver slow enough for both workers to overlap
    destination = services.destination_create(
        data={"name": "slow", "url": receiver.url(), "timeout_seconds": 2}
    )
    receiver.stall_seconds = 0.5
    receiver.answer("stall")
    delivery = make_delivery(destination, next_attempt_at=timezone.now())
    results: list[Any] = []

    def work() -> None:
        try:
            results.append(services.delivery_attempt(delivery_id=str(delivery.pk)))
        finally:
            connection.close()

    # when two workers take its task at the same moment
    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    # then exactly one of them sent it
    assert sorted(result is None for result in results) == [False, True]
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
