"""`manage.py demo_events`: send the order demo's events and report what happened to them."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from ingress import services
from ingress.models import Event


class Command(BaseCommand):
    """Send three order events: one completes after its delayed follow-up, one is cancelled
    while its follow-up waits, one is cancelled before it arrives. Needs a running worker."""

    help = "Send the order demo events (a delayed action and cancellations) and report them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args: Any, **options: Any) -> None:
        run = time.strftime("%H%M%S")

        def payload(order: str, total: int) -> dict[str, Any]:
            return {"order": {"id": order, "total": total}, "customer": {"id": 7}}

        completes, _ = services.event_accept(
            type="order.created", key=f"demo-{run}-1", payload=payload("A-1", 640)
        )
        cancelled, _ = services.event_accept(
            type="order.created", key=f"demo-{run}-2", payload=payload("A-2", 80)
        )
        services.event_cancel_by_key(source="api", key=f"demo-{run}-3", reason="demo: early")
        early, _ = services.event_accept(
            type="order.created", key=f"demo-{run}-3", payload=payload("A-3", 10)
        )
        self._wait(lambda: Event.objects.get(pk=cancelled.pk).status != "received", options)
        services.event_cancel(event=cancelled, reason="demo: order cancelled")
        self._wait(lambda: Event.objects.get(pk=completes.pk).status == "completed", options)
        for event in Event.objects.filter(pk__in=[completes.pk, cancelled.pk, early.pk]):
            actions = ", ".join(
                f"{a.spec['type']} due {a.due_at:%H:%M:%S} {a.status}"
                for a in event.scheduled_actions.order_by("due_at")
            )
            self.stdout.write(f"event {event.key}: {event.status}; delayed: {actions or 'none'}")

    def _wait(self, done: Any, options: dict[str, Any]) -> None:
        deadline = time.monotonic() + options["timeout"]
        while not done():
            if time.monotonic() > deadline:
                self.stderr.write("timed out waiting for the worker")
                return
            time.sleep(0.2)
