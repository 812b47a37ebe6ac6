"""JSONLogic evaluation: Verdict's evaluator against json-logic-qubit, panzi-json-logic and
datalogic-py, on the shared workload and on an entry-point workload of our own, in one run.

Run ``python bench/jsonlogic_bench.py`` (``--quick`` for a smoke run). Rounds are interleaved
(every implementation once per round, in a rotating order) and each figure is the median over
rounds of CPU time (``time.process_time``: the machine is shared, and waiting for a core is not
the evaluator's cost). Prints a table and writes ``bench/results/jsonlogic_bench.json``.

Peers are measured, never used: json-logic-qubit is the test suite's reference; datalogic-py
is a Rust engine; panzi-json-logic installs a top-level package ``json_logic`` like qubit, so
it lives in its own directory (``var/bench-peers``, installed with pip on first use) and is
imported under another name.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rules_engine.jsonlogic import compile, compile_ruleset, to_json  # noqa: E402

SHARED_WORKLOAD = ROOT.parent / "shared" / "bench" / "jsonlogic-workload.json"
RESULTS = ROOT / "bench" / "results" / "jsonlogic_bench.json"
PANZI = ("panzi-json-logic", "1.0.1")
PEERS_DIR = ROOT / "var" / "bench-peers"

# --------------------------------------------------------------------------- workloads

EVENT_TYPES = (
    "view", "search", "add_to_cart", "remove_from_cart", "checkout_started", "payment",
    "purchase", "refund", "login", "signup", "review", "support_ticket",
)  # fmt: skip
COUNTRIES = ("DE", "FR", "GB", "US", "CA", "AU", "NL", "JP", "IN", "BR", "ES", "IT")
TIERS = ("bronze", "silver", "gold", "platinum")
CATEGORIES = ("books", "toys", "apparel", "garden", "electronics")
TAGS = ("beta", "employee", "churn-risk", "vip", "fraud-review")


def _condition(rng: random.Random) -> Any:
    """One realistic clause over the user, cart and event parts of a context."""
    pick = rng.randrange(12)
    if pick == 0:
        return {">=": [{"var": ["cart.total", 0]}, rng.choice([20, 50, 100, 250, 500])]}
    if pick == 1:
        return {">=": [{"var": "user.age"}, rng.choice([18, 21, 65])]}
    if pick == 2:
        return {"in": [{"var": "user.tier"}, rng.sample(TIERS, rng.randint(1, 3))]}
    if pick == 3:
        return {
            "some": [
                {"var": ["cart.items", []]},
                {"==": [{"var": "category"}, rng.choice(CATEGORIES)]},
            ]
        }
    if pick == 4:
        return {"!": {"missing": ["user.email"]}}
    if pick == 5:
        return {"in": [rng.choice(TAGS), {"var": ["user.tags", []]}]}
    if pick == 6:
        return {"<": [rng.randint(0, 8), {"var": ["event.hour", 12]}, rng.randint(12, 24)]}
    if pick == 7:
        return {"!": {"var": ["user.banned", False]}}
    if pick == 8:
        return {"all": [{"var": ["cart.items", []]}, {"<": [{"var": "qty"}, rng.randint(2, 10)]}]}
    if pick == 9:
        return {">": [{"*": [{"var": ["cart.total", 0]}, 0.8]}, rng.choice([50, 150, 300])]}
    if pick == 10:
        return {"==": [{"var": "user.verified"}, True]}
    return {">=": [{"/": [{"var": ["user.score", 0]}, 10]}, rng.randint(1, 9)]}


def entry_point_rules(count: int, seed: int = 7, indexable: float = 0.85) -> list[Any]:
    """Rules of one busy entry point: most start by testing the event type (``==``) or the
    country (``in``), the way rules written for one kind of event do; the rest do not."""
    rng = random.Random(seed)
    rules: list[Any] = []
    for _ in range(count):
        clauses = [_condition(rng) for _ in range(rng.randint(1, 3))]
        roll = rng.random()
        if roll < indexable * 0.7:
            test: Any = {"==": [{"var": "event.type"}, rng.choice(EVENT_TYPES)]}
            rules.append({"and": [test, *clauses]})
        elif roll < indexable:
            test = {"in": [{"var": "user.country"}, rng.sample(COUNTRIES, rng.randint(1, 4))]}
            rules.append({"and": [test, *clauses]})
        else:
            rules.append({rng.choice(["and", "or"]): clauses} if len(clauses) > 1 else clauses[0])
    return rules


def entry_point_contexts(count: int, seed: int = 11) -> list[Any]:
    """Contexts shaped like the shared workload's (user, cart, event)."""
    rng = random.Random(seed)
    contexts = []
    for _ in range(count):
        items: list[dict[str, Any]] = [
            {
                "sku": f"S{rng.randint(1000, 9999)}",
                "price": round(rng.uniform(2, 200), 2),
                "qty": rng.randint(1, 12),
                "category": rng.choice(CATEGORIES),
            }
            for _ in range(rng.randint(0, 5))
        ]
        user: dict[str, Any] = {
            "id": rng.randint(1, 10**6),
            "age": rng.randint(16, 90),
            "country": rng.choice(COUNTRIES),
            "tier": rng.choice(TIERS),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "score": rng.randint(0, 100),
            "verified": rng.random() < 0.7,
        }
        if rng.random() < 0.8:
            user["email"] = f"u{user['id']}@example.com"
        cart: dict[str, Any] = {"items": items}
        if items:
            cart["total"] = round(sum(float(i["price"]) * int(i["qty"]) for i in items), 2)
        event = {
            "type": rng.choice(EVENT_TYPES),
            "channel": rng.choice(["web", "ios", "android"]),
            "hour": rng.randint(0, 23),
        }
        contexts.append({"user": user, "cart": cart, "event": event})
    return contexts


