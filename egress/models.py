"""Egress models: where outputs go (Destination) and the transactional outbox (Delivery).

A Delivery row is written in the decision's transaction, so a decision and the messages it
sends commit together or not at all; sending happens after commit, outside any transaction,
and every attempt is kept as a DeliveryAttempt. Writes go through `egress.services`.
"""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from rules_engine.models import key_validator

# Only plain web URLs: no file://, ftp:// or other schemes a sender might be tricked into.
http_url_validator = URLValidator(
    schemes=["http", "https"], message="Enter an http:// or https:// URL."
)


class Destination(models.Model):
    """A registered place that `webhook` and `publish` actions may send to.

    `kind` webhook: an HTTP(S) `url`, POSTed JSON signed with `secret` (HMAC-SHA256; the
    services generate one when none is given). `kind` redis_stream: a `stream` key on the
    project's Redis (settings.REDIS_URL). Rules can only name destinations registered here,
    and only active ones; `timeout_seconds` bounds each attempt and `max_attempts` how many
    are made before a delivery is dead-lettered.
    """

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (HTTP POST)"
        REDIS_STREAM = "redis_stream", "Redis stream (XADD)"

    name = models.CharField(max_length=100, unique=True, validators=[key_validator])
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WEBHOOK)
    description = models.TextField(blank=True)
    url = models.CharField(
        "URL",
        max_length=2000,
        blank=True,
        validators=[http_url_validator],
        help_text="Webhooks only: the http:// or https:// URL to POST to. Redirects are not "
        "followed.",
    )
    secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="Webhooks only: the HMAC-SHA256 signing secret (generated when left blank).",
    )
    stream = models.CharField(
        max_length=200, blank=True, help_text="Redis streams only: the stream key to XADD to."
    )
    active = models.BooleanField(default=True)
    timeout_seconds = models.FloatField(
        default=5, validators=[MinValueValidator(0.1), MaxValueValidator(30)]
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def target(self) -> str:
        """Where messages go: the URL of a webhook, `redis:<key>` of a stream."""
        return self.url if self.kind == self.Kind.WEBHOOK else f"redis:{self.stream}"

    @property
    def secret_hint(self) -> str:
        """The first characters of the secret, enough to tell secrets apart, never all of it."""
        return f"{self.secret[:4]}…" if self.secret else "—"


# The action type that sends to each kind of destination.
ACTION_KINDS = {"webhook": Destination.Kind.WEBHOOK, "publish": Destination.Kind.REDIS_STREAM}


class Delivery(models.Model):
    """One message to send to a destination: the outbox row, written with the decision.

    `idempotency_key` is the action's key (`ActionContext.idempotency_key()`), so running the
    same action again finds this row instead of writing a second one; the delivery `id` is
    the receiver's idempotency key. Status: pending -> delivered, or retrying (after a failed
    attempt, due again at `next_attempt_at`) -> delivered | dead (after the destination's
    max_attempts); dead deliveries can be retried, open ones cancelled. A worker sends only
    while it holds `lease_until`, so two workers never send one delivery at once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Dead (gave up)"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.PENDING, Status.RETRYING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    idempotency_key = models.CharField(max_length=200, unique=True)
    destination = models.ForeignKey(
        Destination, on_delete=models.PROTECT, related_name="deliveries"
    )
    # The delivery outlives its event and decision: it is the record of what was sent.
    event = models.ForeignKey(
        "ingress.Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    execution = models.ForeignKey(
        "rules_engine.Execution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Attempts made in total (the number of the last DeliveryAttempt).
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` when the delivery was last retried by hand: the backoff and the limit count
    # the attempts made since then, while the history keeps all of them.
    attempts_before_retry = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The retry scan: open deliveries whose next attempt is due, oldest first.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_open_due",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
            # The admin list filtered by status, newest first.
            models.Index(fields=["status", "-created_at"], name="delivery_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} → {self.destination_id} ({self.status})"

    @property
    def attempts_since_retry(self) -> int:
        """Attempts made since the delivery was created or last retried by hand."""
        return self.attempts - self.attempts_before_retry


class DeliveryAttempt(models.Model):
    """One try at sending a delivery: when, how long, the answer (status code) or the error.

    Created when a worker claims the delivery and completed after the send; an attempt whose
    worker died has no duration and says so in `error`.
    """

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_history")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    # The start of the response body, or the stream entry id: what the receiver answered.
    response = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="delivery_attempt_number")
        ]

    def __str__(self) -> str:
        outcome = "ok" if self.ok else (self.error or "failed")
        return f"attempt {self.number}: {outcome}"
