"""Rules engine models: entry points, rules, message templates, the audit trail and answers.

Models hold data and constraints only. Every write goes through `rules_engine.services`, which
validates and compiles first, so nothing here has logic in `save()` or signals.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

key_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.\-]{0,99}$",
    "Use lowercase letters, digits, '.', '_' and '-' (start with a letter or digit).",
)


class EntryPoint(models.Model):
    """A named place where applications ask for decisions (e.g. `checkout`), with its schema.

    `context_schema` validates every context sent to it; `sensitive_paths` (dotted paths, `*`
    for any list item or key) are masked in the audit snapshot; `critical` makes unresolved
    blocking effects (acknowledgements) block the caller; `subject_path` names the context
    value that identifies the subject whose stored state rules can read as `$state`.
    """

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    description = models.TextField(blank=True)
    context_schema = models.JSONField(default=dict, blank=True)
    sensitive_paths = models.JSONField(default=list, blank=True)
    subject_path = models.CharField(max_length=200, blank=True, default="")
    critical = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class MessageTemplate(models.Model):
    """A message body that actions reference by `key`, rendered safely in its `format`."""

    class Format(models.TextChoices):
        TEXT = "text", "Plain text"
        HTML = "html", "HTML (escaped and sanitised)"
        MARKDOWN = "markdown", "Markdown (rendered and sanitised)"
        JSON = "json", "JSON"

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.TEXT)
    body = models.TextField()
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} ({self.format})"


class Rule(models.Model):
    """A versioned rule: a JSONLogic `condition` and the `actions` to dispatch when it matches.

    Rules of an entry point run in ascending `priority`; `stop_processing` ends evaluation after
    this rule matches. `version` grows by one on every change; rollback stores an older
    version's content as a new version, so history only ever grows.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    entry_point = models.ForeignKey(EntryPoint, on_delete=models.PROTECT, related_name="rules")
    priority = models.IntegerField(default=100)
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    condition = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=list, blank=True)
    stop_processing = models.BooleanField(default=False)
    # At most one firing per subject per period: 0 disables; the key (JSONLogic) names the
    # subject and defaults to the entry point's subject.
    cooldown_seconds = models.PositiveIntegerField(default=0)
    cooldown_key = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["entry_point__key", "priority", "name"]
        indexes = [
            # The hot query: active rules of one entry point in priority order.
            models.Index(fields=["entry_point", "active", "priority"], name="rule_ep_active_prio"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


class RulesetSnapshot(models.Model):
    """The rules one compiled rule set evaluates, in order: `[{id, name, version, priority}]`.

    Shared by the audit rows of every decision made with that rule set, so a row need not
    repeat a hundred rules that did not match (see `Execution.rule_results`). Keyed by the
    SHA-256 of its content, written once (insert-or-ignore) in the transaction of the first
    audit row that refers to it, never changed.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    entry_point = models.ForeignKey(EntryPoint, on_delete=models.PROTECT, related_name="+")
    rules = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.entry_point_id}:{self.digest[:12]} ({len(self.rules)} rules)"


class Execution(models.Model):
    """The audit row of one decision: what was asked, which rules matched, what they did.

    Written in the same transaction as the decision's side effects, so a decision never exists
    without its audit row. `context_snapshot` has the entry point's sensitive paths masked.
    With `ruleset` set, `rule_results` lists only the rules whose outcome was not
    `not_matched` (and those under an experiment); every other rule of the snapshot was
    evaluated and did not match (`selectors.execution_rule_results` gives the full list).
    Without it (older rows, experiments running), `rule_results` has every rule.
    """

    class Outcome(models.TextChoices):
        MATCHED = "matched", "Matched"
        NO_MATCH = "no_match", "No match"
        ERROR = "error", "Error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: exec_ep_created (entry point, then time) serves every lookup by entry
    # point, and each index costs every audit insert.
    entry_point = models.ForeignKey(
        EntryPoint, on_delete=models.PROTECT, related_name="executions", db_index=False
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    matched_rules = models.JSONField(default=list)
    rule_results = models.JSONField(default=list)
    context_snapshot = models.JSONField(default=dict)
    effects = models.JSONField(default=list)
    action_results = models.JSONField(default=list)
    blocking = models.BooleanField(default=False)
    duration_ms = models.FloatField(default=0)
    caller = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    # Not indexed: nothing looks executions up by rule set, and every index costs each insert.
    ruleset = models.ForeignKey(
        RulesetSnapshot,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["entry_point", "-created_at"], name="exec_ep_created")]

    def __str__(self) -> str:
        return f"{self.entry_point_id}:{self.id} {self.outcome}"


class Acknowledgement(models.Model):
    """A subject's recorded acceptance of the terms named `ack_key` (e.g. `checkout-terms-v3`).

    Once recorded, `user_acknowledge` effects for the same subject and key are resolved and no
    longer block critical entry points.
    """

    id = models.BigAutoField(primary_key=True)
    ack_key = models.CharField(max_length=100)
    subject = models.CharField(max_length=200)
    entry_point = models.ForeignKey(
        EntryPoint, on_delete=models.PROTECT, related_name="acknowledgements"
    )
    execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.ForeignKey(
        Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    accepted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            models.UniqueConstraint(fields=["ack_key", "subject"], name="ack_unique_subject_key")
        ]
        # A batch of event decisions reads its subjects' acknowledgements in one query.
        indexes = [models.Index(fields=["subject"], name="ack_subject")]

    def __str__(self) -> str:
        return f"{self.subject} accepted {self.ack_key}"


class Preference(models.Model):
    """A subject's stored answer to a `user_preference` question named `preference_key`."""

    id = models.BigAutoField(primary_key=True)
    preference_key = models.CharField(max_length=100)
    subject = models.CharField(max_length=200)
    value = models.JSONField()
    execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["preference_key", "subject"]
        constraints = [
            models.UniqueConstraint(
                fields=["preference_key", "subject"], name="pref_unique_subject_key"
            )
        ]
        # A batch of event decisions reads its subjects' preferences in one query.
        indexes = [models.Index(fields=["subject"], name="pref_subject")]

    def __str__(self) -> str:
        return f"{self.subject}: {self.preference_key}={self.value!r}"


class SubjectState(models.Model):
    """Per-subject attributes that `update` actions write and rules read back as `$state`.

    The shipped allow-listed update target (`subject_state`); host projects add their own
    models through `VERDICT_UPDATE_TARGETS`.
    """

    id = models.BigAutoField(primary_key=True)
    subject = models.CharField(max_length=200, unique=True)
    attributes = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["subject"]

    def __str__(self) -> str:
        return self.subject


class Cooldown(models.Model):
    """An active cooldown in the embedded store (no Redis): rule fired for subject until then."""

    id = models.BigAutoField(primary_key=True)
    rule_id = models.UUIDField()
    subject = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["rule_id", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["rule_id", "subject"], name="cooldown_rule_subject")
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}:{self.subject} until {self.expires_at}"


class RuleChange(models.Model):
    """A proposed change to a rule on a critical entry point, waiting for a second person.

    Four-eyes review: the author's content is stored as a draft (`content`, in the form the
    rule services accept, the entry point by key) next to the live content it replaces
    (`before`, with `base_version`), so the diff and the staleness check never depend on the
    rule's later history. A different user holding `approve_rulechange` applies it through the
    rule services (status `applied`, `applied_version` set) or rejects it; a draft whose rule
    moved on since `base_version` is refused as stale. The author alone may withdraw their
    draft (status `withdrawn`); `reviewer`, `reviewed_at` and `review_note` then record the
    author as the one who closed it, when, and why. Rows are never deleted: they are the
    record of who proposed what, why, and who reviewed or withdrew it.
    """

    class Operation(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"
        ROLLBACK = "rollback", "Rollback"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    id = models.BigAutoField(primary_key=True)
    operation = models.CharField(max_length=16, choices=Operation.choices)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    # Null for a new rule until it is applied; kept (SET_NULL) when the rule is deleted later,
    # with `rule_key` still naming it.
    rule = models.ForeignKey(
        Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    rule_key = models.UUIDField(null=True, blank=True)
    rule_name = models.CharField(max_length=200)
    # The critical entry point that made the review necessary (the rule's target).
    entry_point = models.ForeignKey(
        EntryPoint, on_delete=models.PROTECT, related_name="rule_changes"
    )
    base_version = models.PositiveIntegerField(null=True, blank=True)
    rollback_version = models.PositiveIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    content = models.JSONField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    applied_version = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_rulechange", "Can approve or reject rule changes (publisher)")]
        indexes = [models.Index(fields=["rule_key", "status"], name="rulechange_rule_status")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.operation} {self.rule_name} ({self.status})"


# --- issue 7 §1: saved test cases of rules (engineer T) ----------------------------------


class RuleTestCase(models.Model):
    """A saved context and what its rule should do with it: match or not, and which actions.

    Cases run against the entry point's whole rule set (so a higher-priority rule that stops
    processing can make a case fail). Activating or changing an active rule runs every case of
    the entry point first, and a failing case refuses the change (`rules_engine.testcases`).
    `expect_actions` lists action type names the matched rule must dispatch (empty: not
    checked).
    """

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="test_cases")
    name = models.CharField(max_length=200)
    context = models.JSONField(default=dict)
    expect_match = models.BooleanField(default=True)
    expect_actions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rule", "name"]
        constraints = [
            # Refusals name a case by its name: it must say which one.
            models.UniqueConstraint(fields=["rule", "name"], name="testcase_rule_name")
        ]

    def __str__(self) -> str:
        return self.name