# --------------------------------------------------------------------------- peers


def _load_package(name: str, directory: Path, package: str) -> ModuleType:
    """Import ``directory/package`` under the module name ``name``."""
    init = directory / package / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_panzi() -> ModuleType | None:
    """panzi-json-logic from its own directory (pip-installed there on first use)."""
    target = PEERS_DIR / f"{PANZI[0]}-{PANZI[1]}"
    if not (target / "json_logic" / "__init__.py").exists():
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
            str(target), f"{PANZI[0]}=={PANZI[1]}",
        ]  # fmt: skip
        if subprocess.run(command, check=False).returncode != 0:
            return None
    return _load_package("panzi_json_logic", target, "json_logic")


def load_qubit() -> ModuleType | None:
    try:
        import json_logic  # the test dependency json-logic-qubit
    except ImportError:
        return None
    return json_logic if hasattr(json_logic, "jsonLogic") else None


def load_datalogic() -> ModuleType | None:
    try:
        import datalogic_py
    except ImportError:
        return None
    return datalogic_py


# --------------------------------------------------------------------------- implementations

Runner = Callable[[Any], Any]


@dataclass
class Implementation:
    """One way of evaluating every rule of a workload against one context."""

    name: str
    run: Runner  # evaluates all rules for one context
    results: Callable[[Any], list[Any]] | None = None  # JSON results, for the comparison
    contexts_limit: int | None = None  # slow interpreters time fewer contexts
    note: str = ""
    samples: list[float] = field(default_factory=list)


