"""Property tests against json-logic-qubit, plus the table of its known differences.

json-logic-qubit (``import json_logic``) is a Python port of json-logic-js that differs from
the reference in many corners. The hypothesis strategies below generate random rules (bounded
depth) and data only from a grammar where qubit follows json-logic-js, and require our result
to match qubit's exactly. Every difference we found is listed in :data:`KNOWN_DIFFERENCES`,
each with a test asserting that we follow json-logic-js (and that qubit really differs).

How the strategies stay clear of the differences:

* equality and ordering only ever compare number with number or string with string
  (qubit coerces with ``str()``/``bool()``); strings are ASCII;
* numbers are small ints and binary fractions (halves, divided by powers of two), so every
  operation is exact and below 2**53 whatever the evaluation order; no division by zero, ``%``
  only on non-negative operands, ``*`` always with two or more arguments;
* ``cat`` only sees strings and integral numbers; ``in`` needles are strings or integers and
  string haystacks are non-empty;
* data is a non-empty object and iteration items are non-zero numbers (qubit replaces falsy
  data with ``{}``); array indexes are in range;
* ``!``/``!!`` get exactly one argument, ``and``/``or`` at least one, ``?:`` exactly three;
  no empty objects anywhere.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Final

import json_logic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine.jsonlogic import JsonLogicCompileError, compile, to_json

from .helpers import json_equal

PROPERTY_SETTINGS: Final = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def qubit(rule: Any, data: Any) -> Any:
    """Evaluate with json-logic-qubit, silencing its deprecation warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return json_logic.jsonLogic(rule, data)


def ours(rule: Any, data: Any) -> Any:
    """Evaluate with our compiler, as JSON."""
    return to_json(compile(rule)(data))


# --------------------------------------------------------------------------- known differences

COMPILE_ERROR: Final = "<compile error>"


@dataclass(frozen=True)
class Difference:
    """One place where json-logic-qubit and json-logic-js disagree."""

    operator: str
    case: str
    qubit: str
    json_logic_js: str
    rule: Any
    data: Any
    expected: Any  # json-logic-js's result as JSON, or COMPILE_ERROR


