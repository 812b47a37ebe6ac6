"""The action handler protocol and the registry that maps an action `type` to its handler.

An action spec stored on a rule is `{"type": "<name>", "params": {...}}`, optionally with
`"delay_seconds": n` or `"at": <JSONLogic giving an ISO-8601 time>` to run it later. When a
rule is saved each spec is checked against its handler's `params_schema` and prepared
(JSONLogic inside the params compiled); at decision time the prepared action runs and returns
an effect for the client and a result for the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

from jsonschema import Draft202012Validator

from rules_engine import metrics
from rules_engine.conditions import compile_condition
from rules_engine.jsonlogic import JsonLogicError
from rules_engine.paths import json_path

ACTION_SPEC_KEYS = frozenset({"type", "params", "delay_seconds", "at"})
MAX_DELAY_SECONDS = 366 * 24 * 3600


class ActionSpecError(Exception):
    """An action spec that cannot be saved; `path` is the JSON path of the offending node."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class ActionRuntimeError(Exception):
    """An action that failed while a decision ran; recorded in the audit, never a 500."""


class ActionContext(NamedTuple):
    """Everything an action sees when it runs: the decision's data and who it is about.

    Immutable; a named tuple rather than a frozen dataclass because one is built for every
    action of every decision, and a frozen dataclass sets each field through a slow path.
    """

    entry_point_key: str
    critical: bool
    data: Mapping[str, Any]
    subject: str | None
    rule_id: str
    rule_name: str
    rule_version: int
    action_index: int
    dry_run: bool
    # The audit row of the decision (None on dry runs); rows written by actions refer to it.
    execution_id: str | None = None
    # The event being processed, if any, and how many emit_event hops produced it.
    event_id: str | None = None
    event_depth: int = 0
    # Set when a delayed action runs from its ScheduledAction row.
    scheduled_action_id: str | None = None

    def idempotency_key(self) -> str:
        """A key unique to this action of this decision (and run of a delayed action).

        Rows an action writes elsewhere (deliveries, emitted events) use it, so running the
        same action again after a crash finds the row instead of writing a second one.
        """
        origin = self.scheduled_action_id or self.execution_id or "dry-run"
        return f"{origin}:{self.rule_id}:{self.action_index}"


@dataclass
class ActionOutcome:
    """What one action produced: the client-facing `effect` (or None) and the audit `result`."""

    effect: dict[str, Any] | None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedAction:
    """An action spec with its params validated and its expressions compiled, ready to run."""

    handler: ActionHandler
    type: str
    params: dict[str, Any]
    compiled: dict[str, Any]
    delay_seconds: float | None = None
    at: Callable[[Any], Any] | None = None

    @property
    def delayed(self) -> bool:
        """Whether this action is scheduled instead of run during the decision."""
        return self.delay_seconds is not None or self.at is not None

    def spec(self) -> dict[str, Any]:
        """The action spec without its delay: what a ScheduledAction row stores and runs."""
        return {"type": self.type, "params": self.params}

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Run the action. Raises ActionRuntimeError or JsonLogicError on failure.

        Counted in `verdict_actions_total` by type and outcome (dry runs are not).
        """
        try:
            outcome = self.handler.run(self, ctx)
        except Exception:
            if not ctx.dry_run:
                metrics.count_action(self.type, "error")
            raise
        if not ctx.dry_run:
            metrics.count_action(self.type, "ok")
        return outcome


class ActionHandler:
    """Base class for action handlers: subclasses set `type`, `params_schema` and `run`.

    `compile_params` may be overridden to compile JSONLogic found in the params; it returns a
    dict of compiled callables stored on the PreparedAction.
    """

    type: ClassVar[str]
    params_schema: ClassVar[dict[str, Any]]
    # Handlers that write to the database run inside a savepoint of the decision.
    writes: ClassVar[bool] = False
    _validator: ClassVar[Draft202012Validator | None] = None

    def template_keys(self, params: Mapping[str, Any]) -> list[str]:
        """The message template keys these params reference (checked to exist at save time)."""
        template = params.get("template")
        return [template] if isinstance(template, str) else []

    def compile_params(self, params: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Compile expressions in the params. Raises ActionSpecError naming the bad node."""
        return {}

    def check_references(self, params: Mapping[str, Any], path: str) -> None:
        """Check what the params name outside the rule (destinations...) when it is saved.

        Raises ActionSpecError. Only saving a rule calls it: when stored rules are recompiled a
        reference that has gone away fails this one action at run time, not the whole rule.
        """

    def prepare(self, params: Any, path: str) -> PreparedAction:
        """Validate params against the schema and compile them. Raises ActionSpecError."""
        validator = type(self)._validator
        if validator is None:
            validator = Draft202012Validator(self.params_schema)
            type(self)._validator = validator
        errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            raise ActionSpecError(json_path(first.absolute_path, prefix=path), first.message)
        return PreparedAction(
            handler=self,
            type=self.type,
            params=dict(params),
            compiled=self.compile_params(params, path),
        )

    def run(self, prepared: PreparedAction, ctx: ActionContext) -> ActionOutcome:
        """Run the action for one matched rule. Raises ActionRuntimeError on failure."""
        raise NotImplementedError