def implementations(
    rules: list[Any], contexts: Sequence[Any], quick: bool
) -> tuple[list[Implementation], dict[str, Any]]:
    """Every implementation available here, and what could not be loaded.

    Two rows favour datalogic-py on purpose: its document handles built before timing
    (conversion excluded: not a per-request mode, it shows the engine alone), and the context
    given as JSON text, which it parses itself (against ours with ``json.loads``).
    """
    texts = {id(context): json.dumps(context) for context in contexts}
    loads, loads_name = _fast_loads()
    missing: dict[str, Any] = {}
    single = [compile(rule) for rule in rules]
    indexed = compile_ruleset(rules)
    plain = compile_ruleset(rules, index=False)
    slow_limit = 100 if quick else 400
    impls = [
        Implementation(
            "verdict compile_ruleset",
            indexed,
            lambda d: [to_json(v) for v in indexed(d)],
            note="generated code, shared lookups, index",
        ),
        Implementation(
            "verdict compile_ruleset from JSON text",
            lambda d: indexed(loads(texts[id(d)])),
            None,
            note=f"{loads_name} of the context text included",
        ),
        Implementation(
            "verdict compile_ruleset (index off)",
            plain,
            lambda d: [to_json(v) for v in plain(d)],
            note="generated code, shared lookups",
        ),
        Implementation(
            "verdict compile (per rule)",
            lambda d: [c(d) for c in single],
            lambda d: [to_json(c(d)) for c in single],
            note="closures, one call per rule",
        ),
    ]
    qubit = load_qubit()
    if qubit is None:
        missing["json-logic-qubit"] = "not installed"
    else:
        json_logic_fn = qubit.jsonLogic

        def qubit_run(d: Any) -> list[Any]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return [json_logic_fn(rule, d) for rule in rules]

        impls.append(
            Implementation("json-logic-qubit", qubit_run, qubit_run, slow_limit, "interpreter")
        )
    panzi = load_panzi()
    if panzi is None:
        missing["panzi-json-logic"] = "could not be installed into var/bench-peers"
    else:
        panzi_fn = panzi.jsonLogic
        panzi_run = lambda d: [panzi_fn(rule, d) for rule in rules]  # noqa: E731
        impls.append(
            Implementation("panzi-json-logic", panzi_run, panzi_run, slow_limit, "interpreter")
        )
    datalogic = load_datalogic()
    if datalogic is None:
        missing["datalogic-py"] = "not installed"
    else:
        engine = datalogic.Engine()
        compiled = [engine.compile(rule) for rule in rules]
        session = engine.session()
        handle = datalogic.DataHandle

        def many(d: Any) -> list[Any]:
            return session.evaluate_many(compiled, handle(d))

        def many_results(d: Any) -> list[Any]:
            return [json.loads(r) if isinstance(r, str) else ("error", r.message) for r in many(d)]

        def per_rule(d: Any) -> list[Any]:
            data = handle(d)
            return [session.evaluate_data(rule, data) for rule in compiled]

        def truthy(d: Any) -> list[Any]:
            data = handle(d)
            return [session.evaluate_truthy(rule, data) for rule in compiled]

        handles = {id(context): handle(context) for context in contexts}
        impls += [
            Implementation(
                "datalogic-py evaluate_many, handle pre-built",
                lambda d: session.evaluate_many(compiled, handles[id(d)]),
                None,
                note="DataHandle built before timing: conversion excluded",
            ),
            Implementation(
                "datalogic-py evaluate_many from JSON text",
                lambda d: session.evaluate_many(compiled, handle(texts[id(d)])),
                None,
                note="DataHandle parses the context text itself",
            ),
            Implementation(
                "datalogic-py Session.evaluate_many",
                many,
                many_results,
                note="DataHandle per context, all rules in one call (JSON text results)",
            ),
            Implementation(
                "datalogic-py Session.evaluate_data",
                per_rule,
                per_rule,
                note="DataHandle per context, one call per rule",
            ),
            Implementation(
                "datalogic-py Session.evaluate_truthy",
                truthy,
                None,
                note="DataHandle per context, booleans only",
            ),
            Implementation(
                "datalogic-py Rule.evaluate(dict)",
                lambda d: [rule.evaluate(d) for rule in compiled],
                lambda d: [rule.evaluate(d) for rule in compiled],
                note="context converted for every rule",
            ),
        ]
    return impls, missing


