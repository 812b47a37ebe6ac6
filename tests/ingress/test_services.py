"""Ingress services: accept once, process through the engine, cancel at every stage."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection

from ingress import services
from ingress.models import Event, PendingCancellation
from rules_engine import services as rule_services
from rules_engine.errors import InvalidContext, InvalidInput, NotFound
from rules_engine.functions import registry as functions
from rules_engine.models import Execution, Rule, SubjectState
from scheduling.models import ScheduledAction

LATER = {"type": "display_message", "params": {"template": "large-order"}, "delay_seconds": 3600}


def accept(context: dict[str, Any], key: str = "order-1", **extra: Any) -> Event:
    event, created = services.event_accept(type="checkout", key=key, payload=context, **extra)
    assert created
    return event


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Processing tasks published by the test (recorded, not sent to the broker)."""
    sent: list[str] = []

    def publish() -> bool:
        sent.append("task")
        return True

    monkeypatch.setattr(services, "_publish_processing", publish)
    return sent


@pytest.fixture
def delayed(demo: Any) -> Rule:
    """The free shipping rule also schedules a reminder an hour later."""
    rule = Rule.objects.get(name="Free shipping banner")
    return rule_services.rule_update(rule=rule, data={"actions": [*rule.actions, LATER]})


@pytest.mark.django_db
def test_same_source_and_key_is_accepted_once(demo, demo_context):
    first, created = services.event_accept(type="checkout", key="k", payload=demo_context)
    again, created_again = services.event_accept(type="checkout", key="k", payload={})
    other_source, _ = services.event_accept(
        type="checkout", key="k", payload=demo_context, source="shop"
    )
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert other_source.pk != first.pk
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_subject_comes_from_the_entry_point_subject_path(demo, demo_context):
    assert accept(demo_context).subject == "42"


@pytest.mark.django_db
def test_unknown_type_and_bad_payload_are_refused(demo, demo_context):
    with pytest.raises(NotFound) as unknown:
        services.event_accept(type="nope", key="k", payload={})
    with pytest.raises(InvalidContext) as invalid:
        services.event_accept(type="checkout", key="k", payload={"user": {}})
    assert unknown.value.code == "unknown_event_type"
    assert [d["path"] for d in invalid.value.details] == ["$.cart", "$.user.id"]
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_processing_stores_the_decision_and_completes(demo, demo_context):
    event = accept(demo_context)
    processed = services.event_process(event_id=str(event.pk))
    assert processed is not None
    assert (processed.status, processed.attempts) == ("completed", 1)
    execution = Execution.objects.get(events=processed)
    assert (execution.request_id, execution.caller) == (str(event.pk), "event:api")
    # a duplicate delivery of the task is a no-op
    assert services.event_process(event_id=str(event.pk)) is None


@pytest.mark.django_db
def test_event_with_delayed_action_waits_until_it_finishes(delayed, demo_context):
    event = accept(demo_context)
    processed = services.event_process(event_id=str(event.pk))
    assert processed is not None and processed.status == "waiting"
    [action] = ScheduledAction.objects.filter(event=event)
    assert (action.status, action.spec) == ("pending", {k: LATER[k] for k in ("type", "params")})
    ScheduledAction.objects.filter(pk=action.pk).update(status="done")
    services.event_settle(event_id=str(event.pk))
    assert Event.objects.get(pk=event.pk).status == "completed"


@pytest.mark.django_db
def test_cancel_before_processing_means_no_decision(demo, demo_context):
    event = accept(demo_context)
    cancelled = services.event_cancel(event=event, reason="customer left")
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "customer left")
    assert services.event_process(event_id=str(event.pk)) is None
    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_cancel_after_processing_cancels_pending_actions(delayed, demo_context):
    event = accept(demo_context)
    services.event_process(event_id=str(event.pk))
    services.event_cancel(event=event)
    assert Event.objects.get(pk=event.pk).status == "cancelled"
    assert list(ScheduledAction.objects.values_list("status", flat=True)) == ["cancelled"]


@pytest.mark.django_db
def test_cancel_of_a_finished_event_changes_nothing(demo, demo_context):
    event = accept(demo_context)
    services.event_process(event_id=str(event.pk))
    assert services.event_cancel(event=event).status == "completed"


