"""Scheduling services: create, sweep, run exactly once, recover, cancel (time passed as now=)."""

from __future__ import annotations

import json
import math
import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from ingress import services as ingress_services
from ingress.models import Event
from rules_engine.actions import ActionContext
from scheduling import services
from scheduling.models import ScheduledAction
from tests.scheduling.conftest import count_of, count_spec, make_event, make_row
from tests.support.processes import wait_for


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def status_of(row: ScheduledAction) -> str:
    return ScheduledAction.objects.values_list("status", flat=True).get(pk=row.pk)


@pytest.fixture(params=["postgresql", "orm"])
def statements(request, monkeypatch) -> str:
    """Run the test with the raw PostgreSQL statements and again with the ORM path (SQLite's)."""
    if request.param == "orm":
        monkeypatch.setattr(services, "_on_postgresql", lambda: False)
    return str(request.param)


def context() -> ActionContext:
    return ActionContext(
        entry_point_key="checkout",
        critical=False,
        data={},
        subject="u1",
        rule_id="00000000-0000-4000-8000-000000000001",
        rule_name="count later",
        rule_version=1,
        action_index=0,
        dry_run=False,
    )


@pytest.mark.django_db
def test_create_stores_an_action_due_after_the_horizon_pending(django_capture_on_commit_callbacks):
    # given a decision transaction
    now = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        # when it schedules an action a minute ahead
        row = services.scheduled_action_create(
            spec=count_spec(), due_at=now + seconds(60), data={}, ctx=context(), now=now
        )
    # then only the database holds it, for the sweeper
    row.refresh_from_db()
    assert (row.status, row.enqueued_at, row.lease_until, row.subject) == (
        "pending",
        None,
        None,
        "u1",
    )
    assert callbacks == []


@pytest.mark.django_db
def test_create_publishes_an_action_due_within_the_horizon_after_commit(
    django_capture_on_commit_callbacks,
):
    # given a decision transaction
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        # when it schedules an action one second ahead (horizon 2 s)
        row = services.scheduled_action_create(
            spec=count_spec(), due_at=now + seconds(1), data={}, ctx=context(), now=now
        )
    # then the row is enqueued at once and published once the decision commits
    row.refresh_from_db()
    assert (row.status, row.enqueued_at, row.lease_until) == ("enqueued", now, now + seconds(12))
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_sweep_publishes_the_pending_rows_due_within_the_horizon():
    # given pending rows overdue, due soon, due at the horizon, due later, and finished rows
    now = timezone.now()
    overdue = make_row(due_at=now - seconds(5))
    soon = make_row(due_at=now + seconds(1.5))
    edge = make_row(due_at=now + seconds(2))
    later = make_row(due_at=now + seconds(2.5))
    cancelled = make_row(due_at=now, status="cancelled")
    done = make_row(due_at=now, status="done")
    # when the sweeper runs
    published = services.scheduled_actions_sweep(now=now)
    # then exactly the due-soon pending rows are enqueued with a lease, the others untouched
    assert published == 3
    assert [status_of(r) for r in (overdue, soon, edge, later, cancelled, done)] == [
        "enqueued",
        "enqueued",
        "enqueued",
        "pending",
        "cancelled",
        "done",
    ]
    assert set(
        ScheduledAction.objects.filter(status="enqueued").values_list("enqueued_at", "lease_until")
    ) == {(now, now + seconds(12))}


@pytest.mark.django_db
def test_sweep_claims_batch_after_batch_until_no_due_row_is_left(settings):
    # given five due rows and a batch size of two
    settings.VERDICT = {**settings.VERDICT, "SCHEDULE_BATCH": 2}
    now = timezone.now()
    for index in range(5):
        make_row(due_at=now + seconds(index / 10))
    # when the sweeper runs once
    published = services.scheduled_actions_sweep(now=now)
    # then all five are published
    assert published == 5
    assert list(ScheduledAction.objects.values_list("status", flat=True)) == ["enqueued"] * 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweepers_skip_the_rows_another_one_has_locked():
    # given four due rows, the two earliest locked by another sweeper's open transaction
    now = timezone.now()
    rows = [make_row(due_at=now + seconds(1.5 + index / 10)) for index in range(4)]
    locked, released = threading.Event(), threading.Event()

    def other_sweeper() -> None:
        try:
            with transaction.atomic():
                list(
                    ScheduledAction.objects.select_for_update().filter(
                        pk__in=[r.pk for r in rows[:2]]
                    )
                )
                locked.set()
                released.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_sweeper)
    thread.start()
    assert locked.wait(10)
    try:
        # when this sweeper runs meanwhile
        published = services.scheduled_actions_sweep(now=now)
    finally:
        released.set()
        thread.join(10)
    # then it published the two unlocked rows without waiting, and left the locked ones
    assert published == 2
    assert [status_of(r) for r in rows] == ["pending", "pending", "enqueued", "enqueued"]