def _fast_loads() -> tuple[Callable[[str], Any], str]:
    """orjson.loads when installed (the engine's hot path uses it), else json.loads."""
    try:
        import orjson
    except ImportError:
        return json.loads, "json.loads"
    return orjson.loads, "orjson.loads"


def _is_json_equal(a: Any, b: Any) -> bool:
    from tests.rules_engine.jsonlogic.helpers import json_equal

    return json_equal(a, b)


def differences(
    impl: Implementation, reference: list[list[Any]], contexts: Sequence[Any]
) -> dict[str, int]:
    """Rule results that differ from ours (single-rule compile), and results that raised."""
    if impl.results is None:
        return {}
    differ = failed = 0
    for context, expected in zip(contexts, reference, strict=True):
        try:
            got = impl.results(context)
        except Exception:  # noqa: BLE001  # a peer raising is counted, not fatal
            failed += len(expected)
            continue
        for value, want in zip(got, expected, strict=True):
            if isinstance(value, tuple) and value[:1] == ("error",):
                failed += 1
            elif not _is_json_equal(to_json(value), want):
                differ += 1
    return {"different": differ, "raised": failed, "compared": len(reference) * len(reference[0])}


# --------------------------------------------------------------------------- measuring


def measure(impls: list[Implementation], contexts: Sequence[Any], rounds: int) -> dict[str, float]:
    """Median CPU microseconds per context, rounds interleaved in a rotating order."""
    for round_ in range(rounds):
        shift = round_ % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            batch = contexts[: impl.contexts_limit] if impl.contexts_limit else contexts
            run = impl.run
            gc.collect()
            start = time.process_time()
            for context in batch:
                run(context)
            impl.samples.append((time.process_time() - start) / len(batch) * 1e6)
    return {impl.name: statistics.median(impl.samples) for impl in impls}


def compile_times(rules: list[Any], repeats: int) -> dict[str, float]:
    """Milliseconds (median) to compile ``rules`` with each implementation that compiles."""
    timings: dict[str, list[float]] = {}

    def timed(name: str, action: Callable[[], Any]) -> None:
        gc.collect()
        start = time.process_time()
        action()
        timings.setdefault(name, []).append((time.process_time() - start) * 1e3)

    datalogic = load_datalogic()
    for _ in range(repeats):
        timed("verdict compile_ruleset", lambda: compile_ruleset(rules))
        timed("verdict compile (per rule)", lambda: [compile(rule) for rule in rules])
        if datalogic is not None:
            engine = datalogic.Engine()

            def compile_all(engine: Any = engine) -> list[Any]:
                return [engine.compile(rule) for rule in rules]

            timed("datalogic-py Engine.compile", compile_all)
    return {name: statistics.median(values) for name, values in timings.items()}


def run_workload(
    name: str, rules: list[Any], contexts: list[Any], rounds: int, quick: bool
) -> dict[str, Any]:
    impls, missing = implementations(rules, contexts, quick)
    ours = next(impl for impl in impls if impl.name == "verdict compile (per rule)")
    assert ours.results is not None
    check = contexts[: 100 if quick else 500]
    reference = [ours.results(context) for context in check]
    diffs = {impl.name: differences(impl, reference, check) for impl in impls}
    per_context = measure(impls, contexts, rounds)
    qubit = per_context.get("json-logic-qubit")
    rows = []
    for impl in impls:
        micros = per_context[impl.name]
        rows.append(
            {
                "implementation": impl.name,
                "us_per_context": round(micros, 2),
                "rule_evaluations_per_second": round(len(rules) / micros * 1e6),
                "speedup_vs_qubit": round(qubit / micros, 1) if qubit else None,
                "samples_us": [round(s, 2) for s in impl.samples],
                "contexts_timed": impl.contexts_limit or len(contexts),
                "differences_from_verdict": diffs[impl.name],
                "note": impl.note,
            }
        )
    return {
        "workload": name,
        "rules": len(rules),
        "contexts": len(contexts),
        "rounds": rounds,
        "rows": rows,
        "unavailable": missing,
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{result['workload']}: {result['rules']} rules, {result['contexts']} contexts, "
        f"{result['rounds']} rounds (median CPU time)"
    )
    header = f"{'implementation':46} {'us/context':>11} {'rule evals/s':>13} {'vs qubit':>9}  diffs"
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        diff = row["differences_from_verdict"]
        diff_text = f"{diff['different']}+{diff['raised']}err/{diff['compared']}" if diff else "-"
        ratio = row["speedup_vs_qubit"]
        print(
            f"{row['implementation']:46} {row['us_per_context']:>11.2f} "
            f"{row['rule_evaluations_per_second']:>13,} "
            f"{(str(ratio) + 'x') if ratio else '-':>9}  {diff_text}"
        )
    for name, why in result["unavailable"].items():
        print(f"  ({name}: {why})")


