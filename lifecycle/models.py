"""Models of lifecycle: outcome labels, backtests of candidate rules, and backfill runs.

Models hold data and constraints only; writes go through `lifecycle.services`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

DEFAULT_POSITIVE_LABELS = ["FRAUD", "CHARGEBACK"]


def default_positive_labels() -> list[str]:
    """The labels a backtest counts as positive unless told otherwise (FRAUD, CHARGEBACK)."""
    return list(DEFAULT_POSITIVE_LABELS)


class Label(models.Model):
    """The known outcome of one decision: an execution or an event labelled FRAUD, NORMAL, ...

    Exactly one of `execution` and `event` is set, and each of them has at most one label
    (importing again replaces it). `label` is upper-case: FRAUD, NORMAL, CHARGEBACK or a custom
    name. `source` says where it came from (e.g. `csv:chargebacks-2025-05.csv`).
    """

    class Known(models.TextChoices):
        FRAUD = "FRAUD", "Fraud"
        NORMAL = "NORMAL", "Normal"
        CHARGEBACK = "CHARGEBACK", "Chargeback"

    id = models.BigAutoField(primary_key=True)
    execution = models.OneToOneField(
        "rules_engine.Execution",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="label",
    )
    event = models.OneToOneField(
        "ingress.Event", null=True, blank=True, on_delete=models.CASCADE, related_name="label"
    )
    label = models.CharField(max_length=50, db_index=True)
    source = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(execution__isnull=False) & Q(event__isnull=True))
                | (Q(execution__isnull=True) & Q(event__isnull=False)),
                name="label_execution_xor_event",
            )
        ]

    def __str__(self) -> str:
        target = f"execution {self.execution_id}" if self.execution_id else f"event {self.event_id}"
        return f"{self.label} ({target})"


class Backtest(models.Model):
    """A candidate rule (or rule set) replayed against stored history, and what it would change.

    `mode` rule: `rule` is the live rule replaced by `candidate` (a dict of condition, actions,
    priority, active, stop_processing; `rule` null adds a new rule). `mode` ruleset: `candidate`
    is a list of rule contents replacing every active rule of the entry point. `source` says
    which history is replayed in [window_from, window_to): audit snapshots (masked) or stored
    events' payloads. Status moves queued -> running -> done | cancelled | failed; `processed`
    of `total` contexts is the progress, `results` the report (see `lifecycle.backtests`).
    `attempt` grows each time a worker (re)starts it, so a stale run stops itself.
    """

    class Mode(models.TextChoices):
        RULE = "rule", "One rule"
        RULESET = "ruleset", "Whole rule set"

    class Source(models.TextChoices):
        EXECUTIONS = "executions", "Audit snapshots (masked)"
        EVENTS = "events", "Stored events (full payloads)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.BigAutoField(primary_key=True)
    entry_point = models.ForeignKey(
        "rules_engine.EntryPoint", on_delete=models.CASCADE, related_name="backtests"
    )
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.RULE)
    rule = models.ForeignKey(
        "rules_engine.Rule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    candidate = models.JSONField(default=dict)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.EXECUTIONS)
    window_from = models.DateTimeField()
    window_to = models.DateTimeField()
    positive_labels = models.JSONField(default=default_positive_labels)
    sample_size = models.PositiveIntegerField(default=10)
    note = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    processed = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backtest #{self.pk} {self.entry_point_id} ({self.status})"


class BackfillRun(models.Model):
    """One applied `events_backfill` of a window; running the same window again reuses it.

    `key` is `backfill:<hash of type and window>`. Each event it re-decided has a
    BackfilledEvent row (and the new Execution carries `<key>:<event id>` as its request id),
    so running the same window again skips the events already done.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=60, unique=True)
    event_type = models.CharField(max_length=100, blank=True)
    window_from = models.DateTimeField()
    window_to = models.DateTimeField()
    total = models.PositiveIntegerField(default=0)
    applied = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    runs = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key} ({self.applied} applied)"


class BackfilledEvent(models.Model):
    """An event a backfill run re-decided, with the decision it wrote (once per run and event)."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(BackfillRun, on_delete=models.CASCADE, related_name="events")
    event = models.ForeignKey("ingress.Event", on_delete=models.CASCADE, related_name="+")
    execution = models.ForeignKey(
        "rules_engine.Execution", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "event"], name="backfilled_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.event_id}"
