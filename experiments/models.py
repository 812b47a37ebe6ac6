"""Models of experiments: A/B experiments on rule variations and percentage rollouts.

An experiment splits the subjects of an entry point between variants of one live rule. The
split is sticky: a subject's bucket is the SHA-256 of the experiment's own `salt` and the
subject (see `experiments.runtime.assign`). The engine applies the assigned variant's content
and records `"variant": "<experiment>:<variant>"` in that rule's entry of the audit row's
`rule_results`. Models hold data and constraints only; writes go through
`experiments.services`.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from rules_engine.models import EntryPoint, Rule, key_validator

CONTROL = "control"

variant_key_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_\-]{0,49}$",
    "Use lowercase letters, digits, '_' and '-' (start with a letter or digit).",
)


def new_salt() -> str:
    """A random salt, so two experiments never split the same subjects the same way."""
    return secrets.token_hex(8)


class Experiment(models.Model):
    """A split of an entry point's subjects between variants of one live rule.

    `kind` experiment: each subject gets its variant's condition and actions. `kind` rollout:
    a new version of the rule for the share of subjects its variant weighs; with `shadow` the
    new version is only evaluated and recorded (`shadow_outcome`), the live rule decides and
    no effect of the new version is applied. Status moves draft -> running -> stopped; only a
    draft's salt, rule and variants can change. `winner` is the variant promoted to the live
    rule. Results count downstream outcomes by `outcome_action_type` (acknowledgements of the
    executions that dispatched an action of that type) or by `outcome_labels` (labels of the
    exposed executions, from the lifecycle app).
    """

    class Kind(models.TextChoices):
        EXPERIMENT = "experiment", "A/B experiment"
        ROLLOUT = "rollout", "Percentage rollout"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EXPERIMENT)
    shadow = models.BooleanField(
        default=False, help_text="Rollouts only: evaluate and record the new version, apply none"
    )
    entry_point = models.ForeignKey(
        EntryPoint, on_delete=models.PROTECT, related_name="experiments"
    )
    # Kept (null) when the rule is deleted: the results stay readable.
    rule = models.ForeignKey(
        Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiments"
    )
    salt = models.CharField(max_length=64, default=new_salt)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    winner = models.CharField(max_length=50, blank=True, default="")
    outcome_action_type = models.CharField(max_length=50, blank=True, default="")
    outcome_labels = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class Variant(models.Model):
    """One arm of an experiment: its share (`weight`) and the rule content it runs.

    `content` holds any of condition, actions, priority, stop_processing; missing keys keep
    the live rule's. The `control` variant is the live rule as it is (its content is unused).
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.CharField(max_length=50, validators=[variant_key_validator])
    weight = models.PositiveIntegerField(default=1)
    content = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "key"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="variant_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}:{self.key} ({self.weight})"
