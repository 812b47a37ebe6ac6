"""API keys over HTTP: scopes, entry points, revocation, publishable keys and CORS, warm path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from access.models import ApiKey
from access.services import api_key_create, api_key_revoke
from rules_engine import services
from rules_engine.models import Execution
from tests.support.keys import new_key

EXECUTE = "/api/rules/engine/execute/"
ORIGIN = "https://shop.example"


def client_with(raw: str | None, **headers: str) -> APIClient:
    client = APIClient()
    if raw is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}", **headers)
    elif headers:
        client.credentials(**headers)
    return client


def execute(client: APIClient, context: Any, entry_point: str = "checkout") -> Any:
    body = {"entry_point": entry_point, "context": context}
    return client.post(EXECUTE, json.dumps(body), content_type="application/json")


def shop_key(**options: Any) -> str:
    """A shop page's publishable key: execute on checkout, from ORIGIN only."""
    _, raw = api_key_create(
        name="web",
        kind="publishable",
        scopes=["execute"],
        entry_points=["checkout"],
        allowed_origins=[ORIGIN],
        **options,
    )
    return raw


def new_event(client: APIClient, context: Any, key: str = "e-1") -> Any:
    body = {"type": "checkout", "key": key, "payload": context}
    return client.post("/new-event", json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_no_key_is_401_and_a_wrong_key_is_401(demo, demo_context):
    missing = execute(APIClient(), demo_context)
    wrong = execute(client_with("vk_sk_00000000_not-a-real-key"), demo_context)
    other_scheme = execute(client_with(None, HTTP_AUTHORIZATION="Bearer abc"), demo_context)
    assert (missing.status_code, missing.json()["error"]) == (401, "not_authenticated")
    assert missing["WWW-Authenticate"] == "Api-Key"
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "invalid_api_key", "detail": "invalid or revoked API key"},
    )
    assert other_scheme.status_code == 401
    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_each_endpoint_needs_its_scope(demo, demo_context):
    # given a key that may only send events, and one that may only execute
    events_only = client_with(new_key(scopes=["events"]))
    execute_only = client_with(new_key(scopes=["execute"]))
    # then each is refused where its scope does not reach, with the scope named
    refused = execute(events_only, demo_context)
    assert (refused.status_code, refused.json()) == (
        403,
        {"error": "permission_denied", "detail": "this API key lacks the scope: execute"},
    )
    assert new_event(execute_only, demo_context).status_code == 403
    assert execute_only.get("/api/rules/").status_code == 403
    # and allowed where it does
    assert execute(execute_only, demo_context).status_code == 200
    accepted = new_event(events_only, demo_context)
    assert accepted.status_code == 202
    assert events_only.get(f"/status/{accepted.json()['id']}").status_code == 200


@pytest.mark.django_db
def test_read_and_manage_scopes_open_the_management_api(banner):
    reader = client_with(new_key(scopes=["read"]))
    manager = client_with(new_key(scopes=["manage"]))
    assert reader.get("/api/rules/").status_code == 200
    assert reader.get("/api/events/").status_code == 200
    body = {"name": "x", "entry_point": "banner", "condition": True, "actions": []}
    refused = reader.post("/api/rules/", json.dumps(body), content_type="application/json")
    created = manager.post("/api/rules/", json.dumps(body), content_type="application/json")
    assert (refused.status_code, created.status_code) == (403, 201)


@pytest.mark.django_db
def test_key_limited_to_entry_points_cannot_use_others(demo, demo_context):
    services.entry_point_create(data={"key": "signup", "context_schema": {}})
    limited = client_with(new_key(scopes=["execute", "events"], entry_points=["signup"]))
    refused = execute(limited, demo_context)
    assert (refused.status_code, refused.json()) == (
        403,
        {
            "error": "entry_point_not_allowed",
            "detail": "this API key may not use entry point 'checkout'",
        },
    )
    assert new_event(limited, demo_context).status_code == 403
    assert execute(limited, {}, entry_point="signup").status_code == 200


@pytest.mark.django_db
def test_acknowledging_needs_a_key_allowed_on_the_execution_entry_point(demo, demo_context):
    decision = execute(client_with(new_key(scopes=["execute"])), demo_context).json()
    services.entry_point_create(data={"key": "signup", "context_schema": {}})
    limited = client_with(new_key(scopes=["execute"], entry_points=["signup"]))
    body = {"execution_id": decision["execution_id"], "ack_key": "age-terms"}
    refused = limited.post(
        "/api/rules/engine/acknowledgements/", json.dumps(body), content_type="application/json"
    )
    assert refused.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_revoked_key_is_refused_at_once(demo, demo_context):
    # given a key that works (and is cached as verified in this process)
    key, raw = api_key_create(name="leaked", scopes=["execute"])
    client = client_with(raw)
    assert execute(client, demo_context).status_code == 200
    # when it is revoked
    api_key_revoke(key=ApiKey.objects.get(pk=key.pk))
    # then the very next request is refused
    refused = execute(client, demo_context)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_api_key")


