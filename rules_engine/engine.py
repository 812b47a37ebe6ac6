"""The decision pipeline, top to bottom: load, validate, evaluate, dispatch, render, audit.

    execute(entry_point, context)
      1. load      the compiled ruleset of the entry point (process cache, fresh per request)
      2. validate  the context against the entry point's JSON Schema -> InvalidContext
      3. evaluate  rules in priority order, honouring cooldowns and stop_processing
                   -> matched rules + why (not matched, suppressed, skipped, error)
      4. dispatch  each matched rule's actions through the action registry -> effects, writes;
                   delayed actions become ScheduledAction rows
      5. render    message templates of the effects (escaped / sanitised)
      6. audit     one Execution row, in the same transaction as step 4's writes
      return Decision(execution_id, entry_point, outcome, matched_rules, effects, blocking, ...)

A rule or action that fails at run time is recorded in the audit and does not stop the others.
A dry run does steps 1-5 without writing anything (no updates, no audit row).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.ids import new_uuid
from experiments import runtime as experiment_runtime
from rules_engine import audit, cooldowns, metrics, selectors, tally
from rules_engine.actions import ActionContext, ActionRuntimeError, PreparedAction, registry
from rules_engine.actions.base import subject_to_str
from rules_engine.cache import (
    STATE_VAR,
    CompiledRule,
    CompiledRuleset,
    build_evaluator,
    rulesets,
    templates_for,
)
from rules_engine.conditions import evaluation_budget_seconds
from rules_engine.errors import InvalidContext, NotFound
from rules_engine.functions import registry as function_registry
from rules_engine.functions.builtins import format_instant
from rules_engine.jsonlogic import RuleError, limits, trace, truthy
from rules_engine.masking import mask_paths
from rules_engine.models import Execution
from rules_engine.rendering import FrozenContext, freeze_context
from rules_engine.validation import validate_context

logger = logging.getLogger(__name__)

# The decision's instant, as rules read it: the request's `now` (or the time the server
# received it), an event's received time. Rules have no other clock.
NOW_VAR = "$now"


@dataclass(slots=True)
class RuleResult:
    """How one rule fared: matched, not_matched, suppressed (cooldown), skipped or error."""

    rule: CompiledRule
    outcome: str
    error: str | None = None
    # Set for a rule under an experiment: {"variant": ...} (+ "shadow", "shadow_outcome").
    extra: dict[str, Any] | None = None

    def as_audit(self) -> dict[str, Any]:
        """The audit form: the rule summary with outcome (and error, and experiment variant)."""
        row = {**self.rule.summary(), "outcome": self.outcome}
        if self.error:
            row["error"] = self.error
        if self.extra:
            row.update(self.extra)
        return row


@dataclass
class Decision:
    """The result of `execute`: what the caller shows and what was audited."""

    execution_id: str | None
    entry_point: str
    outcome: str
    matched_rules: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    blocking: bool
    duration_ms: float
    dry_run: bool
    subject: str | None = None
    # Every rule's result, in evaluation order (`rule_results` gives their audit form).
    results: list[RuleResult] = field(default_factory=list, repr=False)
    action_results: list[dict[str, Any]] = field(default_factory=list)
    # The `$now` the rules read (ISO-8601, UTC), audited with the context; None if unread.
    now: str | None = None
    # Dry runs only: every rule's result with the explanation of its condition.
    rules: list[dict[str, Any]] | None = None

    @property
    def rule_results(self) -> list[dict[str, Any]]:
        """Every rule's result in its audit form, in evaluation order."""
        return [result.as_audit() for result in self.results]

    @functools.cached_property
    def notable_results(self) -> list[dict[str, Any]]:
        """The audit form of the results other than `not_matched` (and of every rule under an
        experiment): what an audit row with a rule-set snapshot stores."""
        return [r.as_audit() for r in self.results if r.outcome != "not_matched" or r.extra]

    def as_response(self) -> dict[str, Any]:
        """The JSON body of POST /api/rules/engine/execute/."""
        return {
            "execution_id": self.execution_id,
            "entry_point": self.entry_point,
            "outcome": self.outcome,
            "matched_rules": self.matched_rules,
            "effects": self.effects,
            "blocking": self.blocking,
            "duration_ms": self.duration_ms,
            "dry_run": self.dry_run,
            **({} if self.rules is None else {"rules": self.rules}),
        }


