"""compile_ruleset: every rule's result equals compile(rule)(data), on the index path too.

The reference for a rule set is always ``[compile(rule)(data) for rule in rules]``; results are
compared both strictly as Python values (same types, NaN equal to NaN, -0.0 apart from 0.0)
and as JSON with the suite's comparator.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine.functions import FunctionRegistry
from rules_engine.jsonlogic import (
    UNDEFINED,
    CompiledRuleset,
    JsonLogicCompileError,
    JsonLogicRuntimeError,
    RuleError,
    compile,
    to_json,
)
from rules_engine.jsonlogic import compile_ruleset as _compile_ruleset
from rules_engine.jsonlogic.codegen import check_source

from .helpers import json_equal
from .test_conformance import CASES
from .test_golden import AREAS, _load
from .test_reference import ANY, BOOLS, DATA, NUMS, STRS

MODES: Final = [pytest.param(True, id="indexed"), pytest.param(False, id="plain")]


def compile_ruleset(rules: Any, **options: Any) -> CompiledRuleset:
    """compile_ruleset indexing every variable that discriminates a rule (the default
    threshold leaves small groups inline, so tests lower it to reach the index)."""
    options.setdefault("min_indexed", 1)
    return _compile_ruleset(rules, **options)


# --------------------------------------------------------------------------- comparison


def same(actual: Any, expected: Any) -> bool:
    """Identical Python values: same types all the way down, NaN == NaN, -0.0 != 0.0."""
    if type(actual) is not type(expected):
        return False
    if isinstance(actual, float):
        if math.isnan(actual):
            return math.isnan(expected)
        return actual == expected and math.copysign(1.0, actual) == math.copysign(1.0, expected)
    if isinstance(actual, (list, tuple)):
        return len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(actual, dict):
        return list(actual) == list(expected) and all(same(actual[k], expected[k]) for k in actual)
    if actual is None or actual is UNDEFINED or isinstance(actual, (bool, int, str)):
        return bool(actual == expected)
    return actual is expected


def outcome(call: Callable[[], Any]) -> Any:
    """A result, or ("error", type, message, path) for what it raised."""
    try:
        return call()
    except JsonLogicRuntimeError as exc:
        return ("error", type(exc).__name__, exc.message, exc.path)


_COMPILED: dict[tuple[int, int], tuple[Any, Any]] = {}


def _compiled(rule: Any, functions: FunctionRegistry | None) -> Any:
    # Rules are compared by identity so a test's rules compile once, not once per context.
    key = (id(rule), id(functions))
    known = _COMPILED.get(key)
    if known is None or known[0] is not rule:
        known = _COMPILED[key] = (rule, compile(rule, functions=functions))
    return known[1]


def reference(
    rules: Sequence[Any], data: Any, functions: FunctionRegistry | None = None
) -> list[Any]:
    compiled = [_compiled(rule, functions) for rule in rules]
    return [outcome(lambda c=c: c(data)) for c in compiled]  # type: ignore[misc]


def collected(ruleset: CompiledRuleset, data: Any) -> list[Any]:
    results = ruleset.evaluate(data, errors="collect")
    return [
        ("error", type(r.error).__name__, r.error.message, r.error.path)
        if isinstance(r, RuleError)
        else r
        for r in results
    ]


def assert_matches_reference(
    rules: Sequence[Any],
    data: Any,
    ruleset: CompiledRuleset,
    functions: FunctionRegistry | None = None,
) -> None:
    expected = reference(rules, data, functions)
    actual = collected(ruleset, data)
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert same(a, e), f"rule {index} {json.dumps(rules[index], default=repr)}: {a!r} != {e!r}"
        if not (isinstance(e, tuple) and e[:1] == ("error",)):
            assert json_equal(to_json(a), to_json(e))
    if not any(isinstance(e, tuple) and e[:1] == ("error",) for e in expected):
        assert all(same(a, e) for a, e in zip(ruleset(data), expected, strict=True))


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("indexed", MODES)
def test_conformance_cases_as_one_rule_sets(indexed: bool) -> None:
    for rule, data, expected in CASES:
        ruleset = compile_ruleset([rule], index=indexed)
        (result,) = ruleset(data)
        assert json_equal(to_json(result), expected), (rule, data, result, expected)
        assert ruleset.fallbacks == 0


@pytest.mark.parametrize("indexed", MODES)
def test_conformance_suite_as_one_rule_set(indexed: bool) -> None:
    rules = [case[0] for case in CASES]
    ruleset = compile_ruleset(rules, index=indexed)
    for position, (_, data, expected) in enumerate(CASES):
        results = ruleset(data)
        assert json_equal(to_json(results[position]), expected)
        assert_matches_reference(rules, data, ruleset)
    assert ruleset.fallbacks == 0


# --------------------------------------------------------------------------- golden files

VALUE_AREAS: Final = [area for area in AREAS if area != "errors"]


@pytest.mark.parametrize("indexed", MODES)
@pytest.mark.parametrize("area", VALUE_AREAS)
def test_golden_file_as_one_rule_set(area: str, indexed: bool) -> None:
    cases = _load(area)["cases"]
    rules = [case["rule"] for case in cases]
    ruleset = compile_ruleset(rules, index=indexed)
    for position, case in enumerate(cases):
        (alone,) = compile_ruleset([case["rule"]], index=indexed)(case["data"])
        assert json_equal(to_json(alone), case["expected"]), case["note"]
        # Collect mode: other cases' rules may fail on this data (a built-in function given
        # another case's date, say); this rule's value must not be affected.
        value = ruleset.evaluate(case["data"], errors="collect")[position]
        assert json_equal(to_json(value), case["expected"]), case["note"]
        assert_matches_reference(rules, case["data"], ruleset)


def _error_cases() -> list[Any]:
    return [pytest.param(case, id=case["note"][:40]) for case in _load("errors")["cases"]]


@pytest.mark.parametrize("case", _error_cases())
def test_golden_errors_on_the_rule_set_path(case: dict[str, Any]) -> None:
    expected = case["error"]
    rules = [{"var": "x"}, case["rule"], True]
    if expected["type"] == "compile":
        with pytest.raises(JsonLogicCompileError) as raised:
            compile_ruleset(rules)
        # The rule's own path, behind its position in the set.
        assert raised.value.json_path() == "$[1]" + expected["json_path"][1:]
        assert expected["message"] in raised.value.message
        return
    ruleset = compile_ruleset(rules)
    with pytest.raises(JsonLogicRuntimeError) as runtime:
        ruleset(case["data"])
    assert runtime.value.json_path() == expected["json_path"]
    first, failed, last = ruleset.evaluate(case["data"], errors="collect")
    assert first == compile({"var": "x"})(case["data"])
    assert isinstance(failed, RuleError) and failed.index == 1
    assert failed.error.json_path() == expected["json_path"]
    assert expected["message"] in failed.error.message
    assert last is True


# --------------------------------------------------------------------------- the workload


def test_shared_workload_matches_single_rules() -> None:
    workload = Path(__file__).parents[4] / "shared" / "bench" / "jsonlogic-workload.json"
    if not workload.exists():
        pytest.skip("the shared workload is not beside the repository")
    document = json.loads(workload.read_text(encoding="utf-8"))
    rules = document["rules"]
    for indexed in (True, False):
        ruleset = compile_ruleset(rules, index=indexed)
        for data in document["contexts"][:300]:
            assert_matches_reference(rules, data, ruleset)
        assert ruleset.fallbacks == 0
    assert compile_ruleset(rules, min_indexed=2).indexed == {
        "user.country": 4,
        "event.type": 2,
        "user.address.city": 2,
    }
    # By default groups this small are tested inline: cheaper than the dispatch.
    assert _compile_ruleset(rules).indexed == {}


# --------------------------------------------------------------------------- the index


def _event_rules() -> list[Any]:
    return [
        {"and": [{"==": [{"var": "event"}, "a"]}, {">": [{"var": "n"}, 1]}]},
        {"and": [{"==": [{"var": "event"}, "b"]}, {"var": "n"}]},
        {"and": [{"in": [{"var": "event"}, ["a", "c"]]}, {"cat": ["x", {"var": "n"}]}]},
        {"==": [{"var": "event"}, "c"]},
        {"or": [{"var": "n"}, "fallback"]},
    ]


def test_index_covers_rules_with_a_leading_test() -> None:
    ruleset = compile_ruleset(_event_rules())
    assert ruleset.indexed == {"event": 4}
    assert ruleset({"event": "a", "n": 2}) == [True, False, "x2", False, 2]
    assert ruleset({"event": "b", "n": 0}) == [False, 0, False, False, "fallback"]
    assert ruleset({"event": "c", "n": 5}) == [False, False, "x5", True, 5]
    assert ruleset({"n": 5}) == [False, False, False, False, 5]


def test_skipped_rules_are_never_evaluated() -> None:
    functions = FunctionRegistry()
    calls: list[str] = []

    def spy(name: str) -> bool:
        calls.append(name)
        return True

    functions.register("spy", spy)
    rules = [
        {"and": [{"==": [{"var": "type"}, name]}, {"spy": [name]}]} for name in ("a", "b", "c")
    ]
    ruleset = compile_ruleset(rules, functions=functions)
    assert ruleset({"type": "b"}) == [False, True, False]
    assert calls == ["b"]


def test_skipped_rule_value_is_its_failed_test() -> None:
    # and returns its first falsy operand: a failed == / in is exactly false.
    rules = [
        {"and": [{"==": [{"var": "t"}, "x"]}, 0]},
        {"and": [{"and": [{"in": [{"var": "t"}, ["y"]]}, "z"]}, []]},
        {"===": [{"var": "t"}, "x"]},
        {"and": [{"===": [1, {"var": "t"}]}]},
    ]
    ruleset = compile_ruleset(rules)
    assert ruleset.indexed == {"t": 4}
    for data in ({"t": "q"}, {}, {"t": None}, {"t": [1]}, 5, None):
        assert_matches_reference(rules, data, ruleset)
    assert ruleset({"t": "x"}) == [0, False, True, False]
    assert ruleset({"t": "y"}) == [False, [], False, False]


def test_loose_equality_coercions_reach_the_right_rules() -> None:
    constants: list[Any] = ["1", 1, 1.0, True, False, 0, "", " 1 ", "0x1", None, -0.0, "a", 2.5]
    rules: list[Any] = [{op: [{"var": "k"}, c]} for op in ("==", "===") for c in constants]
    rules.append({"in": [{"var": "k"}, [1, "1", True, None, "a"]]})
    values: list[Any] = [
        *constants, "1.0", "01", "1e0", "Infinity", " ", [1], ["1"], [[1]], {}, [], math.nan,
        math.inf, 2**53 + 1, float(2**53), UNDEFINED, "true",
    ]  # fmt: skip
    for indexed in (True, False):
        ruleset = compile_ruleset(rules, index=indexed)
        for value in values:
            assert_matches_reference(rules, {"k": value}, ruleset)
        assert_matches_reference(rules, {}, ruleset)
        assert ruleset.fallbacks == 0


def test_tests_that_are_not_first_are_not_indexed() -> None:
    rules = [
        {"and": [{"var": "go"}, {"==": [{"var": "t"}, "x"]}]},
        {"and": [{"var": "go"}, {"==": [{"var": "t"}, "y"]}]},
        {"or": [{"==": [{"var": "t"}, "x"]}, {"var": "go"}]},
        {"==": [{"var": "t"}, {"var": "u"}]},
        {"!=": [{"var": "t"}, "x"]},
        {"==": [{"var": ["t", {"var": "u"}]}, "x"]},
        {"==": [{"var": "t"}, [1]]},
        {"==": [{"var": "t"}, 2**60]},
        {"in": [{"var": "t"}, [[1], "x"]]},
        {"==": [{"var": "t"}, "x", {"log": 1}]},
    ]
    assert compile_ruleset(rules).indexed == {}


def test_many_rules_span_several_generated_functions() -> None:
    rules: list[Any] = []
    for position in range(900):
        kind = position % 3
        if kind == 0:
            rules.append({"and": [{"==": [{"var": "event"}, f"e{position % 40}"]}, {"var": "n"}]})
        elif kind == 1:
            rules.append({"in": [{"var": "country"}, [f"c{position % 7}", f"c{position % 5}"]]})
        else:
            rules.append({">": [{"var": "n"}, position % 17]})
    ruleset = compile_ruleset(rules, keep_source=True)
    assert ruleset.indexed == {"event": 300, "country": 300}
    assert ruleset.source is not None and ruleset.source.count("\ndef ") >= 5
    for data in (
        {"event": "e7", "country": "c3", "n": 9},
        {"event": "e0", "country": "c0", "n": 0},
        {"event": 7, "country": None},
        {},
    ):
        assert_matches_reference(rules, data, ruleset)


def test_large_groups_sharing_subtrees() -> None:
    # Regression: rules reached through the index share subtrees (the same threshold test in
    # many rules of one event type); sharing must follow equal subtrees, never recycled ids.
    rng = random.Random(3)
    clauses = [
        {">=": [{"/": [{"var": ["score", 0]}, 10]}, 3]},
        {">=": [{"/": [{"var": ["score", 0]}, 10]}, 5]},
        {"some": [{"var": ["items", []]}, {"==": [{"var": "category"}, "toys"]}]},
        {"some": [{"var": ["items", []]}, {"==": [{"var": "category"}, "books"]}]},
        {"<": [0, {"var": ["hour", 12]}, 17]},
        {"!": {"missing": ["email"]}},
    ]
    rules = [
        {
            "and": [
                {"==": [{"var": "event"}, rng.choice("abcdef")]},
                *rng.sample(clauses, rng.randint(1, 3)),
            ]
        }
        for _ in range(1200)
    ]
    contexts = [
        {
            "event": event,
            "score": rng.randint(0, 90),
            "hour": rng.randint(0, 23),
            "items": [{"category": rng.choice(["toys", "books", "garden"])}] * rng.randint(0, 2),
            **({"email": "x@y"} if rng.random() < 0.5 else {}),
        }
        for event in "abcdefg"
        for _ in range(3)
    ]
    ruleset = compile_ruleset(rules)
    assert ruleset.indexed == {"event": 1200}
    for data in contexts:
        assert_matches_reference(rules, data, ruleset)


# --------------------------------------------------------------------------- errors


def _exploding(functions: FunctionRegistry) -> None:
    def explode(value: Any) -> Any:
        if value == "boom":
            raise ValueError("bad value")
        return value

    functions.register("explode", explode, arity=1)


def test_raise_mode_raises_the_first_failing_rule() -> None:
    functions = FunctionRegistry()
    _exploding(functions)
    rules = [
        {"var": "a"},
        {"if": [{"var": "go"}, {"explode": {"var": "a"}}, "skipped"]},
        {"explode": {"var": "b"}},
    ]
    ruleset = compile_ruleset(rules, functions=functions)
    assert ruleset({"a": 1, "b": 2, "go": True}) == [1, 1, 2]
    with pytest.raises(JsonLogicRuntimeError, match="bad value") as raised:
        ruleset({"a": "boom", "b": "boom", "go": True})
    assert raised.value.path == ("if", 1)
    with pytest.raises(JsonLogicRuntimeError) as second:
        ruleset({"a": 1, "b": "boom", "go": True})
    assert second.value.path == ()


def test_collect_mode_isolates_failing_rules() -> None:
    functions = FunctionRegistry()
    _exploding(functions)
    rules = [
        {"and": [{"==": [{"var": "t"}, "x"]}, {"explode": {"var": "a"}}]},
        {"and": [{"==": [{"var": "t"}, "x"]}, {"var": "a"}]},
        {"in": ["a", {"var": "obj"}]},
        {"missing": ["a"]},
    ]
    ruleset = compile_ruleset(rules, functions=functions)
    results = ruleset.evaluate({"t": "x", "a": "boom", "obj": {"indexOf": 1}}, errors="collect")
    assert isinstance(results[0], RuleError) and results[0].index == 0
    assert "bad value" in str(results[0])
    assert results[1] == "boom"
    assert isinstance(results[2], RuleError) and results[2].error.json_path() == "$.in[1]"
    assert results[3] == []
    assert ruleset.evaluate({"t": "y", "a": "boom"}, errors="collect") == [False, False, False, []]
    with pytest.raises(ValueError, match="errors must be"):
        ruleset.evaluate({}, errors="ignore")  # type: ignore[arg-type]


def test_deep_data_is_a_runtime_error() -> None:
    data: list[Any] = []
    for _ in range(100_000):
        data = [data]
    ruleset = compile_ruleset([{"cat": [{"var": ""}]}, 1])
    with pytest.raises(JsonLogicRuntimeError, match="data nests too deeply"):
        ruleset(data)
    failed, one = ruleset.evaluate(data, errors="collect")
    assert isinstance(failed, RuleError) and one == 1


def test_compile_errors_name_the_rule() -> None:
    with pytest.raises(JsonLogicCompileError) as raised:
        compile_ruleset([True, {"and": [{"nope": 1}]}])
    assert raised.value.json_path() == "$[1].and[0]"
    with pytest.raises(JsonLogicCompileError, match="more than 3 nodes"):
        compile_ruleset([[1, 2, 3, 4]], max_nodes=3)
    with pytest.raises(JsonLogicCompileError, match="deeper than 2 levels"):
        compile_ruleset([{"!": {"!": {"!": True}}}], max_depth=2)


def test_empty_rule_set() -> None:
    ruleset = compile_ruleset([])
    assert ruleset({"a": 1}) == []
    assert len(ruleset) == 0


# --------------------------------------------------------------------------- shapes


def test_results_are_fresh_and_undefined_is_none() -> None:
    rules = [[1, [2]], {"and": []}, {"map": [[1], {"and": []}]}, {"merge": [[1], [[2]]]}]
    ruleset = compile_ruleset(rules)
    first = ruleset(None)
    assert first[1] is None
    assert first[2] == [UNDEFINED]
    first[0].append("junk")
    first[0][1].append("junk")
    assert ruleset(None)[0] == [1, [2]]


def test_shared_subexpressions_keep_identity_semantics() -> None:
    # Equal array-valued subtrees must stay distinct objects: === compares identity.
    rules = [
        {"===": [{"merge": [{"var": "a"}]}, {"merge": [{"var": "a"}]}]},
        {"===": [{"var": "a"}, {"var": "a"}]},
        {"==": [{"map": [{"var": "a"}, {"var": ""}]}, {"map": [{"var": "a"}, {"var": ""}]}]},
    ]
    assert compile_ruleset(rules)({"a": [1]}) == [False, True, False]


def test_deeply_nested_and_long_rules() -> None:
    nested: Any = {"var": "x"}
    for _ in range(60):
        nested = {"!": nested}
    long_and = {"and": [{"some": [{"var": "xs"}, {"var": ""}]}] * 150 + [{"var": "x"}]}
    chain: Any = {"var": "x"}
    for level in range(25):
        chain = {"if": [{"some": [{"var": "xs"}, {">": [{"var": ""}, level]}]}, chain, level]}
    rules = [nested, long_and, chain, {"+": [{"var": "x"}] * 300}]
    ruleset = compile_ruleset(rules)
    for data in ({"x": 3, "xs": [1, 50]}, {"x": 0, "xs": []}, {"xs": [0]}):
        assert_matches_reference(rules, data, ruleset)


def test_reads_lists_the_paths_rules_read() -> None:
    ruleset = compile_ruleset(
        [
            {"==": [{"var": "event.type"}, "a"]},
            {"some": [{"var": ["cart.items", []]}, {">": [{"var": "price"}, 1]}]},
            {"missing": ["user.email", "user.name"]},
            {"missing_some": [1, ["a", "b"]]},
            {"reduce": [{"var": "xs"}, {"var": "accumulator"}, {"var": "start"}]},
        ]
    )
    assert ruleset.reads == (
        "a",
        "b",
        "cart.items",
        "event.type",
        "start",
        "user.email",
        "user.name",
        "xs",
    )
    assert ruleset.reads_complete
    assert ruleset.reads_by_rule[1] == frozenset({"cart.items"})
    dynamic = compile_ruleset([{"var": {"var": "which"}}, {"var": ""}])
    assert dynamic.reads == ("which",)
    assert not dynamic.reads_complete


def test_concurrent_evaluation() -> None:
    rules = _event_rules()
    ruleset = compile_ruleset(rules)
    contexts = [{"event": e, "n": n} for e in ("a", "b", "c", "d") for n in range(5)]
    expected = [reference(rules, data) for data in contexts]
    failures: list[str] = []

    def worker() -> None:
        for _ in range(200):
            for data, want in zip(contexts, expected, strict=True):
                if not all(same(a, e) for a, e in zip(ruleset(data), want, strict=True)):
                    failures.append(repr(data))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --------------------------------------------------------------------------- code injection

HOSTILE: Final = [
    "'); import os; os.system('touch /tmp/verdict-pwned'); ('",
    '"); __import__("os").system("touch /tmp/verdict-pwned"); ("',
    "\\'\n    raise SystemExit\n#",
    "\n\nimport os\nos.system('touch /tmp/verdict-pwned')\n",
    "\u2028__import__('os')\u2029",
    "\x00\x1b[31m",
    "{0.__class__}",
    "_U",
    "data",
    "out",
    "__builtins__",
    "é\ud800",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_rule_text_never_enters_generated_code(text: str, tmp_path: Path) -> None:
    functions = FunctionRegistry()
    functions.register(text or "x", lambda *args: list(args))
    rules = [
        {"==": [{"var": text}, text]},
        {"==": [{"var": text}, "other"]},
        {"in": [{"var": f"{text}.{text}"}, [text, 1]]},
        {"in": [text, {"var": "s"}]},
        {"cat": [text, {"var": [text, text]}]},
        {"missing": [text, f"a.{text}"]},
        {"some": [{"var": "xs"}, {"==": [{"var": text}, text]}]},
        {text: [{"var": text}, text]},
        {"if": [{"var": "s"}, {text: 1, "b": text}, text]},
    ]
    ruleset = compile_ruleset(rules, functions=functions, keep_source=True)
    assert ruleset.source is not None
    check_source(ruleset.source)
    for forbidden in ("'", '"', "\\", "#", "import", "system", "os"):
        assert forbidden not in ruleset.source.replace("_isarr", "")
    data = {text: text, "s": f"x{text}x", "xs": [{text: text}], f"{text}": {text: text}}
    assert_matches_reference(rules, data, ruleset, functions)
    assert not Path("/tmp/verdict-pwned").exists()


def test_generated_code_sees_only_a_few_builtins() -> None:
    ruleset = compile_ruleset([{"var": "a"}])
    namespace = ruleset._evaluate.__globals__
    assert set(namespace["__builtins__"]) == {"type", "dict", "float", "int", "str", "list"}


def test_check_source_refuses_anything_but_generated_code() -> None:
    check_source("def _g1(data, out):\n    out[0] = _k1 < data\n")
    for bad in ("x = 'a'", 'x = "a"', "x = 1  # comment", "x = b\\\n", "x = {1}", "x = `"):
        with pytest.raises(RuntimeError):
            check_source(bad)


# --------------------------------------------------------------------------- properties

PROPERTY_SETTINGS: Final = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Constants and values that collide under JavaScript's coercions.
MIXED: Final = st.sampled_from(
    [
        "1", 1, 1.0, True, False, 0, "0", "", " ", " 1 ", "1e0", "0x1", "a", "b", None,
        -0.0, 2.5, "2.5", "Infinity", math.inf,
    ]
)  # fmt: skip
MIXED_VALUES: Final = MIXED | st.sampled_from(
    [[1], ["1"], [[1]], [], {}, {"a": 1}, math.nan, 2**53 + 1, "true", "null"]
)
KEY_VARS: Final = st.sampled_from(
    [
        {"var": "k"},
        {"var": "k"},
        {"var": "k"},
        {"var": "obj.k"},
        {"var": ["k", "a"]},
        {"var": ["k", 1]},
        {"var": ["k", None]},
        {"var": ["obj.k", True]},
    ]
)


def _test(parts: tuple[str, Any, Any, bool]) -> Any:
    op, var, constant, flipped = parts
    if op == "in":
        return {"in": [var, constant if isinstance(constant, list) else [constant]]}
    if isinstance(constant, list):  # equality with an array literal is never indexable
        constant = constant[0] if constant else "x"
    return {op: [constant, var] if flipped else [var, constant]}


TESTS: Final = st.tuples(
    st.sampled_from(["==", "===", "in"]),
    KEY_VARS,
    MIXED | st.lists(MIXED, max_size=4),
    st.booleans(),
).map(_test)
INDEXABLE: Final = st.one_of(
    TESTS,
    st.tuples(TESTS, st.lists(BOOLS | NUMS | STRS, min_size=1, max_size=2)).map(
        lambda p: {"and": [p[0], *p[1]]}
    ),
    st.tuples(TESTS, BOOLS, ANY).map(lambda p: {"and": [{"and": [p[0], p[1]]}, p[2]]}),
)
RULE_SETS: Final = st.lists(st.one_of(INDEXABLE, INDEXABLE, ANY), min_size=2, max_size=12)


def _context(base: dict[str, Any], key: Any, nested: Any, absent: int) -> dict[str, Any]:
    """A DATA context with ``k`` and ``obj.k`` set (``absent`` 1 or 2 leaves one out)."""
    context = dict(base)
    if absent != 1:
        context["k"] = key
    context["obj"] = dict(base["obj"])
    if absent != 2:
        context["obj"]["k"] = nested
    return context


CONTEXTS: Final = st.lists(
    st.tuples(DATA, MIXED_VALUES, MIXED_VALUES, st.integers(0, 3)).map(lambda p: _context(*p)),
    min_size=1,
    max_size=4,
)


@PROPERTY_SETTINGS
@given(rules=RULE_SETS, contexts=CONTEXTS)
def test_rule_sets_equal_single_rules(rules: list[Any], contexts: list[Any]) -> None:
    for indexed in (True, False):
        ruleset = compile_ruleset(rules, index=indexed)
        for data in contexts:
            assert_matches_reference(rules, data, ruleset)
        assert ruleset.fallbacks == 0


def _combine(parts: tuple[str, list[Any]]) -> Any:
    op, operands = parts
    if op == "if":
        return {"if": operands}
    if op == "!":
        return {"!": [operands[0]]}
    return {op: operands}


# Rules assembled from a small pool of subtrees, so equal subtrees recur across rules (and are
# shared between them in the generated code).
SHARED_SETS: Final = st.lists(BOOLS | NUMS | STRS, min_size=1, max_size=3).flatmap(
    lambda pool: st.lists(
        st.tuples(
            st.sampled_from(["and", "or", "if", "!", "=="]),
            st.lists(st.sampled_from(pool), min_size=1, max_size=3),
        ).map(_combine),
        min_size=2,
        max_size=8,
    )
)


@PROPERTY_SETTINGS
@given(rules=SHARED_SETS, contexts=CONTEXTS)
def test_rule_sets_sharing_subtrees_equal_single_rules(
    rules: list[Any], contexts: list[Any]
) -> None:
    ruleset = compile_ruleset(rules)
    for data in contexts:
        assert_matches_reference(rules, data, ruleset)
    assert ruleset.fallbacks == 0
