"""Writes of access control: create and revoke API keys.

Every change calls `rules_engine.cache.invalidate()`: verified keys are cached per process
under the same generation stamp as compiled rulesets, so a revocation reaches every process
the way a rule change does (at its next request, within VERDICT_CACHE_CHECK_INTERVAL).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from access.keys import key_digest, key_generate, rate_parse
from access.models import SCOPES, ApiKey
from rules_engine import cache
from rules_engine.errors import ErrorDetail, InvalidInput

_ORIGIN_PARTS = ("http://", "https://")


def _real_user(user: Any) -> Any:
    # Keys and anonymous callers are not Django users: nobody is recorded for them.
    return user if getattr(user, "pk", None) is not None and user.is_authenticated else None


def _origin_errors(origins: list[str]) -> list[ErrorDetail]:
    errors: list[ErrorDetail] = []
    for index, origin in enumerate(origins):
        # An origin is scheme://host[:port], nothing after it: "https://shop.example".
        rest = origin.split("://", 1)[-1] if isinstance(origin, str) else ""
        if (
            not isinstance(origin, str)
            or not origin.startswith(_ORIGIN_PARTS)
            or not rest
            or "/" in rest
            or origin != origin.strip()
        ):
            errors.append(
                {
                    "path": f"$.allowed_origins[{index}]",
                    "message": "an origin is scheme://host[:port], e.g. https://shop.example",
                }
            )
    return errors


def api_key_errors(
    *,
    name: str,
    kind: str,
    scopes: list[str],
    entry_points: list[str],
    allowed_origins: list[str],
    rate: str,
) -> list[ErrorDetail]:
    """Every problem with a key's settings, each with its JSON path; empty when valid."""
    errors: list[ErrorDetail] = []
    if not name or not name.strip():
        errors.append({"path": "$.name", "message": "a key needs a name"})
    if kind not in (ApiKey.KIND_SECRET, ApiKey.KIND_PUBLISHABLE):
        errors.append({"path": "$.kind", "message": "kind is 'secret' or 'publishable'"})
    if not scopes:
        errors.append({"path": "$.scopes", "message": "a key needs at least one scope"})
    for index, scope in enumerate(scopes):
        if scope not in SCOPES:
            errors.append(
                {
                    "path": f"$.scopes[{index}]",
                    "message": f"unknown scope {scope!r}; one of {SCOPES}",
                }
            )
    for index, key in enumerate(entry_points):
        if not isinstance(key, str) or not key:
            errors.append({"path": f"$.entry_points[{index}]", "message": "an entry point key"})
    errors.extend(_origin_errors(allowed_origins))
    try:
        rate_parse(rate)
    except ValueError as exc:
        errors.append({"path": "$.rate", "message": str(exc)})
    if kind == ApiKey.KIND_PUBLISHABLE:
        # A publishable key is public (it ships in a web page): it may only ask for decisions,
        # only on named entry points, only from named sites.
        if list(scopes) != ["execute"]:
            errors.append(
                {"path": "$.scopes", "message": "a publishable key has the execute scope only"}
            )
        if not entry_points:
            errors.append(
                {"path": "$.entry_points", "message": "a publishable key names its entry points"}
            )
        if not allowed_origins:
            errors.append(
                {"path": "$.allowed_origins", "message": "a publishable key names its origins"}
            )
    elif allowed_origins:
        errors.append(
            {
                "path": "$.allowed_origins",
                "message": "only publishable keys are used from browsers (secret keys: none)",
            }
        )
    return errors


def api_key_create(
    *,
    name: str,
    scopes: Iterable[str] = ("execute",),
    kind: str = ApiKey.KIND_SECRET,
    entry_points: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
    rate: str = "",
    user: Any = None,
) -> tuple[ApiKey, str]:
    """Create a key; return it with the raw key, which is stored nowhere and shown only now.

    Raises InvalidInput with every problem (unknown scope, publishable key without entry
    points or origins, bad rate, ...). Writes one ApiKey row.
    """
    # In SCOPES order, unknown ones last (they are refused below).
    scope_list = sorted(set(scopes), key=lambda scope: (*SCOPES, scope).index(scope))
    entry_point_list = sorted(set(entry_points))
    origin_list = sorted(set(allowed_origins))
    errors = api_key_errors(
        name=name,
        kind=kind,
        scopes=scope_list,
        entry_points=entry_point_list,
        allowed_origins=origin_list,
        rate=rate,
    )
    if errors:
        raise InvalidInput(errors, code="invalid_api_key")
    raw, prefix = key_generate(kind)
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name.strip(),
            kind=kind,
            prefix=prefix,
            digest=key_digest(raw),
            scopes=scope_list,
            entry_points=entry_point_list,
            allowed_origins=origin_list,
            rate=rate.strip(),
            created_by=_real_user(user),
        )
        # Publishable keys widen the CORS origins every process answers preflights for.
        cache.invalidate()
    return key, raw


def api_key_revoke(*, key: ApiKey, user: Any = None) -> ApiKey:
    """Revoke a key: from the next request of every process on, it authenticates nothing.

    Revoking a revoked key changes nothing. Writes the key's revoked_at/revoked_by.
    """
    if key.revoked_at is not None:
        return key
    with transaction.atomic():
        key.revoked_at = timezone.now()
        key.revoked_by = _real_user(user)
        key.save(update_fields=["revoked_at", "revoked_by"])
        cache.invalidate()
    return key


def role_administrator_sync(*, using: str = "default") -> int:
    """Give the administrator role (group) every permission that exists; returns how many it
    gained. The roles migration grants what existed when it ran; apps and models migrated
    after it (periodic tasks, analytics, ...) add theirs here. Nothing when the group does
    not exist (the roles migration not applied). Writes the group's permissions."""
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.using(using).filter(name="administrator").first()
    if group is None:
        return 0
    gained = list(Permission.objects.using(using).exclude(group=group))
    group.permissions.add(*gained)
    return len(gained)
