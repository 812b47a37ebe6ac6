"""Tests for rules_engine.validation: context validation against JSON Schema."""

from __future__ import annotations

import copy
import gc
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from rules_engine import schema_fastpath, validation
from rules_engine.validation import (
    ContextError,
    SchemaError,
    check_schema,
    get_validator,
    validate_context,
)

CHECKOUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user", "cart"],
    "properties": {
        "user": {
            "type": "object",
            "required": ["email", "name"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string"},
                "role": {"enum": ["admin", "member"]},
            },
            "additionalProperties": False,
        },
        "cart": {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"price": {"type": "number", "minimum": 0}},
                    },
                },
            },
        },
        "odd key": {"type": "string"},
    },
}


def valid_context() -> dict[str, Any]:
    return {
        "user": {"email": "ada@example.com", "name": "Ada", "role": "admin"},
        "cart": {"items": [{"price": 10}, {"price": 2.5}]},
        "odd key": "ok",
    }


# --------------------------------------------------------------------------------------------
# validate_context


def test_valid_context_has_no_errors() -> None:
    # Given a context matching the schema
    # When it is validated / Then there are no errors
    assert validate_context(schema=CHECKOUT_SCHEMA, context=valid_context()) == []


def test_every_error_is_reported_with_its_path_sorted() -> None:
    # Given a context with five problems at different depths
    context = valid_context()
    context["user"] = {"email": "not-an-email", "role": "root", "nickname": "A"}
    context["cart"]["items"][1]["price"] = "2.50"
    context["odd key"] = 3

    # When it is validated
    errors = validate_context(schema=CHECKOUT_SCHEMA, context=context)

    # Then each problem is reported once, at its path, sorted by path then message
    assert errors == [
        ContextError("$.cart.items[1].price", "'2.50' is not of type 'number'"),
        ContextError("$.user.email", "'not-an-email' is not a 'email'"),
        ContextError("$.user.name", "'name' is a required property"),
        ContextError(
            "$.user.nickname", "Additional properties are not allowed ('nickname' was unexpected)"
        ),
        ContextError("$.user.role", "'root' is not one of ['admin', 'member']"),
        ContextError('$["odd key"]', "3 is not of type 'string'"),
    ]


def test_missing_required_property_points_at_the_property() -> None:
    # Given a context without `user`
    context = valid_context()
    del context["user"]

    # When it is validated / Then the path names the missing property
    assert validate_context(schema=CHECKOUT_SCHEMA, context=context) == [
        ContextError("$.user", "'user' is a required property")
    ]


def test_each_missing_required_property_is_its_own_error() -> None:
    # Given an empty user object
    context = valid_context()
    context["user"] = {}

    # When it is validated / Then both missing properties are reported separately
    assert validate_context(schema=CHECKOUT_SCHEMA, context=context) == [
        ContextError("$.user.email", "'email' is a required property"),
        ContextError("$.user.name", "'name' is a required property"),
    ]


def test_each_additional_property_is_its_own_error() -> None:
    # Given a user with two unexpected properties
    context = valid_context()
    context["user"].update({"zeta": 1, "alpha": 2})

    # When it is validated / Then each one is reported at its own path
    assert validate_context(schema=CHECKOUT_SCHEMA, context=context) == [
        ContextError(
            "$.user.alpha", "Additional properties are not allowed ('alpha' was unexpected)"
        ),
        ContextError(
            "$.user.zeta", "Additional properties are not allowed ('zeta' was unexpected)"
        ),
    ]


def test_pattern_properties_are_not_additional() -> None:
    # Given a schema allowing `x-` prefixed keys besides declared ones
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": False,
    }

    # When a context has a matching and a non-matching extra key
    errors = validate_context(schema=schema, context={"id": 1, "x-trace": "t", "y": 1})

    # Then only the non-matching key is reported
    assert errors == [
        ContextError("$.y", "Additional properties are not allowed ('y' was unexpected)")
    ]