def test_slices_group_rows_due_within_the_slice_width():
    # given rows due 0, 5, 10, 11 and 25 ms after t
    t = timezone.now()
    rows = [(f"r{ms}", t + timedelta(milliseconds=ms)) for ms in (11, 0, 5, 10, 25)]
    # when they are sliced 10 ms wide
    slices = services.slice_rows(rows, width=timedelta(milliseconds=10), most=50)  # type: ignore[arg-type]
    # then each slice is due at its last row, so none starts early
    assert slices == [
        (["r0", "r5", "r10"], t + timedelta(milliseconds=10)),
        (["r11"], t + timedelta(milliseconds=11)),
        (["r25"], t + timedelta(milliseconds=25)),
    ]


def test_slices_hold_at_most_the_configured_number_of_rows():
    # given five rows due at the same instant
    t = timezone.now()
    rows = [(f"r{i}", t) for i in range(5)]
    # when sliced with at most two rows per message
    slices = services.slice_rows(rows, width=timedelta(milliseconds=10), most=2)  # type: ignore[arg-type]
    # then three messages carry them
    assert [ids for ids, _ in slices] == [["r0", "r1"], ["r2", "r3"], ["r4"]]


@pytest.mark.django_db
def test_run_claims_a_due_enqueued_row_runs_its_action_and_marks_it_done():
    # given an enqueued row that is due
    now = timezone.now()
    row = make_row(due_at=now - timedelta(milliseconds=5), status="enqueued")
    # when its message is delivered
    [ran] = services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # then the action wrote its update and the row is done with the action's result
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error, count_of("u1")) == ("done", 1, "", 1)
    assert row.result == {
        "status": "ok",
        "target": "subject_state",
        "subject": "u1",
        "before": {"count": None},
        "after": {"count": 1},
        "written": True,
    }
    assert row.due_at <= now <= row.started_at <= row.finished_at  # type: ignore[operator]
    assert (ran.pk, row.lease_until, row.claim_token) == (row.pk, None, ran.claim_token)


@pytest.mark.django_db
def test_a_duplicate_delivery_runs_nothing():
    # given a row that already ran
    now = timezone.now()
    row = make_row(due_at=now, status="enqueued")
    services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # when the same message is delivered again
    again = services.scheduled_actions_run(ids=[str(row.pk)], now=now + seconds(1))
    # then nothing is claimed and the action ran once
    row.refresh_from_db()
    assert (again, row.status, row.attempts, count_of("u1")) == ([], "done", 1, 1)


@pytest.mark.django_db
def test_run_leaves_a_row_that_is_not_due_yet():
    # given a row due in one second
    now = timezone.now()
    row = make_row(due_at=now + seconds(1), status="enqueued")
    # when a message for it arrives now
    ran = services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # then it is not claimed: no action ever starts early
    row.refresh_from_db()
    assert (ran, row.status, row.attempts, count_of("u1")) == ([], "enqueued", 0, None)


@pytest.mark.django_db
def test_an_action_of_a_cancelled_event_never_starts():
    # given an event whose action was published
    now = timezone.now()
    event = make_event()
    row = make_row(due_at=now, status="enqueued", event=event)
    # when the event is cancelled before the message is delivered
    ingress_services.event_cancel(event=event, reason="customer left")
    ran = services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # then the delivery is a no-op
    row.refresh_from_db()
    assert (ran, row.status, row.attempts, count_of("u1")) == ([], "cancelled", 0, None)


