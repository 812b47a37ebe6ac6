"""`manage.py scheduling_sweep`: one round in-process, and the loop as a process."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from scheduling.models import ScheduledAction
from tests.scheduling.conftest import make_row
from tests.support.processes import manage, wait_for


@pytest.mark.django_db
def test_one_round_publishes_due_rows_and_recovers_lost_ones():
    # given a due pending row and an enqueued row whose message was lost long ago
    now = timezone.now()
    due = make_row(due_at=now + timedelta(seconds=1))
    lost = make_row(due_at=now - timedelta(minutes=5), status="enqueued", lease_until=now)
    out = io.StringIO()
    # when the sweeper runs one round
    call_command("scheduling_sweep", "--once", stdout=out)
    # then the due row is published and the lost one is pending again for the next round
    statuses = dict(ScheduledAction.objects.values_list("pk", "status"))
    assert (statuses[due.pk], statuses[lost.pk]) == ("enqueued", "pending")
    assert out.getvalue().splitlines() == [
        "scheduling sweeper ready (interval 0.2 s)",
        "scheduling sweeper stopped",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_loop_stops_cleanly_on_sigterm():
    # given a running sweeper process
    sweeper = manage("sweeper", "scheduling_sweep", ready_text="scheduling sweeper ready").start()
    # when it receives SIGTERM
    sweeper.stop(timeout=5)
    # then it finishes its round and exits with status 0
    assert sweeper.proc is not None
    assert sweeper.proc.returncode == 0
    assert wait_for(lambda: "scheduling sweeper stopped" in sweeper.log_tail())
