"""Writes of experiments: create, update, start, stop, promote a winner, delete.

Each service validates first and writes in one transaction, so a refused change writes
nothing. Starting and stopping change what decisions do, so they bump the shared ruleset
generation (`rules_engine.cache.invalidate`): every process picks the change up on its next
request, with the experiment compiled into the ruleset (no experiment read per decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from experiments import selectors
from experiments.models import CONTROL, Experiment, Variant
from experiments.runtime import CONTENT_FIELDS, variant_rule
from rules_engine import cache
from rules_engine import selectors as rule_selectors
from rules_engine import services as rule_services
from rules_engine.errors import ErrorDetail, InvalidInput
from rules_engine.models import Rule, RuleChange
from rules_engine.services import User

CODE = "invalid_experiment"
EXPERIMENT_FIELDS = (
    "key",
    "description",
    "kind",
    "shadow",
    "entry_point",
    "rule",
    "salt",
    "outcome_action_type",
    "outcome_labels",
    "variants",
)
# What may still change once an experiment has started: nothing that moves a subject.
LIVE_FIELDS = ("description", "outcome_action_type", "outcome_labels")


def _refuse(path: str, message: str) -> InvalidInput:
    return InvalidInput([{"path": path, "message": message}], code=CODE)


def _user(user: User) -> Any:
    # API keys act as a non-model user: only real users are recorded as authors.
    return user if isinstance(user, AbstractBaseUser) else None


def variant_errors(rule: Rule | None, variants: Any, *, kind: str) -> list[ErrorDetail]:
    """Problems of a variant list (shape, keys, weights, content that would not compile on
    `rule`), each with its JSON path; no writes."""
    if not isinstance(variants, list):
        return [{"path": "$.variants", "message": "a list of {key, weight, content}"}]
    errors: list[ErrorDetail] = []
    keys: list[str] = []
    for index, item in enumerate(variants):
        path = f"$.variants[{index}]"
        if not isinstance(item, Mapping):
            errors.append({"path": path, "message": "a variant is an object"})
            continue
        row = Variant(
            key=item.get("key", ""), weight=item.get("weight", 1), content=item.get("content", {})
        )
        try:
            row.full_clean(exclude=["experiment", "content"])
        except ValidationError as exc:
            errors.extend(
                {"path": f"{path}.{name}", "message": str(message)}
                for name, messages in exc.message_dict.items()
                for message in messages
            )
            continue
        if row.key in keys:
            errors.append({"path": f"{path}.key", "message": f"duplicate variant {row.key!r}"})
        keys.append(row.key)
        errors.extend(_content_errors(rule, row.key, row.content, f"{path}.content"))
    if variants and CONTROL not in keys:
        errors.append({"path": "$.variants", "message": "one variant must be 'control'"})
    if kind == Experiment.Kind.ROLLOUT and len(variants) > 2:
        errors.append(
            {"path": "$.variants", "message": "a rollout has 'control' and one new version"}
        )
    return errors


def _content_errors(rule: Rule | None, key: str, content: Any, path: str) -> list[ErrorDetail]:
    if key == CONTROL:
        if content:
            return [{"path": path, "message": "control is the live rule: leave it empty"}]
        return []
    if not isinstance(content, dict):
        return [{"path": path, "message": "an object with " + ", ".join(CONTENT_FIELDS)}]
    errors: list[ErrorDetail] = [
        {"path": f"{path}.{name}", "message": "unknown field"}
        for name in sorted(set(content) - set(CONTENT_FIELDS))
    ]
    if "priority" in content and type(content["priority"]) is not int:
        errors.append({"path": f"{path}.priority", "message": "an integer"})
    if "stop_processing" in content and not isinstance(content["stop_processing"], bool):
        errors.append({"path": f"{path}.stop_processing", "message": "true or false"})
    if rule is None or errors:
        return errors
    copy = variant_rule(rule, content)
    try:
        rule_services.rule_compile(
            condition=copy.condition, actions=copy.actions, cooldown_key=copy.cooldown_key
        )
    except InvalidInput as exc:
        errors.extend(
            {"path": detail["path"].replace("$", path, 1), "message": detail["message"]}
            for detail in exc.details
        )
    return errors


def _apply(experiment: Experiment, data: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Set `data` on the unsaved experiment; raise InvalidInput unless it would be stored.

    Returns the variants to store (None: keep the current ones).
    """
    unknown = sorted(set(data) - set(EXPERIMENT_FIELDS))
    if unknown:
        raise InvalidInput([{"path": f"$.{n}", "message": "unknown field"} for n in unknown], CODE)
    variants = data.get("variants")
    for name, value in data.items():
        if name != "variants":
            setattr(experiment, name, value)
    rule = experiment.rule
    if rule is not None and "entry_point" not in data:
        experiment.entry_point_id = rule.entry_point_id
    errors: list[ErrorDetail] = []
    try:
        experiment.full_clean(exclude=["created_by", "outcome_labels", "rule"])
    except ValidationError as exc:
        errors.extend(
            {"path": "$" if name == "__all__" else f"$.{name}", "message": str(message)}
            for name, messages in exc.message_dict.items()
            for message in messages
        )
    if rule is None:
        errors.append({"path": "$.rule", "message": "an experiment needs a rule"})
    elif experiment.entry_point_id is not None and rule.entry_point_id != experiment.entry_point_id:
        errors.append({"path": "$.rule", "message": "the rule is on another entry point"})
    if experiment.shadow and experiment.kind != Experiment.Kind.ROLLOUT:
        errors.append({"path": "$.shadow", "message": "only rollouts run in shadow mode"})
    labels = experiment.outcome_labels
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        errors.append({"path": "$.outcome_labels", "message": "a list of label names"})
    if variants is not None:
        errors.extend(variant_errors(rule, variants, kind=experiment.kind))
    if errors:
        raise InvalidInput(errors, code=CODE)
    return None if variants is None else [dict(v) for v in variants]


