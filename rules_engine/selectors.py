"""Reads of the rules engine: every query the engine, API and admin make lives here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


def acknowledgement_exists(*, ack_key: str, subject: str) -> bool:
    """Whether the subject has accepted the terms named ack_key."""
    return Acknowledgement.objects.filter(ack_key=ack_key, subject=subject).exists()


def preference_value(*, preference_key: str, subject: str) -> Preference | None:
    """The subject's stored answer to a preference question, or None."""
    return Preference.objects.filter(preference_key=preference_key, subject=subject).first()


def subject_state_attributes(*, subject: str) -> dict[str, Any]:
    """The stored `$state` attributes of a subject ({} when none were written)."""
    row = SubjectState.objects.filter(subject=subject).only("attributes").first()
    return dict(row.attributes) if row else {}


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
