"""API keys for tests: a client or a header that authenticates as an application."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.test import APIClient

ALL_SCOPES = ("execute", "events", "read", "manage")


def new_key(*, scopes: Iterable[str] = ALL_SCOPES, name: str = "tests", **options: object) -> str:
    """Create an API key (through the service) and return the raw key."""
    from access.services import api_key_create

    _, raw = api_key_create(name=name, scopes=scopes, **options)  # type: ignore[arg-type]
    return raw


def key_header(raw: str) -> dict[str, str]:
    """The HTTP header that presents `raw`."""
    return {"Authorization": f"Api-Key {raw}"}


def application_client(*, scopes: Iterable[str] = ALL_SCOPES) -> APIClient:
    """A DRF test client sending a new key with `scopes` on every request."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {new_key(scopes=scopes)}")
    return client
