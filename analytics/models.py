"""Models of analytics: hourly rollups of the audit trail and how far they have read it."""

from __future__ import annotations

from django.db import models

from rules_engine.models import EntryPoint


class RuleRollup(models.Model):
    """How one rule fared in one UTC hour, per experiment variant ("" when none).

    Written only by `analytics.services.rollups_run` (counts are added, never recomputed per
    request). `evaluations` counts the rule's results whose condition ran (matched,
    not_matched, error, suppressed); `skipped` (after a stop_processing rule) is kept apart.
    The latency histogram is of the whole decision's `duration_ms` (the audit has no per-rule
    time), with the bounds of `analytics.histogram.BOUNDS_MS`. Day buckets are sums of hours.
    """

    # No foreign key: the analytics of a deleted rule stay readable in the dashboards.
    rule_id = models.UUIDField()
    rule_name = models.CharField(
        max_length=200, blank=True, help_text="Its name in the audit rows last rolled up."
    )
    entry_point = models.ForeignKey(EntryPoint, on_delete=models.CASCADE, related_name="+")
    bucket_start = models.DateTimeField(help_text="Start of the UTC hour.")
    variant = models.CharField(max_length=200, blank=True, default="")
    evaluations = models.PositiveBigIntegerField(default=0)
    matches = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    suppressions = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    latency_counts = models.JSONField(default=list)
    latency_sum_ms = models.FloatField(default=0)
    latency_max_ms = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bucket_start", "variant"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule_id", "bucket_start", "variant"], name="rulerollup_rule_bucket_variant"
            )
        ]
        indexes = [
            models.Index(fields=["entry_point", "bucket_start"], name="rulerollup_ep_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.bucket_start:%Y-%m-%d %H}h {self.variant or '-'}"


class EntryPointRollup(models.Model):
    """The decisions of one entry point in one UTC hour: outcomes, errors and latency.

    Written only by `analytics.services.rollups_run`. `errors` counts decisions whose outcome
    is error; `action_errors` counts failed actions; the histogram is of `duration_ms`.
    """

    entry_point = models.ForeignKey(EntryPoint, on_delete=models.CASCADE, related_name="+")
    bucket_start = models.DateTimeField(help_text="Start of the UTC hour.")
    decisions = models.PositiveBigIntegerField(default=0)
    matched = models.PositiveBigIntegerField(default=0)
    no_match = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    blocking = models.PositiveBigIntegerField(default=0)
    action_errors = models.PositiveBigIntegerField(default=0)
    latency_counts = models.JSONField(default=list)
    latency_sum_ms = models.FloatField(default=0)
    latency_max_ms = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bucket_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["entry_point", "bucket_start"], name="entrypointrollup_ep_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.entry_point_id} {self.bucket_start:%Y-%m-%d %H}h"


class RollupWatermark(models.Model):
    """How far the rollups have read the audit trail: every Execution with
    `created_at < position` is counted, none after it.

    Locked (SELECT ... FOR UPDATE) and advanced by `rollups_run` in the transaction that adds
    the counts, so concurrent or repeated runs never count a row twice.
    """

    name = models.CharField(max_length=50, primary_key=True)
    position = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
