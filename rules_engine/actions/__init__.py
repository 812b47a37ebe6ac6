"""Action handlers, one module per type, registered by type name in `base.registry`."""

from rules_engine.actions import (  # noqa: F401  (importing registers the handlers)
    display_message,
    display_modal,
    emit_event,
    publish,
    update,
    user_acknowledge,
    user_preference,
    webhook,
)
from rules_engine.actions.base import (
    ActionContext,
    ActionOutcome,
    ActionRuntimeError,
    ActionSpecError,
    PreparedAction,
    registry,
)

__all__ = [
    "ActionContext",
    "ActionOutcome",
    "ActionRuntimeError",
    "ActionSpecError",
    "PreparedAction",
    "registry",
]
