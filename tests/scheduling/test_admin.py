"""Admin of delayed actions: a read-only list with filters, and cancelling through the service."""

from __future__ import annotations

import pytest
from django.utils import timezone

from scheduling.models import ScheduledAction
from tests.scheduling.conftest import make_row

URL = "/admin/scheduling/scheduledaction/"


@pytest.mark.django_db
def test_the_list_filters_by_status_and_shows_no_add_button(admin_client):
    # given a pending and a done action
    now = timezone.now()
    make_row(due_at=now, subject="waiting-one")
    make_row(due_at=now, subject="finished-one", status="done")
    # when the list is filtered by status pending
    response = admin_client.get(URL, {"status__exact": "pending"})
    # then only the pending one is listed, and actions cannot be added by hand
    body = response.content.decode()
    assert response.status_code == 200
    assert ("waiting-one" in body, "finished-one" in body) == (True, False)
    assert f"{URL}add/" not in body


@pytest.mark.django_db
def test_cancel_selected_cancels_the_rows_that_have_not_started(admin_client):
    # given a pending and a running action
    now = timezone.now()
    pending = make_row(due_at=now)
    running = make_row(due_at=now, status="running")
    # when both are selected for the cancel action
    response = admin_client.post(
        URL,
        {"action": "cancel_selected", "_selected_action": [str(pending.pk), str(running.pk)]},
        follow=True,
    )
    # then only the pending one is cancelled, and the admin says so
    statuses = dict(ScheduledAction.objects.values_list("pk", "status"))
    assert (statuses[pending.pk], statuses[running.pk]) == ("cancelled", "running")
    assert "Cancelled 1 of 2 selected actions" in response.content.decode()
