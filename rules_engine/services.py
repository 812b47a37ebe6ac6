"""Writes of the rules engine: every change to entry points, rules, templates and answers.

Each service validates first and writes in one transaction, so a refused change writes nothing.
Every change to what decisions depend on bumps the shared ruleset generation (see `cache.py`),
so every process serves the change from its next request on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from rules_engine import cache, selectors, testcases
from rules_engine.actions import ActionSpecError, PreparedAction, registry
from rules_engine.conditions import compile_condition
from rules_engine.errors import ErrorDetail, InvalidInput, NotFound
from rules_engine.functions import registry as function_registry
from rules_engine.jsonlogic import JsonLogicError
from rules_engine.jsonlogic.lint import lint, lint_condition
from rules_engine.models import (
    Acknowledgement,
    EntryPoint,
    MessageTemplate,
    Preference,
    Rule,
    RuleChange,
)
from rules_engine.paths import json_path
from rules_engine.rendering import TemplateError, compile_template
from rules_engine.validation import SchemaError, check_schema

User = AbstractBaseUser | AnonymousUser | None

RULE_FIELDS = (
    "name",
    "description",
    "entry_point",
    "priority",
    "active",
    "condition",
    "actions",
    "stop_processing",
    "cooldown_seconds",
    "cooldown_key",
    "metadata",
)
ENTRY_POINT_FIELDS = (
    "key",
    "description",
    "context_schema",
    "sensitive_paths",
    "subject_path",
    "critical",
    "active",
)
TEMPLATE_FIELDS = ("key", "format", "body", "description")
MAX_ACTIONS = 50


def _real_user(user: User) -> Any:
    return user if isinstance(user, AbstractBaseUser) else None


def _field_errors(exc: ValidationError) -> list[ErrorDetail]:
    return [
        {"path": "$" if name == "__all__" else f"$.{name}", "message": str(message)}
        for name, messages in exc.message_dict.items()
        for message in messages
    ]


def _stamp_history(instance: Any, *, user: User, change_note: str) -> None:
    # django-simple-history reads these two attributes when it writes the history row.
    instance._history_user = _real_user(user)
    instance._change_reason = change_note[:100] if change_note else None


# --- rules -------------------------------------------------------------------------------


def rule_compile(
    *, condition: Any, actions: Any, cooldown_key: Any = None
) -> tuple[Any, list[PreparedAction]]:
    """Compile a condition (and cooldown key) and prepare every action, as a rule version runs.

    Raises InvalidInput (code invalid_rule) listing every node that does not compile, with
    JSON paths such as `$.condition.and[1]["=="]` or `$.actions[0].params.level`.
    """
    errors: list[ErrorDetail] = []
    compiled = None
    try:
        compiled = compile_condition(condition)
    except JsonLogicError as exc:
        errors.append({"path": exc.json_path(prefix="$.condition"), "message": exc.message})
    else:
        errors.extend(_lint(lint_condition, condition, "$.condition"))
    if cooldown_key is not None:
        try:
            compile_condition(cooldown_key)
        except JsonLogicError as exc:
            errors.append({"path": exc.json_path(prefix="$.cooldown_key"), "message": exc.message})
        else:
            errors.extend(_lint(lint, cooldown_key, "$.cooldown_key"))
    prepared: list[PreparedAction] = []
    if not isinstance(actions, list):
        errors.append({"path": "$.actions", "message": "actions must be a list"})
    elif len(actions) > MAX_ACTIONS:
        errors.append({"path": "$.actions", "message": f"at most {MAX_ACTIONS} actions"})
    else:
        template_paths: dict[str, str] = {}
        for index, spec in enumerate(actions):
            try:
                action = registry.prepare(spec, f"$.actions[{index}]")
                action.handler.check_references(action.params, f"$.actions[{index}].params")
            except ActionSpecError as exc:
                errors.append({"path": exc.path, "message": exc.message})
                continue
            prepared.append(action)
            for key in action.handler.template_keys(action.params):
                template_paths.setdefault(key, f"$.actions[{index}].params.template")
        for key in selectors.template_keys_missing(keys=template_paths):
            errors.append({"path": template_paths[key], "message": f"no message template {key!r}"})
    if errors:
        raise InvalidInput(errors, code="invalid_rule")
    return compiled, prepared


def _lint(check: Callable[..., Any], expression: Any, prefix: str) -> list[ErrorDetail]:
    # Mistakes JsonLogic itself runs quietly (jsonlogic/lint.py): refused when a rule is saved.
    return [
        {"path": json_path(path, prefix), "message": message}
        for path, message in check(expression, is_function=function_registry.__contains__)
    ]


def _rule_write(rule: Rule, data: Mapping[str, Any], *, user: User, change_note: str) -> Rule:
    _rule_apply_checked(rule, data)
    # Issue 7: activating or changing an active rule first runs its entry point's test cases.
    testcases.rule_tests_gate(rule=rule)
    rule.updated_by = _real_user(user)
    _stamp_history(rule, user=user, change_note=change_note)
    rule.save()
    cache.invalidate()
    return rule


def _rule_apply_checked(rule: Rule, data: Mapping[str, Any]) -> None:
    # Sets `data` on the (unsaved) rule and raises InvalidInput unless it would be stored:
    # shared by direct saves and drafts, so a draft is refused exactly when a save would be.
    unknown = sorted(set(data) - set(RULE_FIELDS))
    if unknown:
        raise InvalidInput(
            [{"path": f"$.{name}", "message": "unknown field"} for name in unknown],
            code="invalid_rule",
        )
    for name, value in data.items():
        setattr(rule, name, value)
    errors: list[ErrorDetail] = []
    try:
        rule.full_clean(
            exclude=["condition", "actions", "cooldown_key", "created_by", "updated_by"]
        )
    except ValidationError as exc:
        errors.extend(_field_errors(exc))
    if not isinstance(rule.metadata, dict):
        errors.append({"path": "$.metadata", "message": "metadata must be an object"})
    try:
        rule_compile(condition=rule.condition, actions=rule.actions, cooldown_key=rule.cooldown_key)
    except InvalidInput as exc:
        errors.extend(exc.details)
    if errors:
        raise InvalidInput(errors, code="invalid_rule")


@transaction.atomic
def rule_create(
    *,
    data: Mapping[str, Any],
    user: User = None,
    change_note: str = "",
    rule_id: uuid.UUID | None = None,
) -> Rule:
    """Create a rule at version 1 after compiling it; writes the rule and its first history row.

    `rule_id` keeps a known identity (rules_import re-creating an exported rule); by default
    the rule gets a new UUID. Raises InvalidInput (invalid_rule) with every problem and its
    JSON path; nothing is written.
    """
    rule = Rule(version=1, created_by=_real_user(user))
    if rule_id is not None:  # portability (rules_import): the exported rule's own id
        rule.pk = rule_id
    return _rule_write(rule, data, user=user, change_note=change_note or "Created")


@transaction.atomic
def rule_update(
    *, rule: Rule, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> Rule:
    """Change a rule as a new version (version + 1) after compiling it; history keeps the old.

    Raises InvalidInput (invalid_rule) with every problem, or (failing_test_cases) when the
    change activates the rule or alters an active one and a test case of its entry point would
    fail (rules_engine.testcases); nothing is written then.
    """
    locked = Rule.objects.select_for_update().get(pk=rule.pk)
    locked.version += 1
    updated = _rule_write(locked, data, user=user, change_note=change_note or "Updated")
    rule.refresh_from_db()
    return updated


def _rollback(
    instance: Any, *, version: int, fields: tuple[str, ...], update: Callable[..., Any], user: User
) -> Any:
    record = selectors.version_get(instance=instance, version=version)
    if record is None:
        raise NotFound("unknown_version", f"{instance._meta.verbose_name} has no version {version}")
    data = {name: getattr(record, name) for name in fields}
    return update(instance, data=data, user=user, change_note=f"Rolled back to version {version}")


@transaction.atomic
def rule_rollback(*, rule: Rule, version: int, user: User = None) -> Rule:
    """Store the content of an older version as a new version (history only grows).

    Raises NotFound (unknown_version) when the rule never had that version, InvalidInput when
    the old content no longer compiles (e.g. a template it used was deleted).
    """
    return _rollback(rule, version=version, fields=RULE_FIELDS, update=_rule_update, user=user)


@transaction.atomic
def rule_delete(*, rule: Rule, user: User = None, change_note: str = "") -> None:
    """Delete a rule; its history (including the deletion, with the change note) is kept."""
    _stamp_history(rule, user=user, change_note=change_note or "Deleted")
    rule.delete()
    cache.invalidate()


# --- four-eyes review: drafts of rules on critical entry points ---------------------------


class StaleDraft(InvalidInput):
    """The live rule changed (or was deleted) since the draft was made; re-propose it."""

    code = "stale_draft"


def _content_json(rule: Rule) -> dict[str, Any]:
    # The service fields of a rule as JSON, the entry point by key: what a draft stores.
    return {
        name: rule.entry_point.key if name == "entry_point" else getattr(rule, name)
        for name in RULE_FIELDS
    }


def _content_data(content: Mapping[str, Any]) -> dict[str, Any]:
    # A draft's stored content as the rule services accept it (entry point as a row).
    data = dict(content)
    entry_point = selectors.entry_point_get(key=str(data.get("entry_point")))
    if entry_point is None:
        raise InvalidInput(
            [{"path": "$.entry_point", "message": f"no entry point {data.get('entry_point')!r}"}],
            code="invalid_rule",
        )
    data["entry_point"] = entry_point
    return data


def _rule_copy(rule: Rule) -> Rule:
    # An unsaved copy carrying the live content, to check a draft without touching the row.
    copy = Rule(pk=rule.pk, version=rule.version, created_by_id=rule.created_by_id)
    # The row exists: uniqueness checks must compare against other rows, not this one.
    copy._state.adding = False
    for name in RULE_FIELDS:
        setattr(copy, name, getattr(rule, name))
    return copy


def rule_change_draft_rule(*, change: RuleChange) -> Rule | None:
    """The rule as the draft would make it, unsaved (None for a deletion); no writes.

    Raises InvalidInput (invalid_rule) when the draft's entry point no longer exists.
    """
    if change.content is None:
        return None
    version = (change.base_version or 0) + 1
    rule = Rule(pk=change.rule_key or uuid.uuid4(), version=version)
    for name, value in _content_data(change.content).items():
        setattr(rule, name, value)
    return rule


@transaction.atomic
def rule_change_propose(
    *,
    operation: str,
    rule: Rule | None = None,
    data: Mapping[str, Any] | None = None,
    version: int | None = None,
    user: User = None,
    change_note: str = "",
) -> RuleChange:
    """Store a draft of a rule change for four-eyes review instead of applying it.

    `operation` is create (`data`), update (`rule`, `data`: the fields to change), delete
    (`rule`) or rollback (`rule`, `version`). The draft is checked as the direct save would
    be (test cases included) and records the live content and version it was made against.
    Raises InvalidInput (invalid_rule) for content that would not be stored or a draft that
    changes nothing, (failing_test_cases) when a test case of the entry point would fail,
    NotFound (unknown_version) for a rollback to a version the rule never had. Writes one
    RuleChange row (status draft); the rule itself is not touched.
    """
    ops = RuleChange.Operation
    if operation not in ops.values:
        raise InvalidInput([{"path": "$.operation", "message": "unknown operation"}])
    if (operation == ops.CREATE) != (rule is None):
        raise InvalidInput([{"path": "$.rule", "message": f"{operation} needs an existing rule"}])
    live = None if rule is None else Rule.objects.select_related("entry_point").get(pk=rule.pk)
    candidate: Rule | None
    if operation == ops.CREATE:
        candidate = Rule(version=1)
        _rule_apply_checked(candidate, data or {})
    elif operation == ops.UPDATE:
        assert live is not None
        candidate = _rule_copy(live)
        _rule_apply_checked(candidate, data or {})
    elif operation == ops.ROLLBACK:
        assert live is not None
        record = selectors.version_get(instance=live, version=version or 0)
        if record is None:
            raise NotFound("unknown_version", f"rule has no version {version}")
        candidate = _rule_copy(live)
        _rule_apply_checked(candidate, {name: getattr(record, name) for name in RULE_FIELDS})
    else:
        candidate = None
    before = _content_json(live) if live is not None else None
    content = _content_json(candidate) if candidate is not None else None
    if content is not None and content == before:
        raise InvalidInput(
            [{"path": "$", "message": "the draft changes nothing"}], code="invalid_rule"
        )
    if candidate is not None:
        # As the direct save: a draft its entry point's test cases refuse is no draft to
        # review (approving it would be refused anyway).
        testcases.rule_tests_gate(rule=candidate)
    # Listed under the critical entry point that required the review.
    if live is not None and (candidate is None or live.entry_point.critical):
        entry_point = live.entry_point
    else:
        assert candidate is not None
        entry_point = candidate.entry_point
    return RuleChange.objects.create(
        operation=operation,
        rule=live,
        rule_key=live.pk if live is not None else None,
        rule_name=candidate.name if candidate is not None else live.name if live else "",
        entry_point=entry_point,
        base_version=live.version if live is not None else None,
        rollback_version=version if operation == ops.ROLLBACK else None,
        before=before,
        content=content,
        author=_real_user(user),
        change_note=change_note,
    )


def _check_review(change: RuleChange, user: User) -> None:
    refusal = selectors.rule_change_review_refusal(change=change, user=user)
    if refusal is None:
        return
    if change.status != RuleChange.Status.DRAFT:
        raise InvalidInput([{"path": "$.status", "message": refusal}], code="invalid_review")
    raise PermissionDenied(refusal)


def _history_note(change: RuleChange, approver: Any) -> str:
    # django-simple-history keeps 100 characters of reason: the review trail is kept whole
    # and the author's note shortened; the RuleChange row keeps everything in full.
    author = change.author.get_username() if change.author is not None else "unknown"
    trail = f" [#{change.pk} by {author}, approved by {approver.get_username()}]"
    note = change.change_note or change.get_operation_display()
    if change.operation == RuleChange.Operation.ROLLBACK:
        note = f"Rolled back to version {change.rollback_version}: {note}"
    room = max(100 - len(trail), 0)
    if len(note) > room:
        note = note[: max(room - 1, 0)] + "…"
    return (note + trail)[:100]


@transaction.atomic
def rule_change_approve(*, change: RuleChange, user: User, review_note: str = "") -> RuleChange:
    """Approve a draft and apply it through the rule services, in one transaction.

    The new rule version is recorded in history as made by the draft's author, with a note
    naming the draft, its author and the approver. Raises PermissionDenied when `user` lacks
    the publisher permission or wrote the draft, InvalidInput (invalid_review) when the change
    is no longer a draft, StaleDraft when the live rule changed since the draft was made,
    InvalidInput (invalid_rule) when the content no longer compiles; nothing is written then.
    Writes the rule (version + 1, created or deleted) and marks the change applied.
    """
    locked = RuleChange.objects.select_for_update().get(pk=change.pk)
    _check_review(locked, user)
    ops = RuleChange.Operation
    live = None
    if locked.operation != ops.CREATE:
        if locked.rule_key is not None:
            live = Rule.objects.select_for_update().filter(pk=locked.rule_key).first()
        if live is None or live.version != locked.base_version:
            now = f"version {live.version}" if live is not None else "deleted"
            raise StaleDraft(
                [
                    {
                        "path": "$.base_version",
                        "message": f"the draft was made against version {locked.base_version}"
                        f" and the rule is now {now}; propose it again",
                    }
                ]
            )
    note = _history_note(locked, user)
    author = locked.author
    if locked.operation == ops.DELETE:
        assert live is not None
        rule_delete(rule=live, user=author, change_note=note)
        # The deletion nulled the foreign key in the database; `rule_key` still names it.
        locked.rule = None
    else:
        data = _content_data(locked.content or {})
        if live is None:
            applied = rule_create(data=data, user=author, change_note=note)
            locked.rule = applied
            locked.rule_key = applied.pk
        else:
            applied = rule_update(rule=live, data=data, user=author, change_note=note)
        locked.applied_version = applied.version
    locked.status = RuleChange.Status.APPLIED
    locked.reviewer = _real_user(user)
    locked.reviewed_at = timezone.now()
    locked.review_note = review_note
    locked.save()
    return locked


@transaction.atomic
def rule_change_reject(*, change: RuleChange, user: User, review_note: str = "") -> RuleChange:
    """Reject a draft; the rule is not touched.

    Raises PermissionDenied (publisher role needed, never the author) and InvalidInput
    (invalid_review) when the change is no longer a draft. Writes the change's status,
    reviewer, time and note.
    """
    locked = RuleChange.objects.select_for_update().get(pk=change.pk)
    _check_review(locked, user)
    locked.status = RuleChange.Status.REJECTED
    locked.reviewer = _real_user(user)
    locked.reviewed_at = timezone.now()
    locked.review_note = review_note
    locked.save()
    return locked


@transaction.atomic
def rule_change_withdraw(*, change: RuleChange, user: User, note: str = "") -> RuleChange:
    """Withdraw a draft at its author's request; the rule is not touched.

    Raises PermissionDenied when `user` is not the draft's author (the publisher role does not
    help: a withdrawal speaks for the author) and InvalidInput (invalid_review) when the change
    is no longer a draft. Writes the change's status (withdrawn) and, in the review fields, who
    withdrew it (the author), when and why.
    """
    locked = RuleChange.objects.select_for_update().get(pk=change.pk)
    refusal = selectors.rule_change_withdraw_refusal(change=locked, user=user)
    if refusal is not None:
        if locked.status != RuleChange.Status.DRAFT:
            raise InvalidInput([{"path": "$.status", "message": refusal}], code="invalid_review")
        raise PermissionDenied(refusal)
    locked.status = RuleChange.Status.WITHDRAWN
    locked.reviewer = _real_user(user)
    locked.reviewed_at = timezone.now()
    locked.review_note = note
    locked.save()
    return locked


@dataclass(frozen=True)
class DraftDryRun:
    """A context decided twice at the draft's entry point: with the live rules and the draft."""

    entry_point: str
    live: Any
    draft: Any
    stale: bool