KNOWN_DIFFERENCES: Final[tuple[Difference, ...]] = (
    Difference(
        "==", "number vs numeric string", 'compares str(1) == "1.0": false',
        "converts the string to a number: true", {"==": [1, "1.0"]}, {}, True,
    ),
    Difference(
        "==", "0 vs empty string", 'compares "0" == "": false', "Number(\"\") is 0: true",
        {"==": [0, ""]}, {}, True,
    ),
    Difference(
        "==", "null vs false", "bool(None) is False: true",
        "null only equals null and undefined: false",
        {"==": [None, False]}, {}, False,
    ),
    Difference(
        "==", "null vs the string \"None\"", 'str(None) == "None": true', "false",
        {"==": [{"var": "n"}, None]}, {"n": "None"}, False,
    ),
    Difference(
        "==", "boolean vs number other than 0/1", "bool(2) is True: true",
        "true is 1, and 1 != 2: false",
        {"==": [2, True]}, {}, False,
    ),
    Difference(
        "==", "boolean vs numeric string", 'str(True) == "1": false', "true -> 1 == \"1\": true",
        {"==": [True, "1"]}, {}, True,
    ),
    Difference(
        "==", "array vs primitive", "[1] == 1 is false in Python",
        "ToPrimitive([1]) is \"1\": true",
        {"==": [[1], 1]}, {}, True,
    ),
    Difference(
        "===", "two array literals", "compares by value: true", "compares by identity: false",
        {"===": [[1], [1]]}, {}, False,
    ),
    Difference(
        "<", "null operand", "any None makes < false", "null is 0: 0 < 1 is true",
        {"<": [None, 1]}, {}, True,
    ),
    Difference(
        "<", "non-numeric string vs number", "raises ValueError (int('abc'))", "NaN: false",
        {"<": [1, "abc"]}, {}, False,
    ),
    Difference(
        "<", "exponent string vs number", "raises ValueError (int('1e3'))",
        "Number(\"1e3\") is 1000: true",
        {"<": [999, "1e3"]}, {}, True,
    ),
    Difference(
        "<=", "\"1.0\" vs 1", "neither < nor str-equal: false", "1 <= 1: true",
        {"<=": ["1.0", 1]}, {}, True,
    ),
    Difference(
        ">", "three arguments", "raises TypeError (takes 2 arguments)", "ignores the third: true",
        {">": [3, 2, 100]}, {}, True,
    ),
    Difference(
        "!!", "empty object", "bool({}) is False", "objects are truthy: true",
        {"!!": [{"var": "obj"}]}, {"obj": {}}, True,
    ),
    Difference(
        "if", "empty object condition", "bool({}) is False: else branch", "truthy: then branch",
        {"if": [{"var": "obj"}, "yes", "no"]}, {"obj": {}}, "yes",
    ),
    Difference(
        "!", "more than one argument", "raises TypeError", "uses the first argument: false",
        {"!": [1, 0]}, {}, False,
    ),
    Difference(
        "and", "no arguments", "false", "undefined (null in JSON)", {"and": []}, {}, None,
    ),
    Difference(
        "or", "no arguments", "false", "undefined (null in JSON)", {"or": []}, {}, None,
    ),
    Difference(
        "?:", "two arguments", "raises TypeError (needs 3)", "like if: null",
        {"?:": [False, "yes"]}, {}, None,
    ),
    Difference(
        "var", "falsy data", "replaces falsy data with {}", "returns the data: 0",
        {"var": ""}, 0, 0,
    ),
    Difference(
        "map", "falsy items", "each falsy item becomes {}", "items are the data as they are",
        {"map": [[0, 1], {"var": ""}]}, {}, [0, 1],
    ),
    Difference(
        "map", "missing logic argument", "raises TypeError", "undefined per item: [null, null]",
        {"map": [[1, 2]]}, {}, [None, None],
    ),
    Difference(
        "var", "negative index", "Python negative indexing: the last item", "not an index: null",
        {"var": "xs.-1"}, {"xs": [1, 2]}, None,
    ),
    Difference(
        "var", "non-canonical index \"01\"", "int('01') indexes item 1", "not an index: null",
        {"var": "xs.01"}, {"xs": [1, 2]}, None,
    ),
    Difference(
        "var", "index out of range", "raises IndexError", "undefined: the default (null)",
        {"var": "xs.5"}, {"xs": [1, 2]}, None,
    ),
    Difference(
        "var", "boolean key", 'str(True) is "True": null', 'String(true) is "true": 1',
        {"var": True}, {"true": 1}, 1,
    ),
    Difference(
        "reduce", "initial value is logic", "uses the rule object itself: raises TypeError",
        "evaluates the initial value against the data: 11",
        {"reduce": [[1], {"+": [{"var": "current"}, {"var": "accumulator"}]}, {"var": "start"}]},
        {"start": 10},
        11,
    ),
    Difference(
        "in", "boolean needle, numeric array", "Python True == 1: true", "strict indexOf: false",
        {"in": [True, [1]]}, {}, False,
    ),
    Difference(
        "in", "number needle, string haystack", "raises TypeError", "needle stringified: true",
        {"in": [1, "a1"]}, {}, True,
    ),
    Difference(
        "in", "object haystack", "Python key membership: true", "objects have no indexOf: false",
        {"in": ["a", {"var": "obj"}]}, {"obj": {"a": 1}}, False,
    ),
    Difference(
        "in", "empty haystack string", '"" in "" is true', "!b short-circuits: false",
        {"in": ["", ""]}, {}, False,
    ),
    Difference(
        "cat", "null", 'str(None): "aNone"', 'Array.join skips null: "a"',
        {"cat": ["a", None]}, {}, "a",
    ),
    Difference(
        "cat", "boolean", 'str(True): "True"', '"true"', {"cat": [True]}, {}, "true",
    ),
    Difference(
        "cat", "integral float", 'str(1.0): "1.0"', 'Number::toString: "1"',
        {"cat": [1.0]}, {}, "1",
    ),
    Difference(
        "cat", "array", 'str([1, 2]): "[1, 2]"', 'join: "1,2"', {"cat": [[1, 2]]}, {}, "1,2",
    ),
    Difference(
        "cat", "small float", 'str(1e-07): "1e-07"', '"1e-7"', {"cat": [1e-7]}, {}, "1e-7",
    ),
    Difference(
        "substr", "number source", "raises TypeError (not subscriptable)", 'String(12345): "23"',
        {"substr": [12345, 1, 2]}, {}, "23",
    ),
    Difference(
        "substr", "null length", "slice to None: the rest", 'length 0: ""',
        {"substr": ["abc", 0, None]}, {}, "",
    ),
    Difference(
        "+", "string with a numeric prefix", "raises ValueError (int('3abc'))", "parseFloat: 3 + 1",
        {"+": ["3abc", 1]}, {}, 4,
    ),
    Difference(
        "+", "boolean", "int(True) is 1: 2", "parseFloat(true) is NaN: null",
        {"+": [True, 1]}, {}, None,
    ),
    Difference(
        "+", "null", "raises TypeError", "parseFloat(null) is NaN: null", {"+": [None]}, {}, None,
    ),
    Difference(
        "+", "exponent string", "raises ValueError", "parseFloat(\"1e3\") is 1000",
        {"+": ["1e3"]}, {}, 1000,
    ),
    Difference(
        "-", "empty string", "raises ValueError", "Number(\"\") is 0: -1", {"-": ["", 1]}, {}, -1,
    ),
    Difference(
        "-", "null", "raises TypeError", "Number(null) is 0: -1", {"-": [None, 1]}, {}, -1,
    ),
    Difference(
        "*", "single argument", "converts it: 2", 'reduce without seed returns it as is: "2"',
        {"*": ["2"]}, {}, "2",
    ),
    Difference(
        "*", "no arguments", "1", "throws (reduce of empty array): compile error here",
        {"*": []}, {}, COMPILE_ERROR,
    ),
    Difference(
        "/", "division by zero", "raises ZeroDivisionError", "Infinity, and Infinity > 5",
        {">": [{"/": [1, 0]}, 5]}, {}, True,
    ),
    Difference(
        "%", "negative dividend", "Python %: sign of the divisor, 2", "sign of the dividend: -1",
        {"%": [-7, 3]}, {}, -1,
    ),
    Difference(
        "%", "zero divisor", "raises ZeroDivisionError", "NaN: null", {"%": [5, 0]}, {}, None,
    ),
    Difference(
        "min", "no arguments", "None, and None > 5 is false", "Infinity, and Infinity > 5",
        {">": [{"min": []}, 5]}, {}, True,
    ),
    Difference(
        "max", "non-numeric string", "raises ValueError", "NaN: null",
        {"max": ["abc", 1]}, {}, None,
    ),
    Difference(
        "max", "null", "raises TypeError", "Number(null) is 0", {"max": [None, -1]}, {}, 0,
    ),
    Difference(
        "missing_some", "need count as a string", "raises TypeError (int >= str)",
        "compared with JS coercion: []", {"missing_some": ["1", ["a"]]}, {"a": 1}, [],
    ),
    Difference(
        "method", "calling Python methods", 'calls "abc".upper(): "ABC" (remote code execution)',
        "removed in 2.x: unknown operator (compile error here)",
        {"method": ["abc", "upper"]}, {}, COMPILE_ERROR,
    ),
    Difference(
        "count", "non-standard operator", "counts truthy arguments", "unknown operator",
        {"count": [1, 0, 2]}, {}, COMPILE_ERROR,
    ),
)  # fmt: skip


