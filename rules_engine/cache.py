"""Compiled rulesets per entry point, cached per process and invalidated across processes.

Every write that changes what a decision depends on calls `invalidate()`, which stores a new
random generation stamp in the shared cache (Redis in production) both immediately and again
when the transaction commits. Each `RulesetCache.get` reads that stamp once (one cache round
trip) and drops everything it compiled under another stamp, so every process serves a change
from its next request on. The stamp is read before the database, so a ruleset loaded while a
change commits is stored under the old stamp and reloaded on the next request.

With `VERDICT["CACHE_CHECK_INTERVAL"]` > 0 a process re-reads the stamp at most once per
interval instead of per request, so other processes see a change up to that much later (it
must stay below 1 s); a bump made in this process is seen by this process at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.core.cache import cache as shared_cache
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from rules_engine import jsonlogic, metrics, tally
from rules_engine.actions import ActionSpecError, PreparedAction, registry
from rules_engine.conditions import compile_condition
from rules_engine.jsonlogic import JsonLogicError
from rules_engine.rendering import CompiledTemplate, TemplateError, compile_template
from rules_engine.validation import get_validator

logger = logging.getLogger(__name__)

GENERATION_KEY = "verdict:rules:generation"
STATE_VAR = "$state"


@dataclass(frozen=True)
class CompiledRule:
    """One active rule version, compiled: its condition callable and prepared actions.

    `error` is set when the stored rule no longer compiles (for example an update target was
    removed from settings); such a rule is reported as an error at decision time.
    """

    id: str
    name: str
    version: int
    priority: int
    stop_processing: bool
    condition: Callable[[Any], Any]
    actions: tuple[PreparedAction, ...]
    error: str | None = None
    cooldown_seconds: int = 0
    cooldown_key: Callable[[Any], Any] | None = None
    # The condition's JSON, compiled again with the other rules into the ruleset evaluator.
    source: Any = False

    def summary(self) -> dict[str, Any]:
        """The rule as listed in a decision: id, name, version, priority."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class CompiledTemplateEntry:
    """A message template compiled at one version."""

    key: str
    version: int
    format: str
    template: CompiledTemplate | None
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The rules a compiled rule set evaluates, as stored once in `RulesetSnapshot`."""

    digest: str
    entry_point_id: int
    rules: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, entry_point_id: int, rules: tuple[CompiledRule, ...]) -> Snapshot:
        """The snapshot of `rules` (in evaluation order), keyed by the SHA-256 of its content."""
        summaries = tuple(rule.summary() for rule in rules)
        content = orjson.dumps([entry_point_id, summaries], option=orjson.OPT_SORT_KEYS)
        return cls(hashlib.sha256(content).hexdigest(), entry_point_id, summaries)


@dataclass(frozen=True)
class CompiledRuleset:
    """Everything `execute` needs for one entry point, built once per generation."""

    entry_point_id: int
    key: str
    version: int
    critical: bool
    schema: dict[str, Any]
    sensitive_paths: tuple[str, ...]
    subject: Callable[[Any], Any] | None
    rules: tuple[CompiledRule, ...]
    templates: dict[str, CompiledTemplateEntry] = field(default_factory=dict)
    uses_state: bool = False
    validator: Any = None
    # All conditions compiled into one callable (shared lookups, indexed first tests).
    evaluator: Any = None
    # Whether any action may write rows (updates, deliveries, events, delayed actions).
    may_write: bool = True
    # Running experiments by rule id (experiments.runtime.RulePlan); empty for most entry
    # points, which then pay one truthiness test per decision.
    experiments: dict[str, Any] = field(default_factory=dict)
    # What audit rows refer to instead of listing every rule that did not match.
    snapshot: Snapshot | None = None


def compile_rule_version(rule: Any, *, strict: bool = False) -> CompiledRule:
    """Compile a rule's current content (a Rule row or an unsaved Rule).

    With strict=True a rule that does not compile raises InvalidInput (via the service's
    compile); otherwise it is kept with `error` set, so one broken stored rule is reported at
    decision time instead of taking its entry point down.
    """
    if strict:
        from rules_engine.services import rule_compile

        condition, prepared = rule_compile(
            condition=rule.condition, actions=rule.actions, cooldown_key=rule.cooldown_key
        )
        key = compile_condition(rule.cooldown_key) if rule.cooldown_key is not None else None
        return _compiled(rule, condition, tuple(prepared), None, key)
    try:
        condition = compile_condition(rule.condition)
        cooldown_key = (
            compile_condition(rule.cooldown_key) if rule.cooldown_key is not None else None
        )
        actions = tuple(
            registry.prepare(spec, f"$.actions[{index}]") for index, spec in enumerate(rule.actions)
        )
    except (JsonLogicError, ActionSpecError) as exc:
        logger.error("stored rule %s v%s does not compile: %s", rule.pk, rule.version, exc)
        return _compiled(rule, _never, (), f"rule does not compile: {exc}")
    return _compiled(rule, condition, actions, None, cooldown_key)


def _compiled(
    rule: Any,
    condition: Callable[[Any], Any],
    actions: tuple[PreparedAction, ...],
    error: str | None,
    cooldown_key: Callable[[Any], Any] | None = None,
) -> CompiledRule:
    return CompiledRule(
        id=str(rule.pk),
        name=rule.name,
        version=rule.version,
        priority=rule.priority,
        stop_processing=rule.stop_processing,
        condition=condition,
        actions=actions,
        error=error,
        cooldown_seconds=rule.cooldown_seconds,
        cooldown_key=cooldown_key,
        # A rule that does not compile takes part as `false` (it is reported as an error).
        source=rule.condition if error is None else False,
    )


def templates_for(rules: tuple[CompiledRule, ...]) -> dict[str, CompiledTemplateEntry]:
    """Load and compile the message templates the rules' actions reference (one query)."""
    from rules_engine import selectors

    keys = {
        key
        for rule in rules
        for action in rule.actions
        for key in action.handler.template_keys(action.params)
    }
    return {
        key: _compile_template(template)
        for key, template in selectors.templates_by_key(keys=keys).items()
    }