def rule_change_dry_run(*, change: RuleChange, context: Any) -> DraftDryRun:
    """Decide `context` with the live rules and with the draft applied instead; no writes.

    The draft's entry point's active rules are compiled in memory with the draft's rule
    replacing (or added to, or removed from) the live one; nothing is stored, cached or
    audited, and cooldowns are only read. Raises NotFound when the entry point is inactive,
    InvalidContext for a context its schema refuses, InvalidInput when the draft no longer
    compiles.
    """
    from dataclasses import replace

    from rules_engine import engine
    from rules_engine.cache import (
        STATE_VAR,
        build_evaluator,
        build_ruleset,
        compile_rule_version,
        templates_for,
    )

    draft_rule = rule_change_draft_rule(change=change)
    entry_point = draft_rule.entry_point if draft_rule is not None else change.entry_point
    ruleset = build_ruleset(entry_point.key)
    if ruleset is None:
        raise NotFound("unknown_entry_point", f"no active entry point {entry_point.key!r}")
    live_rules = list(selectors.rules_active_for(entry_point=entry_point))
    with_draft = [rule for rule in live_rules if rule.pk != change.rule_key]
    if draft_rule is not None and draft_rule.active:
        with_draft.append(draft_rule)
    with_draft.sort(key=lambda rule: (rule.priority, rule.name, str(rule.pk)))
    compiled = tuple(compile_rule_version(rule, strict=rule is draft_rule) for rule in with_draft)
    draft_set = replace(
        ruleset,
        rules=compiled,
        templates=templates_for(compiled),
        uses_state=any(STATE_VAR in repr((r.condition, r.actions)) for r in with_draft),
        evaluator=build_evaluator(compiled),
    )
    started = time.perf_counter()
    live = engine._decide(engine._Run(ruleset, True, None, None), context, started=started)
    started = time.perf_counter()
    draft = engine._decide(engine._Run(draft_set, True, None, None), context, started=started)
    return DraftDryRun(entry_point.key, live, draft, selectors.rule_change_is_stale(change=change))