def _difference_id(difference: Difference) -> str:
    return f"{difference.operator}:{difference.case}"


@pytest.mark.parametrize("difference", KNOWN_DIFFERENCES, ids=_difference_id)
def test_known_difference_follows_json_logic_js(difference: Difference) -> None:
    if difference.expected == COMPILE_ERROR:
        with pytest.raises(JsonLogicCompileError):
            compile(difference.rule)
        return
    result = ours(difference.rule, difference.data)
    assert json_equal(result, difference.expected), f"got {result!r}"


@pytest.mark.parametrize("difference", KNOWN_DIFFERENCES, ids=_difference_id)
def test_known_difference_is_real(difference: Difference) -> None:
    try:
        result = qubit(difference.rule, difference.data)
    except (TypeError, ValueError, ArithmeticError, LookupError):
        return  # qubit raises where json-logic-js does not
    if difference.expected == COMPILE_ERROR:
        return  # qubit evaluates a rule json-logic-js refuses
    assert not json_equal(result, difference.expected), (
        "qubit now agrees with json-logic-js; drop this entry from KNOWN_DIFFERENCES"
    )


# --------------------------------------------------------------------------- strategies

SMALL_INTS: Final = st.integers(-20, 20)
NONZERO_INTS: Final = st.integers(1, 20) | st.integers(-20, -1)
HALVES: Final = st.integers(-40, 40).map(lambda n: n / 2)
ALPHABET: Final = "abcxyzAB019 -_"
WORDS: Final = st.text(alphabet=ALPHABET, max_size=6)
NONEMPTY_WORDS: Final = st.text(alphabet=ALPHABET, min_size=1, max_size=6)
MISSING_KEYS: Final = st.sampled_from(
    ["n", "s", "name", "t", "nothing", "empty", "absent", "obj.x", "obj.y.z", "obj.q", "nums.0"]
)