@pytest.mark.django_db
def test_a_failing_action_fails_its_row_with_the_reason(statements):
    # given an update whose subject expression gives null (raw statements and the ORM path)
    now = timezone.now()
    spec = count_spec()
    spec["params"]["subject"] = {"var": "missing"}
    row = make_row(due_at=now, status="enqueued", spec=spec)
    # when it runs
    services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # then the row fails with the handler's error and is not retried
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_until, row.result) == ("failed", 1, None, {})
    assert row.error == (
        "ActionRuntimeError: update has no subject (the subject expression gave null)"
    )


@pytest.mark.django_db
def test_the_last_finished_action_completes_its_waiting_event():
    # given an event waiting for two due actions
    now = timezone.now()
    event = make_event()
    first = make_row(due_at=now, status="enqueued", event=event)
    second = make_row(due_at=now, status="enqueued", event=event, subject="u2")
    # when the first runs, the event still waits; when the second runs, it is completed
    services.scheduled_actions_run(ids=[str(first.pk)], now=now)
    waiting = Event.objects.get(pk=event.pk).status
    services.scheduled_actions_run(ids=[str(second.pk)], now=now)
    assert (waiting, Event.objects.get(pk=event.pk).status) == ("waiting", "completed")


@pytest.mark.django_db(transaction=True)
def test_recovery_leaves_alone_a_row_whose_action_is_running_past_its_lease():
    # given a claimed row whose action takes 1.5 s
    now = timezone.now()
    row = make_row(due_at=now, status="enqueued", spec=count_spec(sleep_ms=1500))
    thread = threading.Thread(target=run_and_close, args=([str(row.pk)],))
    thread.start()
    try:
        wait_for(lambda: status_of(row) == "running", timeout=10)
        # when recovery runs as if its lease had run out while the action runs
        recovered = services.scheduled_actions_recover(now=timezone.now() + seconds(61))
    finally:
        thread.join(10)
    # then the locked row is skipped: it finishes once, and nothing runs it again
    row.refresh_from_db()
    assert (recovered, row.status, row.attempts, count_of("u1")) == (0, "done", 1, 1)


@pytest.mark.django_db
def test_a_failing_action_does_not_undo_the_other_actions_of_its_slice():
    # given a slice with a failing action due before a working one
    now = timezone.now()
    spec = count_spec()
    spec["params"]["subject"] = {"var": "missing"}
    failing = make_row(due_at=now - seconds(0.002), status="enqueued", spec=spec)
    working = make_row(due_at=now, status="enqueued", subject="u2")
    # when the slice runs
    ran = services.scheduled_actions_run(ids=[str(failing.pk), str(working.pk)], now=now)
    # then the failure is recorded and the other action's write and done mark commit
    assert [(r.pk, r.status) for r in ran] == [(failing.pk, "failed"), (working.pk, "done")]
    assert (status_of(failing), status_of(working), count_of("u2")) == ("failed", "done", 1)


def run_and_close(ids: list[str]) -> None:
    try:
        services.scheduled_actions_run(ids=ids)
    finally:
        connection.close()


@pytest.mark.django_db
def test_recover_makes_lost_rows_pending_and_gives_up_on_rows_that_keep_losing_workers():
    # given rows past their lease (enqueued, running, running for the 5th time) and rows within
    now = timezone.now()
    past, ahead = now - seconds(1), now + seconds(1)
    event = make_event()
    lost_message = make_row(due_at=now, status="enqueued", lease_until=past, attempts=0)
    dead_worker = make_row(due_at=now, status="running", lease_until=past, attempts=1)
    poison = make_row(due_at=now, status="running", lease_until=past, attempts=5, event=event)
    waiting = make_row(due_at=now, status="enqueued", lease_until=ahead)
    busy = make_row(due_at=now, status="running", lease_until=ahead, attempts=1)
    # when recovery runs
    recovered = services.scheduled_actions_recover(now=now)
    # then the lost rows are pending again, the poison row failed (and its event settled)
    assert recovered == 3
    assert [status_of(r) for r in (lost_message, dead_worker, poison, waiting, busy)] == [
        "pending",
        "pending",
        "failed",
        "enqueued",
        "running",
    ]
    poison.refresh_from_db()
    assert poison.error == "gave up after 5 attempts: the worker was lost each time"
    assert Event.objects.get(pk=event.pk).status == "completed"


