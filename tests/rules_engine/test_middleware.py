"""django-prometheus's request metrics through our subclass: same series, same counts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

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
