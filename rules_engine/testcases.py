"""Saved test cases of rules: their writes, running them, and the gate on rule changes.

A case belongs to one rule and says what that rule does with a context *within its entry
point's rule set*: whether it matches (a higher-priority rule that stops processing can make it
`skipped`) and which action types it dispatches. `rule_tests_run` decides every case of an
entry point with the rule set as a change would leave it, compiled in memory the way
`services.rule_change_dry_run` does: nothing is stored, cached or audited, no cooldown is read
or claimed (cases ignore cooldowns, so a result never depends on recent traffic), and actions
run in dry-run mode. `rule_tests_gate` runs the report before a rule is activated or an active
rule changes, and refuses the change when any case fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from copy import copy
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from rules_engine import jsonlogic, selectors
from rules_engine.actions import registry
from rules_engine.errors import ErrorDetail, InvalidContext, InvalidInput
from rules_engine.models import EntryPoint, Rule, RuleTestCase
from rules_engine.validation import SchemaError, get_validator, validate_context

TEST_CASE_FIELDS = ("name", "context", "expect_match", "expect_actions")
# A change to any of these on an active rule can change what its entry point's cases see.
# (`name` too: rules of equal priority run in name order.)
GATED_FIELDS = ("entry_point_id", "condition", "actions", "priority", "stop_processing", "name")
# Logical operators an explanation is walked through to reach the clauses that decided it.
_LOGICAL = frozenset({"and", "or", "!", "!!", "if", "?:"})


# --- reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    """How one case fared: passed, and if not, why (reasons and the rule's explanation).

    `outcome` is the rule's outcome in the decision (matched, not_matched, skipped, error,
    or `invalid_context` when the entry point's schema refused the case's context);
    `explanation` is the rule's traced condition for the case (None when it did not run).
    """

    case_id: int
    case: str
    rule_id: str
    rule: str
    passed: bool
    expect_match: bool
    outcome: str
    expect_actions: list[str]
    actions: list[str]
    reasons: list[str] = field(default_factory=list)
    explanation: dict[str, Any] | None = None
    # False for an inactive rule's case, decided as if that rule were activated.
    rule_active: bool = True

    def as_json(self) -> dict[str, Any]:
        """The result as JSON (the API's and the command's shape)."""
        return {
            "case_id": self.case_id,
            "case": self.case,
            "rule_id": self.rule_id,
            "rule": self.rule,
            "rule_active": self.rule_active,
            "passed": self.passed,
            "expect_match": self.expect_match,
            "outcome": self.outcome,
            "expect_actions": self.expect_actions,
            "actions": self.actions,
            "reasons": self.reasons,
            "explanation": self.explanation,
        }

    def error_detail(self) -> ErrorDetail:
        """The refusal of a change this case blocks: the case by name, the rule, and why."""
        return {
            "path": f"$.test_cases[{json.dumps(self.case, ensure_ascii=False)}]",
            "message": f"rule {self.rule!r}, case {self.case!r}: " + "; ".join(self.reasons),
        }


@dataclass(frozen=True)
class TestReport:
    """Every case of one entry point, decided with one rule set."""

    entry_point: str
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        """True when no case failed (also when there is none)."""
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[CaseResult]:
        """The cases that failed, in report order."""
        return [result for result in self.results if not result.passed]

    def as_json(self) -> dict[str, Any]:
        """The report as JSON: counts and every case's result."""
        return {
            "entry_point": self.entry_point,
            "passed": self.passed,
            "total": len(self.results),
            "failed": len(self.failures),
            "results": [result.as_json() for result in self.results],
        }


# --- running ------------------------------------------------------------------------------


def _candidate_rules(entry_point: EntryPoint, replacing: Rule | None) -> list[Rule]:
    # The entry point's active rules as the change leaves them, in evaluation order.
    rules = [
        rule
        for rule in selectors.rules_active_for(entry_point=entry_point)
        if replacing is None or rule.pk != replacing.pk
    ]
    if replacing is not None and replacing.active and replacing.entry_point_id == entry_point.pk:
        rules.append(replacing)
    rules.sort(key=lambda rule: (rule.priority, rule.name, str(rule.pk)))
    return rules


