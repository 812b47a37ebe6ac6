"""Explanations (rules_engine.jsonlogic.trace): same results as the compiler, bounded trees."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rules_engine.jsonlogic import (
    JsonLogicCompileError,
    JsonLogicError,
    JsonLogicRuntimeError,
    compile,
    to_json,
)
from rules_engine.jsonlogic.trace import MAX_NODES, Explainer, explain
from tests.support.explanations import literal_node, var_node

from .helpers import json_equal
from .test_conformance import CASES
from .test_golden import AREAS, ERROR_TYPES, _load

GOLDEN_CASES = [
    pytest.param(case, id=f"{area}-{index:02d}")
    for area in AREAS
    for index, case in enumerate(_load(area)["cases"])
]


def _count(node: dict[str, Any]) -> int:
    return 1 + sum(_count(child) for child in node["args"])


# --------------------------------------------------------------------------- same semantics


@pytest.mark.parametrize(
    ("rule", "data"),
    [pytest.param(rule, data, id=f"{index:03d}") for index, (rule, data, _) in enumerate(CASES)],
)
def test_traced_result_equals_compiled_result_on_the_conformance_suite(
    rule: Any, data: Any
) -> None:
    # given a conformance case, when it is explained
    node = explain(rule, data)

    # then the root's result is the compiled rule's result, and no node failed
    expected = to_json(compile(rule)(data))
    assert json_equal(node["result"], expected), (node["result"], expected)
    assert "error" not in node


def test_a_reused_explainer_explains_each_context_as_a_fresh_one() -> None:
    # given each rule of the conformance suite compiled once for explaining, and its contexts
    by_rule: dict[str, tuple[Any, list[Any]]] = {}
    for rule, data, _ in CASES:
        by_rule.setdefault(json.dumps(rule, sort_keys=True), (rule, []))[1].append(data)
    reused = 0
    for rule, contexts in by_rule.values():
        try:
            explainer = Explainer(rule)
        except JsonLogicCompileError:
            continue
        # when it explains them one after another, forwards and back
        for data in [*contexts, *reversed(contexts)]:
            # then every tree is the one a fresh compilation gives
            assert explainer.explain(data) == explain(rule, data), (rule, data)
        reused += len(contexts) > 1
    assert reused > 10


def test_a_reused_explainer_forgets_a_truncated_run() -> None:
    # given an explainer whose first run is cut at the node limit
    rule = {"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]}
    explainer = Explainer(rule, max_nodes=5)
    long = explainer.explain({"xs": list(range(50))})
    # when it then explains a small context
    short = explainer.explain({"xs": [1]})
    # then both are what fresh explanations give: the first cut, the second complete
    assert long == explain(rule, {"xs": list(range(50))}, max_nodes=5)
    assert "trace truncated" in json.dumps(long)
    assert short == explain(rule, {"xs": [1]}, max_nodes=5)
    assert "trace truncated" not in json.dumps(short)
    assert short["result"] == [2]


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_traced_result_equals_compiled_result_on_the_golden_files(case: dict[str, Any]) -> None:
    if "error" in case:
        expected_error = case["error"]
        if expected_error["type"] == "compile":
            # then a rule that does not compile does not compile for explain either
            with pytest.raises(JsonLogicCompileError) as raised:
                explain(case["rule"], case["data"])
            assert raised.value.json_path() == expected_error["json_path"]
            return
        # then a run-time failure is reported on the root, with the compiler's message
        with pytest.raises(ERROR_TYPES[expected_error["type"]]) as compiled_error:
            compile(case["rule"])(case["data"])
        node = explain(case["rule"], case["data"])
        assert node["error"] == compiled_error.value.message
        assert node["result"] is None
        return
    node = explain(case["rule"], case["data"])
    expected = to_json(compile(case["rule"])(case["data"]))
    assert json_equal(node["result"], expected), (case["note"], node["result"], expected)
    assert "error" not in node


# --------------------------------------------------------------------------- node shapes


def test_and_explains_each_clause_with_the_values_it_saw() -> None:
    # given a cart of 80 from France
    rule = {"and": [{">": [{"var": "cart.total"}, 50]}, {"==": [{"var": "user.country"}, "DE"]}]}
    data = {"cart": {"total": 80}, "user": {"country": "FR"}}

    # when the rule is explained
    node = explain(rule, data)

    # then the first clause is true (total was 80), the second false (country was FR)
    assert node == {
        "op": "and",
        "expression": "all of 2",
        "result": False,
        "truthy": False,
        "args": [
            {
                "op": ">",
                "expression": "cart.total > 50",
                "result": True,
                "truthy": True,
                "args": [var_node("cart.total", 80), literal_node(50)],
            },
            {
                "op": "==",
                "expression": 'user.country == "DE"',
                "result": False,
                "truthy": False,
                "args": [var_node("user.country", "FR"), literal_node("DE")],
            },
        ],
    }


def test_or_records_only_the_branches_it_evaluated() -> None:
    # when the first operand of an or is truthy
    node = explain({"or": [{"var": "a"}, {"var": "b"}]}, {"a": 1, "b": 2})

    # then the second is not evaluated, so not in the trace
    assert node == {
        "op": "or",
        "expression": "any of 2",
        "result": 1,
        "truthy": True,
        "args": [var_node("a", 1)],
    }


def test_and_stops_at_the_first_false_clause() -> None:
    node = explain({"and": [{"var": "a"}, {"var": "b"}, {"var": "c"}]}, {"a": 1, "b": 0, "c": 1})
    assert node["args"] == [var_node("a", 1), var_node("b", 0, truthy=False)]
    assert (node["expression"], node["result"]) == ("all of 3", 0)


def test_if_records_the_conditions_tried_and_the_branch_taken() -> None:
    # given an if chain and n == 0
    rule = {
        "if": [
            {"<": [{"var": "n"}, 0]},
            "negative",
            {"==": [{"var": "n"}, 0]},
            "zero",
            "positive",
        ]
    }

    # when it is explained
    node = explain(rule, {"n": 0})

    # then the first condition (false), the second (true) and its branch are recorded
    assert node == {
        "op": "if",
        "expression": 'if (n < 0) then "negative" else if (n == 0) then "zero" else "positive"',
        "result": "zero",
        "truthy": True,
        "args": [
            {
                "op": "<",
                "expression": "n < 0",
                "result": False,
                "truthy": False,
                "args": [var_node("n", 0, truthy=False), literal_node(0, truthy=False)],
            },
            {
                "op": "==",
                "expression": "n == 0",
                "result": True,
                "truthy": True,
                "args": [var_node("n", 0, truthy=False), literal_node(0, truthy=False)],
            },
            literal_node("zero"),
        ],
    }


def test_some_records_the_collection_and_stops_at_the_first_match() -> None:
    # given a cart whose first item is alcohol
    rule = {"some": [{"var": "cart.items"}, {"==": [{"var": "category"}, "alcohol"]}]}
    items = [{"category": "alcohol"}, {"category": "books"}]

    # when it is explained
    node = explain(rule, {"cart": {"items": items}})

    # then the collection and the one item evaluated are recorded
    assert node == {
        "op": "some",
        "expression": 'some(cart.items, category == "alcohol")',
        "result": True,
        "truthy": True,
        "args": [
            var_node("cart.items", items),
            {
                "op": "==",
                "expression": 'category == "alcohol"',
                "result": True,
                "truthy": True,
                "args": [var_node("category", "alcohol"), literal_node("alcohol")],
                "item": 0,
            },
        ],
        "iterations": 1,
    }


def test_all_shows_the_item_that_failed() -> None:
    rule = {"all": [{"var": "items"}, {">": [{"var": "price"}, 10]}]}
    node = explain(rule, {"items": [{"price": 20}, {"price": 5}, {"price": 30}]})
    assert (node["result"], node["iterations"]) == (False, 2)
    assert [
        (item["item"], item["args"][0]["result"], item["result"]) for item in node["args"][1:]
    ] == [
        (0, 20, True),
        (1, 5, False),
    ]


def test_iterations_show_at_most_five_items_and_count_the_rest() -> None:
    # when a filter looks at 8 items
    node = explain({"filter": [{"var": "xs"}, {">": [{"var": ""}, 2]}]}, {"xs": list(range(8))})

    # then the first 5 evaluations are shown and the other 3 counted
    assert node["result"] == [3, 4, 5, 6, 7]
    assert (node["iterations"], node["omitted"]) == (8, 3)
    assert [(item["item"], item["result"]) for item in node["args"][1:]] == [
        (0, False),
        (1, False),
        (2, False),
        (3, True),
        (4, True),
    ]
    assert node["args"][1]["args"][0] == {
        "op": "var",
        "expression": "var data",
        "var": "",
        "result": 0,
        "truthy": False,
        "args": [],
    }


def test_constant_subtrees_are_literals_with_their_source_text() -> None:
    assert explain({"+": [1, 2]}, {}) == {
        "op": "literal",
        "expression": "1 + 2",
        "result": 3,
        "truthy": True,
        "args": [],
    }


def test_var_with_default_names_the_path_and_shows_the_default_used() -> None:
    node = explain({">=": [{"var": ["visits", 0]}, 1]}, {})
    assert node["expression"] == "(visits ?? 0) >= 1"
    assert node["args"][0] == {
        "op": "var",
        "expression": "var visits ?? 0",
        "var": "visits",
        "result": 0,
        "truthy": False,
        "args": [],
    }


def test_a_failing_node_carries_the_error() -> None:
    node = explain({"missing_some": [1, {"var": "k"}]}, {})
    assert node["error"] == "missing_some needs an array of keys, got null"
    assert (node["result"], node["truthy"]) == (None, False)
    assert node["args"] == [literal_node(1), var_node("k", None, truthy=False)]


# --------------------------------------------------------------------------- values


def test_values_are_json_and_long_strings_are_cut() -> None:
    # Infinity is null (JSON.stringify), though truthy
    node = explain({"/": [1, {"var": "z"}]}, {"z": 0})
    assert (node["result"], node["truthy"]) == (None, True)
    # a 300-character string shows its first 200 characters
    node = explain({"cat": [{"var": "s"}]}, {"s": "x" * 300})
    assert node["result"] == "x" * 200 + "…"
    assert node["args"][0]["result"] == "x" * 200 + "…"


def test_long_arrays_are_cut_in_values() -> None:
    node = explain({"var": "xs"}, {"xs": list(range(25))})
    assert node["result"] == [*range(20), "… 5 more"]


# --------------------------------------------------------------------------- masking


def test_a_var_at_a_sensitive_path_shows_stars() -> None:
    node = explain(
        {"==": [{"var": "payment.card_number"}, "4111"]},
        {"payment": {"card_number": "4111"}},
        sensitive_paths=["payment.card_number"],
    )
    assert node["result"] is True
    assert node["args"][0] == var_node("payment.card_number", "***")


def test_a_var_above_a_sensitive_path_masks_inside() -> None:
    node = explain(
        {"var": "user"},
        {"user": {"email": "ada@example.com", "id": 1}},
        sensitive_paths=["user.email"],
    )
    assert node["result"] == {"email": "***", "id": 1}


def test_item_vars_are_masked_by_wildcard_paths() -> None:
    # given card numbers of every item are sensitive
    rule = {"some": [{"var": "cards"}, {"==": [{"var": "number"}, "1"]}]}

    # when a rule reads them item by item
    node = explain(rule, {"cards": [{"number": "1"}]}, sensitive_paths=["cards.*.number"])

    # then both the collection and the item's value are masked
    assert node["result"] is True
    assert node["args"][0]["result"] == [{"number": "***"}]
    assert node["args"][1]["args"][0] == var_node("number", "***")


def test_values_computed_from_masked_values_are_masked_too() -> None:
    node = explain(
        {"cat": [{"var": "user.email"}, "!"]},
        {"user": {"email": "ada@example.com"}},
        sensitive_paths=["user.email"],
    )
    assert node["result"] == "***"
    assert node["args"][0]["result"] == "***"


# --------------------------------------------------------------------------- bounds


def test_a_large_trace_is_truncated() -> None:
    # given a rule that evaluates 300 comparisons (900 nodes)
    rule = {"or": [{"==": [{"var": "a"}, index]} for index in range(300)]}

    # when it is explained
    node = explain(rule, {"a": -1})

    # then the trace holds MAX_NODES nodes and one truncation marker, and the result is right
    assert node["result"] is False
    assert _count(node) == MAX_NODES + 1

    def markers(tree: dict[str, Any]) -> list[dict[str, Any]]:
        found = [tree] if tree["op"] == "truncated" else []
        return found + [m for child in tree["args"] for m in markers(child)]

    assert markers(node) == [
        {
            "op": "truncated",
            "expression": f"trace truncated (at most {MAX_NODES} nodes)",
            "result": None,
            "truthy": False,
            "args": [],
        }
    ]


def test_the_node_limit_is_a_parameter() -> None:
    rule = {"and": [{">": [{"var": "cart.total"}, 50]}, {"==": [{"var": "user.country"}, "DE"]}]}
    node = explain(rule, {"cart": {"total": 80}, "user": {"country": "FR"}}, max_nodes=3)
    assert node["result"] is False
    assert [child["op"] for child in node["args"]] == [">"]
    assert [child["op"] for child in node["args"][0]["args"]] == ["var", "truncated"]


def test_an_unknown_operator_does_not_compile() -> None:
    with pytest.raises(JsonLogicCompileError):
        explain({"nope": [1]}, {})


def test_explain_never_raises_for_run_time_errors() -> None:
    # (JsonLogicRuntimeError is what compile raises for the same rule)
    with pytest.raises(JsonLogicRuntimeError):
        compile({"missing_some": [1, None]})({})
    assert "error" in explain({"missing_some": [1, None]}, {})
    assert issubclass(JsonLogicRuntimeError, JsonLogicError)
