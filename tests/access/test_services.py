"""API key services: creation (stored hashed, shown once), validation, revocation."""

from __future__ import annotations

import hashlib

import pytest

from access.models import ApiKey
from access.services import api_key_create, api_key_revoke
from rules_engine.errors import InvalidInput

pytestmark = pytest.mark.django_db


def test_created_key_is_stored_only_as_its_digest():
    # when a key is created
    key, raw = api_key_create(name="shop backend", scopes=["events", "execute"])
    # then the raw key starts with its public prefix and only its SHA-256 is stored
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw.startswith(stored.prefix + "_")
    assert stored.prefix.startswith("vk_sk_")
    assert stored.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {str(value) for value in stored.__dict__.values()}
    assert (stored.scopes, stored.kind, stored.revoked_at) == (
        ["execute", "events"],
        "secret",
        None,
    )


def test_invalid_settings_are_refused_with_every_problem():
    with pytest.raises(InvalidInput) as refused:
        api_key_create(
            name=" ",
            scopes=["execute", "admin"],
            rate="lots",
            allowed_origins=["https://shop.example"],
        )
    assert refused.value.code == "invalid_api_key"
    assert [detail["path"] for detail in refused.value.details] == [
        "$.allowed_origins",
        "$.name",
        "$.rate",
        "$.scopes[1]",
    ]
    assert ApiKey.objects.count() == 0


def test_publishable_key_is_execute_only_on_named_entry_points_and_origins():
    with pytest.raises(InvalidInput) as refused:
        api_key_create(
            name="web", kind="publishable", scopes=["execute", "events"], allowed_origins=["x"]
        )
    assert [(d["path"], d["message"]) for d in refused.value.details] == [
        ("$.allowed_origins[0]", "an origin is scheme://host[:port], e.g. https://shop.example"),
        ("$.entry_points", "a publishable key names its entry points"),
        ("$.scopes", "a publishable key has the execute scope only"),
    ]
    key, raw = api_key_create(
        name="web",
        kind="publishable",
        scopes=["execute"],
        entry_points=["checkout"],
        allowed_origins=["https://shop.example"],
    )
    assert raw.startswith("vk_pk_")
    assert (key.entry_points, key.allowed_origins) == (["checkout"], ["https://shop.example"])


def test_revoking_records_when_and_is_idempotent(django_user_model):
    admin = django_user_model.objects.create_user("root")
    key, _ = api_key_create(name="old")
    revoked = api_key_revoke(key=key, user=admin)
    first_time = revoked.revoked_at
    again = api_key_revoke(key=key, user=None)
    stored = ApiKey.objects.get(pk=key.pk)
    assert first_time is not None
    assert (stored.revoked_at, stored.revoked_by, again.revoked_at) == (
        first_time,
        admin,
        first_time,
    )
    assert stored.active is False