def test_any_of_reports_one_summary_error() -> None:
    # Given a property that must be a string or an integer
    schema = {
        "type": "object",
        "properties": {"ref": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
    }

    # When the value is neither
    errors = validate_context(schema=schema, context={"ref": 1.5})

    # Then there is one error at the property, not one per branch
    assert errors == [ContextError("$.ref", "1.5 is not valid under any of the given schemas")]


def test_one_of_reports_one_summary_error() -> None:
    # Given a value matching both branches of a oneOf
    schema = {
        "type": "object",
        "properties": {"n": {"oneOf": [{"type": "integer"}, {"minimum": 0}]}},
    }

    # When it is validated
    errors = validate_context(schema=schema, context={"n": 3})

    # Then there is one error at the property
    assert errors == [
        ContextError("$.n", "3 is valid under each of {'minimum': 0}, {'type': 'integer'}")
    ]


@pytest.mark.parametrize(
    ("fmt", "bad"),
    [("email", "no-at-sign"), ("ipv4", "300.1.1.1"), ("date", "2024-13-01"), ("uuid", "nope")],
)
def test_formats_are_checked(fmt: str, bad: str) -> None:
    # Given a schema with a format jsonschema checks without optional packages
    schema = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}}

    # When the value does not match the format / Then it is an error
    assert validate_context(schema=schema, context={"v": bad}) == [
        ContextError("$.v", f"{bad!r} is not a {fmt!r}")
    ]


def test_draft_declared_by_schema_is_used() -> None:
    # Given a draft-07 schema using the draft-07 form of tuple validation
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
        },
    }

    # When a context breaks the second position
    errors = validate_context(schema=schema, context={"pair": ["a", "b"]})

    # Then the draft-07 rule applies
    assert errors == [ContextError("$.pair[1]", "'b' is not of type 'integer'")]


@pytest.mark.parametrize("schema", [None, {}])
def test_no_schema_accepts_any_object(schema: dict[str, Any] | None) -> None:
    # Given no schema
    # When any JSON object is validated / Then there are no errors
    assert validate_context(schema=schema, context={"anything": [1, {"x": None}]}) == []


@pytest.mark.parametrize("schema", [None, {}, CHECKOUT_SCHEMA])
@pytest.mark.parametrize("context", [[1, 2], "text", None, 3])
def test_context_must_be_an_object(schema: dict[str, Any] | None, context: Any) -> None:
    # Given a context that is not a JSON object
    # When it is validated, with or without a schema / Then there is one error at `$`
    assert validate_context(schema=schema, context=context) == [
        ContextError("$", "context must be a JSON object")
    ]


def test_invalid_schema_raises_even_for_a_non_object_context() -> None:
    # Given an invalid schema and a context that is not an object
    # When it is validated / Then the schema problem wins
    with pytest.raises(SchemaError):
        validate_context(schema={"type": "nope"}, context=[])


def test_unresolvable_reference_is_a_schema_error() -> None:
    # Given a schema referring to a document that is not available
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}

    # When validation reaches the reference / Then SchemaError says which one
    with pytest.raises(SchemaError) as caught:
        validate_context(schema=schema, context={"a": 1})
    assert (caught.value.path, caught.value.message) == (
        "$",
        "cannot resolve $ref 'https://example.com/a.json'",
    )


def test_errors_are_deterministic() -> None:
    # Given a context with several errors
    context = {"user": {"zz": 1, "aa": 2}, "cart": {"items": [{"price": -1}, {"price": "x"}]}}

    # When it is validated twice
    first = validate_context(schema=CHECKOUT_SCHEMA, context=context)
    second = validate_context(schema=CHECKOUT_SCHEMA, context=copy.deepcopy(context))

    # Then the lists are equal and sorted by path then message
    assert first == second
    assert first == sorted(first, key=lambda e: (e.path, e.message))


# --------------------------------------------------------------------------------------------
# the compiled fast path in front of jsonschema


