"""Writes of scheduling: create delayed actions (more services follow in this module)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rules_engine.actions import ActionContext
from scheduling.models import ScheduledAction


def scheduled_action_create(
    *, spec: dict[str, Any], due_at: datetime, data: dict[str, Any], ctx: ActionContext
) -> ScheduledAction:
    """Store a delayed action as a pending row; call inside the decision's transaction.

    The row is the durable truth: the sweeper publishes it to Celery shortly before `due_at`.
    Writes one ScheduledAction row.
    """
    return ScheduledAction.objects.create(
        event_id=ctx.event_id,
        execution_id=ctx.execution_id,
        entry_point_key=ctx.entry_point_key,
        critical=ctx.critical,
        rule_id=ctx.rule_id,
        rule_name=ctx.rule_name,
        rule_version=ctx.rule_version,
        action_index=ctx.action_index,
        spec=spec,
        data=data,
        subject=ctx.subject or "",
        event_depth=ctx.event_depth,
        due_at=due_at,
    )