@pytest.mark.django_db
def test_cancellation_before_its_event_is_applied_on_arrival(demo, demo_context):
    # given a cancellation for an event that has not arrived
    assert services.event_cancel_by_key(source="api", key="late", reason="void") is None
    assert PendingCancellation.objects.count() == 1
    # when the event arrives
    event, created = services.event_accept(type="checkout", key="late", payload=demo_context)
    # then it is stored cancelled, never processed, and the early cancellation is used up
    assert (created, event.status, event.cancel_reason) == (True, "cancelled", "void")
    assert services.event_process(event_id=str(event.pk)) is None
    assert PendingCancellation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_cancel_during_processing_waits_and_cancels_what_was_scheduled(
    delayed, demo_context, monkeypatch
):
    # given no worker races this test for the event (the session's worker may be running:
    # this test processes the event itself, in a thread)
    monkeypatch.setattr(services, "_ring", lambda: None)
    # and a decision that is slow (a custom function sleeps inside the condition)
    started = threading.Event()

    def slow(value: Any) -> Any:
        started.set()
        time.sleep(0.5)
        return value

    functions.register("slow", slow)
    try:
        rule_services.rule_update(
            rule=delayed, data={"condition": {">=": [{"slow": [{"var": "cart.total"}]}, 50]}}
        )
        event = accept(demo_context)
        outcome: dict[str, Any] = {}

        def process() -> None:
            outcome["event"] = services.event_process(event_id=str(event.pk))
            connection.close()

        worker = threading.Thread(target=process)
        worker.start()
        assert started.wait(5)
        # when the event is cancelled while the decision runs
        cancelled_at = time.monotonic()
        cancelled = services.event_cancel(event=event)
        waited = time.monotonic() - cancelled_at
        worker.join(5)
    finally:
        functions.unregister("slow")
    # then the cancel waited for the decision's commit and cancelled what it scheduled
    assert waited > 0.2
    assert cancelled.status == "cancelled"
    assert outcome["event"].status == "waiting"
    assert list(ScheduledAction.objects.values_list("status", flat=True)) == ["cancelled"]


@pytest.mark.django_db
def test_recover_republishes_received_events_and_resets_stuck_ones(demo, demo_context):
    from datetime import timedelta

    from django.utils import timezone

    accept(demo_context, key="a")
    stuck = accept(demo_context, key="b")
    Event.objects.filter(pk=stuck.pk).update(status="processing", attempts=1)
    later = timezone.now() + timedelta(seconds=120)
    # when recovery runs two minutes later
    republished = services.event_recover(now=later)
    # then both are received again and were published
    assert republished == 2
    assert sorted(Event.objects.values_list("key", "status")) == [
        ("a", "received"),
        ("b", "received"),
    ]


@pytest.mark.django_db
def test_emit_event_to_an_entry_point_that_does_not_exist_is_refused_at_save(demo):
    rule = Rule.objects.get(name="Free shipping banner")
    actions = [{"type": "emit_event", "params": {"type": "nope.nothing"}}]
    with pytest.raises(InvalidInput) as caught:
        rule_services.rule_update(rule=rule, data={"actions": actions})
    assert caught.value.details == [
        {"path": "$.actions[0].params.type", "message": "no entry point 'nope.nothing'"}
    ]
    assert Rule.objects.get(pk=rule.pk).version == 1


@pytest.mark.django_db
def test_emit_event_chain_is_bounded(demo, demo_context, settings):
    # given a rule on checkout that emits another checkout event (a loop)
    settings.VERDICT = {**settings.VERDICT, "MAX_EVENT_DEPTH": 2}
    rule = Rule.objects.get(name="Free shipping banner")
    rule_services.rule_update(
        rule=rule, data={"actions": [{"type": "emit_event", "params": {"type": "checkout"}}]}
    )
    # when the first event and each emitted one are processed
    current: Event | None = accept(demo_context)
    depths = []
    while current is not None:
        processed = services.event_process(event_id=str(current.pk))
        assert processed is not None
        depths.append(processed.depth)
        current = Event.objects.filter(parent=processed).first()
    # then the chain stopped at the limit with the refusal in the audit
    assert depths == [0, 1, 2]
    last = Event.objects.get(depth=2)
    execution = Execution.objects.get(events=last)
    [emit] = [r for r in execution.action_results if r["type"] == "emit_event"]
    assert (emit["status"], emit["error"]) == ("error", "event chain deeper than 2: not emitted")


