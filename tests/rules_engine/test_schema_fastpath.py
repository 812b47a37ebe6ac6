"""Tests for rules_engine.schema_fastpath: the compiled validity check in front of jsonschema."""

from __future__ import annotations

import copy
import functools
import json
from collections import OrderedDict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from rules_engine.schema_fastpath import FastCheck, compile_fast_check

DEMO_DIR = Path(__file__).resolve().parents[2] / "rules_engine" / "demo"


def demo_schema(name: str) -> dict[str, Any]:
    """The context schema of a demo file in rules_engine/demo/."""
    data = json.loads((DEMO_DIR / f"{name}.json").read_text())
    schema: dict[str, Any] = data["entry_point"]["context_schema"]
    return schema


def validator_for(schema: Any) -> Draft202012Validator:
    """A validator built the way rules_engine.validation builds one."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def fast(schema: Any) -> FastCheck:
    """The fast check of a supported schema (fails the test if it is unsupported)."""
    check = compile_fast_check(validator_for(schema))
    assert check is not None
    return check


# Schemas using every supported keyword, alone and in combination; the differential tests
# below compare the fast check with jsonschema on each.
COVERAGE_SCHEMAS: dict[str, Any] = {
    "checkout demo": demo_schema("checkout"),
    "orders demo": demo_schema("orders"),
    "true": True,
    "false": False,
    "empty": {},
    "annotations only": {
        "title": "t",
        "description": "d",
        "examples": [1],
        "default": 2,
        "$comment": "c",
        "deprecated": True,
        "readOnly": False,
        "writeOnly": False,
        "x-vendor": {"minimum": 100},
    },
    "root identity": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/ctx.json",
        "type": "object",
    },
    "types": {"type": ["integer", "boolean", "null"]},
    "integer": {"type": "integer", "minimum": -2, "maximum": 2.5},
    "number bounds": {
        "type": "number",
        "exclusiveMinimum": 0,
        "exclusiveMaximum": 10,
    },
    "bounds without type": {"minimum": 1, "maximum": 3, "minLength": 2, "minItems": 1},
    "multiple of float": {"multipleOf": 0.1},
    "multiple of int": {"type": "integer", "multipleOf": 3},
    "string": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-zé😀]"},
    "enum mixed": {"enum": ["a", 1, None, False, [1, 2], {"k": True}]},
    "enum strings": {"enum": ["EUR", "USD"]},
    "const number": {"const": 0},
    "const string": {"const": "x"},
    "const object": {"const": {"a": [1, True]}},
    "array": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": {"type": "boolean"},
        "minItems": 1,
        "maxItems": 4,
    },
    "array closed": {"prefixItems": [{"const": 1}], "items": False},
    "array unique": {"type": "array", "uniqueItems": True, "items": {"enum": [1, True, 2, "a"]}},
    "object closed": {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
        "additionalProperties": False,
    },
    "object patterns": {
        "properties": {"id": {"type": "integer"}},
        "patternProperties": {"^x-": {"type": "string"}, "^n": {"type": "number"}},
        "additionalProperties": {"type": "boolean"},
    },
    "object empty pattern": {
        "patternProperties": {"": {"type": "string"}},
        "additionalProperties": False,
    },
    "object counts": {
        "minProperties": 1,
        "maxProperties": 2,
        "propertyNames": {"maxLength": 2},
        "dependentRequired": {"a": ["b"]},
    },
    "boolean subschemas": {"properties": {"yes": True, "no": False}},
    "all and any": {
        "allOf": [{"type": ["integer", "string"]}, {"anyOf": [{"minimum": 2}, {"maxLength": 1}]}]
    },
    "formats": {
        "type": "object",
        "properties": {
            "email": {"format": "email"},
            "date": {"format": "date"},
            "time": {"format": "time"},
            "ipv4": {"format": "ipv4"},
            "ipv6": {"format": "ipv6"},
            "uuid": {"format": "uuid"},
            "regex": {"format": "regex"},
            "idn-email": {"format": "idn-email"},
            "idn-hostname": {"format": "idn-hostname"},
            "date-time": {"format": "date-time"},
            "uri": {"format": "uri"},
        },
    },
}

# --------------------------------------------------------------------------------------------
# instances: JSON values with the edge cases JSON Schema cares about, and values shaped by a
# schema so that valid and near-valid instances are common, not only random noise

EDGE_NUMBERS = [0, 1, -1, 2, 3, 1.0, 0.0, -0.0, 1.5, 0.3, 2.5, 10, 150, 151, 2**70, 1e300, -1e-9]
EDGE_STRINGS = [
    "",
    "a",
    "ab",
    "abcd",
    "é",
    "😀😀",
    "EUR",
    "DE",
    "x-a",
    "n1",
    "ada@example.com",
    "2024-02-29",
    "2024-13-01",
    "12:00:00Z",
    "1.2.3.4",
    "300.1.1.1",
    "::1",
    "550e8400-e29b-41d4-a716-446655440000",
    "(",
    "xn--nxasmq6b",
    "-bad-",
]
EDGE_KEYS = ["a", "b", "id", "name", "x-a", "n1", "yes", "no", "extra", "abc"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGE_NUMBERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EDGE_STRINGS),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(EDGE_KEYS) | st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=10,
)


BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.sampled_from(EDGE_STRINGS) | st.text(max_size=5),
    "integer": st.sampled_from([0, 1, -1, 2, 1.0, 2**70]) | st.integers(),
    "number": st.sampled_from(EDGE_NUMBERS) | st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "null": st.none(),
    "array": st.lists(scalars, max_size=3),
    "object": st.dictionaries(st.sampled_from(EDGE_KEYS), scalars, max_size=3),
}


def near(schema: Any) -> st.SearchStrategy[Any]:
    """Values shaped by `schema` (its types, enums, bounds, patterns, properties), mostly.

    Each level picks a shaped value three times as often as any JSON value, so nested schemas
    still get valid instances while every level also sees values of the wrong shape.
    """
    if not isinstance(schema, dict):
        return json_values
    shaped: list[st.SearchStrategy[Any]] = []
    types = schema.get("type", [])
    for name in [types] if isinstance(types, str) else types:
        shaped.append(BY_TYPE[name])
    if "enum" in schema:
        shaped.append(st.sampled_from(schema["enum"]))
    if "const" in schema:
        shaped.append(st.just(schema["const"]))
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if keyword in schema:
            bound = schema[keyword]
            shaped.append(st.sampled_from([bound - 1, bound - 0.5, bound, float(bound), bound + 1]))
    if "pattern" in schema:
        shaped.append(st.from_regex(schema["pattern"], fullmatch=True))
    properties = schema.get("properties", {})
    if properties or "required" in schema:
        required = schema.get("required", [])
        shaped.append(
            st.fixed_dictionaries(
                {name: near(properties.get(name)) for name in required},
                optional={
                    **{name: near(sub) for name, sub in properties.items() if name not in required},
                    "extra": json_values,
                },
            )
        )
    if "items" in schema or "prefixItems" in schema:
        prefix = [near(sub) for sub in schema.get("prefixItems", [])]
        shaped.append(
            st.tuples(*prefix, st.lists(near(schema.get("items")), max_size=3)).map(
                lambda drawn: [*drawn[:-1], *drawn[-1]]
            )
        )
    for keyword in ("allOf", "anyOf"):
        shaped.extend(near(sub) for sub in schema.get(keyword, []))
    return st.one_of(*shaped, *shaped, *shaped, json_values)


@functools.cache
def compiled(name: str) -> tuple[Draft202012Validator, FastCheck]:
    """jsonschema's validator and the fast check of a coverage schema, built once per run."""
    schema = COVERAGE_SCHEMAS[name]
    return validator_for(schema), fast(schema)