@dataclass(frozen=True)
class EventRef:
    """The event a decision is made for: actions link their rows to it (and bound emit depth)."""

    id: str
    depth: int = 0


class BatchRetry(Exception):
    """An optimistic batch cannot go on: decide its events again, with savepoints.

    Raised by `execute` in an optimistic batch when a decision fails after it wrote (or a
    database statement failed): without a savepoint its writes cannot be undone alone.
    """


@dataclass
class Batch:
    """Several decisions in one caller's transaction (event processing, backfills).

    The caller inserts `audit_rows` itself before it commits, and calls `release` when the
    transaction rolls back, so the cooldowns the batch's decisions claimed do not hold for
    decisions that never happened. An `optimistic` batch opens no savepoint per decision and
    per writing action (each costs two statements): a failure that a savepoint would have
    contained raises BatchRetry instead, and the caller rolls back and decides again with a
    batch that is not optimistic, which records such failures as the single call does.
    """

    optimistic: bool = False
    audit_rows: list[audit.AuditRow] = field(default_factory=list)
    cooldowns: list[tuple[str, str]] = field(default_factory=list)

    def release(self) -> None:
        """Free the cooldowns claimed by the batch's decisions (its transaction rolled back)."""
        _release_claimed(self.cooldowns)
        self.cooldowns.clear()


@dataclass
class _Run:
    """Per-decision state threaded through the steps (ids, mode, cooldowns to undo)."""

    ruleset: CompiledRuleset
    dry_run: bool
    execution_id: str | None
    event: EventRef | None
    optimistic: bool = False
    subject: str | None = None
    claimed_cooldowns: list[tuple[str, str]] = field(default_factory=list)
    # Whether an action wrote rows; such decisions keep their audit row in their transaction.
    wrote: bool = False
    now: datetime = field(default_factory=timezone.now)
    now_read: str | None = None


def execute(
    *,
    entry_point: str,
    context: Any,
    dry_run: bool = False,
    caller: str = "",
    request_id: str = "",
    event: EventRef | None = None,
    batch: Batch | None = None,
    now: datetime | None = None,
) -> Decision:
    """Decide for one context at one entry point, and audit the decision.

    `now` (aware) is the instant rules read as `$now`; by default the time of the call.

    Raises NotFound (unknown_entry_point) for an unknown or inactive entry point and
    InvalidContext with every schema error and its JSON path. Writes the actions' updates,
    scheduled actions, deliveries and one Execution row in one transaction (nothing when
    dry_run). Called inside a caller's transaction (event processing) it joins it; a caller
    deciding many events in one transaction passes a `batch` (see Batch) and inserts the
    collected Execution rows itself, together, before it commits. In an optimistic batch it
    raises BatchRetry where a savepoint would have been needed.
    """
    started = time.perf_counter()

    # 1. load
    ruleset = rulesets.get(entry_point)
    if ruleset is None:
        raise NotFound("unknown_entry_point", f"no active entry point {entry_point!r}")

    in_callers_transaction = transaction.get_connection().in_atomic_block
    batch = batch if in_callers_transaction else None
    optimistic = batch is not None and batch.optimistic
    run = _Run(ruleset, dry_run, None if dry_run else new_uuid(), event, optimistic)
    if now is not None:
        run.now = now
    # A rule set none of whose actions can write needs no transaction around the decision:
    # its only write is the audit row, which group commit batches with other requests' rows.
    # An optimistic batch needs no savepoint: it is redone as a whole if a decision fails.
    needs_transaction = not optimistic and (
        ruleset.may_write or in_callers_transaction or not _group_enabled()
    )
    try:
        with transaction.atomic() if needs_transaction else nullcontext():
            # 2.-5. validate, evaluate, dispatch, render
            decision = _decide(run, context, started=started)

            # 6. audit, in the transaction of the actions' writes ...
            row = None if dry_run else _audit_row(ruleset, decision, context, caller, request_id)
            group = row is not None and _group_commit(run, in_callers_transaction)
            if row is not None and not group:
                if batch is not None:
                    batch.audit_rows.append(row)
                else:
                    audit.insert_rows([row])

        # ... or, for a decision that wrote nothing else, committed together with the audit
        # rows of concurrent requests (one INSERT per batch); answered only once committed.
        if row is not None and group:
            audit.writer.write(row)
    except BaseException as exc:
        # The decision did not happen, so the cooldowns it started must not hold.
        _release_claimed(run.claimed_cooldowns)
        if optimistic and (run.wrote or isinstance(exc, DatabaseError)):
            # Its writes (or an aborted transaction) cannot be undone without the batch.
            raise BatchRetry(f"{type(exc).__name__}: {exc}") from exc
        raise
    if batch is not None:
        batch.cooldowns += run.claimed_cooldowns
    if not dry_run:
        _count(ruleset, decision, time.perf_counter() - started)
    return decision


