"""Reads of the rules engine: every query the engine, API and admin make lives here."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection
from django.db.models import QuerySet

from rules_engine.models import (
    Acknowledgement,
    EntryPoint,
    Execution,
    MessageTemplate,
    Preference,
    Rule,
    RuleChange,
    SubjectState,
)

# The permission of the publisher role: approving (or rejecting) another person's draft.
APPROVE_PERMISSION = "rules_engine.approve_rulechange"


def entry_point_get(*, key: str) -> EntryPoint | None:
    """The entry point with this key, active or not, or None."""
    return EntryPoint.objects.filter(key=key).first()


def rules_active_for(*, entry_point: EntryPoint) -> QuerySet[Rule]:
    """Active rules of an entry point in evaluation order (priority, then name, then id)."""
    return Rule.objects.filter(entry_point=entry_point, active=True).order_by(
        "priority", "name", "id"
    )


def templates_by_key(*, keys: Iterable[str]) -> dict[str, MessageTemplate]:
    """Message templates with the given keys, by key (missing keys are simply absent)."""
    return {t.key: t for t in MessageTemplate.objects.filter(key__in=set(keys))}


def template_keys_missing(*, keys: Iterable[str]) -> list[str]:
    """Which of these template keys do not exist, sorted."""
    wanted = set(keys)
    found = set(MessageTemplate.objects.filter(key__in=wanted).values_list("key", flat=True))
    return sorted(wanted - found)


def rules_referencing_template(*, key: str) -> list[Rule]:
    """Rules whose actions reference the template `key` (checked before deleting it)."""
    return [
        rule
        for rule in Rule.objects.filter(actions__icontains=key)
        if any(
            isinstance(action, dict) and (action.get("params") or {}).get("template") == key
            for action in rule.actions
        )
    ]


# The three reads below run in every decision that shows terms, asks a preference or reads
# `$state`: plain SQL on the primary/unique keys, because building the ORM query costs
# several times more CPU than PostgreSQL spends answering it. Deciding a batch of events,
# they come from `subjects_read_ahead` instead: one query for the whole batch.


_READ_AHEAD_SQL = (
    # kind, subject, key, id, value: "s" state (attributes), "a" acknowledgement (ack_key),
    # "p" preference (preference_key, id, value). The first branch types the columns.
    "SELECT 's', subject, NULL, CAST(NULL AS bigint), attributes "  # noqa: S608  (table names)
    f"FROM {SubjectState._meta.db_table} WHERE subject = ANY(%s) UNION ALL "
    "SELECT 'a', subject, ack_key, NULL, NULL "
    f"FROM {Acknowledgement._meta.db_table} WHERE subject = ANY(%s) UNION ALL "
    "SELECT 'p', subject, preference_key, id, value "
    f"FROM {Preference._meta.db_table} WHERE subject = ANY(%s)"
)


@dataclass
class _ReadAhead:
    """The subject rows of a batch, read once (see subjects_read_ahead)."""

    subjects: set[str]
    states: dict[str, Any] = field(default_factory=dict)
    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    preferences: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)


_read_ahead: ContextVar[_ReadAhead | None] = ContextVar("subjects_read_ahead", default=None)


@contextmanager
def subjects_read_ahead(*, subjects: Iterable[str]) -> Iterator[None]:
    """Within the block, answer the three reads below for `subjects` from one query made now
    (for a batch of decisions in one transaction, instead of up to three queries each).

    Other subjects are read as usual. A subject whose state is written in the block is read
    from the database again afterwards (`subject_state_written`), so a later decision about
    it sees the write.
    """
    wanted = sorted(set(subjects))
    ahead = _ReadAhead(set(wanted))
    # One round trip for the three tables (a batch runs this every few milliseconds).
    for kind, subject, key, pk, value in _rows(_READ_AHEAD_SQL, wanted) if wanted else ():
        if kind == "s":
            ahead.states[subject] = _json(value)
        elif kind == "a":
            ahead.acknowledged.add((key, subject))
        else:
            ahead.preferences[(key, subject)] = (pk, _json(value))
    token = _read_ahead.set(ahead)
    try:
        yield
    finally:
        _read_ahead.reset(token)


def subject_state_written(*, subject: str) -> None:
    """Forget what was read ahead about `subject`: its state was just written."""
    ahead = _read_ahead.get()
    if ahead is not None:
        ahead.subjects.discard(subject)


def _ahead_for(subject: str) -> _ReadAhead | None:
    ahead = _read_ahead.get()
    return ahead if ahead is not None and subject in ahead.subjects else None


def _rows(sql: str, subjects: list[str]) -> list[tuple[Any, ...]]:
    # `sql` compares with `= ANY(%s)`, each time with all of `subjects`.
    times = sql.count("= ANY(%s)")
    if connection.vendor != "postgresql":
        # SQLite has no arrays: one placeholder per subject.
        sql = sql.replace("= ANY(%s)", f"IN ({', '.join(['%s'] * len(subjects))})")
        params: list[Any] = subjects * times
    else:
        params = [subjects] * times
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _first_row(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _json(value: Any) -> Any:
    # JSON columns come back as text from both PostgreSQL (jsonb, as Django loads it) and SQLite.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def acknowledgement_exists(*, ack_key: str, subject: str) -> bool:
    """Whether the subject has accepted the terms named ack_key."""
    if (ahead := _ahead_for(subject)) is not None:
        return (ack_key, subject) in ahead.acknowledged
    table = Acknowledgement._meta.db_table
    sql = f"SELECT 1 FROM {table} WHERE ack_key = %s AND subject = %s LIMIT 1"  # noqa: S608
    return _first_row(sql, [ack_key, subject]) is not None


def preference_value(*, preference_key: str, subject: str) -> Preference | None:
    """The subject's stored answer to a preference question, or None."""
    if (ahead := _ahead_for(subject)) is not None:
        row = ahead.preferences.get((preference_key, subject))
    else:
        table = Preference._meta.db_table
        sql = f"SELECT id, value FROM {table} WHERE preference_key = %s AND subject = %s"  # noqa: S608
        found = _first_row(sql, [preference_key, subject])
        row = None if found is None else (found[0], _json(found[1]))
    if row is None:
        return None
    return Preference(id=row[0], preference_key=preference_key, subject=subject, value=row[1])


