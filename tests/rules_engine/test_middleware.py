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
    view = {"status": "200", "view": "engine-execute", "method": "POST"}
    before = (
        sample("django_http_requests_total_by_method_total", method="POST"),
        sample("django_http_responses_total_by_status_view_method_total", **view),
        sample("django_http_requests_body_total_bytes_sum"),
        sample("django_http_requests_body_total_bytes_count"),
        sample("django_http_requests_latency_seconds_by_view_method_count", **view_method()),
    )
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
    after = (
        sample("django_http_requests_total_by_method_total", method="POST"),
        sample("django_http_responses_total_by_status_view_method_total", **view),
        sample("django_http_requests_body_total_bytes_sum"),
        sample("django_http_requests_body_total_bytes_count"),
        sample("django_http_requests_latency_seconds_by_view_method_count", **view_method()),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 2 * len(body), 2, 2]


def view_method() -> dict[str, str]:
    return {"view": "engine-execute", "method": "POST"}