@pytest.mark.django_db
def test_periodic_schedule_raises_one_event_per_firing(demo):
    from datetime import UTC, datetime

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from ingress.tasks import raise_periodic_event

    # given a schedule edited in the admin that raises order.created every minute
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    payload = {"order": {"id": "tick", "total": 0}, "customer": {"id": "system"}}
    task = PeriodicTask.objects.create(
        name="minutely-orders",
        task="ingress.tasks.raise_periodic_event",
        interval=every_minute,
        kwargs=json.dumps(
            {"schedule": "minutely-orders", "type": "order.created", "payload": payload}
        ),
    )
    # when beat fires it (twice in the same second, once a minute later)
    kwargs = json.loads(task.kwargs)
    at = datetime(2020, 1, 1, 8, 0, 0, tzinfo=UTC)
    first, created = services.event_raise_periodic(now=at, **kwargs)
    _, again = services.event_raise_periodic(now=at, **kwargs)
    event_id = raise_periodic_event.run(**kwargs)
    # then each firing is one ordinary event of that type
    assert (created, again) == (True, False)
    assert (first.source, first.key, first.type) == (
        "schedule",
        "minutely-orders:2020-01-01T08:00:00",
        "order.created",
    )
    assert Event.objects.get(pk=event_id).source == "schedule"
    assert Event.objects.filter(source="schedule").count() == 2


@pytest.mark.django_db
def test_pending_events_are_decided_in_batches_with_their_audit_rows(demo, demo_context, settings):
    # given three received events and batches of two
    settings.VERDICT = {**settings.VERDICT, "EVENT_BATCH": 2}
    events = [accept(demo_context, key=f"batch-{i}") for i in range(3)]
    # when the pending events are processed
    decided = services.events_process_pending()
    # then all three were decided, oldest first, each with its own Execution row
    assert decided == [str(event.pk) for event in events]
    stored = Event.objects.order_by("received_at")
    assert [(e.status, e.attempts) for e in stored] == [("completed", 1)] * 3
    requests = Execution.objects.values_list("request_id", flat=True)
    assert sorted(requests) == sorted(decided)
    assert sorted(str(e.execution_id) for e in stored) == sorted(
        str(pk) for pk in Execution.objects.values_list("pk", flat=True)
    )
    assert Execution.objects.count() == 3
    assert all(e.finished_at is not None and e.error == "" for e in stored)


@pytest.mark.django_db
def test_a_full_batch_calls_in_a_second_worker(demo, demo_context, settings, published):
    # given three received events, batches of two, and a count of published helper tasks
    settings.VERDICT = {**settings.VERDICT, "EVENT_BATCH": 2}
    cache.delete(services.HELPER_KEY)
    for i in range(3):
        accept(demo_context, key=f"full-{i}")
    # when the pending events are processed
    services.events_process_pending()
    # then the first (full) batch published one helper task, the second (one event) none
    assert published == ["task"]


@pytest.mark.django_db
def test_a_long_backlog_calls_in_at_most_one_helper_a_second(
    demo, demo_context, settings, published
):
    # given four received events, batches of one, and a count of published helper tasks
    settings.VERDICT = {**settings.VERDICT, "EVENT_BATCH": 1}
    cache.delete(services.HELPER_KEY)
    for i in range(4):
        accept(demo_context, key=f"long-{i}")
    # when they are processed (four full batches, well within a second)
    decided = services.events_process_pending()
    # then all were decided and only the first full batch published a helper
    assert (len(decided), published) == (4, ["task"])


@pytest.mark.django_db
def test_a_task_whose_time_is_up_hands_over_to_a_new_task(demo, demo_context, settings, published):
    # given received events and a task time budget already spent
    settings.VERDICT = {**settings.VERDICT, "EVENT_TASK_SECONDS": 0}
    accept(demo_context, key="later-1")
    # when the task runs
    decided = services.events_process_pending()
    # then it decided nothing and published the task that will
    assert (decided, published) == ([], ["task"])
    assert Event.objects.get(key="later-1").status == "received"


