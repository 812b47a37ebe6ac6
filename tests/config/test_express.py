"""The express lane (config/express.py): admitted API-key calls run through the shorter chain
and get exactly the answer Django's full chain gives; everything else takes the full chain."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import RequestFactory
from prometheus_client import REGISTRY
from simple_history.models import HistoricalRecords

from config import wsgi
from config.express import ExpressHandler, ExpressWSGIHandler
from rules_engine import engine
from rules_engine.models import Execution
from tests.support.keys import key_header, new_key

pytestmark = pytest.mark.django_db

EXECUTE = "/api/rules/engine/execute/"
REQUEST_ID = "req-express-1"
# Values that differ between two decisions on the same input.
PER_DECISION = {"execution_id", "duration_ms", "id"}


@pytest.fixture
def express_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of requests answered through the express chain."""
    calls: list[str] = []
    original = ExpressHandler.get_response

    def get_response(self: ExpressHandler, request: Any) -> Any:
        calls.append(request.path)
        return original(self, request)

    monkeypatch.setattr(ExpressHandler, "get_response", get_response)
    return calls


def call(
    app: Any, path: str, body: Any, headers: dict[str, str], **extra: Any
) -> tuple[int, dict[str, str], Any]:
    """POST `body` (JSON) to the WSGI `app`; its status, headers and decoded JSON body."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = (
        RequestFactory()
        .post(
            path,
            raw,
            content_type="application/json",
            headers={"X-Request-ID": REQUEST_ID, **headers},
            **extra,
        )
        .environ
    )
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc: Any = None):
        started["status"], started["headers"] = status, response_headers

    # As Django's test client does: the test's transaction holds the connection open.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        response = app(environ, start_response)
        content = b"".join(response)
        response.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    headers_out = dict(started["headers"])
    assert int(headers_out.pop("Content-Length", len(content))) == len(content)
    parsed = json.loads(content) if content[:1] in (b"{", b"[") else content
    if isinstance(parsed, dict):
        parsed = {k: v for k, v in parsed.items() if k not in PER_DECISION}
    return int(started["status"][:3]), headers_out, parsed


@pytest.fixture(scope="module")
def full_chain() -> WSGIHandler:
    """Django's own WSGI handler: MIDDLEWARE and URL routing for every request."""
    return WSGIHandler()


def test_the_wsgi_application_is_the_express_handler() -> None:
    assert isinstance(wsgi.application, ExpressWSGIHandler)


def test_express_middleware_is_an_ordered_subset_of_middleware() -> None:
    positions = [settings.MIDDLEWARE.index(path) for path in settings.EXPRESS_MIDDLEWARE]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(settings.EXPRESS_MIDDLEWARE)


def test_an_execute_call_gets_the_full_chains_answer(
    banner: Any, express_calls: list[str], full_chain: WSGIHandler
) -> None:
    # given an application key and a decision request
    headers = key_header(new_key(scopes=["execute"]))
    body = {"entry_point": "banner", "context": {"name": "<b>Ada</b>"}}
    # when it is sent through the express lane and through Django's full chain
    express = call(wsgi.application, EXECUTE, body, headers)
    full = call(full_chain, EXECUTE, body, headers)
    # then the express chain answered the first, and both answers are the same, headers too
    assert express_calls == [EXECUTE]
    assert express == full
    status, response_headers, decision = express
    assert status == 200
    assert response_headers["X-Request-ID"] == REQUEST_ID
    assert response_headers["Content-Type"] == "application/json"
    assert response_headers["X-Content-Type-Options"] == "nosniff"
    assert response_headers["X-Frame-Options"] == "DENY"
    assert decision["outcome"] == "matched"
    assert [effect["message"] for effect in decision["effects"]] == [
        {"format": "text", "content_type": "text/plain", "content": "Hi <b>Ada</b>"}
    ]
    # and both decisions were audited with the request id
    assert Execution.objects.filter(request_id=REQUEST_ID).count() == 2


def test_an_event_accept_gets_the_full_chains_answer(
    demo: Any, demo_context: dict[str, Any], express_calls: list[str], full_chain: WSGIHandler
) -> None:
    headers = key_header(new_key(scopes=["events"]))
    first = {"type": "checkout", "key": "order-1", "payload": demo_context}
    second = {**first, "key": "order-2"}
    # when two new events are accepted, one per chain
    express = call(wsgi.application, "/new-event", first, headers)
    full = call(full_chain, "/new-event", second, headers)
    # then both answers are the same 202, and the express chain answered the first
    assert express_calls == ["/new-event"]
    assert express == full
    assert express[0] == 202
    assert express[2] == {"status": "received"}