def _ruleset(entry_point: EntryPoint, rules: list[Rule], replacing: Rule | None) -> Any:
    # Built like `cache.build_ruleset`, from rows in memory (the candidate unsaved) and for an
    # inactive entry point too, and with cooldowns off: a case's result must not depend on
    # who was decided recently.
    from rules_engine.cache import (
        STATE_VAR,
        CompiledRuleset,
        build_evaluator,
        compile_rule_version,
        templates_for,
    )

    compiled = tuple(
        replace(compile_rule_version(rule, strict=rule is replacing), cooldown_seconds=0)
        for rule in rules
    )
    schema = entry_point.context_schema or {}
    return CompiledRuleset(
        entry_point_id=entry_point.pk,
        key=entry_point.key,
        version=entry_point.version,
        critical=entry_point.critical,
        schema=schema,
        sensitive_paths=tuple(entry_point.sensitive_paths or ()),
        subject=(
            jsonlogic.compile({"var": entry_point.subject_path})
            if entry_point.subject_path
            else None
        ),
        rules=compiled,
        templates=templates_for(compiled),
        uses_state=any(STATE_VAR in repr((r.condition, r.actions)) for r in rules),
        validator=get_validator(schema) if schema else None,
        evaluator=build_evaluator(compiled),
    )


def rule_tests_run(*, entry_point: EntryPoint, replacing: Rule | None = None) -> TestReport:
    """Decide every case of the entry point's active rules with the rule set after a change.

    `replacing` is a rule's new content, unsaved (its pk names the live rule it replaces; a
    new pk adds it; inactive, it leaves the set); its own cases run too when it is active.
    Cases run in dry-run mode against rules compiled in memory: no writes, no audit rows, no
    cooldowns. Raises InvalidInput (invalid_rule) only when `replacing` does not compile.
    """
    from rules_engine import engine

    rules = _candidate_rules(entry_point, replacing)
    by_id = {str(rule.pk): rule for rule in rules}
    cases = list(RuleTestCase.objects.filter(rule_id__in=[rule.pk for rule in rules]))
    if not cases:
        return TestReport(entry_point.key, ())
    ruleset = _ruleset(entry_point, rules, replacing)
    order = {rule_id: index for index, rule_id in enumerate(by_id)}
    cases.sort(key=lambda case: (order[str(case.rule_id)], case.name))
    results = []
    for case in cases:
        rule = by_id[str(case.rule_id)]
        try:
            started = time.perf_counter()
            decision = engine._decide(
                engine._Run(ruleset, True, None, None), case.context, started=started
            )
        except InvalidContext as exc:
            results.append(_refused_context(case, rule, exc))
            continue
        results.append(_judge(case, rule, decision))
    return TestReport(entry_point.key, tuple(results))


def _refused_context(case: RuleTestCase, rule: Rule, exc: InvalidContext) -> CaseResult:
    problems = "; ".join(f"{d['path']}: {d['message']}" for d in exc.details)
    return CaseResult(
        case_id=case.pk,
        case=case.name,
        rule_id=str(rule.pk),
        rule=rule.name,
        passed=False,
        expect_match=case.expect_match,
        outcome="invalid_context",
        expect_actions=list(case.expect_actions or []),
        actions=[],
        reasons=[f"the entry point's schema refuses the context ({problems})"],
    )


def _judge(case: RuleTestCase, rule: Rule, decision: Any) -> CaseResult:
    rule_id = str(rule.pk)
    row: dict[str, Any] = next((r for r in decision.rules or () if r["id"] == rule_id), {})
    outcome = str(row.get("outcome", "absent"))
    explanation = row.get("explanation")
    # An action that failed at run time did not happen: it is not counted as dispatched.
    actions = [
        str(a["type"])
        for a in decision.action_results
        if a["rule_id"] == rule_id and a.get("status") != "error"
    ]
    expected = list(case.expect_actions or [])
    reasons: list[str] = []
    matched = outcome == "matched"
    if matched != case.expect_match:
        wanted = "a match" if case.expect_match else "no match"
        reason = f"expected {wanted}, got {outcome}"
        if outcome == "error":
            reason += f" ({row.get('error')})"
        elif outcome == "skipped":
            stopper = _stopper(decision)
            if stopper:
                reason += f" (rule {stopper!r} matched first and stops processing)"
        why = clauses_text(explanation, want=case.expect_match)
        if why:
            reason += f"; {why}"
        reasons.append(reason)
    if matched and expected and sorted(actions) != sorted(expected):
        reasons.append(f"expected actions {expected}, got {actions}")
    failed_actions = [
        f"{a['type']}: {a.get('error')}"
        for a in decision.action_results
        if a["rule_id"] == rule_id and a.get("status") == "error"
    ]
    if matched and expected and failed_actions:
        reasons.append("actions failed: " + "; ".join(failed_actions))
    return CaseResult(
        case_id=case.pk,
        case=case.name,
        rule_id=rule_id,
        rule=rule.name,
        passed=not reasons,
        expect_match=case.expect_match,
        outcome=outcome,
        expect_actions=expected,
        actions=actions,
        reasons=reasons,
        explanation=explanation,
    )


