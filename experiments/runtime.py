"""Experiments at decision time: sticky assignment and variant rules inside the engine.

Running experiments are compiled with their entry point's ruleset (`attach`, called by
`rules_engine.cache.build_ruleset`), so a warm decision reads no experiment row. At decision
time `apply` (called by `rules_engine.engine._evaluate` only when the ruleset has experiments)
swaps in the assigned variant's compiled rule and condition value after the whole-ruleset
evaluation; `annotate` records the variant in the rule's audit entry. A shadow rollout only
evaluates its variant and records `shadow_outcome`: the live rule decides.

Assignment is a pure function of the salt, the subject and the weights:
bucket = int(first 8 bytes of sha256(salt + ":" + subject)) mod 10000, mapped onto the
variants (sorted by key) by cumulative weight. A decision without a subject gets control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rules_engine.cache import STATE_VAR, CompiledRule, compile_rule_version, templates_for
from rules_engine.functions.builtins import bucket
from rules_engine.jsonlogic import JsonLogicRuntimeError, RuleError, truthy

if TYPE_CHECKING:
    from rules_engine.cache import CompiledRuleset

BUCKETS = 10_000
CONTROL = "control"
# Rule fields a variant may change; the rest (name, cooldown, ...) stay the live rule's.
CONTENT_FIELDS = ("condition", "actions", "priority", "stop_processing")


def variant_tag(experiment_key: str, variant_key: str) -> str:
    """How the audit row names a variant: `<experiment key>:<variant key>`."""
    return f"{experiment_key}:{variant_key}"


def assign(*, salt: str, subject: str | None, weights: Sequence[tuple[str, int]]) -> str:
    """The variant key of a subject: sticky (pure), distributed by weight; control without one.

    `weights` are (variant key, weight) pairs in a fixed order (the engine sorts by key).
    Raises nothing for a subject the hash accepts (strings up to the string length limit).
    """
    total = sum(weight for _, weight in weights)
    if subject is None or subject == "" or total <= 0:
        return CONTROL
    point = bucket(subject, BUCKETS, salt) * total // BUCKETS
    upper = 0
    for key, weight in weights:
        upper += weight
        if point < upper:
            return key
    return CONTROL  # unreachable: point < total


@dataclass(frozen=True)
class VariantPlan:
    """One variant compiled: its tag, weight and rule (None for control: the live rule)."""

    key: str
    tag: str
    weight: int
    rule: CompiledRule | None
    reads_now: bool = False
    reads_state: bool = False


@dataclass(frozen=True)
class RulePlan:
    """A running experiment on one rule of a compiled ruleset.

    `index` is the rule's position in `ruleset.rules` and `control` that exact CompiledRule:
    rulesets rebuilt with other rules (dry runs of drafts, test cases) never match it, so
    they are decided without the experiment.
    """

    experiment: str
    salt: str
    shadow: bool
    index: int
    control: CompiledRule
    variants: tuple[VariantPlan, ...]

    def variant_for(self, subject: str | None) -> VariantPlan:
        """The subject's variant (see `assign`)."""
        key = assign(
            salt=self.salt, subject=subject, weights=[(v.key, v.weight) for v in self.variants]
        )
        return next((v for v in self.variants if v.key == key), self.variants[0])


def attach(ruleset: CompiledRuleset) -> CompiledRuleset:
    """The ruleset with its entry point's running experiments compiled in (one query).

    Each variant's content is compiled once, as a copy of the live rule; a variant that does
    no longer compile decides as an error for its subjects. Templates, `$state` use and
    `may_write` take the variants into account. Returns the ruleset itself when there are none.
    """
    from experiments.models import Experiment, Variant

    rows = list(
        Variant.objects.filter(
            experiment__entry_point_id=ruleset.entry_point_id,
            experiment__status=Experiment.Status.RUNNING,
            experiment__rule__isnull=False,
        )
        .select_related("experiment", "experiment__rule")
        .order_by("experiment__started_at", "experiment_id", "key")
    )
    if not rows:
        return ruleset
    positions = {rule.id: index for index, rule in enumerate(ruleset.rules)}
    by_experiment: dict[int, list[Variant]] = {}
    for row in rows:
        by_experiment.setdefault(row.experiment_id, []).append(row)
    plans: dict[str, RulePlan] = {}
    for variants in by_experiment.values():
        experiment = variants[0].experiment
        rule = experiment.rule
        assert rule is not None
        index = positions.get(str(rule.pk))
        # An inactive rule takes no decisions; a second experiment on a rule is refused at
        # start, so the first one started keeps it.
        if index is None or str(rule.pk) in plans:
            continue
        plans[str(rule.pk)] = RulePlan(
            experiment=experiment.key,
            salt=experiment.salt,
            shadow=experiment.shadow,
            index=index,
            control=ruleset.rules[index],
            variants=tuple(_variant_plan(experiment.key, rule, v) for v in variants),
        )
    if not plans:
        return ruleset
    arms = [v for plan in plans.values() for v in plan.variants if v.rule is not None]
    every_rule = ruleset.rules + tuple(v.rule for v in arms if v.rule is not None)
    return replace(
        ruleset,
        experiments=plans,
        templates=templates_for(every_rule),
        uses_state=ruleset.uses_state or any(v.reads_state for v in arms),
        may_write=any(a.handler.writes or a.delayed for r in every_rule for a in r.actions),
    )


