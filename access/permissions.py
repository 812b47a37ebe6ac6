"""DRF permissions: API keys by scope, session users by role (Django model permissions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions
from rest_framework.request import Request

from access.authentication import request_key
from access.selectors import VerifiedKey


def _staff(request: Request) -> bool:
    user = request.user
    return bool(user and user.is_authenticated and user.is_staff)


def require_entry_point(request: Request, key: str) -> None:
    """Refuse (403) a key restricted to other entry points. Sessions pass (roles apply)."""
    verified = request_key(request)
    if verified is not None and not verified.allows_entry_point(key):
        raise exceptions.PermissionDenied(
            f"this API key may not use entry point {key!r}", code="entry_point_not_allowed"
        )


def require_written_entry_point(request: Request, value: Any) -> None:
    """`require_entry_point` for the entry point a write names: an EntryPoint, its key, or
    None (nothing named: nothing to check)."""
    key = value if isinstance(value, str) or value is None else value.key
    if key is not None:
        require_entry_point(request, key)


def _scope_denied(key: VerifiedKey, needed: tuple[str, ...]) -> bool:
    return not key.scopes.intersection(needed)


class KeyScopeOrStaff(BasePermission):
    """The application endpoints (execute, events): a key with one of the view's scopes.

    `view.key_scopes` maps an HTTP method to the scopes any one of which suffices (key "*"
    for every other method). Staff sessions (the browsable API, the playground) pass too.
    """

    message = "this endpoint needs an API key with the right scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        """True for a key holding a needed scope, or a staff session."""
        key = request_key(request)
        if key is None:
            return _staff(request)
        scopes: Mapping[str, tuple[str, ...]] = view.key_scopes
        needed = scopes.get(request.method or "", scopes.get("*", ()))
        if _scope_denied(key, needed):
            self.message = f"this API key lacks the scope: {' or '.join(needed)}"
            return False
        return True


class ScopeOrModelPermission(DjangoModelPermissions):
    """The management API: keys need `read` (reads) or `manage`; staff users need the model
    permission of their role (view for reads, add/change/delete for writes)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        """True for a key with the scope, or a staff user with the model permission."""
        key = request_key(request)
        if key is not None:
            needed = ("read", "manage") if request.method in SAFE_METHODS else ("manage",)
            return not _scope_denied(key, needed)
        if not _staff(request):
            return False
        return super().has_permission(request, view)