def _decide(run: _Run, context: Any, *, started: float) -> Decision:
    ruleset = run.ruleset
    # 2. validate
    errors = validate_context(schema=ruleset.schema, context=context, validator=ruleset.validator)
    if errors:
        raise InvalidContext([{"path": e.path, "message": e.message} for e in errors])
    run.subject = _subject_of(ruleset, context)
    data, state = _evaluation_data(ruleset, context, run.subject)

    # 3. evaluate
    results = _evaluate(run, data)
    if not run.dry_run and metrics.rule_timing_due():
        metrics.time_rules(ruleset.key, results, data)
    matched = [r.rule for r in results if r.outcome == "matched"]

    # 4. dispatch
    effects, action_results = _dispatch(run, matched, data, context)

    # 5. render
    template_context: Any = context if state is None else {"state": state, **context}
    if sum("template" in effect for effect in effects) > 1:
        # Copied into read-only form once for all the templates, not once per template.
        with contextlib.suppress(TypeError):  # not JSON data: each render reports it
            template_context = freeze_context(template_context)
    effects = [_render(ruleset, effect, template_context) for effect in effects]

    return Decision(
        execution_id=run.execution_id,
        entry_point=ruleset.key,
        outcome=_outcome(results),
        matched_rules=[rule.summary() for rule in matched],
        effects=effects,
        blocking=any(effect.get("blocking") for effect in effects),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        dry_run=run.dry_run,
        subject=run.subject,
        results=results,
        action_results=action_results,
        now=run.now_read,
        rules=_explained(run, results, data) if run.dry_run else None,
    )


def _explained(run: _Run, results: list[RuleResult], data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rule's result with its condition explained by the tracing compiler (dry runs only:
    decisions never trace). A rule that does not compile has a null explanation."""
    if run.now_read is not None:
        data = {**data, NOW_VAR: run.now_read}
    rows = []
    with limits.budget(evaluation_budget_seconds()):
        for result in results:
            explanation = None
            if result.rule.error is None:
                explanation = _explainer(result.rule).explain(
                    data, sensitive_paths=run.ruleset.sensitive_paths
                )
            rows.append({**result.as_audit(), "explanation": explanation})
    return rows


class _PerObject:
    """Values derived from objects that cannot carry them (frozen, unhashable), by identity:
    each entry keeps its object alive, so its id cannot be reused meanwhile; `stamp` says what
    else the value was built from; bounded (a rule change makes new objects)."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._entries: dict[int, tuple[Any, Any, Any]] = {}
        # Freed before the interpreter tears modules down: a value may hold WebAssembly
        # modules, whose finalizers need wasmtime still loaded.
        atexit.register(self._entries.clear)

    def get(self, obj: Any, build: Callable[[], Any], stamp: Any = None) -> Any:
        """The value for `obj` and `stamp`, built by `build()` the first time."""
        entry = self._entries.get(id(obj))
        if entry is None or entry[0] is not obj or entry[1] != stamp:
            if len(self._entries) >= self._bound:
                self._entries.clear()
            entry = self._entries[id(obj)] = (obj, stamp, build())
        return entry[2]


# Each rule compiled for explaining: compiling was two thirds of a dry run's CPU.
_explainers = _PerObject(4096)