def _variant_plan(experiment_key: str, rule: Any, variant: Any) -> VariantPlan:
    tag = variant_tag(experiment_key, variant.key)
    if variant.key == CONTROL:
        return VariantPlan(variant.key, tag, variant.weight, None)
    copy = variant_rule(rule, variant.content)
    compiled = compile_rule_version(copy)
    # Textual checks, as `build_ruleset` does: these names cannot appear in a rule that
    # does not read them.
    reads = repr((copy.condition, copy.actions))
    return VariantPlan(
        variant.key, tag, variant.weight, compiled, "$now" in reads, STATE_VAR in reads
    )


def variant_rule(rule: Any, content: Any) -> Any:
    """An unsaved copy of the live rule with a variant's content applied (nothing written)."""
    from rules_engine.models import Rule

    copy = Rule(
        pk=rule.pk,
        name=rule.name,
        version=rule.version,
        entry_point_id=rule.entry_point_id,
        priority=rule.priority,
        active=True,
        condition=rule.condition,
        actions=rule.actions,
        stop_processing=rule.stop_processing,
        cooldown_seconds=rule.cooldown_seconds,
        cooldown_key=rule.cooldown_key,
    )
    for name in CONTENT_FIELDS:
        if isinstance(content, dict) and name in content:
            setattr(copy, name, content[name])
    return copy


def apply(
    run: Any, rules: tuple[CompiledRule, ...], values: list[Any], data: Any
) -> tuple[tuple[CompiledRule, ...], list[Any], dict[str, dict[str, Any]]]:
    """The rules and condition values this decision uses, and each experiment rule's audit note.

    For a subject assigned to a variant the variant's compiled rule replaces the live one and
    its condition is evaluated (a failure becomes a RuleError, as in the ruleset pass); in a
    shadow rollout the live rule stays and the variant's result is only noted. Rules are put
    back in priority order when a variant changed a priority. Writes nothing.
    """
    plans: dict[str, RulePlan] = run.ruleset.experiments
    notes: dict[str, dict[str, Any]] = {}
    swapped = list(rules)
    values = list(values)
    reordered = False
    for rule_id, plan in plans.items():
        if plan.index >= len(rules) or rules[plan.index] is not plan.control:
            continue
        variant = plan.variant_for(run.subject)
        note: dict[str, Any] = {"variant": variant.tag}
        notes[rule_id] = note
        if variant.rule is None:
            continue
        if variant.reads_now:
            data = _with_now(run, data)
        value = _evaluate(variant.rule, plan.index, data)
        if plan.shadow:
            note["shadow"] = True
            note["shadow_outcome"] = (
                "error"
                if isinstance(value, RuleError) or variant.rule.error
                else "matched"
                if truthy(value)
                else "not_matched"
            )
            continue
        swapped[plan.index] = variant.rule
        values[plan.index] = value
        reordered = reordered or variant.rule.priority != plan.control.priority
    if reordered:
        # Same order as `rules_active_for`: priority, then name, then id.
        pairs = sorted(
            zip(swapped, values, strict=True), key=lambda p: (p[0].priority, p[0].name, p[0].id)
        )
        swapped = [rule for rule, _ in pairs]
        values = [value for _, value in pairs]
    return tuple(swapped), values, notes


def _evaluate(rule: CompiledRule, index: int, data: Any) -> Any:
    if rule.error is not None:
        return False
    try:
        return rule.condition(data)
    except JsonLogicRuntimeError as exc:
        return RuleError(index, exc)
    except Exception as exc:  # noqa: BLE001  (a broken variant must not break the decision)
        return RuleError(index, JsonLogicRuntimeError(f"{type(exc).__name__}: {exc}"))


def _with_now(run: Any, data: Any) -> Any:
    from rules_engine.engine import NOW_VAR
    from rules_engine.functions.builtins import format_instant

    if isinstance(data, dict) and NOW_VAR not in data:
        run.now_read = format_instant(run.now)
        return {**data, NOW_VAR: run.now_read}
    return data


def annotate(results: Sequence[Any], notes: dict[str, dict[str, Any]]) -> None:
    """Record each experiment rule's variant note on its result (skipped rules saw none)."""
    for result in results:
        note = notes.get(result.rule.id)
        if note is not None and result.outcome != "skipped":
            result.extra = note