def _stopper(decision: Any) -> str | None:
    # The last rule that matched before the skipped ones is the one that stopped processing.
    matched = [r for r in decision.rules or () if r["outcome"] == "matched"]
    return str(matched[-1]["name"]) if matched else None


def clauses_text(explanation: Mapping[str, Any] | None, *, want: bool) -> str:
    """The clauses of an explanation that went against `want`, with the values they saw.

    E.g. `cart.total > 100: cart.total was 80, false` for a case that expected a match. The
    tree is walked through and/or/not/if to the comparisons and calls under them. No writes.
    """
    if not explanation:
        return ""
    parts = []
    for node in _deciding_clauses(explanation, want=want):
        seen = [
            f"{var['var']} was {json.dumps(var.get('result'), ensure_ascii=False)}"
            for var in _vars(node)
        ]
        verdict = "true" if node.get("truthy") else "false"
        error = f" ({node['error']})" if node.get("error") else ""
        parts.append(f"{node.get('expression', '')}: {', '.join([*seen, verdict])}{error}")
    return "; ".join(parts)


def _deciding_clauses(node: Mapping[str, Any], *, want: bool) -> list[Mapping[str, Any]]:
    if node.get("op") not in _LOGICAL or not node.get("args"):
        return [node] if bool(node.get("truthy")) != want else []
    found: list[Mapping[str, Any]] = []
    for child in node["args"]:
        # Under a negation the clause had to be the other way round.
        found.extend(_deciding_clauses(child, want=want if node.get("op") != "!" else not want))
    return found or ([node] if bool(node.get("truthy")) != want else [])


