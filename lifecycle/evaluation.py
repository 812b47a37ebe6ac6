"""Rule sets compiled in memory and side-effect-free decisions, for backtests.

A backtest decides each stored context twice: with the live rule set and with the candidate
one. Both are compiled here as `rules_engine.services.rule_change_dry_run` compiles a draft
(unsaved Rule objects through `compile_rule_version`, the evaluator rebuilt), and decided with
the engine's own evaluation step in dry-run mode: conditions only, no actions dispatched, no
audit row, no cooldown read or claimed (cooldowns are set to 0 in both sets, since today's
cooldown keys say nothing about a past decision). `$state` is read as it is now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rules_engine import engine, selectors
from rules_engine.cache import (
    STATE_VAR,
    CompiledRule,
    CompiledRuleset,
    build_evaluator,
    build_ruleset,
    compile_rule_version,
)
from rules_engine.errors import ErrorDetail, InvalidInput, NotFound
from rules_engine.models import EntryPoint, Rule

# The fields of a rule a candidate may set; the rest come from the live rule (or defaults).
CANDIDATE_FIELDS = ("name", "condition", "actions", "priority", "active", "stop_processing")


@dataclass(frozen=True)
class Outcome:
    """One context decided by one rule set: overall outcome and the ids of matched rules."""

    outcome: str
    matched: tuple[str, ...]


def live_ruleset(*, entry_point: EntryPoint) -> CompiledRuleset:
    """The entry point's active rules compiled now, without cooldowns. Raises NotFound."""
    ruleset = build_ruleset(entry_point.key)
    if ruleset is None:
        raise NotFound("unknown_entry_point", f"no active entry point {entry_point.key!r}")
    return _without_cooldowns(ruleset, ruleset.rules, list(_live_rules(entry_point)))


def candidate_ruleset(
    *, entry_point: EntryPoint, mode: str, rule: Rule | None, candidate: Any
) -> CompiledRuleset:
    """The live rule set with the candidate applied, compiled in memory; nothing is stored.

    mode "rule": `rule` (None: a new rule) replaced by the candidate content; mode "ruleset":
    `candidate` (a list of rule contents; an item with the "id" of a live rule keeps that
    rule's identity in the report) replaces every active rule. Raises NotFound for an inactive
    entry point and InvalidInput (invalid_candidate) when the candidate is malformed or does
    not compile, with the path of each problem.
    """
    live = build_ruleset(entry_point.key)
    if live is None:
        raise NotFound("unknown_entry_point", f"no active entry point {entry_point.key!r}")
    live_rules = list(_live_rules(entry_point))
    if mode == "rule":
        if not isinstance(candidate, Mapping):
            raise InvalidInput([{"path": "$", "message": "the candidate must be an object"}])
        unsaved = _unsaved_rule(entry_point, dict(candidate), base=rule, path="$")
        rules = [r for r in live_rules if rule is None or r.pk != rule.pk]
        candidates = [unsaved]
    elif mode == "ruleset":
        if not isinstance(candidate, list):
            raise InvalidInput([{"path": "$", "message": "the candidate must be a list of rules"}])
        by_id = {str(r.pk): r for r in live_rules}
        rules = []
        candidates = []
        errors: list[ErrorDetail] = []
        for index, item in enumerate(candidate):
            if not isinstance(item, Mapping):
                errors.append({"path": f"$[{index}]", "message": "a rule must be an object"})
                continue
            base = by_id.get(str(item.get("id", "")))
            try:
                candidates.append(
                    _unsaved_rule(entry_point, dict(item), base=base, path=f"$[{index}]")
                )
            except InvalidInput as exc:
                errors.extend(exc.details)
        if errors:
            raise InvalidInput(errors, code="invalid_candidate")
    else:
        raise InvalidInput([{"path": "$.mode", "message": f"unknown mode {mode!r}"}])
    compiled_candidates: dict[int, CompiledRule] = {}
    for index, unsaved in enumerate(candidates):
        try:
            compiled_candidates[id(unsaved)] = compile_rule_version(unsaved, strict=True)
        except InvalidInput as exc:
            prefix = "$" if mode == "rule" else f"$[{index}]"
            details: list[ErrorDetail] = [
                {"path": d["path"].replace("$", prefix, 1), "message": d["message"]}
                for d in exc.details
            ]
            raise InvalidInput(details, code="invalid_candidate") from exc
    merged = [*rules, *(c for c in candidates if c.active)]
    merged.sort(key=lambda r: (r.priority, r.name, str(r.pk)))
    compiled = tuple(
        compiled_candidates.get(id(r)) or compile_rule_version(r, strict=False) for r in merged
    )
    return _without_cooldowns(live, compiled, merged)


def _live_rules(entry_point: EntryPoint) -> Any:
    return selectors.rules_active_for(entry_point=entry_point)


def _unsaved_rule(
    entry_point: EntryPoint, content: dict[str, Any], *, base: Rule | None, path: str
) -> Rule:
    unknown = sorted(set(content) - {*CANDIDATE_FIELDS, "id"})
    if unknown:
        raise InvalidInput(
            [{"path": f"{path}.{name}", "message": "unknown field"} for name in unknown],
            code="invalid_candidate",
        )
    if "condition" not in content and base is None:
        raise InvalidInput(
            [{"path": f"{path}.condition", "message": "required for a new rule"}],
            code="invalid_candidate",
        )
    rule = Rule(entry_point=entry_point, name="Candidate", version=0)
    if base is not None:
        rule = Rule(
            id=base.pk,
            entry_point=entry_point,
            name=base.name,
            priority=base.priority,
            active=base.active,
            version=base.version + 1,
            condition=base.condition,
            actions=base.actions,
            stop_processing=base.stop_processing,
        )
    for name in CANDIDATE_FIELDS:
        if name in content:
            setattr(rule, name, content[name])
    if not isinstance(rule.priority, int) or isinstance(rule.priority, bool):
        raise InvalidInput(
            [{"path": f"{path}.priority", "message": "must be an integer"}],
            code="invalid_candidate",
        )
    return rule


def _without_cooldowns(
    ruleset: CompiledRuleset, rules: tuple[CompiledRule, ...], sources: list[Rule]
) -> CompiledRuleset:
    compiled = tuple(replace(rule, cooldown_seconds=0) for rule in rules)
    return replace(
        ruleset,
        rules=compiled,
        uses_state=any(STATE_VAR in repr((r.condition, r.actions)) for r in sources),
        evaluator=build_evaluator(compiled),
    )


def decide(*, ruleset: CompiledRuleset, context: Any, now: datetime) -> Outcome:
    """Evaluate the rule set's conditions for `context` as the engine would, writing nothing.

    The context is not validated against the schema (an audit snapshot's masked values would
    fail it); priority order, stop_processing and rule errors are as in a decision. Raises
    nothing for a broken rule (it is an error outcome); TypeError for a context that is not
    an object.
    """
    if not isinstance(context, dict):
        raise TypeError("the context is not an object")
    run = engine._Run(ruleset, True, None, None, now=now)
    run.subject = engine._subject_of(ruleset, context)
    data, _ = engine._evaluation_data(ruleset, context, run.subject)
    results = engine._evaluate(run, data)
    return Outcome(
        outcome=engine._outcome(results),
        matched=tuple(r.rule.id for r in results if r.outcome == "matched"),
    )
