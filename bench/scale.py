"""JSONLogic at scale: 10, 100, 1,000 and 10,000 active rules on one entry point.

For each size: compile time, evaluation time per context on the rule-set path (and, for
comparison, with the index off and with one closure per rule), and the resident memory the
compiled rules add to a process (RSS delta measured in a fresh subprocess per size and kind).

Two rule mixes:

* ``mixed``: the entry-point rules of ``jsonlogic_bench.py`` (85 % start with an event-type
  ``==`` or a country ``in`` over 12 values each, 15 % have no such test): a realistic busy
  entry point, where the rules that can match a context still grow with the rule count.
* ``keyed``: every rule starts with ``==`` on a merchant id, with one merchant per 10 rules
  (per-merchant rules): the rules that can match a context stay about 10 whatever the size,
  which shows how per-context time grows when rules are indexable.

Run ``python bench/scale.py`` (``--quick`` for 10/100/1,000 only, fewer contexts). Prints a
table and writes ``bench/results/scale.json``. Times are medians of CPU time over rounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from jsonlogic_bench import _condition, entry_point_contexts, entry_point_rules  # noqa: E402

from rules_engine.jsonlogic import compile, compile_ruleset  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scale.json"
SIZES = (10, 100, 1_000, 10_000)
RULES_PER_MERCHANT = 10


def keyed_rules(count: int, seed: int = 5) -> list[Any]:
    """Per-merchant rules: ``merchant.id == m`` and 1-3 clauses, 10 rules per merchant."""
    rng = random.Random(seed)
    merchants = max(1, count // RULES_PER_MERCHANT)
    return [
        {
            "and": [
                {"==": [{"var": "merchant.id"}, rng.randrange(merchants)]},
                *(_condition(rng) for _ in range(rng.randint(1, 3))),
            ]
        }
        for _ in range(count)
    ]


def contexts_for(series: str, count: int, contexts: int) -> list[Any]:
    items = entry_point_contexts(contexts, seed=17)
    if series == "keyed":
        rng = random.Random(23)
        merchants = max(1, count // RULES_PER_MERCHANT)
        for context in items:
            context["merchant"] = {"id": rng.randrange(merchants)}
    return items


def rules_for(series: str, count: int) -> list[Any]:
    return keyed_rules(count) if series == "keyed" else entry_point_rules(count, seed=13)


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def per_context(evaluate: Callable[[Any], Any], contexts: Sequence[Any], rounds: int) -> float:
    """Median CPU microseconds per context over ``rounds`` passes."""
    samples = []
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        for context in contexts:
            evaluate(context)
        samples.append((time.process_time() - start) / len(contexts) * 1e6)
    return statistics.median(samples)


# --------------------------------------------------------------------------- one process


def worker(series: str, count: int, kind: str, contexts_count: int, rounds: int) -> dict[str, Any]:
    """Runs in a fresh process: memory first (nothing else compiled yet), then timings."""
    rules = rules_for(series, count)
    contexts = contexts_for(series, count, contexts_count)
    gc.collect()
    before = rss_bytes()
    start = time.process_time()
    if kind == "ruleset":
        ruleset = compile_ruleset(rules)
        evaluate: Callable[[Any], Any] = ruleset
    else:
        closures = [compile(rule) for rule in rules]
        evaluate = lambda data: [closure(data) for closure in closures]  # noqa: E731
    compile_ms = (time.process_time() - start) * 1e3
    gc.collect()
    result: dict[str, Any] = {
        "rss_delta_mb": round((rss_bytes() - before) / 2**20, 2),
        "rss_total_mb": round(rss_bytes() / 2**20, 1),
        "compile_ms": round(compile_ms, 1),
        "us_per_context": round(per_context(evaluate, contexts, rounds), 2),
    }
    if kind == "ruleset":
        result["indexed_rules"] = sum(ruleset.indexed.values())
        plain = compile_ruleset(rules, index=False)
        result["us_per_context_index_off"] = round(per_context(plain, contexts, rounds), 2)
        # The rule-set path must agree with the single-rule path on every rule.
        reference = [compile(rule) for rule in rules]
        result["matches_single_rules"] = all(
            ruleset(context) == [closure(context) for closure in reference]
            for context in contexts[:20]
        )
    return result


def run_worker(
    series: str, count: int, kind: str, contexts_count: int, rounds: int
) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", series, str(count), kind,
        "--contexts", str(contexts_count), "--rounds", str(rounds),
    ]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 1,000, few contexts")
    parser.add_argument("--contexts", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", nargs=3, metavar=("SERIES", "COUNT", "KIND"))
    args = parser.parse_args(argv)
    contexts_count = args.contexts or (100 if args.quick else 300)
    rounds = args.rounds or (2 if args.quick else 5)

    if args.worker:
        series, count, kind = args.worker
        print(json.dumps(worker(series, int(count), kind, contexts_count, rounds)))
        return 0

    sizes = SIZES[:3] if args.quick else SIZES
    rows: list[dict[str, Any]] = []
    header = (
        f"{'series':7} {'rules':>6} {'indexed':>7} {'compile ms':>10} {'us/ctx':>8} "
        f"{'index off':>9} {'closures':>9} {'RSS MB':>7} {'closures MB':>11} {'ok':>3}"
    )
    print(header)
    print("-" * len(header))
    for series in ("mixed", "keyed"):
        for count in sizes:
            ruleset = run_worker(series, count, "ruleset", contexts_count, rounds)
            closures = run_worker(series, count, "closures", contexts_count, rounds)
            row = {"series": series, "rules": count, "ruleset": ruleset, "closures": closures}
            rows.append(row)
            print(
                f"{series:7} {count:>6} {ruleset['indexed_rules']:>7} "
                f"{ruleset['compile_ms']:>10.1f} {ruleset['us_per_context']:>8.2f} "
                f"{ruleset['us_per_context_index_off']:>9.2f} {closures['us_per_context']:>9.2f} "
                f"{ruleset['rss_delta_mb']:>7.1f} {closures['rss_delta_mb']:>11.1f} "
                f"{'yes' if ruleset['matches_single_rules'] else 'NO':>3}"
            )
    growth: dict[str, Any] = {}
    for series in ("mixed", "keyed"):
        series_rows = [row for row in rows if row["series"] == series]
        first, last = series_rows[0], series_rows[-1]
        growth[series] = {
            "rules_factor": last["rules"] / first["rules"],
            "us_per_context_factor": round(
                last["ruleset"]["us_per_context"] / first["ruleset"]["us_per_context"], 1
            ),
            "index_off_factor": round(
                last["ruleset"]["us_per_context_index_off"]
                / first["ruleset"]["us_per_context_index_off"],
                1,
            ),
        }
    print(f"\ngrowth from {sizes[0]} to {sizes[-1]} rules: {growth}")
    document = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "contexts": contexts_count,
        "rounds": rounds,
        "rows": rows,
        "growth": growth,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