def subject_state_attributes(*, subject: str) -> dict[str, Any]:
    """The stored `$state` attributes of a subject ({} when none were written)."""
    if (ahead := _ahead_for(subject)) is not None:
        return dict(ahead.states.get(subject) or {})
    table = SubjectState._meta.db_table
    row = _first_row(f"SELECT attributes FROM {table} WHERE subject = %s", [subject])  # noqa: S608
    return dict(_json(row[0])) if row else {}


def rule_history(*, rule: Rule) -> QuerySet[Any]:
    """Every stored version of a rule, newest first."""
    return rule.history.all().order_by("-history_date", "-history_id")


def version_get(*, instance: Any, version: int) -> Any | None:
    """The history record holding version `version` of a rule, entry point or template."""
    return instance.history.filter(version=version).order_by("-history_date", "-history_id").first()


def execution_get(*, execution_id: Any) -> Execution | None:
    """One audit row by id, or None."""
    return (
        Execution.objects.filter(pk=execution_id).select_related("entry_point", "ruleset").first()
    )


def execution_rule_results(*, execution: Execution) -> list[dict[str, Any]]:
    """Every rule's result of an audit row, in evaluation order.

    A row with a rule-set snapshot stores only the results other than `not_matched`; the
    snapshot's other rules are filled in as `not_matched`. Rows without one hold every result.
    Reads the snapshot (one query unless selected with the row).
    """
    stored = execution.rule_results if isinstance(execution.rule_results, list) else []
    if execution.ruleset_id is None:
        return stored
    by_id = {str(r.get("id")): r for r in stored if isinstance(r, dict)}
    rules = execution.ruleset.rules if execution.ruleset else []
    return [by_id.get(str(rule["id"])) or {**rule, "outcome": "not_matched"} for rule in rules]


def execution_list(
    *,
    entry_point: str | None = None,
    outcome: str | None = None,
    rule_id: str | None = None,
    since: Any = None,
    until: Any = None,
) -> QuerySet[Execution]:
    """Audit rows newest first, filtered by entry point key, outcome, matched rule and time."""
    queryset = Execution.objects.select_related("entry_point", "ruleset").order_by("-created_at")
    if entry_point:
        queryset = queryset.filter(entry_point__key=entry_point)
    if outcome:
        queryset = queryset.filter(outcome=outcome)
    if rule_id:
        # A text match on the UUID works on PostgreSQL and SQLite alike and cannot collide.
        queryset = queryset.filter(matched_rules__icontains=str(rule_id))
    if since:
        queryset = queryset.filter(created_at__gte=since)
    if until:
        queryset = queryset.filter(created_at__lt=until)
    return queryset


