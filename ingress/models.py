"""Ingress models: events received over REST or Redis Streams, and early cancellations."""

from __future__ import annotations

import uuid

from django.db import models


class Event(models.Model):
    """One event to decide on: its `type` names the entry point, `payload` is the context.

    (source, key) is the idempotency key: the same pair again returns this row, never a second
    one. Status moves received -> processing -> waiting (delayed actions pending) -> completed,
    or to cancelled / failed. `depth` counts how many `emit_event` hops produced it, so rules
    cannot loop.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        WAITING = "waiting", "Waiting for delayed actions"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    OPEN_STATUSES = (Status.RECEIVED, Status.PROCESSING, Status.WAITING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100)
    source = models.CharField(max_length=100, default="api")
    key = models.CharField(max_length=200)
    subject = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    depth = models.PositiveSmallIntegerField(default=0)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    execution = models.ForeignKey(
        "rules_engine.Execution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    error = models.TextField(blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="event_unique_source_key")
        ]
        indexes = [
            # Recovery scans open events by status and age.
            models.Index(fields=["status", "received_at"], name="event_status_received"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.source}:{self.key} ({self.status})"


class PendingCancellation(models.Model):
    """A cancellation that arrived before its event; applied when the event arrives."""

    id = models.BigAutoField(primary_key=True)
    source = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    reason = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="pending_cancel_source_key")
        ]

    def __str__(self) -> str:
        return f"cancel {self.source}:{self.key}"