@pytest.mark.parametrize(
    ("case", "extra"),
    [
        ("a query string", {"QUERY_STRING": "via=drf"}),
        ("a body the serializer refuses", {"body": {"entry_point": "banner"}}),
        ("broken JSON", {"body": b'{"entry_point": '}),
        ("no key", {"headers": {}}),
        ("a key without the scope", {"scopes": ["read"]}),
        ("an unknown entry point", {"body": {"entry_point": "nope", "context": {}}}),
    ],
)
def test_calls_the_hot_path_leaves_to_drf_take_the_full_chain(
    banner: Any,
    express_calls: list[str],
    full_chain: WSGIHandler,
    case: str,
    extra: dict[str, Any],
) -> None:
    # given a call the hot path does not answer (or answers with a refusal)
    headers = extra.pop("headers", key_header(new_key(scopes=extra.pop("scopes", ["execute"]))))
    body = extra.pop("body", {"entry_point": "banner", "context": {"name": "Ada"}})
    # when it is sent to the WSGI application
    got = call(wsgi.application, EXECUTE, body, headers, **extra)
    # then Django's full chain answered it, as it answers it without the express lane
    expected = call(full_chain, EXECUTE, body, headers, **extra)
    assert (case, got) == (case, expected)
    if case != "an unknown entry point":
        assert express_calls == []
    assert got[0] in {200, 400, 401, 403, 404}


def test_a_throttled_key_gets_the_same_429(
    demo: Any, demo_context: dict[str, Any], express_calls: list[str], full_chain: WSGIHandler
) -> None:
    headers = key_header(new_key(scopes=["execute"], rate="1/hour"))
    body = {"entry_point": "checkout", "context": demo_context}
    assert call(wsgi.application, EXECUTE, body, headers)[0] == 200
    # when the key is over its rate, through either chain
    express = call(wsgi.application, EXECUTE, body, headers)
    full = call(full_chain, EXECUTE, body, headers)
    # then both answer 429 with the same body and headers (Retry-After included)
    assert express[0] == 429
    assert express[1]["Retry-After"] == full[1]["Retry-After"]
    assert express == full
    assert express_calls == [EXECUTE, EXECUTE]


def test_a_host_not_allowed_is_refused_in_the_express_chain(
    demo: Any, demo_context: dict[str, Any], full_chain: WSGIHandler
) -> None:
    headers = key_header(new_key(scopes=["execute"]))
    body = {"entry_point": "checkout", "context": demo_context}
    got = call(wsgi.application, EXECUTE, body, headers, HTTP_HOST="evil.example")
    assert got[0] == 400
    assert got == call(full_chain, EXECUTE, body, headers, HTTP_HOST="evil.example")
    assert not Execution.objects.exists()


def test_an_error_in_the_answer_is_a_500_as_in_the_full_chain(
    demo: Any,
    demo_context: dict[str, Any],
    express_calls: list[str],
    full_chain: WSGIHandler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("database gone")

    monkeypatch.setattr(engine, "execute", broken)
    headers = key_header(new_key(scopes=["execute"]))
    body = {"entry_point": "checkout", "context": demo_context}
    express = call(wsgi.application, EXECUTE, body, headers)
    assert express == call(full_chain, EXECUTE, body, headers)
    assert express[0] == 500
    assert express_calls == [EXECUTE]


def test_express_calls_are_counted_under_the_routes_name(
    demo: Any, demo_context: dict[str, Any], express_calls: list[str]
) -> None:
    def count(status: str) -> float:
        value = REGISTRY.get_sample_value(
            "django_http_responses_total_by_status_view_method_total",
            {"status": status, "view": "engine-execute", "method": "POST"},
        )
        return value or 0.0

    before = count("200")
    headers = key_header(new_key(scopes=["execute"]))
    call(wsgi.application, EXECUTE, {"entry_point": "checkout", "context": demo_context}, headers)
    assert express_calls == [EXECUTE]
    assert count("200") == before + 1


def test_an_express_call_leaves_no_request_for_simple_history(
    banner: Any, express_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a decision that notes the request django-simple-history would record changes by
    seen: list[Any] = []
    decide = engine.execute

    def execute(**kwargs: Any) -> Any:
        seen.append(getattr(HistoricalRecords.context, "request", None))
        return decide(**kwargs)

    monkeypatch.setattr(engine, "execute", execute)
    headers = key_header(new_key(scopes=["execute"]))
    # when an API-key call is answered through the express lane
    status, _, _ = call(
        wsgi.application, EXECUTE, {"entry_point": "banner", "context": {}}, headers
    )
    # then no request was exposed to it: a key is no Django user to record as an author
    assert (status, express_calls, seen) == (200, [EXECUTE], [None])