def _store_variants(experiment: Experiment, variants: list[dict[str, Any]] | None) -> None:
    if variants is None:
        return
    experiment.variants.all().delete()
    Variant.objects.bulk_create(
        Variant(
            experiment=experiment,
            key=item["key"],
            weight=item.get("weight", 1),
            content=item.get("content") or {},
        )
        for item in variants
    )


@transaction.atomic
def experiment_create(*, data: Mapping[str, Any], user: User = None) -> Experiment:
    """Create a draft experiment (and its variants) on a rule; nothing runs until started.

    `data`: key, rule (a Rule), optionally entry_point (defaults to the rule's), kind, shadow,
    salt (random by default), description, outcome_action_type, outcome_labels and variants
    (`[{key, weight, content}]`, one of them `control`). Raises InvalidInput
    (invalid_experiment) with every problem and its JSON path; nothing is written then.
    Writes the experiment and its variant rows.
    """
    experiment = Experiment(created_by=_user(user))
    variants = _apply(experiment, data)
    experiment.save()
    _store_variants(experiment, variants)
    return experiment


@transaction.atomic
def experiment_update(
    *, experiment: Experiment, data: Mapping[str, Any], user: User = None
) -> Experiment:
    """Change an experiment; given `variants` replace all of its variants.

    Once started, only description and the outcome settings change (the split must not move).
    Raises InvalidInput (invalid_experiment); nothing is written then. Writes the experiment
    (and its variants).
    """
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != Experiment.Status.DRAFT:
        frozen = sorted(set(data) - set(LIVE_FIELDS))
        if frozen:
            raise InvalidInput(
                [
                    {"path": f"$.{n}", "message": f"cannot change once {locked.status}"}
                    for n in frozen
                ],
                code=CODE,
            )
    variants = _apply(locked, data)
    locked.save()
    _store_variants(locked, variants)
    experiment.refresh_from_db()
    return locked


