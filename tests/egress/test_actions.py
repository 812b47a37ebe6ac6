"""The `webhook` and `publish` actions: registered destinations only, one outbox row per run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction

from egress import services
from egress.models import Delivery, Destination
from rules_engine import engine
from rules_engine import services as rules_services
from rules_engine.cache import rulesets
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint, Execution, Rule
from scheduling.models import ScheduledAction
from tests.egress.conftest import ORDER, stream_entries

pytestmark = pytest.mark.django_db


def save_rule(entry_point: EntryPoint, *actions: dict[str, Any], **extra: Any) -> Rule:
    return rules_services.rule_create(
        data={
            "name": "Tell the CRM",
            "entry_point": entry_point,
            "condition": {">": [{"var": "order.total"}, 100]},
            "actions": list(actions),
            **extra,
        }
    )


def webhook(**params: Any) -> dict[str, Any]:
    return {"type": "webhook", "params": {"destination": "crm", **params}}


# --- saving a rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (webhook(destination="nope"), "no destination 'nope' is registered"),
        (
            webhook(destination="orders-stream"),
            "destination 'orders-stream' is a redis_stream destination; "
            "webhook sends to webhook destinations",
        ),
        (
            {"type": "publish", "params": {"destination": "crm"}},
            "destination 'crm' is a webhook destination; "
            "publish sends to redis_stream destinations",
        ),
        (webhook(destination="paused"), "destination 'paused' is inactive"),
    ],
)
def test_rule_sending_to_an_unusable_destination_is_refused(
    order_created, crm, orders_stream, action, message
):
    # given a paused (inactive) webhook destination next to the usable ones
    services.destination_create(
        data={"name": "paused", "url": "https://example.com/hook", "active": False}
    )
    # when a rule names an unknown, wrong-kind or inactive destination
    with pytest.raises(InvalidInput) as caught:
        save_rule(order_created, webhook(), action)
    # then saving is refused at the destination's path
    assert caught.value.details == [{"path": "$.actions[1].params.destination", "message": message}]
    assert not Rule.objects.exists()


def test_payload_and_fields_together_are_refused(order_created, crm):
    with pytest.raises(InvalidInput) as caught:
        save_rule(order_created, webhook(payload={"var": "order"}, fields={"id": 1}))
    assert caught.value.details == [
        {"path": "$.actions[0].params.fields", "message": "use either payload or fields, not both"}
    ]


def test_payload_expression_that_does_not_compile_is_refused_at_its_node(order_created, crm):
    with pytest.raises(InvalidInput) as caught:
        save_rule(order_created, webhook(fields={"total": {"sum": [1]}}))
    assert caught.value.details == [
        {"path": "$.actions[0].params.fields.total", "message": "unknown operator 'sum'"}
    ]


def test_unknown_param_is_refused(order_created, crm):
    with pytest.raises(InvalidInput) as caught:
        save_rule(order_created, webhook(url="https://evil.example"))
    assert caught.value.details == [
        {
            "path": "$.actions[0].params",
            "message": "Additional properties are not allowed ('url' was unexpected)",
        }
    ]


# --- running -------------------------------------------------------------------------------


def test_decision_writes_one_delivery_with_the_default_envelope(
    order_created, crm, django_capture_on_commit_callbacks
):
    # given a rule with a webhook action
    rule = save_rule(order_created, webhook())
    # when a decision matches it
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision = engine.execute(entry_point="order.created", context=ORDER)
    # then exactly one delivery is written, with the envelope (card number masked)
    delivery = Delivery.objects.get()
    assert delivery.payload == {
        "entry_point": "order.created",
        "event_id": None,
        "execution_id": decision.execution_id,
        "rule": {"id": str(rule.pk), "name": "Tell the CRM", "version": 1},
        "subject": "c-7",
        "context": {
            "order": {"id": "o-1", "total": 120},
            "customer": {"id": "c-7"},
            "card": {"number": "***"},
        },
    }
    assert (delivery.destination, delivery.status, str(delivery.execution_id)) == (
        crm,
        "pending",
        decision.execution_id,
    )
    assert delivery.idempotency_key == f"{decision.execution_id}:{rule.pk}:0"
    # and the audit names it
    [result] = Execution.objects.get(pk=str(decision.execution_id)).action_results
    assert result == {
        "rule_id": str(rule.pk),
        "rule_version": 1,
        "action_index": 0,
        "type": "webhook",
        "status": "ok",
        "destination": "crm",
        "delivery_id": str(delivery.pk),
        "delivery_status": "pending",
    }
    # and sending is published once the decision commits (one callback, not yet run; the
    # other notes the audit row's rule-set snapshot as stored)
    publishing = [c for c in callbacks if getattr(c, "func", c).__name__ == "_publish"]
    assert len(publishing) == 1


def test_failed_decision_transaction_leaves_no_delivery(
    order_created, crm, django_capture_on_commit_callbacks
):
    # given a rule with a webhook action
    save_rule(order_created, webhook())
    # when the transaction the decision runs in fails after it
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        engine.execute(entry_point="order.created", context=ORDER)
        raise RuntimeError("the caller failed")
    # then no delivery exists and nothing was published
    assert (Delivery.objects.count(), Execution.objects.count(), callbacks) == (0, 0, [])


def test_dry_run_writes_nothing_and_says_what_would_be_sent(order_created, crm):
    save_rule(order_created, webhook(fields={"order_id": {"var": "order.id"}, "vip": True}))
    decision = engine.execute(entry_point="order.created", context=ORDER, dry_run=True)
    [result] = decision.action_results
    assert (result["status"], result["destination"], result["payload"]) == (
        "would_send",
        "crm",
        {"order_id": "o-1", "vip": True},
    )
    assert Delivery.objects.count() == 0


def test_payload_expression_replaces_the_envelope(order_created, crm):
    save_rule(order_created, webhook(payload={"var": "order"}))
    engine.execute(entry_point="order.created", context=ORDER)
    assert Delivery.objects.get().payload == {"id": "o-1", "total": 120}


def test_subject_state_is_left_out_of_the_envelope(order_created, crm):
    # given a rule that reads the subject's stored state (so the data carries "$state")
    save_rule(order_created, webhook(), condition={"!": {"var": "$state.blocked"}})
    engine.execute(entry_point="order.created", context=ORDER)
    assert "$state" not in Delivery.objects.get().payload["context"]


def test_destination_deactivated_after_the_rule_compiled_is_an_action_error(order_created, crm):
    # given a compiled rule whose destination was then deactivated behind the services' back
    save_rule(order_created, webhook())
    assert rulesets.get("order.created") is not None
    Destination.objects.filter(pk=crm.pk).update(active=False)
    # when decided
    decision = engine.execute(entry_point="order.created", context=ORDER)
    # then the action failed in the audit and nothing is sent
    [result] = decision.action_results
    assert (result["status"], result["error"]) == ("error", "destination 'crm' is inactive")
    assert Delivery.objects.count() == 0


def test_oversized_payload_is_an_action_error(order_created, crm, settings):
    settings.VERDICT = {**settings.VERDICT, "EGRESS_MAX_PAYLOAD_BYTES": 50}
    save_rule(order_created, webhook())
    [result] = engine.execute(entry_point="order.created", context=ORDER).action_results
    assert result["status"] == "error"
    assert (
        result["error"].startswith("the payload is ") and "at most 50 are sent" in result["error"]
    )
    assert Delivery.objects.count() == 0


def test_delayed_webhook_run_twice_writes_one_delivery(order_created, crm):
    # given a webhook action delayed by an hour, scheduled by a decision
    rule = save_rule(order_created, {**webhook(), "delay_seconds": 3600})
    engine.execute(entry_point="order.created", context=ORDER)
    scheduled = ScheduledAction.objects.get()
    assert Delivery.objects.count() == 0
    # when the delayed action runs, and runs again (a worker died before marking it done)
    first = engine.run_delayed_action(scheduled=scheduled)
    second = engine.run_delayed_action(scheduled=scheduled)
    # then one delivery exists, keyed by the scheduled action, and both runs name it
    delivery = Delivery.objects.get()
    assert delivery.idempotency_key == f"{scheduled.pk}:{rule.pk}:0"
    assert first["delivery_id"] == second["delivery_id"] == str(delivery.pk)


def test_publish_lands_in_the_stream_once(order_created, orders_stream, stream_key):
    # given a rule publishing the order to a stream destination
    save_rule(
        order_created,
        {
            "type": "publish",
            "params": {"destination": "orders-stream", "payload": {"var": "order"}},
        },
    )
    engine.execute(entry_point="order.created", context=ORDER)
    delivery = Delivery.objects.get()
    # when the delivery is attempted, and a duplicate task attempts it again
    services.delivery_attempt(delivery_id=str(delivery.pk))
    services.delivery_attempt(delivery_id=str(delivery.pk))
    # then the stream holds exactly one entry with the delivery id and the JSON payload
    [(entry_id, fields)] = stream_entries(stream_key)
    assert fields == {
        b"delivery_id": str(delivery.pk).encode(),
        b"data": b'{"id":"o-1","total":120}',
    }
    assert json.loads(fields[b"data"]) == ORDER["order"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert delivery.attempt_history.get().response == f"stream entry {entry_id}"
