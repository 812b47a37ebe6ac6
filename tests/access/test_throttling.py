"""Rate limits per key and per session user: 429 with Retry-After, counted in Redis."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from access.services import api_key_create

pytestmark = pytest.mark.django_db

EXECUTE = "/api/rules/engine/execute/"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """Windows are fixed: a clock 30 s into a minute keeps the requests in one window."""
    monkeypatch.setattr("access.throttling.time.time", lambda: 1_000_000_050.0)


def test_key_over_its_rate_gets_429_with_retry_after(demo, demo_context):
    # given a key allowed 3 requests a minute (the clock 30 s into the minute)
    _, raw = api_key_create(name="tight", scopes=["execute"], rate="3/minute")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    body = json.dumps({"entry_point": "checkout", "context": demo_context})
    # when it sends 4
    codes = [client.post(EXECUTE, body, content_type="application/json") for _ in range(4)]
    # then the fourth is throttled and says when to come back
    assert [response.status_code for response in codes] == [200, 200, 200, 429]
    assert codes[3].json()["error"] == "throttled"
    assert codes[3]["Retry-After"] == "30"


def test_other_keys_have_their_own_budget(demo, demo_context):
    _, tight = api_key_create(name="tight", scopes=["execute"], rate="1/hour")
    _, other = api_key_create(name="other", scopes=["execute"], rate="1/hour")
    body = json.dumps({"entry_point": "checkout", "context": demo_context})
    codes = []
    for raw in (tight, tight, other):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        codes.append(client.post(EXECUTE, body, content_type="application/json").status_code)
    assert codes == [200, 429, 200]


def test_session_users_have_the_user_rate(demo, settings, django_user_model):
    settings.VERDICT = {**settings.VERDICT, "USER_RATE": "2/minute"}
    user = django_user_model.objects.create_superuser("busy", password="pw")
    client = APIClient()
    client.force_login(user)
    codes = [client.get("/api/rules/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
