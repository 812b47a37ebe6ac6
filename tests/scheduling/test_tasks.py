"""Delayed actions end to end: real worker processes, sweeper processes, kills and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from egress.models import Delivery
from egress.services import destination_create
from ingress import services as ingress_services
from ingress.models import Event
from rules_engine import services as rule_services
from rules_engine.models import EntryPoint, SubjectState
from scheduling import services
from scheduling.models import ScheduledAction
from scheduling.tasks import run_scheduled_actions
from tests.scheduling.conftest import RULE_ID, celery_worker_with_plugins, count_of, count_spec
from tests.support.processes import ManagedProcess, manage, wait_for
from tests.support.webhooks import Receiver

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("broker_routes"),
]

SWEEPER_READY = "scheduling sweeper ready"


def later_rule(*actions: dict[str, Any]) -> EntryPoint:
    """An entry point `later` (subject: the `user` field) whose one rule always matches."""
    entry_point = rule_services.entry_point_create(
        data={"key": "later", "context_schema": {"type": "object"}, "subject_path": "user"}
    )
    rule_services.rule_create(
        data={
            "name": "later",
            "entry_point": entry_point,
            "condition": True,
            "actions": list(actions),
        }
    )
    return entry_point


def accept(key: str, user: str = "u1") -> Event:
    event, _ = ingress_services.event_accept(type="later", key=key, payload={"user": user})
    return event


def row_of(event: Event) -> ScheduledAction:
    return wait_for(lambda: ScheduledAction.objects.filter(event_id=event.pk).first())


@pytest.fixture
def sweeper() -> Iterator[ManagedProcess]:
    """A `manage.py scheduling_sweep` process (100 ms rounds)."""
    process = manage("sweeper", "scheduling_sweep", "--interval", "0.1", ready_text=SWEEPER_READY)
    process.start()
    yield process
    process.stop()


def test_an_action_due_within_the_horizon_runs_on_time_without_a_sweeper(live_worker):
    # given a rule that counts one second after the decision
    later_rule({**count_spec(), "delay_seconds": 1})
    # when an event is accepted and the worker decides on it
    event = accept("e1")
    row = row_of(event)
    # then the row is published at commit and runs at its due time, completing the event
    done = wait_for(lambda: ScheduledAction.objects.filter(pk=row.pk, status="done").first())
    assert (done.attempts, count_of("u1")) == (1, 1)
    assert timedelta(0) <= done.started_at - done.due_at < timedelta(seconds=1)
    assert wait_for(lambda: Event.objects.get(pk=event.pk).status == "completed")


def test_an_action_due_later_is_published_by_the_sweeper_and_runs_on_time(live_worker, sweeper):
    # given a rule that counts three seconds after the decision (beyond the 2 s horizon)
    later_rule({**count_spec(), "delay_seconds": 3})
    # when an event is decided
    row = row_of(accept("e1"))
    assert row.status == "pending"
    # then the sweeper publishes it shortly before it is due and it runs on time
    done = wait_for(lambda: ScheduledAction.objects.filter(pk=row.pk, status="done").first())
    assert timedelta(0) <= done.started_at - done.due_at < timedelta(seconds=1)
    assert (done.attempts, count_of("u1")) == (1, 1)


def test_an_event_cancelled_before_its_action_is_due_never_runs_it(live_worker, sweeper):
    # given an event whose action is due in three seconds, still pending
    later_rule({**count_spec(), "delay_seconds": 3})
    event = accept("e1")
    row = row_of(event)
    # when the event is cancelled
    ingress_services.event_cancel(event=event, reason="customer left")
    # then the action never runs, also after its due time has passed
    wait_until(row.due_at + timedelta(seconds=1.5))
    row.refresh_from_db()
    assert (row.status, row.attempts, row.started_at, count_of("u1")) == (
        "cancelled",
        0,
        None,
        None,
    )


def test_an_action_cancelled_while_published_never_runs_across_a_worker_restart(live_worker):
    # given an action published with its ETA, held by the worker, due in two seconds
    later_rule({**count_spec(), "delay_seconds": 2})
    event = accept("e1")
    row = row_of(event)
    assert row.status == "enqueued"
    # when the event is cancelled, the worker killed and started again, and the message
    # delivered again (as the broker does with an unacknowledged message)
    ingress_services.event_cancel(event=event, reason="customer left")
    live_worker.kill()
    live_worker.start()
    redelivered = run_scheduled_actions.apply_async(
        args=[[str(row.pk)], row.due_at.timestamp()], eta=row.due_at
    )
    # then the delivery is a no-op and the action never ran
    wait_for(lambda: f"[{redelivered.id}] succeeded" in live_worker.log_tail(), timeout=15)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.started_at, count_of("u1")) == (
        "cancelled",
        0,
        None,
        None,
    )


def test_an_action_whose_worker_is_killed_mid_action_completes_exactly_once(live_worker):
    # given an action due in one second that takes three seconds to compute its update
    later_rule({**count_spec(sleep_ms=3000), "delay_seconds": 1})
    event = accept("e1")
    row = row_of(event)
    # when its worker is killed with SIGKILL while the action runs
    wait_for(lambda: ScheduledAction.objects.filter(pk=row.pk, status="running").exists())
    live_worker.kill()
    row.refresh_from_db()
    assert (row.status, row.attempts, count_of("u1")) == ("running", 1, None)
    # and a worker is started again and recovery finds the row past its lease
    live_worker.start()
    lease_over = timezone.now() + timedelta(seconds=61)
    assert services.scheduled_actions_recover(now=lease_over) == 1
    assert services.scheduled_actions_sweep() == 1
    # then the action runs again and completes exactly once
    done = wait_for(
        lambda: ScheduledAction.objects.filter(pk=row.pk, status="done").first(), timeout=30
    )
    assert (done.attempts, count_of("u1")) == (2, 1)
    assert wait_for(lambda: Event.objects.get(pk=event.pk).status == "completed")


def test_webhook_killed_mid_action_is_written_and_delivered_once(live_worker):
    # given a delayed webhook to a local receiver whose payload takes 3 s to compute
    receiver = Receiver().start()
    try:
        destination_create(data={"name": "crm", "url": receiver.url(), "timeout_seconds": 2})
        slow = {"order": {"test_sleep_ms": [{"var": "user"}, 3000]}}
        webhook = {"type": "webhook", "params": {"destination": "crm", "fields": slow}}
        later_rule({**webhook, "delay_seconds": 1})
        event = accept("e1")
        row = row_of(event)
        wait_for(lambda: ScheduledAction.objects.filter(pk=row.pk, status="running").exists())
        # when the worker is killed with SIGKILL mid-action and recovery runs it again
        live_worker.kill()
        assert Delivery.objects.count() == 0
        live_worker.start()
        lease_over = timezone.now() + timedelta(seconds=61)
        assert services.scheduled_actions_recover(now=lease_over) == 1
        assert services.scheduled_actions_sweep() == 1
        # then one delivery was written, and the receiver got one POST with its key
        delivery = wait_for(lambda: Delivery.objects.filter(status="delivered").first(), timeout=30)
        assert Delivery.objects.count() == 1
        assert ScheduledAction.objects.get(pk=row.pk).attempts == 2
        assert [r.headers["idempotency-key"] for r in receiver.requests] == [str(delivery.pk)]
        assert delivery.payload == {"order": "u1"}
    finally:
        receiver.stop()


def test_two_sweepers_and_three_worker_processes_run_every_action_exactly_once(
    live_worker, sweeper
):
    # given 200 actions due over the next 1 to 3 seconds, one subject each
    now = timezone.now()
    rows = [
        ScheduledAction(
            entry_point_key="later",
            rule_id=RULE_ID,
            rule_name="count later",
            rule_version=1,
            action_index=0,
            spec=count_spec(),
            subject=f"s{index}",
            due_at=now + timedelta(seconds=1 + index / 100),
        )
        for index in range(200)
    ]
    # when a second sweeper and a second worker run beside the first ones
    second_sweeper = manage(
        "sweeper2", "scheduling_sweep", "--interval", "0.1", ready_text=SWEEPER_READY
    ).start()
    second_worker = celery_worker_with_plugins().start()
    try:
        ScheduledAction.objects.bulk_create(rows)
        wait_for(lambda: ScheduledAction.objects.filter(status="done").count() == 200, timeout=30)
    finally:
        second_sweeper.stop()
        second_worker.stop()
    # then every action ran exactly once, none before its due time
    counts = dict(SubjectState.objects.values_list("subject", "attributes__count"))
    assert counts == {f"s{index}": 1 for index in range(200)}
    assert set(ScheduledAction.objects.values_list("attempts", flat=True)) == {1}
    early = [
        r.pk for r in ScheduledAction.objects.all() if not r.started_at or r.started_at < r.due_at
    ]
    assert early == []


def wait_until(moment: Any) -> None:
    wait_for(lambda: timezone.now() >= moment, timeout=30)