@pytest.mark.django_db
def test_cancel_cancels_only_the_selected_rows_that_have_not_started():
    # given rows in every state
    now = timezone.now()
    rows = {
        status: make_row(due_at=now, status=status)
        for status in ("pending", "enqueued", "running", "done", "failed")
    }
    # when all of them are cancelled
    cancelled = services.scheduled_actions_cancel(ids=[r.pk for r in rows.values()], now=now)
    # then only the pending and enqueued ones are
    assert cancelled == 2
    assert {s: status_of(r) for s, r in rows.items()} == {
        "pending": "cancelled",
        "enqueued": "cancelled",
        "running": "running",
        "done": "done",
        "failed": "failed",
    }


@pytest.mark.django_db
def test_a_slice_holding_every_open_action_of_an_event_completes_it(statements):
    # given an event waiting for two due actions, both in one slice
    now = timezone.now()
    event = make_event()
    first = make_row(due_at=now - seconds(0.002), status="enqueued", event=event)
    second = make_row(due_at=now, status="enqueued", event=event, subject="u2")
    # when the slice runs
    ran = services.scheduled_actions_run(ids=[str(first.pk), str(second.pk)], now=now)
    # then both actions are done and the event is completed by the same transaction
    assert [(r.pk, r.status) for r in ran] == [(first.pk, "done"), (second.pk, "done")]
    event.refresh_from_db()
    assert (event.status, event.finished_at is not None) == ("completed", True)


@pytest.mark.django_db
def test_an_event_waits_while_an_action_outside_the_slice_is_open(statements):
    # given an event with a due action and another one still pending for later
    now = timezone.now()
    event = make_event()
    due = make_row(due_at=now, status="enqueued", event=event)
    later = make_row(due_at=now + seconds(60), event=event, subject="u2")
    # when the due action's slice runs
    services.scheduled_actions_run(ids=[str(due.pk)], now=now)
    # then the action is done but the event keeps waiting for the pending one
    event.refresh_from_db()
    assert (status_of(due), status_of(later), event.status, event.finished_at) == (
        "done",
        "pending",
        "waiting",
        None,
    )


@pytest.mark.django_db
def test_a_cancelled_event_stays_cancelled_when_its_running_action_finishes(statements):
    # given an event whose last action was claimed, then the event was cancelled
    now = timezone.now()
    event = make_event(status="cancelled")
    row = make_row(due_at=now, status="enqueued", event=event)
    # when the action finishes
    services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # then only waiting events are completed: the cancellation stands
    assert (status_of(row), Event.objects.get(pk=event.pk).status) == ("done", "cancelled")


@pytest.mark.django_db
def test_a_row_cancelled_between_publish_and_claim_is_not_run_and_its_slice_is(statements):
    # given a published slice of two rows, one of them cancelled before the message arrives
    now = timezone.now()
    cancelled = make_row(due_at=now - seconds(0.002), status="enqueued")
    kept = make_row(due_at=now, status="enqueued", subject="u2")
    services.scheduled_actions_cancel(ids=[cancelled.pk], now=now)
    # when the slice's message is delivered
    ran = services.scheduled_actions_run(ids=[str(cancelled.pk), str(kept.pk)], now=now)
    # then only the other row runs; the cancelled one never starts
    cancelled.refresh_from_db()
    assert [r.pk for r in ran] == [kept.pk]
    assert (cancelled.status, cancelled.attempts, cancelled.started_at, count_of("u1")) == (
        "cancelled",
        0,
        None,
        None,
    )
    assert (status_of(kept), count_of("u2")) == ("done", 1)


@pytest.mark.django_db
def test_run_returns_the_rows_with_their_claim_and_outcome(statements):
    # given a due enqueued row
    now = timezone.now()
    row = make_row(due_at=now, status="enqueued")
    # when it runs
    [ran] = services.scheduled_actions_run(ids=[str(row.pk)], now=now)
    # then the returned row carries the claim and the outcome, and the rest loads on access
    row.refresh_from_db()
    assert (ran.status, ran.attempts, ran.claim_token, ran.error) == (
        "done",
        1,
        row.claim_token,
        "",
    )
    assert (ran.result, ran.finished_at, ran.created_at) == (
        row.result,
        row.finished_at,
        row.created_at,
    )


