"""The report of a backtest, accumulated context by context; pure, no database.

For every context the live and the candidate rule sets decided, the report counts per rule
how many contexts it newly matches, no longer matches and matches unchanged; how many
decisions change overall (outcome or set of matched rules); keeps the first and a uniformly
random sample (reservoir, seeded by the backtest, so a rerun gives the same sample) of changed
decisions; and, for labelled contexts, the confusion counts of "matched" against the positive
labels, with precision and recall.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lifecycle.evaluation import Outcome

MATCHED = "matched"


@dataclass
class Confusion:
    """Counts of "matched" (predicted) against a positive label (actual)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, *, predicted: bool, actual: bool) -> None:
        """Count one labelled context."""
        if predicted and actual:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif actual:
            self.fn += 1
        else:
            self.tn += 1

    def as_json(self) -> dict[str, Any]:
        """The counts with precision and recall (None when undefined: nothing to divide by)."""
        predicted, actual = self.tp + self.fp, self.tp + self.fn
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": round(self.tp / predicted, 6) if predicted else None,
            "recall": round(self.tp / actual, 6) if actual else None,
        }


@dataclass
class RuleStats:
    """How one rule's matches differ between the live and the candidate rule set."""

    current_matched: int = 0
    candidate_matched: int = 0
    newly_matching: int = 0
    no_longer_matching: int = 0
    unchanged_matching: int = 0
    unchanged_not_matching: int = 0
    current_labels: Confusion = field(default_factory=Confusion)
    candidate_labels: Confusion = field(default_factory=Confusion)
    newly_examples: list[str] = field(default_factory=list)
    no_longer_examples: list[str] = field(default_factory=list)