# --- entry points ------------------------------------------------------------------------


def entry_point_content_errors(
    *, context_schema: Any = None, sensitive_paths: Any = None
) -> list[ErrorDetail]:
    """Problems of an entry point's schema and sensitive paths (None: not checked); no writes."""
    errors: list[ErrorDetail] = []
    if context_schema is not None and not isinstance(context_schema, dict):
        errors.append({"path": "$.context_schema", "message": "the schema must be an object"})
    elif context_schema is not None:
        try:
            check_schema(context_schema)
        except SchemaError as exc:
            path = exc.path.replace("$", "$.context_schema", 1)
            errors.append({"path": path, "message": exc.message})
    paths = sensitive_paths
    if paths is not None and (
        not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths)
    ):
        errors.append(
            {"path": "$.sensitive_paths", "message": "a list of dotted paths like 'card.number'"}
        )
    return errors


def _entry_point_errors(entry_point: EntryPoint) -> list[ErrorDetail]:
    errors: list[ErrorDetail] = []
    # Stored values are never null (None means "not checked" to entry_point_content_errors).
    if entry_point.context_schema is None:
        errors.append({"path": "$.context_schema", "message": "the schema must be an object"})
    if entry_point.sensitive_paths is None:
        errors.append(
            {"path": "$.sensitive_paths", "message": "a list of dotted paths like 'card.number'"}
        )
    try:
        entry_point.full_clean(exclude=["context_schema", "sensitive_paths"])
    except ValidationError as exc:
        errors.extend(_field_errors(exc))
    errors.extend(
        entry_point_content_errors(
            context_schema=entry_point.context_schema, sensitive_paths=entry_point.sensitive_paths
        )
    )
    return errors