def _never(data: Any) -> bool:
    return False


def _compile_template(template: Any) -> CompiledTemplateEntry:
    try:
        compiled = compile_template(format=template.format, body=template.body)
    except TemplateError as exc:
        return CompiledTemplateEntry(
            template.key, template.version, template.format, None, str(exc)
        )
    return CompiledTemplateEntry(template.key, template.version, template.format, compiled)


def build_ruleset(key: str) -> CompiledRuleset | None:
    """Load and compile an entry point's active rules, templates and experiments (4 queries).

    Returns None when the entry point does not exist or is inactive.
    """
    from rules_engine import selectors

    entry_point = selectors.entry_point_get(key=key)
    if entry_point is None or not entry_point.active:
        return None
    metrics.ruleset_compiles.labels(entry_point.key).inc()
    rules = list(selectors.rules_active_for(entry_point=entry_point))
    compiled = tuple(compile_rule_version(rule) for rule in rules)
    subject = (
        jsonlogic.compile({"var": entry_point.subject_path}) if entry_point.subject_path else None
    )
    # A textual check is enough: "$state" cannot appear in a rule that does not read it.
    uses_state = any(STATE_VAR in repr((r.condition, r.actions)) for r in rules)
    ruleset = CompiledRuleset(
        entry_point_id=entry_point.pk,
        key=entry_point.key,
        version=entry_point.version,
        critical=entry_point.critical,
        schema=entry_point.context_schema or {},
        sensitive_paths=tuple(entry_point.sensitive_paths or ()),
        subject=subject,
        rules=compiled,
        templates=templates_for(compiled),
        uses_state=uses_state,
        may_write=any(a.handler.writes or a.delayed for r in compiled for a in r.actions),
        # Compiled once per generation, so a request pays no schema hashing or lookup.
        validator=get_validator(entry_point.context_schema) if entry_point.context_schema else None,
        evaluator=build_evaluator(compiled),
        snapshot=Snapshot.of(entry_point.pk, compiled),
    )
    # Running A/B experiments and rollouts on these rules, compiled in (one query).
    from experiments.runtime import attach as attach_experiments

    return attach_experiments(ruleset)


def build_evaluator(rules: tuple[CompiledRule, ...]) -> Any:
    """Compile the rules' conditions into one rule-set callable, under the project's limits.

    Each rule was compiled alone first (so errors are reported per rule); this second pass
    produces the evaluator decisions use. Raises JsonLogicError only if a rule that compiled
    alone does not compile in the set, which would be a bug.
    """
    limits = settings.VERDICT
    return jsonlogic.compile_ruleset(
        [rule.source for rule in rules],
        max_depth=int(limits["MAX_RULE_DEPTH"]),
        max_nodes=int(limits["MAX_RULE_NODES"]),
    )


