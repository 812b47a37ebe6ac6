"""SSRF: egress reaches registered destinations only. A webhook never follows a redirect (to
another local port here, standing in for an internal service), and a rule cannot name an
address of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from egress import services
from egress.models import Delivery, Destination
from rules_engine import engine
from rules_engine import services as rules_services
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint
from tests.egress.conftest import ORDER
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def internal() -> Iterator[Receiver]:
    """Another local server: an address that is not a registered destination."""
    server = Receiver().start()
    yield server
    server.stop()


def _webhook_rule(entry_point: EntryPoint, params: dict[str, Any]) -> Any:
    return rules_services.rule_create(
        data={
            "name": "Tell the CRM",
            "entry_point": entry_point,
            "condition": True,
            "actions": [{"type": "webhook", "params": params}],
        }
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_an_unregistered_address_is_not_followed(
    crm: Destination, order_created: EntryPoint, receiver: Receiver, internal: Receiver, status: int
) -> None:
    # given a registered receiver that redirects to an internal address
    target = internal.url("/admin/delete-everything")
    receiver.answer(*[(status, {"Location": target})] * crm.max_attempts)
    _webhook_rule(order_created, {"destination": "crm"})
    engine.execute(entry_point="order.created", context=ORDER)
    delivery = Delivery.objects.get()
    # when every attempt is made
    for _ in range(crm.max_attempts):
        delivery.refresh_from_db()
        services.delivery_attempt(delivery_id=str(delivery.pk), now=delivery.next_attempt_at)
    # then the internal address was never contacted, only the registered one
    assert internal.requests == []
    assert receiver.paths() == ["/hook"] * crm.max_attempts
    # and the delivery is dead with the reason on record
    delivery.refresh_from_db()
    error = f"HTTP {status}: redirect to '{target}' not followed"
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("dead", 3, error)
    assert [a.error for a in delivery.attempt_history.order_by("number")] == [error] * 3


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        # an address instead of a destination name
        (
            {"destination": "http://127.0.0.1:9/hook"},
            "$.actions[0].params.destination",
            "no destination 'http://127.0.0.1:9/hook' is registered",
        ),
        # a URL beside the destination, to override it
        (
            {"destination": "crm", "url": "http://127.0.0.1:9/hook"},
            "$.actions[0].params",
            "Additional properties are not allowed ('url' was unexpected)",
        ),
        (
            {"destination": "crm", "headers": {"Host": "internal"}},
            "$.actions[0].params",
            "Additional properties are not allowed ('headers' was unexpected)",
        ),
    ],
)
def test_a_rule_cannot_name_an_address_of_its_own(
    crm: Destination, order_created: EntryPoint, params: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        _webhook_rule(order_created, params)
    assert [(d["path"], d["message"]) for d in caught.value.details] == [(path, message)]


def test_a_destination_computed_from_the_context_is_refused(
    crm: Destination, order_created: EntryPoint
) -> None:
    # the destination is a fixed name: an expression (data chosen by the caller) is refused
    with pytest.raises(InvalidInput) as caught:
        _webhook_rule(order_created, {"destination": {"var": "target"}})
    assert [d["path"] for d in caught.value.details] == ["$.actions[0].params.destination"]