class Report:
    """Accumulates the comparison of two rule sets over many contexts."""

    def __init__(
        self,
        *,
        rule_names: dict[str, str],
        current_rules: set[str],
        candidate_rules: set[str],
        positive_labels: list[str],
        sample_size: int,
        seed: int,
    ) -> None:
        self.rule_names = rule_names
        self.current_rules = current_rules
        self.candidate_rules = candidate_rules
        self.positive = {label.upper() for label in positive_labels}
        self.sample_size = sample_size
        self.random = random.Random(seed)
        self.rules = {rule_id: RuleStats() for rule_id in rule_names}
        self.evaluated = 0
        self.errors = 0
        self.error_examples: list[dict[str, str]] = []
        self.decisions_changed = 0
        self.outcomes = {"current": Counter[str](), "candidate": Counter[str]()}
        self.newly_matching = 0
        self.no_longer_matching = 0
        self.labels = Counter[str]()
        self.current_labels = Confusion()
        self.candidate_labels = Confusion()
        self.first_changed: list[dict[str, Any]] = []
        self.sampled_changed: list[dict[str, Any]] = []

    def add(self, ref: str, current: Outcome, candidate: Outcome, label: str | None) -> None:
        """Count one context decided by both rule sets (`label`: its label, if any)."""
        self.evaluated += 1
        self.outcomes["current"][current.outcome] += 1
        self.outcomes["candidate"][candidate.outcome] += 1
        was, now = current.outcome == MATCHED, candidate.outcome == MATCHED
        self.newly_matching += now and not was
        self.no_longer_matching += was and not now
        actual: bool | None = None
        if label is not None:
            actual = label.upper() in self.positive
            self.labels[label.upper()] += 1
            self.current_labels.add(predicted=was, actual=actual)
            self.candidate_labels.add(predicted=now, actual=actual)
        before, after = set(current.matched), set(candidate.matched)
        for rule_id, stats in self.rules.items():
            hit_before, hit_after = rule_id in before, rule_id in after
            stats.current_matched += hit_before
            stats.candidate_matched += hit_after
            if hit_after and not hit_before:
                stats.newly_matching += 1
                if len(stats.newly_examples) < self.sample_size:
                    stats.newly_examples.append(ref)
            elif hit_before and not hit_after:
                stats.no_longer_matching += 1
                if len(stats.no_longer_examples) < self.sample_size:
                    stats.no_longer_examples.append(ref)
            elif hit_before:
                stats.unchanged_matching += 1
            else:
                stats.unchanged_not_matching += 1
            if actual is not None:
                if rule_id in self.current_rules:
                    stats.current_labels.add(predicted=hit_before, actual=actual)
                if rule_id in self.candidate_rules:
                    stats.candidate_labels.add(predicted=hit_after, actual=actual)
        if current.outcome != candidate.outcome or before != after:
            self._changed(ref, current, candidate, label)

    def _changed(self, ref: str, current: Outcome, candidate: Outcome, label: str | None) -> None:
        self.decisions_changed += 1
        example = {
            "id": ref,
            "current": {"outcome": current.outcome, "matched": self._names(current.matched)},
            "candidate": {"outcome": candidate.outcome, "matched": self._names(candidate.matched)},
            "label": label,
        }
        if len(self.first_changed) < self.sample_size:
            self.first_changed.append(example)
        # Reservoir sampling: each changed decision ends up in the sample with equal chance.
        if len(self.sampled_changed) < self.sample_size:
            self.sampled_changed.append(example)
        else:
            slot = self.random.randrange(self.decisions_changed)
            if slot < self.sample_size:
                self.sampled_changed[slot] = example

    def _names(self, ids: tuple[str, ...]) -> list[str]:
        return [self.rule_names.get(rule_id, rule_id) for rule_id in ids]

    def error(self, ref: str, message: str) -> None:
        """Count a context neither rule set could decide (e.g. not an object)."""
        self.errors += 1
        if len(self.error_examples) < self.sample_size:
            self.error_examples.append({"id": ref, "error": message[:500]})

    def as_json(self) -> dict[str, Any]:
        """The report as stored in `Backtest.results`."""
        rules = []
        for rule_id, stats in self.rules.items():
            rules.append(
                {
                    "id": rule_id,
                    "name": self.rule_names[rule_id],
                    "in_current": rule_id in self.current_rules,
                    "in_candidate": rule_id in self.candidate_rules,
                    "current_matched": stats.current_matched,
                    "candidate_matched": stats.candidate_matched,
                    "newly_matching": stats.newly_matching,
                    "no_longer_matching": stats.no_longer_matching,
                    "unchanged_matching": stats.unchanged_matching,
                    "unchanged_not_matching": stats.unchanged_not_matching,
                    "labels": {
                        "current": stats.current_labels.as_json()
                        if rule_id in self.current_rules
                        else None,
                        "candidate": stats.candidate_labels.as_json()
                        if rule_id in self.candidate_rules
                        else None,
                    },
                    "examples": {
                        "newly_matching": stats.newly_examples,
                        "no_longer_matching": stats.no_longer_examples,
                    },
                }
            )
        return {
            "evaluated": self.evaluated,
            "errors": self.errors,
            "decisions_changed": self.decisions_changed,
            "newly_matching": self.newly_matching,
            "no_longer_matching": self.no_longer_matching,
            "outcomes": {side: dict(sorted(c.items())) for side, c in self.outcomes.items()},
            "rules": rules,
            "labels": {
                "positive": sorted(self.positive),
                "labelled": sum(self.labels.values()),
                "counts": dict(sorted(self.labels.items())),
                "current": self.current_labels.as_json(),
                "candidate": self.candidate_labels.as_json(),
            },
            "examples": {
                "first_changed": self.first_changed,
                "sampled_changed": self.sampled_changed,
                "errors": self.error_examples,
            },
        }


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A backtest report as plain-text lines, for `manage.py rules_backtest`."""
    if not results:
        return ["no results"]
    lines = [
        f"evaluated: {results['evaluated']}  errors: {results['errors']}",
        f"decisions changed: {results['decisions_changed']}"
        f"  (newly matching: {results['newly_matching']},"
        f" no longer matching: {results['no_longer_matching']})",
        "per rule: current -> candidate matched (+newly / -no longer / =unchanged)",
    ]
    for rule in results["rules"]:
        lines.append(
            f"  {rule['name']}: {rule['current_matched']} -> {rule['candidate_matched']}"
            f" (+{rule['newly_matching']} / -{rule['no_longer_matching']}"
            f" / ={rule['unchanged_matching']})"
        )
    labels = results["labels"]
    if labels["labelled"]:
        lines.append(
            f"labels: {labels['labelled']} labelled, positive = {', '.join(labels['positive'])}"
        )
        for side in ("current", "candidate"):
            stats = labels[side]
            lines.append(
                f"  {side}: precision {_ratio(stats['precision'])}"
                f" recall {_ratio(stats['recall'])}"
                f" (tp {stats['tp']}, fp {stats['fp']}, fn {stats['fn']}, tn {stats['tn']})"
            )
    else:
        lines.append("labels: none in this window")
    examples = results["examples"]["first_changed"]
    if examples:
        lines.append("first changed decisions:")
        for example in examples:
            before, after = example["current"], example["candidate"]
            lines.append(
                f"  {example['id']}: {before['outcome']} {before['matched']}"
                f" -> {after['outcome']} {after['matched']}"
            )
    return lines
