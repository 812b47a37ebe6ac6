"""Reads of experiments: lists, one experiment, and its results per variant with the SRM check.

Results are counted from the audit trail: an execution is an exposure of a variant when its
`rule_results` (JSONB) holds an entry `{"variant": "<experiment>:<variant>"}` (the engine
writes it only for rules it evaluated), it has a subject and it falls between the
experiment's start and stop. One aggregate query counts every variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from experiments.models import CONTROL, Experiment
from experiments.runtime import variant_tag
from experiments.stats import SampleRatioCheck, sample_ratio_check
from rules_engine.models import Acknowledgement, Execution, Preference
from rules_engine.selectors import APPROVE_PERMISSION


def experiment_list(
    *, entry_point: str | None = None, status: str | None = None
) -> QuerySet[Experiment]:
    """Experiments (newest first) with entry point, rule and variants, optionally filtered."""
    queryset = Experiment.objects.select_related("entry_point", "rule").prefetch_related("variants")
    if entry_point:
        queryset = queryset.filter(entry_point__key=entry_point)
    if status:
        queryset = queryset.filter(status=status)
    return queryset


@dataclass(frozen=True)
class VariantResult:
    """One variant's numbers: exposures, matches, downstream outcomes and their rates."""

    key: str
    weight: int
    expected_share: float
    exposures: int
    share: float
    matches: int
    match_rate: float | None
    # Executions an outcome could follow (the chosen action dispatched, or every exposure
    # for labels) and how many it followed; None without an outcome source.
    outcome_eligible: int | None
    outcomes: int | None
    outcome_rate: float | None


@dataclass(frozen=True)
class ExperimentResults:
    """An experiment's results: per variant, the outcome source and the SRM check."""

    experiment: str
    status: str
    outcome_source: str | None
    variants: list[VariantResult]
    srm: SampleRatioCheck


def _rate(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 6)


def _label_exists(labels: list[str]) -> Any:
    """Exists(labels of the execution or of its event among `labels`), or None when the
    lifecycle app has no Label model (yet)."""
    try:
        from lifecycle.models import Label
    except ImportError:
        return None
    names = {f.name for f in Label._meta.get_fields()}
    if "label" not in names:
        return None
    condition = Q()
    if "execution" in names:
        condition |= Q(execution=OuterRef("pk"))
    if "event" in names:
        condition |= Q(event__execution=OuterRef("pk"))
    if not condition:
        return None
    return Exists(Label.objects.filter(condition, label__in=labels))


def _holds(items: Any, element: Mapping[str, Any]) -> bool:
    return isinstance(items, list) and any(
        isinstance(item, dict) and all(item.get(k) == v for k, v in element.items())
        for item in items
    )


def json_containment() -> bool:
    """Whether the database filters by JSON containment (PostgreSQL does, SQLite does not)."""
    return connection.vendor == "postgresql"


def _contains(executions: QuerySet[Execution] | None, field: str, element: dict[str, Any]) -> Q:
    """Executions whose JSON list `field` holds an object with `element`'s keys and values:
    PostgreSQL's containment (`@>`, indexed), or where the database has none (SQLite, the
    embedded default of `make run`) the ids of such rows, found in Python."""
    if json_containment():
        return Q(**{f"{field}__contains": [element]})
    rows = executions.values_list("pk", field) if executions is not None else []
    return Q(pk__in=[pk for pk, items in rows if _holds(items, element)])


def _outcome_filters(
    experiment: Experiment, executions: QuerySet[Execution] | None = None
) -> tuple[str | None, Q | None, Any]:
    """(source name, filter of `executions` an outcome can follow, the outcome condition)."""
    action = experiment.outcome_action_type
    if action:
        shown: dict[str, Any] = {"type": action}
        if experiment.rule_id is not None:
            shown["rule_id"] = str(experiment.rule_id)
        eligible = _contains(executions, "action_results", shown)
        if action == "user_acknowledge":
            followed: Any = Exists(Acknowledgement.objects.filter(execution=OuterRef("pk")))
        elif action == "user_preference":
            followed = Exists(Preference.objects.filter(execution=OuterRef("pk")))
        else:
            # Any other action is the outcome itself: dispatched is followed.
            followed = Q()
        return f"action:{action}", eligible, followed
    if experiment.outcome_labels:
        exists = _label_exists(list(experiment.outcome_labels))
        if exists is not None:
            return "labels", Q(), exists
    return None, None, None


