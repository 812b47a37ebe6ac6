"""The API key admin: a key is shown once on creation, never editable, revoked by an action."""

from __future__ import annotations

import hashlib
import re

import pytest

from access.models import ApiKey
from access.services import api_key_create

pytestmark = pytest.mark.django_db


def test_adding_a_key_shows_it_once_and_stores_its_digest(admin_client):
    # when an administrator adds a key
    response = admin_client.post(
        "/admin/access/apikey/add/",
        {
            "name": "shop backend",
            "kind": "secret",
            "scopes": ["execute", "events"],
            "entry_points": "checkout\norder.created",
            "allowed_origins": "",
            "rate": "100/second",
        },
        follow=True,
    )
    # then the page shows the key once, and the row holds only its digest
    [shown] = re.findall(r"vk_sk_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}", response.content.decode())
    key = ApiKey.objects.get()
    assert key.digest == hashlib.sha256(shown.encode()).hexdigest()
    assert (key.name, key.scopes, key.entry_points, key.rate) == (
        "shop backend",
        ["execute", "events"],
        ["checkout", "order.created"],
        "100/second",
    )
    assert key.created_by is not None
    assert (key.created_by.username, shown.startswith(key.prefix)) == ("admin", True)
    listing = admin_client.get("/admin/access/apikey/").content.decode()
    assert key.prefix in listing and shown not in listing


def test_invalid_key_settings_are_form_errors(admin_client):
    response = admin_client.post(
        "/admin/access/apikey/add/",
        {"name": "web", "kind": "publishable", "scopes": ["execute"], "rate": "fast"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert sorted(errors) == ["allowed_origins", "entry_points", "rate"]
    assert ApiKey.objects.count() == 0


def test_revoke_action_revokes_and_keys_are_not_editable(admin_client):
    key, _ = api_key_create(name="old", scopes=["execute"])
    admin_client.post(
        "/admin/access/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    change = admin_client.post(f"/admin/access/apikey/{key.pk}/change/", {"name": "renamed"})
    key.refresh_from_db()
    assert (change.status_code, key.name) == (403, "old")