def _check_critical_entry_point(entry_point: EntryPoint, user: User) -> None:
    refusal = selectors.critical_entry_point_change_refusal(entry_point=entry_point, user=user)
    if refusal is not None:
        raise PermissionDenied(refusal)


def _entry_point_write(
    entry_point: EntryPoint, data: Mapping[str, Any], *, user: User, change_note: str
) -> EntryPoint:
    unknown = sorted(set(data) - set(ENTRY_POINT_FIELDS))
    errors: list[ErrorDetail] = [{"path": f"$.{n}", "message": "unknown field"} for n in unknown]
    for name, value in data.items():
        if name in ENTRY_POINT_FIELDS:
            setattr(entry_point, name, value)
    errors.extend(_entry_point_errors(entry_point))
    if errors:
        raise InvalidInput(errors, code="invalid_entry_point")
    _stamp_history(entry_point, user=user, change_note=change_note)
    entry_point.save()
    cache.invalidate()
    return entry_point


@transaction.atomic
def entry_point_create(
    *, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> EntryPoint:
    """Create an entry point after checking its JSON Schema and sensitive paths.

    Raises InvalidInput (invalid_entry_point) with every problem; nothing is written then.
    """
    return _entry_point_write(
        EntryPoint(version=1), data, user=user, change_note=change_note or "Created"
    )


@transaction.atomic
def entry_point_update(
    *, entry_point: EntryPoint, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> EntryPoint:
    """Change an entry point as a new version.

    Raises PermissionDenied when the entry point is critical and `user` is not a publisher
    (`selectors.critical_entry_point_change_refusal`), InvalidInput (invalid_entry_point).
    """
    locked = EntryPoint.objects.select_for_update().get(pk=entry_point.pk)
    _check_critical_entry_point(locked, user)
    locked.version += 1
    updated = _entry_point_write(locked, data, user=user, change_note=change_note or "Updated")
    entry_point.refresh_from_db()
    return updated


@transaction.atomic
def entry_point_rollback(*, entry_point: EntryPoint, version: int, user: User = None) -> EntryPoint:
    """Store an older version of an entry point as a new version.

    Raises NotFound (unknown_version) or InvalidInput (invalid_entry_point).
    """
    return _rollback(
        entry_point,
        version=version,
        fields=ENTRY_POINT_FIELDS,
        update=_entry_point_update,
        user=user,
    )


@transaction.atomic
def entry_point_delete(*, entry_point: EntryPoint, user: User = None) -> None:
    """Delete an entry point that has no rules and no audit rows.

    Raises PermissionDenied (critical entry point, `user` not a publisher) or InvalidInput
    (invalid_entry_point) when rules or executions still refer to it.
    """
    _check_critical_entry_point(entry_point, user)
    if entry_point.rules.exists() or entry_point.executions.exists():
        raise InvalidInput(
            [{"path": "$", "message": "entry point has rules or executions; deactivate it"}],
            code="invalid_entry_point",
        )
    _stamp_history(entry_point, user=user, change_note="Deleted")
    entry_point.delete()
    cache.invalidate()


# --- message templates -------------------------------------------------------------------


def template_body_errors(*, format: str, body: str) -> list[ErrorDetail]:
    """Problems compiling a template body in its format (none when it compiles); no writes."""
    try:
        compile_template(format=format, body=body)
    except TemplateError as exc:
        line = f" (line {exc.line})" if exc.line else ""
        return [{"path": "$.body", "message": f"{exc.message}{line}"}]
    return []


def template_rename_errors(*, old_key: str, new_key: str) -> list[ErrorDetail]:
    """Refuses renaming a template key that rules still reference; no writes."""
    if (
        old_key
        and new_key
        and new_key != old_key
        and selectors.rules_referencing_template(key=old_key)
    ):
        return [{"path": "$.key", "message": "rules reference this key; it cannot be renamed"}]
    return []


def _template_write(
    template: MessageTemplate, data: Mapping[str, Any], *, user: User, change_note: str
) -> MessageTemplate:
    unknown = sorted(set(data) - set(TEMPLATE_FIELDS))
    errors: list[ErrorDetail] = [{"path": f"$.{n}", "message": "unknown field"} for n in unknown]
    for name, value in data.items():
        if name in TEMPLATE_FIELDS:
            setattr(template, name, value)
    try:
        template.full_clean()
    except ValidationError as exc:
        errors.extend(_field_errors(exc))
    if not errors:
        errors.extend(template_body_errors(format=template.format, body=template.body))
    if errors:
        raise InvalidInput(errors, code="invalid_template")
    _stamp_history(template, user=user, change_note=change_note)
    template.save()
    cache.invalidate()
    return template


@transaction.atomic
def template_create(
    *, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> MessageTemplate:
    """Create a message template after compiling it. Raises InvalidInput (invalid_template)."""
    return _template_write(
        MessageTemplate(version=1), data, user=user, change_note=change_note or "Created"
    )


@transaction.atomic
def template_update(
    *,
    template: MessageTemplate,
    data: Mapping[str, Any],
    user: User = None,
    change_note: str = "",
) -> MessageTemplate:
    """Change a template as a new version. Raises InvalidInput (invalid_template)."""
    locked = MessageTemplate.objects.select_for_update().get(pk=template.pk)
    rename_errors = template_rename_errors(old_key=locked.key, new_key=data.get("key", locked.key))
    if rename_errors:
        raise InvalidInput(rename_errors, code="invalid_template")
    locked.version += 1
    updated = _template_write(locked, data, user=user, change_note=change_note or "Updated")
    template.refresh_from_db()
    return updated


@transaction.atomic
def template_rollback(
    *, template: MessageTemplate, version: int, user: User = None
) -> MessageTemplate:
    """Store an older version of a template as a new version.

    Raises NotFound (unknown_version) or InvalidInput (invalid_template).
    """
    return _rollback(
        template, version=version, fields=TEMPLATE_FIELDS, update=_template_update, user=user
    )


@transaction.atomic
def template_delete(*, template: MessageTemplate, user: User = None) -> None:
    """Delete a template no rule references. Raises InvalidInput (invalid_template) otherwise."""
    users = selectors.rules_referencing_template(key=template.key)
    if users:
        names = ", ".join(sorted(rule.name for rule in users))
        raise InvalidInput(
            [{"path": "$", "message": f"referenced by rules: {names}"}], code="invalid_template"
        )
    _stamp_history(template, user=user, change_note="Deleted")
    template.delete()
    cache.invalidate()


# --- answers from the client -------------------------------------------------------------


def _first_with(items: list[Any], *, type_name: str, field: str, key: str) -> Any:
    # Audit rows list action results and effects with their type and key, so an answer can
    # only be recorded for a question that execution really asked.
    return next(
        (
            i
            for i in items
            if isinstance(i, dict) and i.get("type") == type_name and i.get(field) == key
        ),
        None,
    )


@transaction.atomic
def acknowledgement_record(*, execution_id: Any, ack_key: str) -> tuple[Acknowledgement, bool]:
    """Record that the subject of an execution accepted the terms `ack_key` (idempotent).

    The subject is taken from the audited execution, never from the client. Returns the row
    and whether it was created. Raises NotFound (unknown_execution) and InvalidInput
    (invalid_answer) when that execution showed no such acknowledgement or had no subject.
    """
    execution = selectors.execution_get(execution_id=execution_id)
    if execution is None:
        raise NotFound("unknown_execution", f"no execution {execution_id}")
    result = _first_with(
        execution.action_results, type_name="user_acknowledge", field="ack_key", key=ack_key
    )
    if result is None:
        raise InvalidInput(
            [
                {
                    "path": "$.ack_key",
                    "message": f"execution asked for no acknowledgement {ack_key!r}",
                }
            ],
            code="invalid_answer",
        )
    subject = result.get("subject")
    if not subject:
        raise InvalidInput(
            [{"path": "$.execution_id", "message": "the execution has no subject to record"}],
            code="invalid_answer",
        )
    try:
        with transaction.atomic():
            ack, created = Acknowledgement.objects.get_or_create(
                ack_key=ack_key,
                subject=subject,
                defaults={
                    "entry_point": execution.entry_point,
                    "execution": execution,
                    "rule_id": result.get("rule_id"),
                    "rule_version": result.get("rule_version"),
                },
            )
    except IntegrityError:
        # A concurrent request recorded the same acknowledgement first.
        ack, created = Acknowledgement.objects.get(ack_key=ack_key, subject=subject), False
    return ack, created


@transaction.atomic
def preference_record(*, execution_id: Any, preference_key: str, value: Any) -> Preference:
    """Store the subject's answer to a preference question asked by an execution.

    Raises NotFound (unknown_execution) and InvalidInput (invalid_answer) when the execution
    asked no such question, had no subject, or the value is not one of its options.
    """
    execution = selectors.execution_get(execution_id=execution_id)
    if execution is None:
        raise NotFound("unknown_execution", f"no execution {execution_id}")
    lookup = {"type_name": "user_preference", "field": "preference_key", "key": preference_key}
    result = _first_with(execution.action_results, **lookup)
    effect = _first_with(execution.effects, **lookup)
    if result is None or effect is None:
        raise InvalidInput(
            [{"path": "$.preference_key", "message": f"no question {preference_key!r} asked"}],
            code="invalid_answer",
        )
    allowed = [option["value"] for option in effect["options"]]
    if not any(value == v and type(value) is type(v) for v in allowed):
        raise InvalidInput(
            [{"path": "$.value", "message": f"must be one of {allowed!r}"}], code="invalid_answer"
        )
    subject = result.get("subject")
    if not subject:
        raise InvalidInput(
            [{"path": "$.execution_id", "message": "the execution has no subject to record"}],
            code="invalid_answer",
        )
    preference, _ = Preference.objects.update_or_create(
        preference_key=preference_key,
        subject=subject,
        defaults={"value": value, "execution": execution},
    )
    return preference


# --- one shape for the three versioned models (admin and API call these uniformly) -------


def _rule_update(instance: Any, **kwargs: Any) -> Any:
    return rule_update(rule=instance, **kwargs)


def _entry_point_update(instance: Any, **kwargs: Any) -> Any:
    return entry_point_update(entry_point=instance, **kwargs)


def _template_update(instance: Any, **kwargs: Any) -> Any:
    return template_update(template=instance, **kwargs)


@dataclass(frozen=True)
class VersionedWrites:
    """The write services of one versioned model under uniform signatures.

    `create(data=, user=, change_note=)`, `update(obj, data=, user=, change_note=)`,
    `delete(obj, user=)`, `rollback(obj, version=, user=)`; `fields` are the fields the
    services accept (and that history compares between versions).
    """

    fields: tuple[str, ...]
    create: Callable[..., Any]
    update: Callable[..., Any]
    delete: Callable[..., None]
    rollback: Callable[..., Any]


VERSIONED_WRITES: dict[type, VersionedWrites] = {
    Rule: VersionedWrites(
        fields=RULE_FIELDS,
        create=rule_create,
        update=_rule_update,
        delete=lambda obj, **kw: rule_delete(rule=obj, **kw),
        rollback=lambda obj, **kw: rule_rollback(rule=obj, **kw),
    ),
    EntryPoint: VersionedWrites(
        fields=ENTRY_POINT_FIELDS,
        create=entry_point_create,
        update=_entry_point_update,
        delete=lambda obj, **kw: entry_point_delete(entry_point=obj, **kw),
        rollback=lambda obj, **kw: entry_point_rollback(entry_point=obj, **kw),
    ),
    MessageTemplate: VersionedWrites(
        fields=TEMPLATE_FIELDS,
        create=template_create,
        update=_template_update,
        delete=lambda obj, **kw: template_delete(template=obj, **kw),
        rollback=lambda obj, **kw: template_rollback(template=obj, **kw),
    ),
}


# --- cooldowns ---------------------------------------------------------------------------


def cooldown_clear(*, rule_id: str, subject: str | None = None) -> int:
    """End a rule's active cooldowns (one subject, or all); returns how many ended."""
    from rules_engine import cooldowns

    return cooldowns.store().clear(str(rule_id), subject)