def compile_expression(expr: Any, path: str) -> Callable[[Any], Any]:
    """Compile a JSONLogic expression found in action params. Raises ActionSpecError."""
    try:
        return compile_condition(expr)
    except JsonLogicError as exc:
        raise ActionSpecError(exc.json_path(prefix=path), exc.message) from exc


def subject_to_str(value: Any) -> str | None:
    """Turn an evaluated subject (id, email, ...) into the string key used for storage."""
    if value is None or value == "" or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ActionRegistry:
    """Maps action type names to handler instances; the only way actions enter the engine."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}

    def register(self, handler_cls: type[ActionHandler]) -> type[ActionHandler]:
        """Register a handler class (usable as a decorator). Raises ValueError on a duplicate."""
        if handler_cls.type in self._handlers:
            raise ValueError(f"action type {handler_cls.type!r} is already registered")
        self._handlers[handler_cls.type] = handler_cls()
        return handler_cls

    def get(self, type_name: str) -> ActionHandler | None:
        """The handler for a type name, or None."""
        return self._handlers.get(type_name)

    def types(self) -> list[str]:
        """Registered type names, sorted."""
        return sorted(self._handlers)

    def __iter__(self) -> Iterator[ActionHandler]:
        return iter(self._handlers.values())

    def prepare(self, spec: Any, path: str) -> PreparedAction:
        """Validate and compile one action spec. Raises ActionSpecError naming the bad node."""
        if not isinstance(spec, dict):
            raise ActionSpecError(path, "an action must be an object with 'type' and 'params'")
        unknown = sorted(set(spec) - ACTION_SPEC_KEYS)
        if unknown:
            raise ActionSpecError(
                json_path([unknown[0]], prefix=path), f"unknown action key {unknown[0]!r}"
            )
        type_name = spec.get("type")
        handler = self._handlers.get(type_name) if isinstance(type_name, str) else None
        if handler is None:
            raise ActionSpecError(
                f"{path}.type",
                f"unknown action type {type_name!r}; known types: {', '.join(self.types())}",
            )
        prepared = handler.prepare(spec.get("params", {}), f"{path}.params")
        delay, at = _delay_of(spec, path)
        if delay is None and at is None:
            return prepared
        return replace(prepared, delay_seconds=delay, at=at)


def _delay_of(spec: Mapping[str, Any], path: str) -> tuple[float | None, Any]:
    if "delay_seconds" in spec and "at" in spec:
        raise ActionSpecError(f"{path}.at", "use either delay_seconds or at, not both")
    if "delay_seconds" in spec:
        delay = spec["delay_seconds"]
        valid = isinstance(delay, (int, float)) and not isinstance(delay, bool)
        if not valid or not 0 < delay <= MAX_DELAY_SECONDS:
            raise ActionSpecError(
                f"{path}.delay_seconds",
                f"must be a number of seconds above 0 and at most {MAX_DELAY_SECONDS}",
            )
        return float(delay), None
    if "at" in spec:
        return None, compile_expression(spec["at"], f"{path}.at")
    return None, None


registry = ActionRegistry()


class SubjectActionHandler(ActionHandler):
    """A handler whose params may name their subject with a JSONLogic `subject` expression.

    Without one, the action is about the entry point's subject (its `subject_path` value).
    """

    def compile_params(self, params: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Compile the optional `subject` expression. Raises ActionSpecError."""
        if "subject" in params:
            return {"subject": compile_expression(params["subject"], f"{path}.subject")}
        return {}

    def subject_for(self, prepared: PreparedAction, ctx: ActionContext) -> str | None:
        """The subject this action is about, or None when it cannot be determined."""
        expression = prepared.compiled.get("subject")
        if expression is None:
            return ctx.subject
        return subject_to_str(expression(ctx.data))