class RulesetCache:
    """Per-process cache of compiled rulesets keyed by entry point, checked per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._rulesets: dict[str, CompiledRuleset | None] = {}

    def get(self, key: str) -> CompiledRuleset | None:
        """The compiled ruleset for an entry point key, or None if unknown or inactive."""
        generation = pinned_or_current_generation()
        if generation != self._generation:
            with self._lock:
                self._rulesets = {}
                self._generation = generation
        if key in self._rulesets:
            tally.inc(metrics.ruleset_cache_hits)
            return self._rulesets[key]
        metrics.ruleset_cache_misses.inc()
        # Pinned so both compile passes load named lists and WASM modules under one stamp
        # (rules_engine/functions/catalog.py).
        with one_generation():
            ruleset = build_ruleset(key)
        # Unknown keys are cached too (as None) so probing them costs no queries.
        if len(self._rulesets) < 10_000:
            self._rulesets[key] = ruleset
        return ruleset

    def clear(self) -> None:
        """Forget everything compiled in this process, the last generation stamp read, and
        which rule-set snapshots were stored."""
        from rules_engine import audit

        with self._lock:
            self._rulesets = {}
            self._generation = None
        _forget_checked_generation()
        audit.forget_snapshots()


# The stamp last read from the shared cache, for CACHE_CHECK_INTERVAL > 0: (bump count when
# the read started, stamp, monotonic time when the read started). One tuple, replaced whole,
# so threads never see half of an update.
_checked: tuple[int, str, float] | None = None
# Bumps made by this process. A read that started before a bump is not reused after it, even
# if it finishes after it: this process must see its own change at once.
_bumps = 0
_bumps_lock = threading.Lock()
# The clock of the interval; tests replace it.
_monotonic = time.monotonic
# Held by the thread re-reading an expired stamp; the others reuse the expired one meanwhile,
# for at most _STALE_AT_MOST seconds after it was read.
_refreshing = threading.Lock()
_STALE_AT_MOST = 1.0


def check_interval() -> float:
    """`VERDICT["CACHE_CHECK_INTERVAL"]` in seconds; raise ImproperlyConfigured unless 0 <= it < 1.

    Other processes see a change up to this long after the stamp moves, and every change must
    be seen everywhere within one second.
    """
    interval = float(settings.VERDICT.get("CACHE_CHECK_INTERVAL", 0))
    if not (math.isfinite(interval) and 0 <= interval < 1):
        raise ImproperlyConfigured(
            f"VERDICT_CACHE_CHECK_INTERVAL must be at least 0 and below 1 second, got {interval}"
            " (every process must see a rule change within one second)"
        )
    return interval


_pinned = threading.local()


@contextmanager
def one_generation() -> Iterator[None]:
    """Within the block, this thread reads the generation stamp once, not once per decision.

    For work that decides many contexts back to back in one transaction (an event batch, a
    slice of delayed actions): a change committed meanwhile is seen by the next block, a
    fraction of a second later, as if the batch had been one request. Nested blocks keep
    the outer stamp.
    """
    if getattr(_pinned, "generation", None) is not None:
        yield
        return
    _pinned.generation = current_generation()
    try:
        yield
    finally:
        _pinned.generation = None


def pinned_or_current_generation() -> str:
    """The stamp pinned by an enclosing `one_generation()` block, else `current_generation()`."""
    return getattr(_pinned, "generation", None) or current_generation()


def current_generation() -> str:
    """The shared generation stamp, created if the cache lost it.

    Read from the shared cache on every call, or with CACHE_CHECK_INTERVAL > 0 at most once
    per interval by one thread at a time (a bump in this process makes the next call read it
    again). Raises
    ImproperlyConfigured for an interval outside [0, 1).

    When the shared cache cannot be reached, a fresh stamp is returned: the caller then
    recompiles from the database on every request, slower but never stale, and decisions go on
    while Redis is down.
    """
    global _checked
    interval = check_interval()
    if not interval:
        return _read_generation()
    checked, bumps, now = _checked, _bumps, _monotonic()
    refreshing = False
    if checked is not None and checked[0] == bumps:
        if now - checked[2] < interval:
            return checked[1]
        # Expired: one thread reads the stamp again while the others keep the one they have
        # for that round trip, instead of all of a process's threads asking Redis at the same
        # moment; never past the one second within which every change must be seen.
        refreshing = _refreshing.acquire(blocking=False)
        if not refreshing and now - checked[2] < _STALE_AT_MOST:
            return checked[1]
    try:
        generation = _read_generation()
    finally:
        if refreshing:
            _refreshing.release()
    # An unreachable cache's stamp is not kept: each call then recompiles, as without interval.
    if not generation.startswith("unreachable-"):
        _checked = (bumps, generation, now)
    return generation


def _read_generation() -> str:
    try:
        generation = shared_cache.get(GENERATION_KEY)
        if generation is None:
            shared_cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
            generation = shared_cache.get(GENERATION_KEY) or "unknown"
    except Exception:
        logger.warning("shared cache unreachable; compiling rulesets per request", exc_info=True)
        return f"unreachable-{uuid.uuid4().hex}"
    return str(generation)


def _forget_checked_generation() -> None:
    """Make the next `current_generation` call read the shared cache, whatever the interval."""
    global _bumps, _checked
    with _bumps_lock:
        _bumps += 1
        _checked = None


def bump_generation() -> None:
    """Store a new generation stamp so every process recompiles on its next request.

    A cache outage is logged and ignored: processes that cannot reach the cache do not cache
    (see `current_generation`), and the stamp is bumped again on commit.
    """
    try:
        shared_cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:
        logger.warning("could not bump the ruleset generation", exc_info=True)
    # After the write: a read that starts from here on sees the new stamp.
    _forget_checked_generation()


def invalidate() -> None:
    """Invalidate compiled rulesets everywhere now and again once the transaction commits."""
    bump_generation()
    transaction.on_commit(bump_generation)


rulesets = RulesetCache()
