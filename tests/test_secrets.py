"""Secrets (webhook signing secrets, API keys) never appear in logs, the audit trail, the
outbox records or API answers, including when deliveries fail and keys are refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import serializers as django_serializers
from rest_framework.test import APIClient

from egress import services as egress_services
from egress.models import Delivery, DeliveryAttempt, Destination
from ingress.models import Event
from ingress.services import event_process
from rules_engine.models import EntryPoint, Execution
from tests.support.keys import key_header, new_key
from tests.support.rules import entry_point_with_rule
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.django_db

SECRET = "whsec-Zq8-very-secret-signing-key-000"
CARD = "4242424242424242"
CONTEXT = {
    "order": {"id": "o-1", "total": 120},
    "customer": {"id": "c-7"},
    "card": {"number": CARD},
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def crm(receiver: Receiver) -> Destination:
    """A webhook destination with a known secret, 3 attempts, 0.3 s timeout."""
    return egress_services.destination_create(
        data={
            "name": "crm",
            "url": receiver.url(),
            "secret": SECRET,
            "timeout_seconds": 0.3,
            "max_attempts": 3,
        }
    )


@pytest.fixture
def order_created(crm: Destination) -> EntryPoint:
    """`order.created` (card.number sensitive) with a rule sending a webhook to crm."""
    return entry_point_with_rule(
        {"key": "order.created", "subject_path": "customer.id", "sensitive_paths": ["card.number"]},
        {
            "name": "Tell the CRM",
            "condition": True,
            "actions": [{"type": "webhook", "params": {"destination": "crm"}}],
        },
    )


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record: the message, its arguments and any extra attributes."""
    return "\n".join(
        f"{record.getMessage()} {record.args!r} {vars(record)!r}" for record in caplog.records
    )


def _rows_text(*querysets: Any) -> str:
    return "\n".join(django_serializers.serialize("json", qs) for qs in querysets)


@pytest.mark.parametrize("failure", [500, "stall", "redirect", "refused"])
def test_a_failing_delivery_logs_and_records_no_secret(
    api_client, caplog, receiver, crm, order_created, failure
):
    # given every logger capturing at DEBUG, and a receiver that fails
    caplog.set_level(logging.DEBUG)
    if failure == "refused":
        receiver.stop()
    else:
        receiver.answer(failure, failure, failure)
    # when a decision sends a webhook through the API, and every attempt fails
    response = api_client.post(
        "/api/rules/engine/execute/",
        {"entry_point": "order.created", "context": CONTEXT},
        format="json",
    )
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    for _ in range(crm.max_attempts):
        delivery.refresh_from_db()
        egress_services.delivery_attempt(delivery_id=str(delivery.pk), now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == "dead"
    # then neither the secret nor the card number is in any log record
    logged = _everything_logged(caplog)
    assert "delivery" in logged
    assert SECRET not in logged
    assert CARD not in logged
    # nor in the outbox and audit rows, nor in the API's answers
    stored = _rows_text(
        Delivery.objects.all(), DeliveryAttempt.objects.all(), Execution.objects.all()
    )
    assert SECRET not in stored
    assert CARD not in stored
    assert SECRET not in response.content.decode()
    execution = api_client.get(f"/api/executions/{response.json()['execution_id']}/")
    assert execution.status_code == 200
    assert SECRET not in execution.content.decode()
    assert CARD not in execution.content.decode()
    # (the receiver got the masked envelope, signed, but never the secret itself)
    for request in receiver.requests:
        assert SECRET.encode() not in request.body
        assert SECRET not in str(request.headers)


def test_an_event_status_shows_no_secret_and_a_masked_payload(
    api_client, receiver, crm, order_created
):
    # given an event decided in the background with a webhook that failed once
    receiver.answer(500)
    accepted = api_client.post(
        "/api/events/",
        {"type": "order.created", "key": "o-1", "payload": CONTEXT},
        format="json",
    )
    event_id = accepted.json()["id"]
    event_process(event_id=event_id)
    delivery = Delivery.objects.get()
    egress_services.delivery_attempt(delivery_id=str(delivery.pk))
    # when its status is read both ways
    for url in (f"/status/{event_id}", f"/api/events/{event_id}/"):
        answer = api_client.get(url)
        # then the deliveries are listed, without the secret, and the payload's sensitive
        # path is masked as in the audit snapshot
        assert answer.status_code == 200
        body = answer.json()
        assert [(d["destination"], d["last_error"]) for d in body["deliveries"]] == [
            ("crm", "HTTP 500")
        ]
        assert SECRET not in answer.content.decode()
        assert CARD not in answer.content.decode()
        assert body["payload"]["card"] == {"number": "***"}
    assert Event.objects.get(pk=event_id).status == "completed"


def test_an_api_key_is_never_logged_stored_or_echoed(caplog, order_created, receiver):
    caplog.set_level(logging.DEBUG)
    raw = new_key(scopes=("execute", "read"))
    client = APIClient()
    # when the key is used successfully
    decided = client.post(
        "/api/rules/engine/execute/",
        {"entry_point": "order.created", "context": CONTEXT},
        format="json",
        headers=key_header(raw),
    )
    assert decided.status_code == 200
    # and a wrong key (one character off) is refused
    wrong = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    refused = client.post(
        "/api/rules/engine/execute/",
        {"entry_point": "order.created", "context": CONTEXT},
        format="json",
        headers=key_header(wrong),
    )
    assert refused.status_code == 401
    assert refused.json() == {"error": "invalid_api_key", "detail": "invalid or revoked API key"}
    # then neither key is in the logs, the answers or the audit (which names the key's prefix)
    logged = _everything_logged(caplog)
    # "vk_sk_<8 hex>" is the public prefix; the random rest is the secret
    prefix = "_".join(raw.split("_")[:3])
    secret_part = raw[len(prefix) + 1 :]
    for text in (logged, decided.content.decode(), _rows_text(Execution.objects.all())):
        assert secret_part not in text
        assert wrong[len(prefix) + 1 :] not in text
    execution = Execution.objects.get()
    assert execution.caller == f"key:{prefix}"


def test_the_signing_secret_is_not_in_a_destination_representation(crm):
    assert SECRET not in str(crm)
    assert SECRET not in repr(crm)
    assert crm.secret_hint == f"{SECRET[:4]}…"