DATA: Final = st.fixed_dictionaries(
    {
        "n": SMALL_INTS,
        "f": HALVES,
        "count": st.integers(0, 40),
        "s": NONEMPTY_WORDS,
        "name": WORDS,
        "t": st.booleans(),
        "nothing": st.none(),
        "empty": st.just(""),
        "nums": st.lists(NONZERO_INTS, min_size=1, max_size=4),
        "tags": st.lists(NONEMPTY_WORDS | SMALL_INTS, max_size=4),
        "obj": st.fixed_dictionaries({"x": SMALL_INTS, "y": st.fixed_dictionaries({"z": WORDS})}),
    }
)


def _op(name: str) -> Any:
    return lambda args: {name: list(args)}


# Integral numbers (ints, sums, products...) that stay small and exact.
INT_LEAVES: Final = st.one_of(
    SMALL_INTS,
    st.sampled_from([{"var": "n"}, {"var": "obj.x"}, {"var": "nums.0"}, {"var": "count"}]),
    SMALL_INTS.map(lambda default: {"var": ["absent", default]}),
)
INTS: Final = st.recursive(
    INT_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(_op("+")),
        st.lists(inner, min_size=1, max_size=2).map(_op("-")),
        st.lists(inner, min_size=2, max_size=3).map(_op("*")),
        st.lists(inner, min_size=1, max_size=3).map(_op("min")),
        st.lists(inner, min_size=1, max_size=3).map(_op("max")),
    ),
    max_leaves=6,
)

# Numbers in general: binary fractions too, division by powers of two, remainders.
NUM_LEAVES: Final = st.one_of(
    INT_LEAVES,
    HALVES,
    st.just({"var": "f"}),
    st.tuples(st.integers(0, 40) | st.just({"var": "count"}), st.integers(1, 9)).map(_op("%")),
)
NUMS: Final = st.recursive(
    NUM_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(_op("+")),
        st.lists(inner, min_size=1, max_size=2).map(_op("-")),
        st.lists(inner, min_size=2, max_size=3).map(_op("*")),
        st.tuples(inner, st.sampled_from([1, 2, 4, 8, -1, -2, -4])).map(_op("/")),
        st.lists(inner, min_size=1, max_size=3).map(_op("min")),
        st.lists(inner, min_size=1, max_size=3).map(_op("max")),
        st.tuples(st.booleans() | st.just({"var": "t"}), inner, inner).map(_op("if")),
    ),
    max_leaves=6,
)

STR_LEAVES: Final = st.one_of(
    WORDS,
    st.sampled_from([{"var": "s"}, {"var": "name"}, {"var": "obj.y.z"}]),
    WORDS.map(lambda default: {"var": ["absent", default]}),
)
STRS: Final = st.recursive(
    STR_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner | INTS, min_size=1, max_size=3).map(_op("cat")),
        st.tuples(inner, st.integers(-8, 8)).map(_op("substr")),
        st.tuples(inner, st.integers(-8, 8), st.integers(-8, 8)).map(_op("substr")),
        st.tuples(st.booleans() | st.just({"var": "t"}), inner, inner).map(_op("if")),
    ),
    max_leaves=5,
)

