"""Egress admin: secrets shown once and then only as a prefix, deliveries read-only + retry."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from egress.models import Delivery, DeliveryAttempt, Destination
from rules_engine import services as rules_services

pytestmark = pytest.mark.django_db


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:egress_{name}", args=args)


def destination_form(**overrides: Any) -> dict[str, str]:
    data = {
        "name": "crm",
        "kind": "webhook",
        "description": "",
        "url": "https://crm.example.com/hooks/verdict",
        "stream": "",
        "active": "on",
        "timeout_seconds": "5",
        "max_attempts": "8",
        "new_secret": "",
    }
    data.update(overrides)
    return data


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_added_webhook_gets_a_secret_shown_once_then_only_its_prefix(admin_client: Client):
    # when a webhook destination is added without a secret
    response = admin_client.post(url("destination_add"), destination_form(), follow=True)
    # then one is generated and shown in full on the next page
    destination = Destination.objects.get(name="crm")
    assert len(destination.secret) == 43
    assert destination.secret in response.content.decode()
    # and from then on the list and the change page show only its first characters
    listing = admin_client.get(url("destination_changelist")).content.decode()
    change = admin_client.get(url("destination_change", destination.pk)).content.decode()
    assert destination.secret not in listing and destination.secret not in change
    assert f"{destination.secret[:4]}…" in listing


def test_rotating_the_secret_shows_the_new_one_once(admin_client: Client):
    admin_client.post(url("destination_add"), destination_form(new_secret="old-secret"))
    destination = Destination.objects.get()
    response = admin_client.post(
        url("destination_change", destination.pk), destination_form(rotate_secret="on"), follow=True
    )
    destination.refresh_from_db()
    assert destination.secret != "old-secret"
    assert destination.secret in response.content.decode()


def test_non_http_url_is_a_form_error(admin_client: Client):
    response = admin_client.post(url("destination_add"), destination_form(url="ftp://x.example"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["url"] == ["Enter an http:// or https:// URL."]
    assert not Destination.objects.exists()


def test_deactivating_a_destination_in_use_is_a_form_error(admin_client: Client, crm):
    entry_point = rules_services.entry_point_create(data={"key": "order.created"})
    rules_services.rule_create(
        data={
            "name": "Tell the CRM",
            "entry_point": entry_point,
            "condition": True,
            "actions": [{"type": "webhook", "params": {"destination": "crm"}}],
        }
    )
    response = admin_client.post(
        url("destination_change", crm.pk), destination_form(url=crm.url, active="")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["active"] == [
        "cannot be deactivated while active rules send to it: 'Tell the CRM'"
    ]
    crm.refresh_from_db()
    assert crm.active is True


def test_delivery_pages_render_read_only_with_attempts(admin_client: Client, crm):
    delivery = Delivery.objects.create(
        idempotency_key="k", destination=crm, payload={"n": 1}, status="dead", attempts=1
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, number=1, started_at=delivery.created_at, error="HTTP 500"
    )
    listing = admin_client.get(url("delivery_changelist") + "?status__exact=dead")
    page = admin_client.get(url("delivery_change", delivery.pk))
    assert (listing.status_code, page.status_code) == (200, 200)
    assert "HTTP 500" in page.content.decode()
    # and a delivery is found by its id (the receiver's Idempotency-Key)
    found = admin_client.get(url("delivery_changelist") + f"?q={delivery.pk}")
    assert list(found.context["cl"].result_list) == [delivery]
    assert admin_client.get(url("delivery_add")).status_code == 403


def test_retry_action_sends_dead_deliveries_again(admin_client: Client, crm):
    # given a dead and a delivered delivery
    dead = Delivery.objects.create(
        idempotency_key="k1", destination=crm, payload={}, status="dead", attempts=8
    )
    done = Delivery.objects.create(
        idempotency_key="k2", destination=crm, payload={}, status="delivered", attempts=1
    )
    # when both are selected for "Retry selected dead deliveries"
    response = admin_client.post(
        url("delivery_changelist"),
        {"action": "retry_dead", "_selected_action": [str(dead.pk), str(done.pk)]},
    )
    # then only the dead one is pending again, its attempts kept
    assert response.status_code == 302
    assert messages_of(response) == [
        "1 dead deliveries will be sent again; 1 not dead, left alone."
    ]
    dead.refresh_from_db()
    done.refresh_from_db()
    assert (dead.status, dead.attempts, dead.attempts_before_retry) == ("pending", 8, 8)
    assert done.status == "delivered"
