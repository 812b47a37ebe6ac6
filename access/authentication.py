"""DRF authentication by API key: `Authorization: Api-Key <key>`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from access.selectors import VerifiedKey, api_key_verify


class ApiKeyUser:
    """`request.user` of a request authenticated by an API key: not a Django user.

    It has no model permissions and no staff status, so key holders reach only what their
    scopes open (see access.permissions), never the admin.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: VerifiedKey) -> None:
        self.key = key

    def get_username(self) -> str:
        """`key:<prefix>`: who called, as recorded in the audit trail."""
        return f"key:{self.key.prefix}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        """Keys hold scopes, not Django permissions."""
        return False

    def has_perms(self, perms: Any, obj: Any = None) -> bool:
        """Keys hold scopes, not Django permissions."""
        return False

    def __str__(self) -> str:
        return self.get_username()


def request_key(request: Request) -> VerifiedKey | None:
    """The verified key the request was authenticated with, or None (session or anonymous)."""
    auth = request.auth
    return auth if isinstance(auth, VerifiedKey) else None


def presented_key(meta: Mapping[str, Any]) -> str | None:
    """The raw key of an `Authorization: Api-Key <key>` header, or None (no header, other
    scheme)."""
    header = meta.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != ApiKeyAuthentication.keyword.lower():
        return None
    return str(raw.strip())


def origin_allowed(key: VerifiedKey, meta: Mapping[str, Any]) -> bool:
    """Secret keys work from anywhere; a publishable key only from an origin it allows."""
    return not key.publishable or meta.get("HTTP_ORIGIN") in key.allowed_origins


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate `Authorization: Api-Key <key>` against active keys (cached per process).

    No header, or another scheme: not this authenticator's business (None). An unknown or
    revoked key: 401. A publishable key from an origin it does not allow (or with no Origin
    header): 403, because publishable keys are public and the origin is what limits them.
    """

    keyword = "Api-Key"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, VerifiedKey] | None:
        """Return (user, key) for a valid key; raise AuthenticationFailed/PermissionDenied."""
        raw = presented_key(request.META)
        if raw is None:
            return None
        key = api_key_verify(raw=raw)
        if key is None:
            raise exceptions.AuthenticationFailed(
                "invalid or revoked API key", code="invalid_api_key"
            )
        if not origin_allowed(key, request.META):
            raise exceptions.PermissionDenied(
                "this publishable key is not allowed from this origin", code="origin_not_allowed"
            )
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Request) -> str:
        """Makes unauthenticated requests 401 (with WWW-Authenticate: Api-Key), not 403."""
        return self.keyword
