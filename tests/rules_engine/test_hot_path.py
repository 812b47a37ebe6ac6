"""The execute endpoint's hot path: API-key JSON calls answered without DRF's dispatch, with
exactly the answers DRF gives (a query string sends the same request through DRF)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from access.services import api_key_create
from rules_engine.api.views import ExecuteView
from rules_engine.models import Execution
from tests.support.keys import key_header, new_key

pytestmark = pytest.mark.django_db

EXECUTE = "/api/rules/engine/execute/"
# Any query string makes the hot path step aside, so this URL is answered by DRF.
THROUGH_DRF = EXECUTE + "?via=drf"


@pytest.fixture
def drf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of requests that went through DRF's `initial` (authentication, permissions,
    throttles, negotiation)."""
    calls: list[str] = []
    original = ExecuteView.initial

    def initial(self: ExecuteView, request: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(request.path)
        original(self, request, *args, **kwargs)

    monkeypatch.setattr(ExecuteView, "initial", initial)
    return calls


def post(url: str, body: Any, headers: dict[str, str], **extra: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return APIClient().post(url, raw, content_type="application/json", headers=headers, **extra)


def comparable(response: Any) -> tuple[int, Any, dict[str, str]]:
    """Status, body without the per-decision values (effects by rule and type: messages name
    the customer), and the headers DRF sets."""
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in {"execution_id", "duration_ms"}}
        if "effects" in body:
            body["effects"] = [(e["rule_id"], e["type"]) for e in body["effects"]]
    headers = {name: response.get(name) for name in ("Content-Type", "Allow", "Vary")}
    return response.status_code, body, headers


def test_a_plain_key_call_skips_drf_and_is_audited(demo, demo_context, drf_calls):
    # given an application key
    key, raw = api_key_create(name="app", scopes=["execute"])
    # when it asks for a decision
    response = post(EXECUTE, {"entry_point": "checkout", "context": demo_context}, key_header(raw))
    # then the hot path answered it, with its audit row written by the key
    assert (response.status_code, drf_calls) == (200, [])
    row = Execution.objects.get(pk=response.json()["execution_id"])
    assert (row.caller, row.outcome) == (f"key:{key.prefix}", "matched")


def as_customer(body: dict[str, Any], user_id: int) -> dict[str, Any]:
    context = body["context"]
    if "user" not in context:
        return body
    return {**body, "context": {**context, "user": {**context["user"], "id": user_id}}}


def test_the_hot_path_answers_as_drf_does(demo, demo_context, drf_calls):
    # given the same calls sent to the hot path and, with a query string, through DRF
    headers = key_header(new_key(scopes=["execute"]))
    bodies = [
        {"entry_point": "checkout", "context": demo_context},
        {"entry_point": "checkout", "context": demo_context, "dry_run": True},
        {"entry_point": "nowhere", "context": {}},
        {"entry_point": "checkout", "context": {**demo_context, "cart": {"total": "lots"}}},
    ]
    for number, body in enumerate(bodies):
        # when each goes both ways (as two new customers: the demo counts checkouts)
        fast = post(EXECUTE, as_customer(body, 1000 + number), headers)
        slow = post(THROUGH_DRF, as_customer(body, 2000 + number), headers)
        # then status, body and headers agree
        assert comparable(fast) == comparable(slow), body
    # and only the query-string calls went through DRF
    assert drf_calls == [EXECUTE] * len(bodies)
    assert [comparable(post(EXECUTE, b, headers))[0] for b in bodies] == [200, 200, 404, 400]


def test_the_key_caller_is_recorded_like_drf_does(demo, demo_context):
    headers = key_header(new_key(scopes=["execute"]))
    body = {"entry_point": "checkout", "context": demo_context}
    ids = [post(url, body, headers).json()["execution_id"] for url in (EXECUTE, THROUGH_DRF)]
    callers = {row.caller for row in Execution.objects.filter(pk__in=ids)}
    assert len(callers) == 1 and callers.pop().startswith("key:")


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong scope", 403, "permission_denied"),
        ("other entry point", 403, "entry_point_not_allowed"),
        ("publishable key without origin", 403, "origin_not_allowed"),
        ("unknown key", 401, "invalid_api_key"),
        ("malformed JSON", 400, "malformed_json"),
        ("context not an object", 400, "invalid_request"),
        ("now without dry_run", 400, "invalid_request"),
        ("dry_run as a string", 400, "invalid_request"),
    ],
)
def test_everything_unusual_is_left_to_drf(demo, demo_context, drf_calls, case, status, error):
    # given a call the hot path must not answer itself
    body: Any = {"entry_point": "checkout", "context": demo_context}
    options: dict[str, Any] = {"scopes": ["execute"]}
    if case == "wrong scope":
        options["scopes"] = ["events"]
    elif case == "other entry point":
        options["entry_points"] = ["order.created"]
    elif case == "publishable key without origin":
        options.update(
            kind="publishable", entry_points=["checkout"], allowed_origins=["https://shop.example"]
        )
    elif case == "malformed JSON":
        body = b'{"entry_point": "checkout",'
    elif case == "context not an object":
        body["context"] = [1, 2]
    elif case == "now without dry_run":
        body["now"] = "2026-01-01T00:00:00Z"
    elif case == "dry_run as a string":
        body["dry_run"] = "true"
    _, raw = api_key_create(name=case, **options)
    headers = key_header(raw + "x" if case == "unknown key" else raw)
    # when it is sent
    response = post(EXECUTE, body, headers)
    # then DRF answered it, as it always has
    assert response.status_code == status, response.content
    assert drf_calls == [EXECUTE]
    assert response.json()["error"] == error


def test_a_staff_session_goes_through_drf(demo, demo_context, drf_calls, django_user_model):
    user = django_user_model.objects.create_superuser("boss", password="pw")
    client = APIClient()
    client.force_login(user)
    body = json.dumps({"entry_point": "checkout", "context": demo_context, "dry_run": True})
    response = client.post(EXECUTE, body, content_type="application/json")
    assert (response.status_code, drf_calls) == (200, [EXECUTE])


def test_the_hot_path_counts_the_rate_and_answers_429(demo, demo_context, monkeypatch, drf_calls):
    # given a key allowed 2 calls a minute, the clock 30 s into the minute
    monkeypatch.setattr("access.throttling.time.time", lambda: 2_000_000_010.0)
    _, raw = api_key_create(name="tight", scopes=["execute"], rate="2/minute")
    body = {"entry_point": "checkout", "context": demo_context}
    # when it sends 3
    responses = [post(EXECUTE, body, key_header(raw)) for _ in range(3)]
    # then the third is throttled by the hot path itself, in DRF's words
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].json() == {
        "error": "throttled",
        "detail": "Request was throttled. Expected available in 30 seconds.",
    }
    assert (responses[2]["Retry-After"], drf_calls) == ("30", [])
