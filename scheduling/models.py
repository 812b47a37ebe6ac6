"""Scheduling models: delayed actions, durable in PostgreSQL until they run."""

from __future__ import annotations

import uuid

from django.db import models


class ScheduledAction(models.Model):
    """One action to run at `due_at`: the durable truth; Celery only holds seconds of it.

    Status: pending (in the database only) -> enqueued (claimed by a sweeper and published) ->
    running (claimed by a worker in one conditional UPDATE) -> done | failed, or cancelled
    from pending/enqueued. `lease_until` bounds how long a row may stay enqueued or running
    before recovery makes it pending again. `spec` is the action spec without its delay and
    `data` the evaluation data it runs against.

    `claim_token` names the one task delivery that moved the row to running: only that
    delivery may mark it done or failed. `started_at` is set when the row is claimed and, once
    the action finished, is the instant its handler was called.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ENQUEUED = "enqueued", "Enqueued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    CANCELLABLE = (Status.PENDING, Status.ENQUEUED)
    OPEN_STATUSES = (Status.PENDING, Status.ENQUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(
        "ingress.Event",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="scheduled_actions",
    )
    execution = models.ForeignKey(
        "rules_engine.Execution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="scheduled_actions",
    )
    entry_point_key = models.CharField(max_length=100)
    critical = models.BooleanField(default=False)
    rule_id = models.UUIDField()
    rule_name = models.CharField(max_length=200)
    rule_version = models.PositiveIntegerField()
    action_index = models.PositiveSmallIntegerField()
    spec = models.JSONField()
    data = models.JSONField(default=dict)
    subject = models.CharField(max_length=200, blank=True)
    event_depth = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            # The sweeper's query: pending rows due soon, oldest first.
            models.Index(
                fields=["due_at"],
                name="sched_pending_due",
                condition=models.Q(status="pending"),
            ),
            # Recovery: enqueued/running rows whose lease ran out.
            models.Index(
                fields=["lease_until"],
                name="sched_leased",
                condition=models.Q(status__in=["enqueued", "running"]),
            ),
            models.Index(fields=["event", "status"], name="sched_event_status"),
        ]

    def __str__(self) -> str:
        return f"{self.spec.get('type')} due {self.due_at:%Y-%m-%d %H:%M:%S} ({self.status})"
