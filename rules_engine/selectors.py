"""Reads of the rules engine: every query the engine, API and admin make lives here."""

from __future__ import annotations

from collections.abc import Iterable
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
    SubjectState,
)


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
# several times more CPU than PostgreSQL spends answering it.


def _first_row(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _json(value: Any) -> Any:
    # JSON columns come back as text from both PostgreSQL (jsonb, as Django loads it) and SQLite.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def acknowledgement_exists(*, ack_key: str, subject: str) -> bool:
    """Whether the subject has accepted the terms named ack_key."""
    table = Acknowledgement._meta.db_table
    sql = f"SELECT 1 FROM {table} WHERE ack_key = %s AND subject = %s LIMIT 1"  # noqa: S608
    return _first_row(sql, [ack_key, subject]) is not None


def preference_value(*, preference_key: str, subject: str) -> Preference | None:
    """The subject's stored answer to a preference question, or None."""
    table = Preference._meta.db_table
    sql = f"SELECT id, value FROM {table} WHERE preference_key = %s AND subject = %s"  # noqa: S608
    row = _first_row(sql, [preference_key, subject])
    if row is None:
        return None
    value = _json(row[1])
    return Preference(id=row[0], preference_key=preference_key, subject=subject, value=value)


def subject_state_attributes(*, subject: str) -> dict[str, Any]:
    """The stored `$state` attributes of a subject ({} when none were written)."""
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
    return Execution.objects.filter(pk=execution_id).select_related("entry_point").first()


def execution_list(
    *,
    entry_point: str | None = None,
    outcome: str | None = None,
    rule_id: str | None = None,
    since: Any = None,
    until: Any = None,
) -> QuerySet[Execution]:
    """Audit rows newest first, filtered by entry point key, outcome, matched rule and time."""
    queryset = Execution.objects.select_related("entry_point").order_by("-created_at")
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


def cooldowns_active(*, rule_id: str | None = None) -> list[dict[str, Any]]:
    """Active cooldowns (all, or one rule's) with their rule's name, soonest to end last."""
    from rules_engine import cooldowns

    active = cooldowns.store().list(str(rule_id) if rule_id else None)
    names = dict(Rule.objects.filter(pk__in={c.rule_id for c in active}).values_list("pk", "name"))
    return [
        {**c.as_dict(), "rule_name": names.get(_as_uuid(c.rule_id), "(deleted rule)")}
        for c in active
    ]


def _as_uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