def invalid_contexts() -> list[dict[str, Any]]:
    """Contexts breaking CHECKOUT_SCHEMA in one or several ways, at every depth."""
    many = valid_context()
    many["user"] = {"email": "not-an-email", "role": "root", "nickname": "A"}
    many["cart"]["items"][1]["price"] = "2.50"
    many["odd key"] = 3
    no_user = valid_context()
    del no_user["user"]
    negative = valid_context()
    negative["cart"]["items"][0]["price"] = -0.5
    boolean_price = valid_context()
    boolean_price["cart"]["items"][0]["price"] = True
    not_a_list = valid_context()
    not_a_list["cart"]["items"] = {"0": {"price": 1}}
    return [many, no_user, negative, boolean_price, not_a_list, {}]


@pytest.fixture
def without_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_context as it was before the fast path: jsonschema for every context."""
    monkeypatch.setattr(validation, "compile_fast_check", lambda validator: None)
    monkeypatch.setattr(validation, "_FAST_CHECKS", {})


@pytest.mark.parametrize("index", range(len(invalid_contexts())))
def test_errors_are_the_same_with_and_without_the_fast_path(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an invalid context and its errors with the fast path on
    context = invalid_contexts()[index]
    with_fast_path = validate_context(schema=CHECKOUT_SCHEMA, context=context)

    # When it is validated by jsonschema alone
    monkeypatch.setattr(validation, "compile_fast_check", lambda validator: None)
    monkeypatch.setattr(validation, "_FAST_CHECKS", {})
    without = validate_context(schema=CHECKOUT_SCHEMA, context=context)

    # Then the errors are identical, and there are some
    assert with_fast_path == without
    assert without != []


def test_a_valid_context_does_not_run_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the checkout schema's validator, and jsonschema made to fail if it is asked
    validator = get_validator(CHECKOUT_SCHEMA)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("jsonschema ran for a valid context")

    monkeypatch.setattr(Draft202012Validator, "iter_errors", fail)

    # When a valid context is validated / Then the fast path alone says so
    assert (
        validate_context(schema=CHECKOUT_SCHEMA, context=valid_context(), validator=validator) == []
    )


def test_an_invalid_context_is_explained_by_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the checkout schema's validator, with jsonschema's runs counted
    validator = get_validator(CHECKOUT_SCHEMA)
    runs: list[Any] = []
    original = Draft202012Validator.iter_errors

    def counted(self: Any, instance: Any) -> Any:
        runs.append(instance)
        return original(self, instance)

    monkeypatch.setattr(Draft202012Validator, "iter_errors", counted)
    context = valid_context()
    context["odd key"] = 3

    # When an invalid context is validated
    errors = validate_context(schema=CHECKOUT_SCHEMA, context=context, validator=validator)

    # Then jsonschema ran once and produced the error
    assert (len(runs), errors) == (1, [ContextError('$["odd key"]', "3 is not of type 'string'")])


@pytest.mark.usefixtures("without_fast_path")
def test_errors_without_the_fast_path_are_the_documented_ones() -> None:
    # Given the five-problem context of test_every_error_is_reported_with_its_path_sorted
    context = invalid_contexts()[0]

    # When jsonschema alone validates it / Then the errors are the documented ones
    assert validate_context(schema=CHECKOUT_SCHEMA, context=context) == [
        ContextError("$.cart.items[1].price", "'2.50' is not of type 'number'"),
        ContextError("$.user.email", "'not-an-email' is not a 'email'"),
        ContextError("$.user.name", "'name' is a required property"),
        ContextError(
            "$.user.nickname", "Additional properties are not allowed ('nickname' was unexpected)"
        ),
        ContextError("$.user.role", "'root' is not one of ['admin', 'member']"),
        ContextError('$["odd key"]', "3 is not of type 'string'"),
    ]


def test_fast_check_is_compiled_once_per_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given compilations counted, and a validator not seen before
    compiled: list[Any] = []

    def counting(validator: Any) -> Any:
        compiled.append(validator)
        return schema_fastpath.compile_fast_check(validator)

    monkeypatch.setattr(validation, "compile_fast_check", counting)
    monkeypatch.setattr(validation, "_FAST_CHECKS", {})
    validator = get_validator(CHECKOUT_SCHEMA)

    # When three contexts, valid and not, are validated with it
    for context in [valid_context(), invalid_contexts()[0], valid_context()]:
        validate_context(schema=CHECKOUT_SCHEMA, context=context, validator=validator)

    # Then its check was compiled once
    assert compiled == [validator]


def test_unsupported_schema_is_compiled_once_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given compilations counted, and a schema outside the fast path's subset
    compiled: list[Any] = []

    def counting(validator: Any) -> Any:
        compiled.append(validator)
        return schema_fastpath.compile_fast_check(validator)

    monkeypatch.setattr(validation, "compile_fast_check", counting)
    monkeypatch.setattr(validation, "_FAST_CHECKS", {})
    schema = {"type": "object", "properties": {"n": {"not": {"type": "string"}}}}

    # When it validates twice / Then the "no fast check" answer is remembered
    assert validate_context(schema=schema, context={"n": 1}) == []
    assert validate_context(schema=schema, context={"n": "x"}) == [
        ContextError("$.n", "'x' should not be valid under {'type': 'string'}")
    ]
    assert len(compiled) == 1


def test_fast_check_is_dropped_with_its_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a validator built outside the cache, used once
    monkeypatch.setattr(validation, "_FAST_CHECKS", {})
    validator = Draft202012Validator({"type": "object"})
    validate_context(schema=None, context={}, validator=validator)
    assert len(validation._FAST_CHECKS) == 1

    # When the last reference to the validator goes
    del validator
    gc.collect()

    # Then its compiled check is gone too
    assert validation._FAST_CHECKS == {}


# --------------------------------------------------------------------------------------------
# check_schema


def test_valid_schema_passes_check() -> None:
    # Given a valid schema
    # When it is checked / Then nothing is raised
    check_schema(CHECKOUT_SCHEMA)


def test_invalid_type_keyword_raises_with_path() -> None:
    # Given a schema with an unknown type
    # When it is checked / Then SchemaError points at the keyword
    with pytest.raises(SchemaError) as caught:
        check_schema({"type": "object", "properties": {"age": {"type": "integr"}}})
    assert (caught.value.path, caught.value.message) == (
        "$.properties.age.type",
        "'integr' is not valid under any of the given schemas",
    )


def test_invalid_keyword_value_raises_with_path() -> None:
    # Given a schema whose minimum is a string, under an odd property name
    # When it is checked / Then the path quotes the odd name
    with pytest.raises(SchemaError) as caught:
        check_schema({"properties": {"unit price": {"minimum": "0"}}})
    assert (caught.value.path, caught.value.message) == (
        '$.properties["unit price"].minimum',
        "'0' is not of type 'number'",
    )


def test_invalid_regex_is_a_schema_error() -> None:
    # Given a schema with a pattern that does not compile
    # When it is checked / Then the meta-schema's regex format catches it
    with pytest.raises(SchemaError) as caught:
        check_schema({"properties": {"code": {"pattern": "("}}})
    assert (caught.value.path, caught.value.message) == (
        "$.properties.code.pattern",
        "'(' is not a 'regex'",
    )


def test_schema_error_str_has_path_and_message() -> None:
    # Given an invalid schema
    # When it is checked / Then str() joins path and message
    with pytest.raises(SchemaError) as caught:
        check_schema({"required": "email"})
    assert str(caught.value) == "$.required: 'email' is not of type 'array'"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (["type", "object"], "schema must be a JSON object"),
        ({"enum": {1, 2}}, "schema is not JSON data: Object of type set is not JSON serializable"),
        (
            {"maximum": float("nan")},
            "schema is not JSON data: NaN and Infinity are not JSON numbers",
        ),
    ],
)
def test_schema_that_is_not_a_json_object_is_refused(schema: Any, message: str) -> None:
    # Given something that is not a JSON object
    # When it is checked / Then SchemaError points at the root
    with pytest.raises(SchemaError) as caught:
        check_schema(schema)
    assert (caught.value.path, caught.value.message) == ("$", message)


# --------------------------------------------------------------------------------------------
# get_validator


def test_equal_schemas_share_one_validator_whatever_the_key_order() -> None:
    # Given two equal schemas written with different key orders
    first = {"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}}
    second = {"properties": {"a": {"minLength": 1, "type": "string"}}, "type": "object"}

    # When validators are requested for both
    # Then the same object is returned
    assert get_validator(first) is get_validator(second)


def test_different_schemas_get_different_validators() -> None:
    # Given two schemas differing in one value
    # When validators are requested / Then they are distinct
    assert get_validator({"minProperties": 1}) is not get_validator({"minProperties": 2})


def test_validator_class_follows_the_declared_draft() -> None:
    # Given a schema without $schema and one declaring draft-07
    # When validators are requested / Then the classes differ accordingly
    assert type(get_validator({"type": "object"})) is Draft202012Validator
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    assert type(get_validator(draft7)) is Draft7Validator


def test_get_validator_checks_formats() -> None:
    # Given a schema with an email format
    validator = get_validator({"type": "string", "format": "email"})

    # When an invalid email is checked / Then the format checker rejects it
    assert validator.is_valid("ada@example.com") is True
    assert validator.is_valid("ada") is False


def test_get_validator_raises_for_an_invalid_schema() -> None:
    # Given an invalid schema
    # When a validator is requested / Then SchemaError is raised
    with pytest.raises(SchemaError) as caught:
        get_validator({"minLength": -1})
    assert (caught.value.path, caught.value.message) == (
        "$.minLength",
        "-1 is less than the minimum of 0",
    )


def test_cached_validator_ignores_later_changes_to_the_callers_schema() -> None:
    # Given a validator built from a schema dict
    schema: dict[str, Any] = {"type": "object", "properties": {"n": {"maximum": 5}}}
    validator = get_validator(schema)

    # When the caller mutates its dict afterwards
    schema["properties"]["n"]["maximum"] = 100

    # Then the cached validator still applies the original rule
    assert validator.is_valid({"n": 50}) is False


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a small cache holding one schema's validator
    monkeypatch.setattr(validation, "CACHE_SIZE", 3)
    monkeypatch.setattr(validation, "_CACHE", type(validation._CACHE)())
    original = get_validator({"title": "evicted"})

    # When more distinct schemas than the cache holds are requested
    for n in range(3):
        get_validator({"title": f"filler {n}"})

    # Then the oldest entry was evicted and is rebuilt, and the size stays bounded
    assert get_validator({"title": "evicted"}) is not original
    assert len(validation._CACHE) == 3


def test_cache_keeps_recently_used_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a cache of two holding a schema that is used again before a new one arrives
    monkeypatch.setattr(validation, "CACHE_SIZE", 2)
    monkeypatch.setattr(validation, "_CACHE", type(validation._CACHE)())
    kept = get_validator({"title": "kept"})
    get_validator({"title": "other"})
    get_validator({"title": "kept"})

    # When a third schema is requested
    get_validator({"title": "newest"})

    # Then the least recently used one was evicted, not the reused one
    assert get_validator({"title": "kept"}) is kept


def test_messages_spell_values_as_json_and_describe_long_ones():
    # given values jsonschema would print as Python (None, True) or in full (101 items)
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "integer"]},
            "b": {"type": "array", "maxItems": 3},
            "c": {"type": "string", "maxLength": 5},
            "d": {"enum": ["x"]},
            "e": {"type": "string"},
            "f": {"type": "object", "maxProperties": 1},
            "g": {"minimum": 0},
        },
    }
    context = {
        "a": None,
        "b": list(range(101)),
        "c": "x" * 200,
        "d": True,
        "e": False,
        "f": {f"k{n}": n for n in range(30)},
        "g": -1,
    }
    # when it is validated
    errors = validate_context(schema=schema, context=context)
    # then each message names the value as JSON would, briefly
    assert [(e.path, e.message) for e in errors] == [
        ("$.a", "null is not of type 'string', 'integer'"),
        ("$.b", "the array of 101 items is too long"),
        ("$.c", "the string of 200 characters is too long"),
        ("$.d", "true is not one of ['x']"),
        ("$.e", "false is not of type 'string'"),
        ("$.f", "the object of 30 keys has too many properties"),
        ("$.g", "-1 is less than the minimum of 0"),
    ]