@pytest.mark.django_db(transaction=True)
def test_warm_execute_with_a_key_makes_no_query_on_the_request_connection(banner):
    client = client_with(new_key(scopes=["execute"]))
    assert execute(client, {"name": "Ada"}, entry_point="banner").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = execute(client, {"name": "Bob"}, entry_point="banner")
    assert response.status_code == 200
    assert [query["sql"] for query in queries.captured_queries] == []


@pytest.mark.django_db
def test_publishable_key_works_only_from_its_origins(demo, demo_context):
    raw = shop_key()
    from_shop = execute(client_with(raw, HTTP_ORIGIN=ORIGIN), demo_context)
    from_elsewhere = execute(client_with(raw, HTTP_ORIGIN="https://evil.example"), demo_context)
    no_origin = execute(client_with(raw), demo_context)
    assert from_shop.status_code == 200
    assert from_shop["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in from_shop["Vary"]
    assert (from_elsewhere.status_code, from_elsewhere.json()["error"]) == (
        403,
        "origin_not_allowed",
    )
    assert "Access-Control-Allow-Origin" not in from_elsewhere
    assert no_origin.status_code == 403
    # and it never sends events
    assert new_event(client_with(raw, HTTP_ORIGIN=ORIGIN), demo_context).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra",
    [{"dry_run": True}, {"dry_run": True, "now": "2020-01-01T00:00:00Z"}],
)
def test_publishable_key_may_not_dry_run(demo, demo_context, extra):
    # given a browser's publishable key, and a server's secret key
    raw = shop_key()
    browser = client_with(raw, HTTP_ORIGIN=ORIGIN)
    server = client_with(new_key(scopes=["execute"]))
    body = json.dumps({"entry_point": "checkout", "context": demo_context, **extra})
    # when each asks for a dry run (every rule's logic, at a clock of its choosing)
    refused = browser.post(EXECUTE, body, content_type="application/json")
    allowed = server.post(EXECUTE, body, content_type="application/json")
    # then the publishable key is refused and nothing is decided for it
    assert (refused.status_code, refused.json()) == (
        403,
        {
            "error": "publishable_key_limited",
            "detail": "a publishable key may not ask for a dry run",
        },
    )
    assert (allowed.status_code, allowed.json()["execution_id"]) == (200, None)
    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_a_browser_can_read_a_413_and_when_to_retry_a_429(demo, demo_context, settings):
    # given a publishable key held to 1 call a minute, from its shop's origin
    raw = shop_key(rate="1/minute")
    browser = client_with(raw, HTTP_ORIGIN=ORIGIN)
    # when it sends an oversized body, then two calls
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    too_large = browser.post(
        EXECUTE, json.dumps({"pad": "x" * 200}), content_type="application/json"
    )
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
    execute(browser, demo_context)
    throttled = execute(browser, demo_context)
    # then both answers carry CORS headers, and the page's script may read Retry-After
    assert (too_large.status_code, too_large["Access-Control-Allow-Origin"]) == (413, ORIGIN)
    assert (throttled.status_code, throttled["Access-Control-Allow-Origin"]) == (429, ORIGIN)
    assert int(throttled["Retry-After"]) > 0
    assert throttled["Access-Control-Expose-Headers"] == "X-Request-ID, Retry-After"


@pytest.mark.django_db
def test_cors_preflight_is_answered_only_for_allowed_origins(demo):
    shop_key()
    allowed = APIClient().options(
        EXECUTE, HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    other = APIClient().options(
        EXECUTE, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert allowed.status_code == 204
    assert (
        allowed["Access-Control-Allow-Origin"],
        allowed["Access-Control-Allow-Methods"],
        allowed["Access-Control-Allow-Headers"],
    ) == (ORIGIN, "POST, OPTIONS", "Authorization, Content-Type, X-Request-ID")
    assert other.status_code == 204
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.django_db
def test_staff_session_may_use_execute_but_not_a_plain_user(demo, demo_context, django_user_model):
    staff = APIClient()
    staff.force_login(django_user_model.objects.create_user("playground", is_staff=True))
    customer = APIClient()
    customer.force_login(django_user_model.objects.create_user("customer"))
    assert execute(staff, demo_context).status_code == 200
    assert execute(customer, demo_context).status_code == 403
    caller = Execution.objects.get().caller
    assert caller == "user:playground"


@pytest.mark.django_db
def test_audit_names_the_key_that_asked(demo, demo_context):
    key, raw = api_key_create(name="shop", scopes=["execute"])
    execute(client_with(raw), demo_context)
    assert Execution.objects.get().caller == f"key:{key.prefix}"