def _explainer(rule: CompiledRule) -> trace.Explainer:
    verdict = settings.VERDICT
    depth, nodes = int(verdict["MAX_RULE_DEPTH"]), int(verdict["MAX_RULE_NODES"])
    explainer: trace.Explainer = _explainers.get(
        rule,
        lambda: trace.Explainer(rule.source, max_depth=depth, max_rule_nodes=nodes),
        # (Un)registering a function recompiles too.
        stamp=(depth, nodes, function_registry.generation),
    )
    return explainer


def dry_run_rule(*, rule: Any, context: Any, now: datetime | None = None) -> Decision:
    """Run one rule (saved or not) against a context without writing anything.

    Used by the admin's "dry run" and by authors testing a draft: the rule is compiled from
    its current content, the context validated with its entry point's schema, and the result
    shaped like `execute`'s. Raises InvalidInput when the rule does not compile, NotFound
    when its entry point is inactive, InvalidContext for a context the schema refuses.
    """
    from rules_engine.cache import build_ruleset, compile_rule_version

    started = time.perf_counter()
    ruleset = build_ruleset(rule.entry_point.key)
    if ruleset is None:
        raise NotFound("unknown_entry_point", f"no active entry point {rule.entry_point.key!r}")
    compiled = compile_rule_version(rule, strict=True)
    ruleset = replace(
        ruleset,
        rules=(compiled,),
        templates=templates_for((compiled,)),
        uses_state=STATE_VAR in repr((rule.condition, rule.actions)),
        evaluator=build_evaluator((compiled,)),
    )
    run = _Run(ruleset, True, None, None)
    if now is not None:
        run.now = now
    return _decide(run, context, started=started)


def run_delayed_action(*, scheduled: Any) -> dict[str, Any]:
    """Run a ScheduledAction's action now, as the decision that scheduled it would have.

    Call inside the transaction that marks the row done, so the action's writes and the row's
    status commit together (a crash before commit leaves neither). Returns the result row
    (with the rendered effect, if any). Raises ActionSpecError when the stored spec no longer
    compiles and whatever the handler raises. Callers running many actions wrap them in
    `cache.one_generation()` so a batch checks the ruleset generation once.
    """
    prepared = _prepared_spec(orjson.dumps(scheduled.spec, option=orjson.OPT_SORT_KEYS))
    context = dict(scheduled.data)
    subject = scheduled.subject or None
    if STATE_VAR in repr(scheduled.spec):
        # Delayed actions read the subject's state as it is when they run, not as it was.
        context[STATE_VAR] = selectors.subject_state_attributes(subject=subject) if subject else {}
    ctx = ActionContext(
        entry_point_key=scheduled.entry_point_key,
        critical=scheduled.critical,
        data=context,
        subject=subject,
        rule_id=str(scheduled.rule_id),
        rule_name=scheduled.rule_name,
        rule_version=scheduled.rule_version,
        action_index=scheduled.action_index,
        dry_run=False,
        execution_id=str(scheduled.execution_id) if scheduled.execution_id else None,
        event_id=str(scheduled.event_id) if scheduled.event_id else None,
        event_depth=scheduled.event_depth,
        scheduled_action_id=str(scheduled.id),
    )
    outcome = prepared.run(ctx)
    result: dict[str, Any] = {"status": "ok", **outcome.result}
    if outcome.effect is not None:
        ruleset = rulesets.get(scheduled.entry_point_key)
        effect = {"rule_id": ctx.rule_id, "action_index": ctx.action_index, **outcome.effect}
        result["effect"] = _render(ruleset, effect, scheduled.data) if ruleset else effect
    return result


@functools.lru_cache(maxsize=1024)
def _prepared_spec(spec_json: bytes) -> PreparedAction:
    # Delayed actions of one rule version share their spec: validate and compile it once.
    return registry.prepare(orjson.loads(spec_json), "$")