@pytest.mark.django_db
def test_one_failing_event_does_not_hold_back_the_others_of_its_batch(demo, demo_context):
    # given two received events, one of whose entry point is then switched off
    good = accept(demo_context, key="good")
    bad = accept(demo_context, key="bad")
    Event.objects.filter(pk=bad.pk).update(type="retired")
    # when the batch is decided
    services.events_process_pending()
    # then the good one completed and the bad one failed with the reason
    assert Event.objects.get(pk=good.pk).status == "completed"
    failed = Event.objects.get(pk=bad.pk)
    assert (failed.status, failed.error, failed.execution_id) == (
        "failed",
        "no active entry point 'retired'",
        None,
    )
    assert Execution.objects.count() == 1


@pytest.mark.django_db
def test_an_event_cancelled_after_its_claim_is_not_decided(demo, demo_context):
    # given an event claimed for processing and then cancelled before its batch ran
    event = accept(demo_context)
    [claimed] = services._claim_received(limit=10)
    services.event_cancel(event=event)
    # when the batch is decided
    decided = services.events_decide(event_ids=[claimed])
    # then nothing was decided and no audit row written
    assert decided == []
    assert Event.objects.get(pk=event.pk).status == "cancelled"
    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_a_repeat_with_a_payload_that_no_longer_validates_returns_the_stored_event(
    demo, demo_context
):
    first = accept(demo_context, key="again")
    again, created = services.event_accept(type="checkout", key="again", payload={"user": {}})
    assert (created, again.pk, again.status) == (False, first.pk, "received")


@pytest.mark.django_db(transaction=True)
def test_accepting_a_burst_rings_once_and_processing_clears_the_doorbell(
    demo, demo_context, published
):
    # given no processing task on its way, and a count of published tasks
    cache.delete(services.DOORBELL_KEY)
    # when three events are accepted (each committed)
    for i in range(3):
        accept(demo_context, key=f"burst-{i}")
    # then one task was published and the doorbell says it is on its way
    assert published == ["task"]
    assert cache.get(services.DOORBELL_KEY) == 1
    # and once that task has processed everything the doorbell is clear again
    assert len(services.events_process_pending()) == 3
    assert cache.get(services.DOORBELL_KEY) is None
    accept(demo_context, key="after")
    assert published == ["task", "task"]
    # (no task was really published: clear the mark so later tests' events are not held back)
    cache.delete(services.DOORBELL_KEY)


@pytest.mark.django_db
def test_a_write_that_fails_in_a_batch_is_undone_and_recorded_as_a_single_call_would(
    demo, demo_context, monkeypatch, caplog
):
    # given two events for customers 1 and 2 in one batch, the free shipping rule cooled down
    # per customer, and an update action that fails after writing for customer 2
    rule_services.rule_update(
        rule=Rule.objects.get(name="Free shipping banner"), data={"cooldown_seconds": 3600}
    )
    from rules_engine.actions.update import Update

    write_then_fail = Update.run

    def run(self: Update, prepared: Any, ctx: Any) -> Any:
        outcome = write_then_fail(self, prepared, ctx)
        if ctx.subject == "2":
            raise RuntimeError("disk full")
        return outcome

    monkeypatch.setattr(Update, "run", run)
    first = accept({**demo_context, "user": {**demo_context["user"], "id": 1}}, key="one")
    second = accept({**demo_context, "user": {**demo_context["user"], "id": 2}}, key="two")
    # when the batch is decided (without savepoints first, then again with them)
    with caplog.at_level("INFO", logger="ingress.services"):
        decided = services.events_process_pending()
    # then both completed, the failed write left nothing behind and is recorded as an error
    assert decided == [str(first.pk), str(second.pk)]
    assert "again with savepoints: RuntimeError: disk full" in caplog.text
    assert [e.status for e in Event.objects.order_by("received_at")] == ["completed"] * 2
    assert dict(SubjectState.objects.values_list("subject", "attributes")) == {
        "1": {"checkout_count": 1, "last_cart_total": 120.5}
    }
    failed = Execution.objects.get(events__pk=second.pk)
    assert [(r["type"], r["status"], r.get("error")) for r in failed.action_results][-2:] == [
        ("update", "error", "disk full"),
        ("display_message", "ok", None),
    ]
    # and the first pass's cooldown claims were given back: both customers got free shipping
    # once, in the pass that committed
    for event in (first, second):
        execution = Execution.objects.get(events__pk=event.pk)
        assert "Free shipping banner" in [r["name"] for r in execution.matched_rules]