@pytest.mark.django_db
def test_sweep_on_the_orm_path_publishes_the_pending_rows_due_within_the_horizon(monkeypatch):
    # given the ORM path (other databases) and pending rows due soon and later
    monkeypatch.setattr(services, "_on_postgresql", lambda: False)
    now = timezone.now()
    soon = make_row(due_at=now + seconds(1))
    later = make_row(due_at=now + seconds(3))
    # when the sweeper runs
    published = services.scheduled_actions_sweep(now=now)
    # then the due-soon row is enqueued with its lease, the other left pending
    soon.refresh_from_db()
    assert (published, soon.status, soon.enqueued_at, soon.lease_until, status_of(later)) == (
        1,
        "enqueued",
        now,
        now + seconds(12),
        "pending",
    )


def test_results_are_stored_as_the_django_json_encoder_writes_them():
    # given a result holding the values DjangoJSONEncoder formats and a non-string key
    result = {
        "at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "time": time(3, 4, 5, 678901),
        "amount": Decimal("1.10"),
        "id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "took": timedelta(seconds=90),
        1: "int key",
    }
    # when it is serialised for the outcome statement
    stored = json.loads(services._result_json(result))
    # then every value reads back as the encoder wrote it
    assert stored == {
        "at": "2026-01-02T03:04:05.678Z",
        "day": "2026-01-02",
        "time": "03:04:05.678",
        "amount": "1.10",
        "id": "00000000-0000-4000-8000-000000000001",
        "took": "P0DT00H01M30S",
        "1": "int key",
    }


def test_a_result_holding_an_integer_past_64_bits_keeps_it_exact():
    # given a result with a 70-bit integer (beyond what orjson writes)
    result = {"big": 2**70, "at": datetime(2026, 1, 2, tzinfo=UTC)}
    # when it is serialised for the outcome statement
    stored = json.loads(services._result_json(result))
    # then the integer is kept exactly, the rest formatted by the encoder as before
    assert stored == {"big": 1180591620717411303424, "at": "2026-01-02T00:00:00Z"}


def test_a_result_holding_nan_is_stored_with_null_instead():
    # given a result with a NaN, which PostgreSQL's jsonb refuses
    result = {"ratio": math.nan, "ok": True}
    # when it is serialised for the outcome statement
    stored = json.loads(services._result_json(result))
    # then the NaN becomes null and the row can still be written
    assert stored == {"ratio": None, "ok": True}


@pytest.mark.django_db(transaction=True)
def test_two_slices_finishing_an_event_s_last_actions_at_once_complete_it(monkeypatch):
    # given a waiting event whose last two open actions are in two different slices
    event = make_event()
    due = timezone.now() - seconds(1)
    first = make_row(due_at=due, event=event, status="enqueued", subject="a")
    second = make_row(due_at=due, event=event, status="enqueued", subject="b")
    # and the first slice held open right after writing its outcomes, before it commits
    written, release = threading.Event(), threading.Event()
    finish = services._finish

    def finish_then_hold(rows):
        finish(rows)
        if threading.current_thread().name == "first-slice":
            written.set()
            release.wait(10)

    monkeypatch.setattr(services, "_finish", finish_then_hold)

    def run(row: ScheduledAction) -> None:
        try:
            services.scheduled_actions_run(ids=[str(row.pk)])
        finally:
            connection.close()

    slice_one = threading.Thread(target=run, args=(first,), name="first-slice")
    slice_one.start()
    assert written.wait(10)
    # when the second slice finishes while the first has not committed yet
    slice_two = threading.Thread(target=run, args=(second,), name="second-slice")
    slice_two.start()
    slice_two.join(0.5)
    release.set()
    slice_one.join(10)
    slice_two.join(10)
    # then both actions are done and the event is completed (not left waiting forever)
    assert [status_of(first), status_of(second)] == ["done", "done"]
    assert Event.objects.get(pk=event.pk).status == "completed"