@transaction.atomic
def experiment_start(*, experiment: Experiment, user: User = None) -> Experiment:
    """Start a draft: from the next decision on, its subjects get their variants.

    Raises InvalidInput (invalid_experiment) unless it is a draft on an active rule with
    `control` and at least one other weighted variant whose content compiles against the live
    rule, and no other experiment is running on that rule. On a critical entry point a variant
    decides live like a rule change, so four-eyes applies: raises PermissionDenied unless
    `user` is a publisher other than the experiment's creator (no user: a trusted caller).
    Writes status and started_at and invalidates the compiled rulesets.
    """
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    refusal = selectors.experiment_start_refusal(experiment=locked, user=user)
    if refusal is not None:
        raise PermissionDenied(refusal)
    if locked.status != Experiment.Status.DRAFT:
        raise _refuse("$.status", f"only a draft can start; this one is {locked.status}")
    rule = locked.rule
    if rule is None or not rule.active:
        raise _refuse("$.rule", "the experiment's rule is missing or inactive")
    variants = [
        {"key": v.key, "weight": v.weight, "content": v.content} for v in locked.variants.all()
    ]
    errors = variant_errors(rule, variants, kind=locked.kind)
    if sum(v["weight"] for v in variants if v["key"] != CONTROL) == 0:
        errors.append({"path": "$.variants", "message": "needs a weighted variant besides control"})
    if errors:
        raise InvalidInput(errors, code=CODE)
    busy = Experiment.objects.filter(rule=rule, status=Experiment.Status.RUNNING).first()
    if busy is not None:
        raise _refuse("$.rule", f"experiment {busy.key!r} is already running on this rule")
    locked.status = Experiment.Status.RUNNING
    locked.started_at = timezone.now()
    locked.save(update_fields=["status", "started_at", "updated_at"])
    cache.invalidate()
    experiment.refresh_from_db()
    return locked


def _stop(locked: Experiment) -> None:
    locked.status = Experiment.Status.STOPPED
    locked.stopped_at = timezone.now()
    locked.save(update_fields=["status", "stopped_at", "winner", "updated_at"])
    cache.invalidate()


@transaction.atomic
def experiment_stop(*, experiment: Experiment, user: User = None) -> Experiment:
    """Stop a running experiment: from the next decision on, the live rule decides for all.

    Raises InvalidInput (invalid_experiment) when it is not running. Writes status and
    stopped_at and invalidates the compiled rulesets.
    """
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != Experiment.Status.RUNNING:
        raise _refuse(
            "$.status", f"only a running experiment can stop; this one is {locked.status}"
        )
    _stop(locked)
    experiment.refresh_from_db()
    return locked


@transaction.atomic
def experiment_promote(
    *, experiment: Experiment, variant_key: str, user: User = None
) -> Rule | RuleChange:
    """Make a variant the live rule, record it as the winner, and stop the experiment.

    The variant's content is written through `rule_update` (history note "promoted from
    experiment <key>"); on a critical entry point it becomes a four-eyes draft instead
    (`rule_change_propose`), which is returned. Promoting `control` keeps the live rule.
    Raises InvalidInput (invalid_experiment) for a draft experiment, one already promoted, an
    unknown variant or a deleted rule, and the rule services' InvalidInput (invalid_rule) when
    the content is refused; nothing is written then. Writes the rule (or a RuleChange), the
    experiment's winner and status, and invalidates the compiled rulesets.
    """
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status == Experiment.Status.DRAFT:
        raise _refuse("$.status", "a draft has no results to promote")
    if locked.winner:
        raise _refuse("$.winner", f"variant {locked.winner!r} was already promoted")
    variant = locked.variants.filter(key=variant_key).first()
    if variant is None:
        raise _refuse("$.variant", f"no variant {variant_key!r}")
    rule = locked.rule
    if rule is None:
        raise _refuse("$.rule", "the experiment's rule was deleted")
    result: Rule | RuleChange = rule
    if variant.key != CONTROL:
        data = {n: variant.content[n] for n in CONTENT_FIELDS if n in variant.content}
        note = f"promoted from experiment {locked.key}"
        if rule_selectors.rule_needs_review(rule_id=rule.pk):
            result = rule_services.rule_change_propose(
                operation="update", rule=rule, data=data, user=user, change_note=note
            )
        else:
            result = rule_services.rule_update(rule=rule, data=data, user=user, change_note=note)
    locked.winner = variant.key
    if locked.status == Experiment.Status.RUNNING:
        _stop(locked)
    else:
        locked.save(update_fields=["winner", "updated_at"])
    experiment.refresh_from_db()
    return result


@transaction.atomic
def experiment_delete(*, experiment: Experiment, user: User = None) -> None:
    """Delete an experiment that is not running (its audit notes stay in the executions).

    Raises InvalidInput (invalid_experiment) for a running experiment. Deletes its variants.
    """
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status == Experiment.Status.RUNNING:
        raise _refuse("$.status", "stop the experiment before deleting it")
    locked.delete()