@pytest.mark.django_db
def test_a_batch_loads_its_events_in_one_statement_with_every_field(demo, demo_context):
    # given three received events, one of them with a subject and a nested payload
    accepted = [
        accept({**demo_context, "user": {**demo_context["user"], "id": i}}, key=f"one-{i}")
        for i in range(3)
    ]
    ids = services._claim_received(limit=10)
    statements: list[str] = []

    def record(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    # when the claimed batch is decided
    with connection.execute_wrapper(record):
        decided = services.events_decide(event_ids=ids)
    # then the events were read (and locked) by one statement, oldest first
    reads = [s for s in statements if s.lstrip().startswith("SELECT") and "ingress_event" in s]
    assert len(reads) == 1
    assert "FOR UPDATE" in reads[0]
    assert [e.pk for e in decided] == [e.pk for e in accepted]
    # and each event came back whole: nothing deferred, the payload decoded as the ORM does
    assert [e.get_deferred_fields() for e in decided] == [set(), set(), set()]
    stored = {e.pk: e for e in Event.objects.filter(pk__in=ids)}
    assert [e.payload for e in decided] == [stored[e.pk].payload for e in decided]
    assert [e.payload["user"]["id"] for e in decided] == [0, 1, 2]
    assert [(e.key, e.attempts, e.status) for e in decided] == [
        (f"one-{i}", 1, "completed") for i in range(3)
    ]


@pytest.mark.django_db
def test_a_batch_without_failures_opens_no_savepoint(demo, demo_context):
    # given three received events (the demo's rules write subject state)
    for i in range(3):
        accept({**demo_context, "user": {**demo_context["user"], "id": i}}, key=f"sp-{i}")
    statements: list[str] = []

    def record(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    # when they are decided
    with connection.execute_wrapper(record):
        decided = services.events_process_pending()
    # then all three completed, and the only savepoint is the batch's transaction itself
    # (a savepoint here because the test runs inside a transaction), not one per decision
    assert len(decided) == 3
    assert [s.split()[0] for s in statements if "SAVEPOINT" in s] == ["SAVEPOINT", "RELEASE"]
    assert SubjectState.objects.count() == 3


@pytest.mark.django_db
def test_a_batch_reads_its_subjects_ahead_once_and_sees_its_own_writes(demo, demo_context):
    # given customer 1 accepted the terms earlier, and three events: customers 1, 2, then 1 again
    from rules_engine.models import Acknowledgement

    Acknowledgement.objects.create(ack_key="age-check-v1", subject="1", entry_point=demo)
    for number, customer in enumerate([1, 2, 1]):
        accept(
            {**demo_context, "user": {**demo_context["user"], "id": customer}}, key=f"ra-{number}"
        )
    statements: list[str] = []

    def record(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    # when they are decided in one batch
    with connection.execute_wrapper(record):
        services.events_process_pending()
    # then the acknowledgements were read once for the batch, and once more for customer 1,
    # whose state the first decision wrote (so the third decision reads it anew)
    reads = [s for s in statements if "FROM rules_engine_acknowledgement" in s]
    assert ["ANY(" in s for s in reads] == [True, False]
    # and the batch read the three tables ahead in one statement
    tables = [
        "rules_engine_subjectstate",
        "rules_engine_acknowledgement",
        "rules_engine_preference",
    ]
    ahead = [s for s in statements if "ANY(" in s and any(f"FROM {t}" in s for t in tables)]
    assert len(ahead) == 1
    assert all(f"FROM {t}" in ahead[0] for t in tables)
    # and the third decision counted on from the first one's write
    updates = [
        next(r for r in execution.action_results if r["type"] == "update")
        for execution in (Execution.objects.get(events__key=f"ra-{number}") for number in range(3))
    ]
    assert [
        (u["subject"], u["before"]["checkout_count"], u["after"]["checkout_count"]) for u in updates
    ] == [
        ("1", None, 1),
        ("2", None, 1),
        ("1", 1, 2),
    ]
    # and the terms customer 1 accepted were found ahead and again
    acks = [
        next(r for r in execution.action_results if r["type"] == "user_acknowledge")["acknowledged"]
        for execution in (Execution.objects.get(events__key=f"ra-{number}") for number in range(3))
    ]
    assert acks == [True, False, True]