FUZZ = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------------------------
# differential: the fast check agrees with jsonschema


@pytest.mark.parametrize("name", list(COVERAGE_SCHEMAS))
@FUZZ
@given(data=st.data())
def test_fast_check_agrees_with_jsonschema(name: str, data: st.DataObject) -> None:
    # Given a supported schema, its fast check and jsonschema's validator
    schema = COVERAGE_SCHEMAS[name]
    validator, check = compiled(name)

    # When an instance shaped by the schema is checked by both
    instance = data.draw(near(schema))

    # Then the verdicts are equal: never valid where jsonschema has an error, and no more
    # false alarms than jsonschema for JSON data
    assert check(instance) is validator.is_valid(instance)


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in COVERAGE_SCHEMAS
        if name not in ("true", "false", "empty", "annotations only")
    ],
)
def test_instance_strategy_reaches_both_verdicts(name: str) -> None:
    # Given a schema that accepts some values and refuses others
    schema = COVERAGE_SCHEMAS[name]
    validator = validator_for(schema)
    quick = settings(
        database=None,
        derandomize=True,
        max_examples=1000,
        deadline=None,
        phases=[Phase.generate],  # any example will do: no shrinking
    )

    # When instances are searched for both outcomes / Then both exist among the instances
    # the differential test draws, so it compares valid instances too, not only errors
    valid = find(near(schema), validator.is_valid, settings=quick)
    invalid = find(near(schema), lambda instance: not validator.is_valid(instance), settings=quick)
    assert (validator.is_valid(valid), validator.is_valid(invalid)) == (True, False)


DELETE = object()
REPLACEMENTS: list[Any] = [None, True, False, 0, -1, 1.0, 1.5, "", "DE", "EUR", [], {}, [{}]]


def mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, replacement) for every place in `value`: each replacement value, and deletion."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
        yield (*path, "extra"), 1
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        for replacement in REPLACEMENTS:
            yield (*path, key), replacement
        yield (*path, key), DELETE
        yield from mutations(child, (*path, key))


def mutated(value: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    """A deep copy of `value` with the value at `path` replaced, or deleted for DELETE."""
    copied = copy.deepcopy(value)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    if replacement is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return copied


@pytest.mark.parametrize("name", ["checkout", "orders"])
def test_every_single_change_to_a_demo_example_gets_jsonschemas_verdict(name: str) -> None:
    # Given a demo schema and its valid example
    schema = demo_schema(name)
    example = schema["examples"][0]
    validator = validator_for(schema)
    check = fast(schema)
    assert check(example) is True

    # When every value of the example is replaced by each edge value, or deleted, in turn
    verdicts = [
        (check(instance), validator.is_valid(instance))
        for path, replacement in mutations(example)
        for instance in [mutated(example, path, replacement)]
    ]

    # Then each fast verdict is jsonschema's, over both valid and invalid instances
    assert [fast_verdict for fast_verdict, _ in verdicts] == [slow for _, slow in verdicts]
    assert {slow for _, slow in verdicts} == {True, False}


# --------------------------------------------------------------------------------------------
# exact verdicts, keyword by keyword (each also checked against jsonschema)


@pytest.mark.parametrize(
    ("schema", "instance", "expected"),
    [
        # type: integer takes 1.0, never a bool; number never a bool; boolean only a bool
        ({"type": "integer"}, 1, True),
        ({"type": "integer"}, 1.0, True),
        ({"type": "integer"}, 1.5, False),
        ({"type": "integer"}, True, False),
        ({"type": "number"}, False, False),
        ({"type": "number"}, 2**70, True),
        ({"type": "boolean"}, 0, False),
        ({"type": "null"}, None, True),
        ({"type": ["string", "integer"]}, 2.0, True),
        ({"type": ["string", "integer"]}, None, False),
        # enum and const: True is not 1, 1 is 1.0, deep equality for lists and objects
        ({"enum": [1, "a"]}, True, False),
        ({"enum": [1, "a"]}, 1.0, True),
        ({"enum": [[1, 2]]}, [1.0, 2], True),
        ({"enum": [{"k": True}]}, {"k": 1}, False),
        ({"enum": ["EUR", "USD"]}, "GBP", False),
        ({"const": 0}, False, False),
        ({"const": 0}, -0.0, True),
        ({"const": "x"}, "x", True),
        # numbers; the keywords ignore non-numbers, booleans included
        ({"minimum": 0}, -1, False),
        ({"minimum": 0}, "-1", True),
        ({"minimum": 5}, True, True),
        ({"maximum": 150}, 150.0, True),
        ({"exclusiveMinimum": 0}, 0, False),
        ({"exclusiveMaximum": 1}, 0.999, True),
        ({"multipleOf": 0.1}, 0.3, False),
        ({"multipleOf": 0.5}, 1.5, True),
        # strings count code points and search (not match) the pattern
        ({"maxLength": 2}, "😀😀", True),
        ({"minLength": 1}, "", False),
        ({"minLength": 3}, ["a"], True),
        ({"pattern": "b"}, "abc", True),
        ({"pattern": "^[A-Z]{2}$"}, "DEU", False),
        # arrays
        ({"items": {"type": "integer"}}, [1, 2.0, "3"], False),
        ({"prefixItems": [{"type": "string"}], "items": False}, ["a"], True),
        ({"prefixItems": [{"type": "string"}], "items": False}, ["a", 1], False),
        ({"maxItems": 1}, [1, 2], False),
        ({"uniqueItems": True}, [1, True], True),
        ({"uniqueItems": True}, [1, 1.0], False),
        # objects
        ({"required": ["a"]}, {}, False),
        ({"required": ["a"]}, [], True),
        ({"properties": {"a": False}}, {"a": None}, False),
        ({"properties": {"a": False}}, {"b": None}, True),
        ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2}, False),
        ({"patternProperties": {"^x-": {}}, "additionalProperties": False}, {"x-a": 1}, True),
        # a lone "" pattern joins to "", which jsonschema's additionalProperties ignores
        ({"patternProperties": {"": {}}, "additionalProperties": False}, {"k": 1}, False),
        ({"additionalProperties": {"type": "string"}}, {"k": 1}, False),
        ({"propertyNames": {"maxLength": 1}}, {"ab": 1}, False),
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}, False),
        ({"minProperties": 1}, {}, False),
        ({"maxProperties": 0}, {"a": 1}, False),
        # combinators and formats
        ({"allOf": [{"minimum": 1}, {"maximum": 2}]}, 3, False),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1.5, False),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "1.5", True),
        ({"format": "email"}, "ada", False),
        ({"format": "ipv4"}, "300.1.1.1", False),
        ({"format": "date"}, "2024-02-29", True),
        ({"format": "idn-hostname"}, "-bad-", False),
        ({"format": "date-time"}, "not a date", True),
        ({"format": "email"}, 3, True),
    ],
)
def test_keyword_verdict(schema: dict[str, Any], instance: Any, expected: bool) -> None:
    # Given a schema exercising one keyword's edge
    # When the instance is checked / Then the fast check and jsonschema give `expected`
    assert (fast(schema)(instance), validator_for(schema).is_valid(instance)) == (
        expected,
        expected,
    )