def experiment_results(*, experiment: Experiment) -> ExperimentResults:
    """Exposures, matches and outcomes per variant, from the audit trail, with the SRM check.

    Matches are the rule's `matched` outcome, or for a shadow rollout's new version its
    `shadow_outcome`. A draft has no exposures. Raises nothing; one query (none for a draft).
    """
    variants = sorted(experiment.variants.all(), key=lambda v: v.key)
    counts: dict[str, int | None] = {}
    executions = None
    if experiment.started_at is not None:
        executions = Execution.objects.filter(
            entry_point_id=experiment.entry_point_id, created_at__gte=experiment.started_at
        ).exclude(subject="")
        if experiment.stopped_at is not None:
            executions = executions.filter(created_at__lte=experiment.stopped_at)
    source, eligible, followed = _outcome_filters(experiment, executions)
    if executions is not None:
        aggregates: dict[str, Any] = {}
        for index, variant in enumerate(variants):
            tag = variant_tag(experiment.key, variant.key)
            exposed = _contains(executions, "rule_results", {"variant": tag})
            matched_key = (
                "shadow_outcome" if experiment.shadow and variant.key != CONTROL else "outcome"
            )
            aggregates[f"e{index}"] = Count("pk", filter=exposed)
            aggregates[f"m{index}"] = Count(
                "pk",
                filter=_contains(
                    executions, "rule_results", {"variant": tag, matched_key: "matched"}
                ),
            )
            if eligible is not None:
                aggregates[f"o{index}"] = Count("pk", filter=exposed & eligible)
                aggregates[f"f{index}"] = Count("pk", filter=exposed & eligible & followed)
        counts = executions.aggregate(**aggregates)
    results = []
    exposures = [int(counts.get(f"e{i}") or 0) for i in range(len(variants))]
    total_exposures = sum(exposures)
    total_weight = sum(v.weight for v in variants)
    for index, variant in enumerate(variants):
        matches = int(counts.get(f"m{index}") or 0)
        base = None if eligible is None else int(counts.get(f"o{index}") or 0)
        followed_count = None if eligible is None else int(counts.get(f"f{index}") or 0)
        results.append(
            VariantResult(
                key=variant.key,
                weight=variant.weight,
                expected_share=round(variant.weight / total_weight, 6) if total_weight else 0.0,
                exposures=exposures[index],
                share=_rate(exposures[index], total_exposures) or 0.0,
                matches=matches,
                match_rate=_rate(matches, exposures[index]),
                outcome_eligible=base,
                outcomes=followed_count,
                outcome_rate=_rate(followed_count, base),
            )
        )
    srm = sample_ratio_check(observed=exposures, weights=[v.weight for v in variants])
    return ExperimentResults(experiment.key, experiment.status, source, results, srm)


def experiment_start_refusal(*, experiment: Experiment, user: Any) -> str | None:
    """Why `user` may not start `experiment` (None when they may).

    On a critical entry point starting an experiment changes live decisions as a rule change
    does, so four-eyes applies: a publisher, and not the one who created the experiment. No
    user (a command) is trusted.
    """
    if user is None or not experiment.entry_point.critical:
        return None
    if not user.is_authenticated or not user.has_perm(APPROVE_PERMISSION):
        return (
            f"starting an experiment on the critical entry point {experiment.entry_point.key!r} "
            "needs the publisher role (approve_rulechange)"
        )
    if experiment.created_by_id is not None and experiment.created_by_id == user.pk:
        return (
            "the creator of an experiment on a critical entry point cannot start it; "
            "another publisher must"
        )
    return None