COMPARISONS: Final = st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="])
ITEM_NUMS: Final = st.recursive(
    st.just({"var": ""}) | SMALL_INTS,
    lambda inner: (
        st.lists(inner, min_size=2, max_size=3).map(_op("+"))
        | st.lists(inner, min_size=2, max_size=2).map(_op("*"))
    ),
    max_leaves=3,
)
ITEM_TESTS: Final = st.tuples(COMPARISONS, ITEM_NUMS, SMALL_INTS).map(
    lambda parts: {parts[0]: [parts[1], parts[2]]}
)
HAYSTACK_LISTS: Final = st.lists(NONEMPTY_WORDS | SMALL_INTS, max_size=4) | st.just({"var": "tags"})

BOOLS: Final = st.one_of(
    st.booleans(),
    st.just({"var": "t"}),
    st.tuples(COMPARISONS, NUMS, NUMS).map(lambda p: {p[0]: [p[1], p[2]]}),
    st.tuples(COMPARISONS, STRS, STRS).map(lambda p: {p[0]: [p[1], p[2]]}),
    st.tuples(st.sampled_from(["<", "<="]), NUMS, NUMS, NUMS).map(
        lambda p: {p[0]: [p[1], p[2], p[3]]}
    ),
    st.tuples(STRS, NONEMPTY_WORDS | st.just({"var": "s"})).map(_op("in")),
    st.tuples(STRS | INTS, HAYSTACK_LISTS).map(_op("in")),
    st.tuples(st.sampled_from(["all", "some", "none"]), ITEM_TESTS).map(
        lambda p: {p[0]: [{"var": "nums"}, p[1]]}
    ),
)

LISTS: Final = st.one_of(
    st.lists(
        st.lists(SMALL_INTS | WORDS, max_size=3) | SMALL_INTS | WORDS | st.just({"var": "nums"}),
        max_size=3,
    ).map(_op("merge")),
    ITEM_NUMS.map(lambda logic: {"map": [{"var": "nums"}, logic]}),
    ITEM_TESTS.map(lambda logic: {"filter": [{"var": "nums"}, logic]}),
    st.tuples(
        st.sampled_from(["+", "*", "max", "min"]),
        SMALL_INTS,
    ).map(
        lambda p: {
            "reduce": [
                {"var": "nums"},
                {p[0]: [{"var": "current"}, {"var": "accumulator"}]},
                p[1],
            ]
        }
    ),
    st.lists(MISSING_KEYS, max_size=4).map(_op("missing")),
    st.tuples(st.integers(0, 3), st.lists(MISSING_KEYS, max_size=4)).map(_op("missing_some")),
)

ANY: Final = st.recursive(
    st.one_of(NUMS, STRS, BOOLS, LISTS),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(_op("and")),
        st.lists(inner, min_size=1, max_size=3).map(_op("or")),
        inner.map(lambda x: {"!": [x]}),
        inner.map(lambda x: {"!!": [x]}),
        st.lists(inner, max_size=5).map(_op("if")),
        st.tuples(inner, inner, inner).map(_op("?:")),
        st.lists(inner, max_size=3),  # arrays of rules evaluate element-wise
    ),
    max_leaves=8,
)


def _assert_same(rule: Any, data: Any) -> None:
    expected = qubit(rule, data)
    result = ours(rule, data)
    assert json_equal(result, expected), f"ours {result!r} != qubit {expected!r}"


@PROPERTY_SETTINGS
@given(rule=NUMS, data=DATA)
def test_numbers_match_qubit(rule: Any, data: Any) -> None:
    _assert_same(rule, data)


@PROPERTY_SETTINGS
@given(rule=STRS, data=DATA)
def test_strings_match_qubit(rule: Any, data: Any) -> None:
    _assert_same(rule, data)


@PROPERTY_SETTINGS
@given(rule=BOOLS, data=DATA)
def test_conditions_match_qubit(rule: Any, data: Any) -> None:
    _assert_same(rule, data)


@PROPERTY_SETTINGS
@given(rule=LISTS, data=DATA)
def test_arrays_match_qubit(rule: Any, data: Any) -> None:
    _assert_same(rule, data)


@PROPERTY_SETTINGS
@given(rule=ANY, data=DATA)
def test_nested_logic_matches_qubit(rule: Any, data: Any) -> None:
    _assert_same(rule, data)