# --------------------------------------------------------------------------------------------
# what is left to jsonschema


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}},
        {"$defs": {"a": {"type": "string"}}},
        {"properties": {"a": {"$ref": "https://example.com/a.json"}}},
        {"$dynamicRef": "#node"},
        {"$dynamicAnchor": "node"},
        {"properties": {"a": {"$anchor": "a"}}},
        {"properties": {"a": {"$id": "https://example.com/a"}}},
        {"properties": {"a": {"$schema": "https://json-schema.org/draft/2020-12/schema"}}},
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        {"not": {"type": "string"}},
        {"if": {"type": "string"}, "then": {"minLength": 1}},
        {"contains": {"type": "string"}},
        {"dependentSchemas": {"a": {"required": ["b"]}}},
        {"unevaluatedProperties": False},
        {"unevaluatedItems": False},
        {"items": {"properties": {"deep": {"not": {}}}}},
        {"anyOf": [{"type": "string"}, {"oneOf": [{"type": "integer"}]}]},
    ],
)
def test_unsupported_keyword_leaves_the_schema_to_jsonschema(schema: dict[str, Any]) -> None:
    # Given a schema using a keyword outside the subset, at any depth
    # When it is compiled / Then there is no fast check for the whole schema
    assert compile_fast_check(validator_for(schema)) is None


def test_other_drafts_are_left_to_jsonschema() -> None:
    # Given a draft-07 validator, whose `items` and `exclusiveMinimum` mean other things
    validator = Draft7Validator({"type": "object"}, format_checker=FormatChecker())

    # When it is compiled / Then there is no fast check
    assert compile_fast_check(validator) is None


def test_keywords_jsonschema_does_not_implement_are_ignored() -> None:
    # Given a schema with vendor keywords and a draft-07 keyword Draft 2020-12 does not know
    schema = {"type": "object", "x-ui": {"minimum": 10}, "dependencies": {"a": ["b"]}}
    check = fast(schema)

    # When an object breaking what those keywords would say is checked
    # Then it is valid, as for jsonschema
    assert (check({"a": 1}), validator_for(schema).is_valid({"a": 1})) == (True, True)


def test_format_checker_off_means_formats_are_not_checked() -> None:
    # Given a validator without a format checker
    validator = Draft202012Validator({"format": "email"})
    check = compile_fast_check(validator)
    assert check is not None

    # When a non-email is checked / Then it is valid, as for jsonschema
    assert (check("ada"), validator.is_valid("ada")) == (True, True)


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"minItems": 1}, ()),
        ({"type": "object"}, OrderedDict()),
        ({"minimum": 0}, Decimal("1")),
    ],
)
def test_values_json_cannot_produce_are_left_to_jsonschema(
    schema: dict[str, Any], instance: Any
) -> None:
    # Given a Python value JSON parsing never yields, under a schema that constrains it
    # When it is checked / Then the fast check says invalid (jsonschema then decides), even
    # though jsonschema accepts it
    assert (fast(schema)(instance), validator_for(schema).is_valid(instance)) == (False, True)


def test_an_exception_inside_the_check_means_invalid() -> None:
    # Given a format whose checker function raises something other than its declared error
    checker = FormatChecker([])

    @checker.checks("boom")
    def boom(instance: object) -> bool:
        raise ZeroDivisionError("boom")

    validator = Draft202012Validator({"format": "boom"}, format_checker=checker)
    check = compile_fast_check(validator)
    assert check is not None

    # When an instance is checked
    # Then the fast check answers invalid, and jsonschema (run next) raises the error itself
    assert check("x") is False
    with pytest.raises(ZeroDivisionError):
        validator.is_valid("x")


def test_validator_with_an_invalid_schema_is_left_to_jsonschema() -> None:
    # Given a validator built without check_schema around a schema the meta-schema refuses
    validator = Draft202012Validator({"minLength": "3"})

    # When it is compiled / Then there is no fast check
    assert compile_fast_check(validator) is None