def targets(result: dict[str, Any]) -> dict[str, Any]:
    rows = {row["implementation"]: row for row in result["rows"]}
    ours = rows["verdict compile_ruleset"]
    # Modes a request can use: the context arrives as a dict (or as text, compared with our
    # own from-text row); pre-built handles are shown but are not such a mode.
    datalogic = [
        row
        for name, row in rows.items()
        if name.startswith("datalogic-py") and "pre-built" not in name and "JSON text" not in name
    ]
    best = min(datalogic, key=lambda row: row["us_per_context"]) if datalogic else None
    verdict: dict[str, Any] = {
        "speedup_vs_qubit": ours["speedup_vs_qubit"],
        "at_least_25x_qubit": bool(ours["speedup_vs_qubit"] and ours["speedup_vs_qubit"] >= 25),
    }
    if best is not None:
        verdict["datalogic_best_mode"] = best["implementation"]
        verdict["datalogic_best_us_per_context"] = best["us_per_context"]
        verdict["faster_than_datalogic_best"] = ours["us_per_context"] < best["us_per_context"]
    prebuilt = rows.get("datalogic-py evaluate_many, handle pre-built")
    if prebuilt is not None:
        verdict["faster_than_datalogic_prebuilt_handles"] = (
            ours["us_per_context"] < prebuilt["us_per_context"]
        )
    from_text = rows.get("datalogic-py evaluate_many from JSON text")
    ours_text = rows.get("verdict compile_ruleset from JSON text")
    if from_text is not None and ours_text is not None:
        verdict["faster_than_datalogic_from_json_text"] = (
            ours_text["us_per_context"] < from_text["us_per_context"]
        )
    return verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few contexts, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 7)
    contexts_count = 200 if args.quick else 2000

    workloads: list[tuple[str, list[Any], list[Any]]] = []
    if SHARED_WORKLOAD.exists():
        shared = json.loads(SHARED_WORKLOAD.read_text(encoding="utf-8"))
        workloads.append(("shared", shared["rules"], shared["contexts"][:contexts_count]))
    else:
        print(f"note: {SHARED_WORKLOAD} not found; running the entry-point workload only")
    workloads.append(("entry-point", entry_point_rules(100), entry_point_contexts(contexts_count)))

    results = []
    for name, rules, contexts in workloads:
        result = run_workload(name, rules, contexts, rounds, args.quick)
        result["targets"] = targets(result)
        print_table(result)
        print(f"  targets: {result['targets']}")
        results.append(result)

    thousand = entry_point_rules(1000, seed=3)
    compile_ms = compile_times(thousand, 1 if args.quick else 3)
    print("\ncompile time, 1,000 entry-point rules (median ms):")
    for name, millis in compile_ms.items():
        print(f"  {name:32} {millis:9.1f}")

    document = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": args.quick,
        "workloads": results,
        "compile_ms_1000_rules": compile_ms,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
