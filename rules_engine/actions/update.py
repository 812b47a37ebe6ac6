"""`update`: a safe field update on an allow-listed target, inside the decision's transaction.

Targets and their writable fields come only from settings (`VERDICT_UPDATE_TARGETS`); rules
cannot name anything else. The shipped target `subject_state` is a per-subject attribute store
that rules read back as `{"var": "$state.<attribute>"}`. A host project allow-lists fields of
its own models like this (values are cleaned by the model fields before saving):

    VERDICT_UPDATE_TARGETS = {
        "customer": {"model": "shop.Customer", "lookup": "external_id",
                     "fields": ["tier", "risk_flag"]},
    }
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from rules_engine import selectors
from rules_engine.actions.base import (
    ActionContext,
    ActionOutcome,
    ActionRuntimeError,
    ActionSpecError,
    PreparedAction,
    SubjectActionHandler,
    compile_expression,
    registry,
)
from rules_engine.jsonlogic import to_json

SUBJECT_STATE = "subject_state"
STATE_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class UpdateTarget:
    """One allow-listed target: a model, the field that finds a row by subject, the fields."""

    name: str
    model_label: str
    lookup: str
    fields: tuple[str, ...] | None  # None: any attribute name (subject_state only)

    def allows(self, field_name: str) -> bool:
        """Whether rules may write this field."""
        if self.fields is None:
            return bool(STATE_ATTRIBUTE.match(field_name))
        return field_name in self.fields


def update_targets() -> dict[str, UpdateTarget]:
    """The allow-list: the built-in subject_state target plus VERDICT_UPDATE_TARGETS."""
    targets = {
        SUBJECT_STATE: UpdateTarget(SUBJECT_STATE, "rules_engine.SubjectState", "subject", None)
    }
    configured: Mapping[str, Mapping[str, Any]] = getattr(settings, "VERDICT_UPDATE_TARGETS", {})
    for name, spec in configured.items():
        targets[name] = UpdateTarget(
            name, spec["model"], spec.get("lookup", "pk"), tuple(spec.get("fields", ()))
        )
    return targets


def _unwritable(target: UpdateTarget, field_name: str) -> str | None:
    """Why an allow-listed field of a host model cannot be written, or None.

    Guards against an allow-list that names more than plain columns: a primary key or the
    lookup field would let a rule re-key rows, a relation or non-editable field is not a
    value. (An allow-list is settings, so this is a configuration mistake, reported at save.)
    """
    try:
        model: type[models.Model] = apps.get_model(target.model_label)
    except (LookupError, ValueError):
        return f"update target {target.name!r} names an unknown model {target.model_label!r}"
    fields = {f.name: f for f in model._meta.concrete_fields}
    field = fields.get(field_name)
    if field is None:
        return f"{target.model_label} has no field {field_name!r}"
    if field.primary_key or field_name == target.lookup:
        return f"field {field_name!r} identifies the row and cannot be updated"
    if field.is_relation or not field.editable:
        return f"field {field_name!r} of {target.name!r} is not a writable value"
    return None


def _json_safe(value: Any) -> Any:
    """Model field values as JSON (dates, decimals and UUIDs as strings) for the audit."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


