"""GET /api/rules/{id}/analytics/ and /api/entry-points/{key}/analytics/ against the
hand-computed sample (tests/analytics/conftest.py), and refused requests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from tests.analytics.conftest import DAY2_09, Sample, roll_up
from tests.support.keys import application_client, new_key

pytestmark = pytest.mark.django_db

LATER = DAY2_09 + timedelta(hours=3)
BOUNDS = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0]
BOUNDS += [100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]


def stats(
    evaluations: int,
    matches: int,
    errors: int,
    suppressions: int,
    skipped: int,
    p50: float | None,
    p95: float | None,
) -> dict[str, Any]:
    return {
        "evaluations": evaluations,
        "matches": matches,
        "errors": errors,
        "suppressions": suppressions,
        "skipped": skipped,
        "match_rate": matches / evaluations if evaluations else None,
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
    }


EMPTY = stats(0, 0, 0, 0, 0, None, None)

# Rule A by hand. Decision times (ms) of the decisions that ran it:
#   10:00 -> 0.5 1.5 3.0 12.0 (no variant)     11:00 -> 0.5 (exp:treatment), 60.0 (exp:control)
#   day 2 09:00 -> 2.0 0.2 (no variant)
# p50/p95 = upper bound of the histogram bucket holding the nearest-rank sample, capped at
# the slowest sample: e.g. 10:00 p50 = rank 2 = 1.5 in [1, 2.5) -> 2.5; p95 = rank 4 = 12.0
# in [10, 25) capped at 12.0 -> 12.0.
A_10 = stats(4, 1, 1, 1, 0, 2.5, 12.0)
A_11_CONTROL = stats(1, 0, 0, 0, 0, 60.0, 60.0)  # 60 in [50, 100) capped at 60
A_11_TREATMENT = stats(1, 1, 0, 0, 0, 0.5, 0.5)  # 0.5 in [0.5, 1) capped at 0.5
A_11 = stats(2, 1, 0, 0, 0, 1.0, 60.0)  # rank 1 = 0.5 -> 1.0 (max is 60); rank 2 = 60
A_DAY2_09 = stats(2, 1, 0, 0, 0, 0.25, 2.0)  # rank 1 = 0.2 -> 0.25; rank 2 = 2.0 -> 2.5 cap 2
# Sorted: 0.2 0.5 0.5 1.5 2.0 3.0 12 60: p50 rank 4 = 1.5 -> 2.5; p95 rank 8 = 60.
A_TOTAL = stats(8, 3, 1, 1, 0, 2.5, 60.0)
# No variant: 0.2 0.5 1.5 2.0 3.0 12: p50 rank 3 = 1.5 -> 2.5; p95 rank 6 = 12 -> 25 cap 12.
A_NO_VARIANT = stats(6, 2, 1, 1, 0, 2.5, 12.0)
# Day 1: 0.5 0.5 1.5 3.0 12 60: p50 rank 3 = 1.5 -> 2.5; p95 rank 6 = 60.
A_DAY1 = stats(6, 2, 1, 1, 0, 2.5, 60.0)


def get(client: APIClient, path: str, **query: str) -> Any:
    return client.get(path, query)


def test_hour_buckets_of_a_rule_match_the_hand_computed_sample(
    sample: Sample, api_client: APIClient
) -> None:
    # given the sample rolled up
    roll_up(LATER)
    # when a day of hours from 10:00 on day 1 is asked for
    response = get(
        api_client,
        f"/api/rules/{sample.a.pk}/analytics/",
        **{"from": "2025-03-10T10:00:00Z", "to": "2025-03-11T10:00:00Z", "bucket": "hour"},
    )
    # then every hour is listed, with the counts computed by hand
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rule"] == {"id": str(sample.a.pk), "name": "A", "entry_point": "shop"}
    assert (body["from"], body["to"], body["bucket"]) == (
        "2025-03-10T10:00:00Z",
        "2025-03-11T10:00:00Z",
        "hour",
    )
    assert body["latency_bounds_ms"] == BOUNDS
    assert body["totals"] == A_TOTAL
    assert body["variants"] == [
        {"variant": "", **A_NO_VARIANT},
        {"variant": "exp:control", **A_11_CONTROL},
        {"variant": "exp:treatment", **A_11_TREATMENT},
    ]
    buckets = body["buckets"]
    assert len(buckets) == 24
    assert buckets[0] == {
        "start": "2025-03-10T10:00:00Z",
        **A_10,
        "variants": [{"variant": "", **A_10}],
    }
    assert buckets[1] == {
        "start": "2025-03-10T11:00:00Z",
        **A_11,
        "variants": [
            {"variant": "exp:control", **A_11_CONTROL},
            {"variant": "exp:treatment", **A_11_TREATMENT},
        ],
    }
    assert buckets[23] == {
        "start": "2025-03-11T09:00:00Z",
        **A_DAY2_09,
        "variants": [{"variant": "", **A_DAY2_09}],
    }
    assert all(
        {**b, "start": None} == {"start": None, **EMPTY, "variants": []} for b in buckets[2:23]
    )


def test_day_buckets_sum_the_hours(sample: Sample, api_client: APIClient) -> None:
    roll_up(LATER)
    # when two days are asked for (from/to inside the days: rounded to whole days)
    response = get(
        api_client,
        f"/api/rules/{sample.a.pk}/analytics/",
        **{"from": "2025-03-10T12:34:00Z", "to": "2025-03-11T08:00:00Z", "bucket": "day"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["from"], body["to"]) == ("2025-03-10T00:00:00Z", "2025-03-12T00:00:00Z")
    assert body["buckets"] == [
        {
            "start": "2025-03-10T00:00:00Z",
            **A_DAY1,
            "variants": [
                {"variant": "", **A_10},
                {"variant": "exp:control", **A_11_CONTROL},
                {"variant": "exp:treatment", **A_11_TREATMENT},
            ],
        },
        {"start": "2025-03-11T00:00:00Z", **A_DAY2_09, "variants": [{"variant": "", **A_DAY2_09}]},
    ]
    assert body["totals"] == A_TOTAL


def test_entry_point_analytics_match_the_hand_computed_sample(
    sample: Sample, api_client: APIClient
) -> None:
    roll_up(LATER)
    response = get(
        api_client,
        "/api/entry-points/shop/analytics/",
        **{"from": "2025-03-10T00:00:00Z", "to": "2025-03-12T00:00:00Z", "bucket": "day"},
    )
    assert response.status_code == 200, response.content
    body = response.json()

    def ep(decisions: int, matched: int, no_match: int, errors: int, blocking: int,
           action_errors: int, p50: float, p95: float) -> dict[str, Any]:  # fmt: skip
        return {
            "decisions": decisions,
            "matched": matched,
            "no_match": no_match,
            "errors": errors,
            "blocking": blocking,
            "action_errors": action_errors,
            "match_rate": matched / decisions,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
        }

    # Day 1: 0.5 1.5 3.0 12 0.5 60 -> p50 rank 3 = 1.5 -> 2.5, p95 rank 6 = 60.
    # Day 2: 2.0 0.2 -> 0.25, 2.0. All eight: as rule A's totals.
    assert body["totals"] == ep(8, 5, 1, 2, 1, 1, 2.5, 60.0)
    assert body["buckets"] == [
        {"start": "2025-03-10T00:00:00Z", **ep(6, 4, 1, 1, 1, 1, 2.5, 60.0)},
        {"start": "2025-03-11T00:00:00Z", **ep(2, 1, 0, 1, 0, 0, 0.25, 2.0)},
    ]
    # Rule B ran in 6 decisions (skipped in 2): 1.5 3.0 12 60 2.0 0.2 -> 2.5 and 60.
    b_total = stats(6, 2, 1, 0, 2, 2.5, 60.0)
    a_row = {"rule_id": str(sample.a.pk), "name": "A", "exists": True, **A_TOTAL}
    b_row = {"rule_id": str(sample.b.pk), "name": "B", "exists": True, **b_total}
    assert body["top_rules"] == [a_row, b_row]
    assert body["error_rules"] == [a_row, b_row]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"bucket": "week"}, "$.bucket"),
        ({"from": "yesterday"}, "$.from"),
        ({"to": "2025-13-01"}, "$.to"),
        ({"from": "2025-03-11T00:00:00Z", "to": "2025-03-10T00:00:00Z"}, "$.to"),
        ({"from": "2025-03-10T00:00:00Z", "to": "2025-03-10T00:00:00Z"}, "$.to"),
        ({"from": "2000-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "$.from"),
        ({"from": "0001-01-01T00:00:00Z"}, "$.from"),
        ({"to": "9999-12-31T23:59:59Z"}, "$.to"),
    ],
)
def test_bad_parameters_are_refused_with_their_path(
    sample: Sample, api_client: APIClient, query: dict[str, str], path: str
) -> None:
    for endpoint in (f"/api/rules/{sample.a.pk}/analytics/", "/api/entry-points/shop/analytics/"):
        response = api_client.get(endpoint, query)
        assert response.status_code == 400, (endpoint, response.content)
        body = response.json()
        assert body["error"] == "invalid_request"
        assert [d["path"] for d in body["details"]] == [path]


def test_defaults_are_the_last_24_hours(sample: Sample, api_client: APIClient) -> None:
    response = api_client.get(f"/api/rules/{sample.a.pk}/analytics/")
    assert response.status_code == 200
    body = response.json()
    assert body["bucket"] == "hour"
    assert len(body["buckets"]) == 24


def test_unknown_rule_and_entry_point_are_404(db: Any, api_client: APIClient) -> None:
    assert api_client.get(f"/api/rules/{uuid.uuid4()}/analytics/").status_code == 404
    assert api_client.get("/api/entry-points/nope/analytics/").status_code == 404


def test_a_key_needs_the_read_scope(sample: Sample) -> None:
    # given a key with the execute scope only
    client = application_client(scopes=["execute"])
    # then the analytics are refused; with read they are served
    assert client.get(f"/api/rules/{sample.a.pk}/analytics/").status_code == 403
    assert client.get("/api/entry-points/shop/analytics/").status_code == 403
    reader = application_client(scopes=["read"])
    assert reader.get(f"/api/rules/{sample.a.pk}/analytics/").status_code == 200


def test_a_key_limited_to_other_entry_points_is_refused(sample: Sample) -> None:
    client = APIClient()
    raw = new_key(scopes=["read"], entry_points=["checkout"])
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert client.get(f"/api/rules/{sample.a.pk}/analytics/").status_code == 403
    assert client.get("/api/entry-points/shop/analytics/").status_code == 403


def test_staff_need_the_view_permission(sample: Sample) -> None:
    # given a staff user without permissions, then with view_rule
    user = User.objects.create_user("ann", password="pw", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    path = f"/api/rules/{sample.a.pk}/analytics/"
    assert client.get(path).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_rule"))
    user = User.objects.get(pk=user.pk)  # fresh permission cache
    client.force_authenticate(user)
    assert client.get(path).status_code == 200


def test_a_malformed_rule_id_is_404(db: Any, api_client: APIClient) -> None:
    response = api_client.get(f"/api/rules/{'-' * 36}/analytics/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
