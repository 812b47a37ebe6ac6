"""Events admin: read-only pages and cancelling through the service."""

from __future__ import annotations

import pytest

from ingress import services
from ingress.models import Event

pytestmark = pytest.mark.django_db


def test_event_pages_render_and_cancel_action_cancels(admin_client, demo, demo_context):
    # given two events, one already finished
    open_event, _ = services.event_accept(type="checkout", key="a", payload=demo_context)
    done, _ = services.event_accept(type="checkout", key="b", payload=demo_context)
    services.event_process(event_id=str(done.pk))
    # when both pages render and both are cancelled from the list
    assert admin_client.get("/admin/ingress/event/").status_code == 200
    assert admin_client.get(f"/admin/ingress/event/{open_event.pk}/change/").status_code == 200
    response = admin_client.post(
        "/admin/ingress/event/",
        {"action": "cancel_events", "_selected_action": [str(open_event.pk), str(done.pk)]},
    )
    # then only the open one was cancelled
    assert response.status_code == 302
    assert dict(Event.objects.values_list("key", "status")) == {"a": "cancelled", "b": "completed"}
    assert admin_client.get("/admin/ingress/pendingcancellation/").status_code == 200