@registry.register
class Update(SubjectActionHandler):
    """Writes JSONLogic-computed values to allow-listed fields; before/after go to the audit."""

    type = "update"
    writes = True
    params_schema = {
        "type": "object",
        "properties": {
            "target": {"type": "string", "minLength": 1},
            "subject": {},
            "set": {"type": "object", "minProperties": 1, "maxProperties": 50},
        },
        "required": ["target", "set"],
        "additionalProperties": False,
    }

    def compile_params(self, params: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Check target and fields against the allow-list and compile each value expression.

        Raises ActionSpecError naming the target or field that is not allowed.
        """
        target = update_targets().get(params["target"])
        if target is None:
            raise ActionSpecError(
                f"{path}.target",
                f"update target {params['target']!r} is not allow-listed "
                f"(allowed: {', '.join(sorted(update_targets()))})",
            )
        compiled = super().compile_params(params, path)
        values = {}
        for field_name, expression in params["set"].items():
            field_path = f"{path}.set.{field_name}"
            if not target.allows(field_name):
                raise ActionSpecError(
                    field_path, f"field {field_name!r} of {target.name!r} is not allow-listed"
                )
            if target.fields is not None and (problem := _unwritable(target, field_name)):
                raise ActionSpecError(field_path, problem)
            values[field_name] = compile_expression(expression, field_path)
        compiled["values"] = values
        return compiled

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Compute the values and write them (skipped on dry runs). Raises ActionRuntimeError."""
        target = update_targets().get(prepared.params["target"])
        if target is None:
            raise ActionRuntimeError(f"update target {prepared.params['target']!r} was removed")
        subject = self.subject_for(prepared, ctx)
        if subject is None:
            raise ActionRuntimeError("update has no subject (the subject expression gave null)")
        # The allow-list is read again: a field taken off it since the rule was compiled (and
        # cached) must not be written any more.
        refused = sorted(name for name in prepared.compiled["values"] if not target.allows(name))
        if refused:
            raise ActionRuntimeError(
                f"field {refused[0]!r} of {target.name!r} is not allow-listed any more"
            )
        values = {name: to_json(fn(ctx.data)) for name, fn in prepared.compiled["values"].items()}
        if target.fields is None:
            before, after = _update_subject_state(subject, values, dry_run=ctx.dry_run)
        else:
            before, after = _update_model(target, subject, values, dry_run=ctx.dry_run)
        result = {
            "target": target.name,
            "subject": subject,
            "before": before,
            "after": after,
            "written": not ctx.dry_run,
        }
        return ActionOutcome(effect=None, result=result)


def _update_subject_state(
    subject: str, values: dict[str, Any], *, dry_run: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    from rules_engine.models import SubjectState

    if dry_run:
        current = selectors.subject_state_attributes(subject=subject)
        return {name: current.get(name) for name in values}, dict(values)
    # A batch's decisions read the state ahead: a later one about this subject reads it anew.
    selectors.subject_state_written(subject=subject)
    if connection.vendor == "postgresql":
        return _upsert_subject_state(subject, values), dict(values)
    # Locks the row so concurrent decisions about one subject apply updates in turn.
    row, _ = SubjectState.objects.select_for_update().get_or_create(subject=subject)
    current = dict(row.attributes)
    row.attributes = {**current, **values}
    row.save(update_fields=["attributes", "updated_at"])
    return {name: current.get(name) for name in values}, dict(values)


# The old row is locked and read first, and the UPDATE returns it: an upsert's RETURNING
# cannot see it (a locking read of a row the same statement changed finds nothing, so every
# `before` came back empty). A subject without a row gets one (ON CONFLICT: a concurrent
# first write merges instead of failing).
_UPSERT_SQL = """
WITH old AS (
    SELECT id, attributes FROM {table} WHERE subject = %(subject)s FOR UPDATE
), changed AS (
    UPDATE {table} AS s SET attributes = s.attributes || %(values)s::jsonb, updated_at = now()
    FROM old WHERE s.id = old.id
    RETURNING old.attributes AS before
), added AS (
    INSERT INTO {table} AS s (subject, attributes, updated_at)
    SELECT %(subject)s, %(values)s::jsonb, now() WHERE NOT EXISTS (SELECT 1 FROM old)
    ON CONFLICT (subject) DO UPDATE
        SET attributes = s.attributes || EXCLUDED.attributes, updated_at = EXCLUDED.updated_at
    RETURNING NULL::jsonb AS before
)
SELECT before FROM changed UNION ALL SELECT before FROM added
"""


def _upsert_subject_state(subject: str, values: dict[str, Any]) -> dict[str, Any]:
    """Merge `values` into the subject's attributes in one statement; returns their old values.

    The row stays locked until the decision commits, so concurrent decisions about one subject
    apply their updates in turn (`||` merges top-level keys, the new value winning).
    """
    from rules_engine.models import SubjectState

    sql = _UPSERT_SQL.format(table=SubjectState._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"subject": subject, "values": orjson.dumps(values).decode()})
        row = cursor.fetchone()
    old = row[0] if row else None
    current = orjson.loads(old) if isinstance(old, str | bytes) else (old or {})
    return {name: current.get(name) for name in values}


def _update_model(
    target: UpdateTarget, subject: str, values: dict[str, Any], *, dry_run: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    model: type[models.Model] = apps.get_model(target.model_label)
    queryset = model._default_manager.all()
    if not dry_run:
        queryset = queryset.select_for_update()
    try:
        instance = queryset.get(**{target.lookup: subject})
    except ObjectDoesNotExist as exc:
        raise ActionRuntimeError(f"no {target.name} with {target.lookup}={subject!r}") from exc
    fields = {f.name: f for f in model._meta.concrete_fields}
    before = {name: _json_safe(fields[name].value_from_object(instance)) for name in values}
    for name, value in values.items():
        setattr(instance, name, value)
    others = [name for name in fields if name not in values]
    try:
        instance.clean_fields(exclude=others)
    except ValidationError as exc:
        raise ActionRuntimeError(f"invalid value for {target.name}: {exc.message_dict}") from exc
    after = {name: _json_safe(fields[name].value_from_object(instance)) for name in values}
    if not dry_run:
        instance.save(update_fields=list(values))
    return before, after
