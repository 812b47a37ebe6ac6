"""django-prometheus's request metrics through our subclass: same series, same counts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.urls import resolve
from django_prometheus import middleware as prometheus
from django_prometheus.utils import Time
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from rules_engine.middleware import PrometheusAfterMiddleware
from tests.support.keys import key_header, new_key

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_request_is_counted_by_method_status_and_body_size(demo: Any, demo_context: Any) -> None:
    # given the counters before
    body = json.dumps({"entry_point": "checkout", "context": demo_context}).encode()
    before = series()
    # when two executes are answered
    for _ in range(2):
        response = APIClient().post(
            "/api/rules/engine/execute/",
            body,
            content_type="application/json",
            headers=key_header(new_key(scopes=["execute"])),
        )
        assert response.status_code == 200
    # then each series moved by exactly those two requests
    after = series()
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 2 * len(body), 2, 2]


def series() -> tuple[float, ...]:
    """Requests by method, responses by status/view/method, body bytes (sum, count) and the
    latency histogram's count, for successful executes."""
    view = {"view": "engine-execute", "method": "POST"}
    return (
        sample("django_http_requests_total_by_method_total", method="POST"),
        sample("django_http_responses_total_by_status_view_method_total", status="200", **view),
        sample("django_http_requests_body_total_bytes_sum"),
        sample("django_http_requests_body_total_bytes_count"),
        sample("django_http_requests_latency_seconds_by_view_method_count", **view),
    )


def registry_samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every django-prometheus request sample now, but the latency sums (they differ by the
    clock, not by what was counted)."""
    samples = {}
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if not s.name.startswith("django_http_") or s.name.endswith("_created"):
                continue
            if s.name.startswith("django_http_requests_latency") and s.name.endswith("_sum"):
                continue
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def counted_by(middleware: Any, request: Any, response: Any) -> dict[Any, float]:
    """The samples `middleware.process_response` moved, and by how much."""
    before = registry_samples()
    request.prometheus_after_middleware_event = Time()
    middleware.process_response(request, response)
    after = registry_samples()
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def routed_by(middleware: Any, request: Any) -> dict[Any, float]:
    """The samples `middleware.process_view` moved, and by how much."""
    before = registry_samples()
    middleware.process_view(request, lambda request: None)
    after = registry_samples()
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


@pytest.mark.parametrize(
    ("method", "response"),
    [
        ("POST", JsonResponse({"ok": True})),
        ("GET", HttpResponse(status=404, content_type="text/html; charset=latin-1")),
        ("GET", StreamingHttpResponse(iter([b"a", b"b"]))),
        ("BREW", HttpResponse(b"teapot", status=418)),
    ],
    ids=["json-200", "404-latin-1", "streaming", "non-standard-method"],
)
def test_responses_are_counted_as_django_prometheus_counts_them(method: str, response: Any) -> None:
    # given the same request and response through django-prometheus's middleware and ours
    request = RequestFactory().generic(method, "/api/rules/engine/execute/")
    request.resolver_match = resolve("/api/rules/engine/execute/")
    theirs = prometheus.PrometheusAfterMiddleware(lambda request: response)
    ours = PrometheusAfterMiddleware(lambda request: response)
    # when each counts the response, twice for ours (the second from its remembered children)
    expected = counted_by(theirs, request, response)
    first, second = counted_by(ours, request, response), counted_by(ours, request, response)
    # then ours moved the same series by the same amounts, both times
    assert expected
    assert first == expected
    assert second == expected


@pytest.mark.parametrize(
    ("method", "path", "secure"),
    [
        ("POST", "/api/rules/engine/execute/", False),
        ("GET", "/api/rules/engine/execute/", True),
        ("BREW", "/new-event", False),
    ],
    ids=["post-http", "get-https", "non-standard-method"],
)
def test_routed_requests_are_counted_as_django_prometheus_counts_them(
    method: str, path: str, secure: bool
) -> None:
    # given the same routed request through django-prometheus's middleware and ours
    request = RequestFactory().generic(method, path, secure=secure)
    request.resolver_match = resolve(path)
    theirs = prometheus.PrometheusAfterMiddleware(lambda request: HttpResponse())
    ours = PrometheusAfterMiddleware(lambda request: HttpResponse())
    # when each counts it by view, twice for ours: on its own, then with the labels its
    # process_request kept (and the child it remembered)
    expected = routed_by(theirs, request)
    first = routed_by(ours, request)
    ours.process_request(request)
    second = routed_by(ours, request)
    # then ours moved the same series by the same amounts, both times
    assert list(expected) == [
        (
            "django_http_requests_total_by_view_transport_method_total",
            (
                ("method", method if method != "BREW" else "<invalid method>"),
                ("transport", "https" if secure else "http"),
                ("view", request.resolver_match.view_name),
            ),
        )
    ]
    assert first == expected
    assert second == expected
