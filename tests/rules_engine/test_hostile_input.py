"""Hostile input: every route refuses oversized, too-deep, malformed, wrongly typed and
non-JSON bodies and bad query parameters with a 4xx in the API's error shape, before any work;
`update` cannot write outside its allow-list, whatever its params say.

The routes come from the OpenAPI schema, so a new endpoint is covered without editing this
file (the admin is not part of the API and not in the schema).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingress.models import Event
from rules_engine import engine, services
from rules_engine.errors import InvalidInput
from rules_engine.json_text import duplicate_key_path, out_of_range_integer_path
from rules_engine.models import EntryPoint, Execution, MessageTemplate, Rule
from rules_engine.paths import json_path

pytestmark = pytest.mark.django_db


def _schema() -> dict[str, Any]:
    out: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

    call_command("spectacular", "--format", "openapi-json", stdout=Sink())
    document: dict[str, Any] = json.loads("".join(out))
    return document


SCHEMA = _schema()
BODY_OPERATIONS = sorted(
    (path, method)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if "requestBody" in operation
)
LIST_OPERATIONS = sorted(
    path
    for path, operations in SCHEMA["paths"].items()
    if "get" in operations and "{" not in path and "page" in str(operations["get"])
)


def _request_schema(path: str, method: str) -> dict[str, Any]:
    content = SCHEMA["paths"][path][method]["requestBody"]["content"]["application/json"]
    reference = content["schema"]["$ref"].rsplit("/", 1)[-1]
    component: dict[str, Any] = SCHEMA["components"]["schemas"][reference]
    return component


@pytest.fixture
def world(demo: EntryPoint) -> dict[str, str]:
    """Real objects for every path parameter, so requests reach the body parser."""
    from experiments.models import Experiment
    from rules_engine.models import RuleTestCase

    event = Event.objects.create(type="checkout", key="k-1", payload={})
    rule = Rule.objects.first()
    assert rule is not None
    experiment = Experiment.objects.create(key="exp-1", entry_point=demo, rule=rule)
    case = RuleTestCase.objects.create(rule=rule, name="case", context={})
    return {
        "{key}": "checkout",
        "{id}": str(rule.pk),
        "{rule_id}": str(rule.pk),
        "{event_id}": str(event.pk),
        "templates:{key}": MessageTemplate.objects.first().key,  # type: ignore[union-attr]
        "events:{id}": str(event.pk),
        "experiments:{key}": experiment.key,
        "test-cases:{id}": str(case.pk),
    }


def _url(path: str, world: dict[str, str]) -> str:
    if path.startswith("/api/templates/"):
        return path.replace("{key}", world["templates:{key}"])
    if path.startswith("/api/events/"):
        return path.replace("{id}", world["events:{id}"])
    if path.startswith("/api/experiments/"):
        return path.replace("{key}", world["experiments:{key}"])
    if path.startswith("/api/test-cases/"):
        return path.replace("{id}", world["test-cases:{id}"])
    if path.startswith("/api/executions/"):
        execution = engine.execute(entry_point="checkout", context={"user": {"id": 1}, "cart": {}})
        return path.replace("{id}", str(execution.execution_id))
    for name, value in world.items():
        path = path.replace(name, value)
    return path


def _send(client: Any, method: str, url: str, raw: bytes | str, content_type: str) -> Any:
    return getattr(client, method)(url, raw, content_type=content_type)


def _assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert set(body) in ({"error", "detail"}, {"error", "details"})
    return body


def test_every_body_taking_route_is_covered() -> None:
    # the schema lists every route with a body (guards against an empty parametrisation)
    assert len(BODY_OPERATIONS) >= 17
    assert ("/api/rules/engine/execute/", "post") in BODY_OPERATIONS
    assert ("/new-event", "post") in BODY_OPERATIONS


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_malformed_json_is_a_400(api_client, world, path, method):
    response = _send(api_client, method, _url(path, world), '{"a": ', "application/json")
    body = _assert_error(response, 400, "malformed_json")
    assert body["detail"].startswith("Malformed JSON: ")


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_too_deep_json_is_a_400(api_client, world, path, method):
    raw = '{"a": ' + "[" * 40 + "]" * 40 + "}"
    response = _send(api_client, method, _url(path, world), raw, "application/json")
    body = _assert_error(response, 400, "malformed_json")
    assert body["detail"] == "JSON nested deeper than 32 levels."


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_an_oversized_body_is_a_413(api_client, world, settings, path, method):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    raw = json.dumps({"pad": "x" * 3000})
    response = _send(api_client, method, _url(path, world), raw, "application/json")
    body = _assert_error(response, 413, "request_too_large")
    assert body["detail"] == "Request body is larger than 2000 bytes."


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_nul_in_a_string_is_a_400_with_its_path(api_client, world, path, method):
    raw = json.dumps({"reason": {"deep": ["ok", "b\u0000d"]}})
    response = _send(api_client, method, _url(path, world), raw, "application/json")
    body = _assert_error(response, 400, "malformed_json")
    assert body["detail"] == "JSON strings may not contain NUL (\\u0000): at $.reason.deep[1]."


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_an_integer_beyond_64_bits_is_a_400_with_its_path(api_client, world, path, method):
    # orjson would read it as the nearest float: two such ids would be one subject
    raw = '{"reason": {"ids": [1, 123456789012345678901234567891]}}'
    response = _send(api_client, method, _url(path, world), raw, "application/json")
    body = _assert_error(response, 400, "malformed_json")
    assert body["detail"] == "JSON integer beyond 64 bits (not kept exactly): at $.reason.ids[1]."


@pytest.mark.parametrize(
    "raw",
    [
        '{"id": 18446744073709551615, "low": -9223372036854775808}',
        '{"id": "123456789012345678901234567891", "x": 1.23456789012345678901}',
        '{"x": 12345678901234567890123e-3}',
    ],
)
def test_64_bit_integers_and_long_digit_runs_elsewhere_pass(raw):
    assert out_of_range_integer_path(raw.encode()) is None


def test_an_integer_just_beyond_64_bits_is_found():
    assert out_of_range_integer_path(b'{"a": {"b": 18446744073709551616}}') == "$.a.b"
    assert out_of_range_integer_path(b"[0, -9223372036854775809]") == "$[1]"


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_a_key_named_twice_is_a_400_with_its_path(api_client, world, path, method):
    # a gateway reading the first "total" and the engine the last would disagree
    raw = '{"reason": {"cart": {"total": 5, "currency": "EUR", "total": 5000}}}'
    response = _send(api_client, method, _url(path, world), raw, "application/json")
    body = _assert_error(response, 400, "malformed_json")
    assert body["detail"] == (
        "JSON object names a key twice (which one counts is unclear): at $.reason.cart.total."
    )


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"a": 1, "b": {"a": 1}, "c": [{"a": 1}, {"b": 2}]}', None),
        (b'[{"x": 1}, {"x": 1, "y": {"z": 1, "z": 2}}]', "$[1].y.z"),
        (b'{"a": 1, "a": {"b": 1, "b": 2}}', "$.a"),
        (rb'{"a\u0062": 1, "ab": 2}', "$.ab"),
        # strings holding `":` make the quick count inconclusive: the full check decides
        (b'{"a": ":x", "b": "say \\":\\" "}', None),
        (b'{"a": ":x", "a": 1}', "$.a"),
        # an escaped colon read back as one would balance the count: escapes take the full check
        (rb'{"a": 1, "a": 2, "b": "\u003a"}', "$.a"),
        (b'{"a" : 1, "a"\n:\t2}', "$.a"),
    ],
)
def test_duplicate_key_path_finds_the_first_repeated_key(raw, where):
    # with orjson's reading of the body (as the parser calls it) and without
    assert duplicate_key_path(raw, orjson.loads(raw)) == where
    assert duplicate_key_path(raw) == where


# Text without lone surrogates (not valid JSON for orjson), rich in quotes and colons.
_TEXT = st.text(st.characters(codec="utf-8", include_characters='":\\ '), max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    value=st.dictionaries(_TEXT, _JSON, min_size=1, max_size=4),
    compact=st.booleans(),
    ascii_only=st.booleans(),
)
def test_duplicate_key_path_never_misses_a_repeated_key(value, compact, ascii_only):
    # given any object, written with or without spaces and escapes, and the same with its
    # first key written again at the end
    separators = (",", ":") if compact else (", ", " : ")
    raw = json.dumps(value, separators=separators, ensure_ascii=ascii_only).encode()
    first = json.dumps(next(iter(value)), ensure_ascii=ascii_only)
    doubled = raw[:-1] + f"{separators[0]}{first}{separators[1]}null}}".encode()
    # then the clean one passes and the doubled one names the key, quick count or not
    assert duplicate_key_path(raw, orjson.loads(raw)) is None
    assert duplicate_key_path(doubled, orjson.loads(doubled)) == json_path([next(iter(value))])


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_a_form_body_is_a_415(api_client, world, path, method):
    response = _send(
        api_client, method, _url(path, world), "a=1", "application/x-www-form-urlencoded"
    )
    _assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_a_json_array_instead_of_an_object_is_a_400(api_client, world, path, method):
    response = _send(api_client, method, _url(path, world), "[1, 2]", "application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request"


def _wrong_value(schema: dict[str, Any]) -> Any:
    """A value of the wrong JSON type for a property schema (None: any type is allowed)."""
    if "enum" in schema or "$ref" in schema or "allOf" in schema or "oneOf" in schema:
        return "not-a-choice"
    kind = schema.get("type")
    if kind == "string":
        return ["a", "list"]
    if kind in {"integer", "number"}:
        return "not-a-number"
    if kind == "boolean":
        return "maybe"
    if kind == "array":
        return "not-a-list"
    return None


@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_wrongly_typed_fields_are_a_400_naming_each_field(api_client, world, path, method):
    # given every typed property of the body with a value of the wrong type
    properties = _request_schema(path, method).get("properties", {})
    body = {name: _wrong_value(prop) for name, prop in properties.items()}
    body = {name: value for name, value in body.items() if value is not None}
    # when sent
    response = _send(api_client, method, _url(path, world), json.dumps(body), "application/json")
    # then it is refused with the path of every one of them
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["error"] == "invalid_request"
    assert {f"$.{name}" for name in body} <= {d["path"] for d in answer["details"]}


@pytest.mark.parametrize(
    ("cap", "body", "detail"),
    [
        (
            "MAX_JSON_STRING_LENGTH",
            {"context": {"user": {"name": "x" * 600}}},
            "JSON string longer than 500 characters: at $.context.user.name.",
        ),
        (
            "MAX_JSON_KEY_LENGTH",
            {"context": {"k" * 600: 1}},
            "JSON key longer than 500 characters: at $.context.",
        ),
        (
            "MAX_JSON_OBJECT_KEYS",
            {"context": {"tags": {f"k{i}": i for i in range(501)}}},
            "JSON object with more than 500 keys: at $.context.tags.",
        ),
        (
            "MAX_JSON_ARRAY_ITEMS",
            {"context": {"cart": {"items": [0] * 501}}},
            "JSON array with more than 500 items: at $.context.cart.items.",
        ),
    ],
)
def test_bodies_over_a_cap_are_a_400_with_the_path(api_client, demo, settings, cap, body, detail):
    # given a cap of 500
    settings.VERDICT = {**settings.VERDICT, cap: 500}
    # when a body breaks it
    response = api_client.post(
        "/api/rules/engine/execute/", {"entry_point": "checkout", **body}, format="json"
    )
    # then it is refused before any work, saying where
    assert (response.status_code, response.json()) == (
        400,
        {"error": "malformed_json", "detail": detail},
    )
    assert Execution.objects.count() == 0


def test_bodies_within_the_default_caps_pass(api_client, demo, demo_context):
    demo_context["user"]["name"] = "x" * 100
    demo_context["notes"] = {f"k{i}": i for i in range(900)}
    response = api_client.post(
        "/api/rules/engine/execute/",
        {"entry_point": "checkout", "context": demo_context},
        format="json",
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("url", "paths"),
    [
        ("/api/executions/?outcome=bogus", ["$.outcome"]),
        ("/api/executions/?since=yesterday&rule=nope", ["$.rule", "$.since"]),
        ("/api/executions/?entry_point=a%00b", ["$.entry_point"]),
        ("/api/rules/?active=maybe", ["$.active"]),
        ("/api/rules/?entry_point=a%00b", ["$.entry_point"]),
        ("/api/events/?status=bogus", ["$.status"]),
        ("/api/events/?source=Not%20A%20Source", ["$.source"]),
        ("/api/events/?type=a%00b", ["$.type"]),
        ("/api/cooldowns/?rule=not-a-uuid", ["$.rule"]),
    ],
)
def test_bad_list_filters_are_a_400_naming_them(admin_client, url, paths):
    response = admin_client.get(url)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [d["path"] for d in body["details"]] == paths


@pytest.mark.parametrize("path", LIST_OPERATIONS)
@pytest.mark.parametrize("page", ["abc", "0", "99999", "-1", "1%00"])
def test_a_bad_page_is_a_404(admin_client, path, page):
    response = admin_client.get(f"{path}?page={page}")
    _assert_error(response, 404, "not_found")


def test_good_filters_still_filter(admin_client, demo):
    listed = admin_client.get("/api/rules/?entry_point=checkout&active=true").json()["results"]
    assert len(listed) == 5
    assert admin_client.get("/api/rules/?active=false").json()["results"] == []
    assert len(admin_client.get("/api/rules/").json()["results"]) == Rule.objects.count()
    assert admin_client.get("/api/rules/?entry_point=nowhere").json()["results"] == []
    assert admin_client.get("/api/events/?status=received").status_code == 200


# --- update: the allow-list holds against crafted params --------------------------------------

HOST_TARGETS = {
    "account": {"model": "auth.User", "lookup": "username", "fields": ["first_name", "last_name"]}
}


@pytest.fixture
def profile(settings: Any) -> EntryPoint:
    settings.VERDICT_UPDATE_TARGETS = HOST_TARGETS
    return services.entry_point_create(
        data={"key": "profile", "context_schema": {"type": "object"}, "subject_path": "login"}
    )


def _update_rule(entry_point: EntryPoint, params: dict[str, Any]) -> Rule:
    return services.rule_create(
        data={
            "name": "Crafted",
            "entry_point": entry_point,
            "condition": True,
            "actions": [{"type": "update", "params": params}],
        }
    )


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        # Django lookups and relation traversal in a field name
        (
            {"target": "account", "set": {"first_name__startswith": "x"}},
            "$.actions[0].params.set.first_name__startswith",
            "field 'first_name__startswith' of 'account' is not allow-listed",
        ),
        (
            {"target": "account", "set": {"groups__name": "admins"}},
            "$.actions[0].params.set.groups__name",
            "field 'groups__name' of 'account' is not allow-listed",
        ),
        # the primary key and privilege fields
        (
            {"target": "account", "set": {"pk": 1}},
            "$.actions[0].params.set.pk",
            "field 'pk' of 'account' is not allow-listed",
        ),
        (
            {"target": "account", "set": {"is_superuser": True, "first_name": "x"}},
            "$.actions[0].params.set.is_superuser",
            "field 'is_superuser' of 'account' is not allow-listed",
        ),
        # another model, by label or by name
        (
            {"target": "auth.User", "set": {"first_name": "x"}},
            "$.actions[0].params.target",
            "update target 'auth.User' is not allow-listed (allowed: account, subject_state)",
        ),
        (
            {"target": "rules_engine.Rule", "set": {"active": False}},
            "$.actions[0].params.target",
            "update target 'rules_engine.Rule' is not allow-listed "
            "(allowed: account, subject_state)",
        ),
        # extra keys trying to redefine the target
        (
            {"target": "account", "set": {"first_name": "x"}, "model": "auth.Group"},
            "$.actions[0].params",
            "Additional properties are not allowed ('model' was unexpected)",
        ),
        (
            {"target": "account", "set": {"first_name": "x"}, "lookup": "is_staff"},
            "$.actions[0].params",
            "Additional properties are not allowed ('lookup' was unexpected)",
        ),
        # subject_state attributes are names, not paths
        (
            {"target": "subject_state", "set": {"a.b": 1}},
            "$.actions[0].params.set.a.b",
            "field 'a.b' of 'subject_state' is not allow-listed",
        ),
        (
            {"target": "subject_state", "set": {"__proto__": 1}},
            "$.actions[0].params.set.__proto__",
            "field '__proto__' of 'subject_state' is not allow-listed",
        ),
    ],
)
def test_crafted_update_params_are_refused_at_save(profile, params, path, message):
    with pytest.raises(InvalidInput) as caught:
        _update_rule(profile, params)
    assert [(d["path"], d["message"]) for d in caught.value.details] == [(path, message)]
    assert Rule.objects.filter(name="Crafted").count() == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (["id", "first_name"], "id", "field 'id' identifies the row and cannot be updated"),
        (
            ["username", "first_name"],
            "username",
            "field 'username' identifies the row and cannot be updated",
        ),
        (["groups"], "groups", "auth.User has no field 'groups'"),
        (["nonexistent"], "nonexistent", "auth.User has no field 'nonexistent'"),
    ],
)
def test_an_allow_list_naming_keys_or_relations_does_not_open_them(
    profile, settings, fields, field, message
):
    # given a careless allow-list naming the primary key, the lookup or a relation
    settings.VERDICT_UPDATE_TARGETS = {"account": {**HOST_TARGETS["account"], "fields": fields}}
    # then a rule writing that field is still refused
    with pytest.raises(InvalidInput) as caught:
        _update_rule(profile, {"target": "account", "set": {field: 1}})
    assert [d["message"] for d in caught.value.details] == [message]


def test_a_crafted_subject_cannot_widen_the_lookup(profile):
    # given two users and a rule whose subject comes from the context
    User.objects.create(username="ada", first_name="ada")
    User.objects.create(username="bob", first_name="bob")
    _update_rule(
        profile, {"target": "account", "subject": {"var": "who"}, "set": {"first_name": "X"}}
    )
    # when the subject is a lookup-looking or SQL-looking string
    for who in ["%", "a%", "ada' OR '1'='1", "*", "ada__startswith"]:
        decision = engine.execute(entry_point="profile", context={"who": who})
        [result] = decision.action_results
        # then no row matches it exactly and nothing is written
        assert result["status"] == "error"
        assert result["error"] == f"no account with username={who!r}"
    assert sorted(User.objects.values_list("first_name", flat=True)) == ["ada", "bob"]


def test_a_field_taken_off_the_allow_list_is_not_written_by_a_cached_rule(profile, settings):
    # given a rule compiled (and cached) while last_name was allow-listed
    User.objects.create(username="ada", last_name="L")
    _update_rule(profile, {"target": "account", "set": {"last_name": "Changed"}})
    engine.execute(entry_point="profile", context={"login": "nobody"})
    # when the allow-list no longer has the field
    settings.VERDICT_UPDATE_TARGETS = {
        "account": {**HOST_TARGETS["account"], "fields": ["first_name"]}
    }
    decision = engine.execute(entry_point="profile", context={"login": "ada"})
    # then the action fails and the field is untouched
    [result] = decision.action_results
    assert (result["status"], result["error"]) == (
        "error",
        "field 'last_name' of 'account' is not allow-listed any more",
    )
    assert User.objects.get(username="ada").last_name == "L"