@contextlib.contextmanager
def reading_ahead(decisions: Iterable[tuple[str, Any]]) -> Iterator[None]:
    """Within the block, decisions on these (entry point, context) pairs read their subjects'
    state, acknowledgements and preferences from one query made now, instead of up to three
    each (a batch of events decided in one transaction)."""
    subjects: set[str] = set()
    for entry_point, context in decisions:
        ruleset = rulesets.get(entry_point)
        if ruleset is not None and isinstance(context, dict):
            with contextlib.suppress(Exception):  # the decision reports it, if it matters
                if subject := _subject_of(ruleset, context):
                    subjects.add(subject)
    with selectors.subjects_read_ahead(subjects=subjects):
        yield


def _subject_of(ruleset: CompiledRuleset, context: Any) -> str | None:
    if ruleset.subject is None:
        return None
    return subject_to_str(ruleset.subject(context))


def _evaluation_data(
    ruleset: CompiledRuleset, context: dict[str, Any], subject: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    # Rules see the subject's stored attributes as "$state" only when one of them reads it,
    # so entry points that never use state pay no query for it.
    if not ruleset.uses_state:
        return context, None
    state = selectors.subject_state_attributes(subject=subject) if subject else {}
    return {**context, STATE_VAR: state}, state


def _evaluate(run: _Run, data: dict[str, Any]) -> list[RuleResult]:
    # Every condition at once: variable lookups shared, rules whose first test cannot match
    # skipped through the index; a failing rule comes back as a RuleError in its place.
    evaluator = run.ruleset.evaluator
    if evaluator.may_read(NOW_VAR):
        # Only conditions see `$now` (a context's own "$now" key is overridden); actions get
        # the context as it came.
        run.now_read = format_instant(run.now)
        data = {**data, NOW_VAR: run.now_read}
    # Loops and function calls past the budget fail their rule (a RuleError) and the
    # decision still answers.
    with limits.budget(evaluation_budget_seconds()):
        values = evaluator.evaluate(data, errors="collect")
        rules, notes = run.ruleset.rules, None
        if run.ruleset.experiments:
            # A/B experiments and rollouts: the subject's variant replaces (or, in shadow
            # mode, is evaluated beside) its rule (experiments/runtime.py).
            rules, values, notes = experiment_runtime.apply(run, rules, values, data)
    if notes is None and rules is run.ruleset.rules:
        return _results_of_notable(run, values, data)
    results: list[RuleResult] = []
    stopped = False
    for rule, value in zip(rules, values, strict=True):
        if stopped:
            results.append(RuleResult(rule, "skipped"))
            continue
        result = _rule_result(run, rule, value, data)
        results.append(result)
        stopped = result.outcome == "matched" and rule.stop_processing
    if notes:
        experiment_runtime.annotate(results, notes)
    return results


def _results_of_notable(run: _Run, values: list[Any], data: dict[str, Any]) -> list[RuleResult]:
    """The results when no experiment changes the rules: most values are a plain false, whose
    results are shared (prebuilt once per rule set), so only the other values and the rules
    that did not compile are looked at, in order."""
    rules = run.ruleset.rules
    not_matched, skipped, broken = _prebuilt_results(run.ruleset)
    results = list(not_matched)
    notable = [index for index, value in enumerate(values) if value is not False]
    if broken:
        notable = sorted({*notable, *broken})
    for index in notable:
        rule = rules[index]
        result = results[index] = _rule_result(run, rule, values[index], data)
        if result.outcome == "matched" and rule.stop_processing:
            results[index + 1 :] = skipped[index + 1 :]
            break
    return results


def _rule_result(run: _Run, rule: CompiledRule, value: Any, data: dict[str, Any]) -> RuleResult:
    """One rule's result from its condition's value (a RuleError if evaluating it failed);
    claims the rule's cooldown when it matches."""
    if value is False and not rule.error:
        # Most rules, most of the time: a plain false needs none of the checks below.
        return RuleResult(rule, "not_matched")
    if rule.error:
        return RuleResult(rule, "error", rule.error)
    try:
        if isinstance(value, RuleError):
            raise value.error
        hit = truthy(value)
        cooling = hit and rule.cooldown_seconds > 0 and _cooling_down(run, rule, data)
    except Exception as exc:  # noqa: BLE001  (one broken rule must not break the decision)
        logger.warning("rule %s v%s failed: %s", rule.id, rule.version, exc)
        return RuleResult(rule, "error", f"{type(exc).__name__}: {exc}")
    if cooling:
        return RuleResult(rule, "suppressed", "cooldown active")
    return RuleResult(rule, "matched" if hit else "not_matched")


# Per rule set: the shared not_matched and skipped results of its rules, and the indices of
# rules that did not compile. Shared results are never changed (only experiments annotate
# results, and they take the other path).
_prebuilt = _PerObject(64)


def _prebuilt_results(
    ruleset: CompiledRuleset,
) -> tuple[tuple[RuleResult, ...], tuple[RuleResult, ...], tuple[int, ...]]:
    def build() -> tuple[tuple[RuleResult, ...], tuple[RuleResult, ...], tuple[int, ...]]:
        rules = ruleset.rules
        return (
            tuple(RuleResult(rule, "not_matched") for rule in rules),
            tuple(RuleResult(rule, "skipped") for rule in rules),
            tuple(index for index, rule in enumerate(rules) if rule.error),
        )

    prebuilt: tuple[tuple[RuleResult, ...], tuple[RuleResult, ...], tuple[int, ...]]
    prebuilt = _prebuilt.get(ruleset, build)
    return prebuilt


def _cooling_down(run: _Run, rule: CompiledRule, data: dict[str, Any]) -> bool:
    """Whether a matched rule is suppressed by its cooldown; claims the cooldown otherwise."""
    key = run.subject if rule.cooldown_key is None else subject_to_str(rule.cooldown_key(data))
    # Without a subject the cooldown applies to the rule as a whole.
    key = key or "*"
    store = cooldowns.store()
    if run.dry_run:
        return store.active(rule.id, key)
    if store.claim(rule.id, key, rule.cooldown_seconds):
        run.claimed_cooldowns.append((rule.id, key))
        return False
    return True


def _release_claimed(claimed: list[tuple[str, str]]) -> None:
    for rule_id, key in claimed:
        try:
            cooldowns.store().release(rule_id, key)
        except Exception:
            logger.exception("could not release cooldown %s:%s", rule_id, key)


def _dispatch(
    run: _Run, matched: list[CompiledRule], data: dict[str, Any], context: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    effects: list[dict[str, Any]] = []
    action_results: list[dict[str, Any]] = []
    for rule in matched:
        for index, action in enumerate(rule.actions):
            ctx = ActionContext(
                entry_point_key=run.ruleset.key,
                critical=run.ruleset.critical,
                data=data,
                subject=run.subject,
                rule_id=rule.id,
                rule_name=rule.name,
                rule_version=rule.version,
                action_index=index,
                dry_run=run.dry_run,
                execution_id=run.execution_id,
                event_id=run.event.id if run.event else None,
                event_depth=run.event.depth if run.event else 0,
            )
            row: dict[str, Any] = {
                "rule_id": rule.id,
                "rule_version": rule.version,
                "action_index": index,
                "type": action.type,
            }
            writes = not run.dry_run and (action.delayed or action.handler.writes)
            try:
                if action.delayed:
                    action_results.append({**row, **_schedule(run, ctx, action, context)})
                    continue
                if writes:
                    run.wrote = True
                    # A savepoint keeps a failed write from poisoning the decision's
                    # transaction (an optimistic batch is redone with savepoints instead).
                    with nullcontext() if run.optimistic else transaction.atomic():
                        outcome = action.run(ctx)
                else:
                    outcome = action.run(ctx)
            except Exception as exc:  # recorded; other actions still run
                if run.optimistic and (writes or isinstance(exc, DatabaseError)):
                    raise
                logger.warning("action %s of rule %s failed: %s", index, rule.id, exc)
                action_results.append({**row, "status": "error", "error": str(exc)})
                continue
            action_results.append({**row, "status": "ok", **outcome.result})
            if outcome.effect is not None:
                effects.append({"rule_id": rule.id, "action_index": index, **outcome.effect})
    return effects, action_results


def _schedule(
    run: _Run, ctx: ActionContext, action: PreparedAction, context: dict[str, Any]
) -> dict[str, Any]:
    """Turn a delayed action into a ScheduledAction row (in the decision's transaction)."""
    from scheduling.services import scheduled_action_create

    now = timezone.now()
    if action.at is not None:
        due_at = _parse_time(action.at(ctx.data))
    else:
        due_at = now + timedelta(seconds=action.delay_seconds or 0)
    if run.dry_run:
        return {"status": "would_schedule", "due_at": due_at.isoformat()}
    run.wrote = True
    scheduled = scheduled_action_create(spec=action.spec(), due_at=due_at, data=context, ctx=ctx)
    return {
        "status": "scheduled",
        "scheduled_action_id": str(scheduled.pk),
        "due_at": due_at.isoformat(),
    }


def _parse_time(value: Any) -> datetime:
    """An `at` result as an aware datetime. Raises ActionRuntimeError for anything else."""
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ActionRuntimeError(f"'at' must give an ISO-8601 date-time, got {value!r}")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _render(
    ruleset: CompiledRuleset, effect: dict[str, Any], context: Mapping[str, Any] | FrozenContext
) -> dict[str, Any]:
    key = effect.get("template")
    if key is None:
        return effect
    entry = ruleset.templates.get(key)
    if entry is None or entry.template is None:
        reason = entry.error if entry else f"message template {key!r} is missing"
        return {**effect, "message": None, "render_error": reason}
    try:
        rendered = entry.template.render(context)
    except Exception as exc:  # noqa: BLE001  (a broken template must not break the decision)
        logger.warning("template %s failed to render: %s", key, exc)
        return {**effect, "message": None, "render_error": str(exc)}
    message = {
        "format": rendered.format,
        "content_type": rendered.content_type,
        "content": rendered.content,
    }
    return {**effect, "message": message}


def _outcome(results: list[RuleResult]) -> str:
    if any(r.outcome == "matched" for r in results):
        return Execution.Outcome.MATCHED
    if any(r.outcome == "error" for r in results):
        return Execution.Outcome.ERROR
    return Execution.Outcome.NO_MATCH


def _count(ruleset: CompiledRuleset, decision: Decision, seconds: float) -> None:
    tally.inc(metrics.child(metrics.decisions, ruleset.key, decision.outcome))
    tally.observe(metrics.child(metrics.decision_seconds, ruleset.key), seconds)
    # Rules that did not match are not counted, so the notable results are enough.
    rule_failures = metrics.count_rule_outcomes(ruleset.key, decision.notable_results)
    action_failures = sum(1 for r in decision.action_results if r["status"] == "error")
    if rule_failures:
        metrics.rule_errors.labels(ruleset.key, "rule").inc(rule_failures)
    if action_failures:
        metrics.rule_errors.labels(ruleset.key, "action").inc(action_failures)


def _group_enabled() -> bool:
    return bool(settings.VERDICT.get("AUDIT_GROUP_COMMIT", True))


def _group_commit(run: _Run, in_callers_transaction: bool) -> bool:
    return not (run.wrote or in_callers_transaction) and _group_enabled()


def _audit_row(
    ruleset: CompiledRuleset,
    decision: Decision,
    context: dict[str, Any],
    caller: str,
    request_id: str,
) -> audit.AuditRow:
    if decision.now is not None:
        context = {**context, NOW_VAR: decision.now}  # what the rules read, for replay
    # Under an experiment the rules differ per subject, so the row keeps every result;
    # otherwise the rule set's snapshot stands for the rules that did not match.
    snapshot = None if ruleset.experiments else ruleset.snapshot
    return audit.new_row(
        snapshot=snapshot,
        id=decision.execution_id,
        entry_point_id=ruleset.entry_point_id,
        outcome=decision.outcome,
        matched_rules=decision.matched_rules,
        rule_results=decision.rule_results if snapshot is None else decision.notable_results,
        ruleset_id=None if snapshot is None else snapshot.digest,
        context_snapshot=mask_paths(context, ruleset.sensitive_paths),
        effects=decision.effects,
        action_results=decision.action_results,
        blocking=decision.blocking,
        duration_ms=decision.duration_ms,
        caller=caller[:200],
        request_id=request_id[:100],
        subject=(decision.subject or "")[:200],
    )