def _vars(node: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    if node.get("op") == "var" and "var" in node:
        yield node
        return
    for child in node.get("args", ()):
        yield from _vars(child)


def rule_test_case_result(*, test_case: RuleTestCase) -> CaseResult | None:
    """How `test_case` fares now (its rule inactive: as if activated), or None when it did
    not run. No writes."""
    rule = test_case.rule
    results = (
        rule_tests_run(entry_point=rule.entry_point).results
        if rule.active
        else _as_if_activated(rule.entry_point, rule)
    )
    return next((r for r in results if r.case_id == test_case.pk), None)


def rule_tests_run_all(*, entry_point: EntryPoint | None = None) -> list[TestReport]:
    """Every case of every entry point (or one): the live rule set's cases, then each inactive
    rule's cases decided as if that rule alone were activated. No writes."""
    entry_points = [entry_point] if entry_point is not None else list(EntryPoint.objects.all())
    reports = []
    for point in entry_points:
        live = rule_tests_run(entry_point=point)
        results = list(live.results)
        inactive = Rule.objects.filter(entry_point=point, active=False, test_cases__isnull=False)
        for rule in inactive.distinct().order_by("priority", "name", "id"):
            results.extend(_as_if_activated(point, rule))
        reports.append(TestReport(point.key, tuple(results)))
    return reports


def _as_if_activated(entry_point: EntryPoint, rule: Rule) -> list[CaseResult]:
    """An inactive rule's own cases, decided with the rule set as if it were activated."""
    candidate = copy(rule)
    candidate.active = True
    report = rule_tests_run(entry_point=entry_point, replacing=candidate)
    return [replace(r, rule_active=False) for r in report.results if r.rule_id == str(rule.pk)]


# --- the gate -----------------------------------------------------------------------------


def rule_tests_gate(*, rule: Rule) -> None:
    """Refuse saving `rule` (its new content set, not saved yet) when a case would fail.

    Runs when the save activates the rule (new, or inactive before) or changes an active
    rule's condition, actions, priority, stop_processing, name or entry point; deactivating
    and unrelated edits pass unchecked. Raises InvalidInput (failing_test_cases) with one
    detail per failing case (`$.test_cases["<name>"]`, the rule, and why). No writes.
    """
    if not rule.active:
        return
    live = Rule.objects.filter(pk=rule.pk).first()
    if (
        live is not None
        and live.active
        and all(getattr(live, name) == getattr(rule, name) for name in GATED_FIELDS)
    ):
        return
    report = rule_tests_run(entry_point=rule.entry_point, replacing=rule)
    if not report.passed:
        raise InvalidInput(
            [result.error_detail() for result in report.failures], code="failing_test_cases"
        )


# --- writes -------------------------------------------------------------------------------


def _case_errors(case: RuleTestCase) -> list[ErrorDetail]:
    errors: list[ErrorDetail] = []
    try:
        case.full_clean(exclude=["rule", "context", "expect_actions"], validate_unique=False)
    except ValidationError as exc:
        errors.extend(
            {"path": "$" if name == "__all__" else f"$.{name}", "message": str(message)}
            for name, messages in exc.message_dict.items()
            for message in messages
        )
    if not isinstance(case.context, dict):
        errors.append({"path": "$.context", "message": "the context must be an object"})
    else:
        schema = case.rule.entry_point.context_schema
        try:
            problems = validate_context(schema=schema or None, context=case.context)
        except SchemaError as exc:
            problems = []
            errors.append({"path": "$.context", "message": f"invalid schema: {exc}"})
        errors.extend(
            {"path": p.path.replace("$", "$.context", 1), "message": p.message} for p in problems
        )
    expected = case.expect_actions
    known = set(registry.types())
    if not isinstance(expected, list) or not all(isinstance(t, str) for t in expected):
        errors.append({"path": "$.expect_actions", "message": "a list of action type names"})
    else:
        errors.extend(
            {
                "path": f"$.expect_actions[{index}]",
                "message": f"unknown action type {name!r}; known types: {', '.join(sorted(known))}",
            }
            for index, name in enumerate(expected)
            if name not in known
        )
        if expected and not case.expect_match:
            errors.append(
                {
                    "path": "$.expect_actions",
                    "message": "a case that expects no match expects no actions",
                }
            )
    return errors


def rule_test_case_errors(
    *, rule: Rule, data: Mapping[str, Any], test_case: RuleTestCase | None = None
) -> list[ErrorDetail]:
    """Every problem saving `data` as a case of `rule` (or as changes to `test_case`) would
    meet, with its JSON path; [] when it would be saved. No writes."""
    case = RuleTestCase(rule=rule) if test_case is None else test_case
    return _case_apply(case, data)


def _case_apply(case: RuleTestCase, data: Mapping[str, Any]) -> list[ErrorDetail]:
    # Sets `data` on the (unsaved) case and returns what would refuse it.
    unknown = sorted(set(data) - set(TEST_CASE_FIELDS))
    if unknown:
        return [{"path": f"$.{name}", "message": "unknown field"} for name in unknown]
    for name, value in data.items():
        setattr(case, name, value)
    errors = _case_errors(case)
    duplicate = RuleTestCase.objects.filter(rule_id=case.rule_id, name=case.name)
    if case.pk is not None:
        duplicate = duplicate.exclude(pk=case.pk)
    if duplicate.exists():
        errors.append({"path": "$.name", "message": "the rule already has a case of this name"})
    return errors


def _case_write(case: RuleTestCase, data: Mapping[str, Any]) -> RuleTestCase:
    errors = _case_apply(case, data)
    if errors:
        raise InvalidInput(errors, code="invalid_test_case")
    try:
        with transaction.atomic():
            case.save()
    except IntegrityError as exc:
        # A concurrent request saved a case of the same name first.
        raise InvalidInput(
            [{"path": "$.name", "message": "the rule already has a case of this name"}],
            code="invalid_test_case",
        ) from exc
    return case


@transaction.atomic
def rule_test_case_create(*, rule: Rule, data: Mapping[str, Any]) -> RuleTestCase:
    """Save a test case of `rule` (name, context, expect_match, expect_actions).

    The context is checked against the entry point's schema and the action types against
    the registry; the case is not run (a failing case is how a change starts). Raises
    InvalidInput (invalid_test_case) with every problem and its path; writes one row.
    """
    return _case_write(RuleTestCase(rule=rule), data)


@transaction.atomic
def rule_test_case_update(*, test_case: RuleTestCase, data: Mapping[str, Any]) -> RuleTestCase:
    """Change fields of a test case (its rule stays). Raises InvalidInput (invalid_test_case)."""
    locked = RuleTestCase.objects.select_for_update().select_related("rule__entry_point")
    updated = _case_write(locked.get(pk=test_case.pk), data)
    test_case.refresh_from_db()
    return updated


@transaction.atomic
def rule_test_case_delete(*, test_case: RuleTestCase) -> None:
    """Delete a test case. Raises nothing; deletes one row."""
    RuleTestCase.objects.filter(pk=test_case.pk).delete()
