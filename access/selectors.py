"""Reads of access control: verify a presented key, the origins publishable keys allow.

Verified keys are cached per process under the ruleset generation stamp
(`rules_engine.cache.current_generation`), so the warm path checks a key without a database
query, and a revocation (which bumps the stamp) is seen by every process at its next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from access.keys import MAX_KEY_LENGTH, key_digest, rate_parse
from access.models import ApiKey
from rules_engine import cache

# Bounds memory when clients present many different (mostly wrong) keys.
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """What a request may do with the key it presented (an active ApiKey, frozen)."""

    id: int
    name: str
    prefix: str
    kind: str
    scopes: frozenset[str]
    # Empty: every entry point.
    entry_points: frozenset[str]
    allowed_origins: frozenset[str]
    rate: tuple[int, int] | None

    @property
    def publishable(self) -> bool:
        """True for keys meant for browsers."""
        return self.kind == ApiKey.KIND_PUBLISHABLE

    def allows_entry_point(self, key: str) -> bool:
        """True if the key may act on this entry point (or event type)."""
        return not self.entry_points or key in self.entry_points


def _verified(row: ApiKey) -> VerifiedKey:
    try:
        rate = rate_parse(row.rate)
    except ValueError:
        rate = None
    return VerifiedKey(
        id=row.pk,
        name=row.name,
        prefix=row.prefix,
        kind=row.kind,
        scopes=frozenset(row.scopes),
        entry_points=frozenset(row.entry_points),
        allowed_origins=frozenset(row.allowed_origins),
        rate=rate,
    )


class _KeyCache:
    """digest -> VerifiedKey | None for one generation stamp; emptied when the stamp moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._keys: dict[str, VerifiedKey | None] = {}
        self._origins: frozenset[str] | None = None

    def _current(self) -> dict[str, VerifiedKey | None]:
        generation = cache.pinned_or_current_generation()
        if generation != self._generation:
            with self._lock:
                self._keys = {}
                self._origins = None
                self._generation = generation
        return self._keys

    def verify(self, raw: str) -> VerifiedKey | None:
        keys = self._current()
        if len(raw) > MAX_KEY_LENGTH or not raw.startswith("vk_"):
            return None
        digest = key_digest(raw)
        if digest in keys:
            return keys[digest]
        row = ApiKey.objects.filter(digest=digest, revoked_at__isnull=True).first()
        verified = _verified(row) if row is not None else None
        if len(keys) >= MAX_CACHED_KEYS:
            keys.clear()
        keys[digest] = verified
        return verified

    def origins(self) -> frozenset[str]:
        self._current()
        origins = self._origins
        if origins is None:
            rows = ApiKey.objects.filter(
                kind=ApiKey.KIND_PUBLISHABLE, revoked_at__isnull=True
            ).values_list("allowed_origins", flat=True)
            origins = self._origins = frozenset(origin for row in rows for origin in row)
        return origins

    def clear(self) -> None:
        with self._lock:
            self._keys = {}
            self._origins = None
            self._generation = None


_cache = _KeyCache()


def api_key_verify(*, raw: str) -> VerifiedKey | None:
    """The active key `raw` is, or None (unknown, malformed or revoked). Raises nothing.

    Cached per process (positive and negative answers) until the generation stamp moves.
    """
    return _cache.verify(raw)


def cors_allowed_origins() -> frozenset[str]:
    """Every origin some active publishable key allows (for CORS preflights)."""
    return _cache.origins()


def api_key_cache_clear() -> None:
    """Forget every verified key in this process (tests)."""
    _cache.clear()