def cooldowns_active(
    *, rule_id: str | None = None, entry_points: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Active cooldowns (all, or one rule's) with their rule's name, soonest to end last;
    with `entry_points`, only those of rules on these entry points (an API key's limit)."""
    from rules_engine import cooldowns

    active = cooldowns.store().list(str(rule_id) if rule_id else None)
    ids = {c.rule_id: parse_uuid(c.rule_id) for c in active}
    rules = Rule.objects.filter(pk__in={u for u in ids.values() if u is not None})
    if entry_points:
        rules = rules.filter(entry_point__key__in=sorted(entry_points))
    names = dict(rules.values_list("pk", "name"))
    if entry_points:
        active = [c for c in active if ids[c.rule_id] in names]
    return [
        {**c.as_dict(), "rule_name": names.get(ids[c.rule_id], "(deleted rule)")} for c in active
    ]


def rule_entry_point_key(*, rule_id: Any) -> str | None:
    """The key of the entry point of rule `rule_id`, or None (no such rule)."""
    return Rule.objects.filter(pk=rule_id).values_list("entry_point__key", flat=True).first()


def parse_uuid(value: str) -> Any:
    """`value` as a UUID, or None when it is not one."""
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# --- four-eyes review of rules on critical entry points ------------------------------------


def rule_needs_review(*, rule_id: Any = None, entry_point: EntryPoint | None = None) -> bool:
    """Whether a change to rule `rule_id` (None: a new rule) moving it to `entry_point` (None:
    where it is) must be a draft: when the rule's live entry point or the target is critical.

    The live entry point is read from the database, so an unsaved edit cannot dodge review by
    moving the rule in the same change.
    """
    if entry_point is not None and entry_point.critical:
        return True
    if rule_id is None:
        return False
    return Rule.objects.filter(pk=rule_id, entry_point__critical=True).exists()


def rule_change_get(*, change_id: Any) -> RuleChange | None:
    """One rule change by id (with its entry point, rule and people), or None."""
    return (
        RuleChange.objects.select_related("entry_point", "rule", "author", "reviewer")
        .filter(pk=change_id)
        .first()
    )


def rule_change_list(
    *, status: str | None = None, entry_point: str | None = None, rule_id: Any = None
) -> QuerySet[RuleChange]:
    """Rule changes newest first, filtered by status, entry point key and rule."""
    queryset = RuleChange.objects.select_related("entry_point", "rule", "author", "reviewer")
    if status:
        queryset = queryset.filter(status=status)
    if entry_point:
        queryset = queryset.filter(entry_point__key=entry_point)
    if rule_id:
        queryset = queryset.filter(rule_key=rule_id)
    return queryset.order_by("-created_at", "-id")


def rule_change_is_stale(*, change: RuleChange) -> bool:
    """Whether the live rule moved on (or was deleted) since the draft was made.

    A new rule's draft is never stale. Approving a stale draft is refused: it was reviewed
    against content that is no longer live.
    """
    if change.operation == RuleChange.Operation.CREATE:
        return False
    if change.rule_key is None:
        return True
    live_version = Rule.objects.filter(pk=change.rule_key).values_list("version", flat=True)
    return list(live_version) != [change.base_version]


def rule_change_review_refusal(*, change: RuleChange, user: Any) -> str | None:
    """Why `user` may not approve or reject `change` (None when they may).

    Four-eyes: only a draft, only with the publisher permission, never its own author.
    """
    if change.status != RuleChange.Status.DRAFT:
        return f"change #{change.pk} is {change.get_status_display().lower()}, not a draft"
    if user is None or not user.is_authenticated or not user.has_perm(APPROVE_PERMISSION):
        return "reviewing rule changes needs the publisher role (approve_rulechange)"
    if change.author_id is not None and change.author_id == user.pk:
        return "the author of a change cannot review it; another publisher must"
    return None


def critical_entry_point_change_refusal(*, entry_point: EntryPoint, user: Any) -> str | None:
    """Why `user` may not change or delete a critical entry point directly (None when they
    may): its schema, masking, activity and criticality decide as much as its rules do, so
    only the publisher role changes them. No user (a command, the demo loader) is trusted."""
    if user is None or not entry_point.critical or user.has_perm(APPROVE_PERMISSION):
        return None
    return (
        f"changing the critical entry point {entry_point.key!r} needs the publisher role "
        "(approve_rulechange)"
    )


def rule_change_withdraw_refusal(*, change: RuleChange, user: Any) -> str | None:
    """Why `user` may not withdraw `change` (None when they may): only a draft, only its author."""
    if change.status != RuleChange.Status.DRAFT:
        return f"change #{change.pk} is {change.get_status_display().lower()}, not a draft"
    if user is None or not user.is_authenticated or change.author_id != user.pk:
        return "only the author of a draft can withdraw it"
    return None


def rule_change_diff(*, change: RuleChange) -> list[dict[str, Any]]:
    """What the change does to the live content it was made against: field, old, new.

    A new rule lists every field (old None); a deletion lists every field (new None).
    """
    from rules_engine.services import RULE_FIELDS

    before = change.before or {}
    after = change.content or {}
    return [
        {"field": name, "old": before.get(name), "new": after.get(name)}
        for name in RULE_FIELDS
        if before.get(name) != after.get(name) or (name in before) != (name in after)
    ]


def execution_entry_point_key(*, execution_id: Any) -> str | None:
    """The entry point key of an execution, or None if there is no such execution."""
    return (
        Execution.objects.filter(pk=execution_id).values_list("entry_point__key", flat=True).first()
    )


def entry_point_sensitive_paths(*, key: str) -> tuple[str, ...]:
    """The sensitive paths of an entry point (from the compiled ruleset when cached)."""
    from rules_engine.cache import rulesets

    ruleset = rulesets.get(key)
    if ruleset is not None:
        return ruleset.sensitive_paths
    paths = EntryPoint.objects.filter(key=key).values_list("sensitive_paths", flat=True).first()
    return tuple(paths or ())
