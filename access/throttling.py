"""Rate limits per API key and per session user, counted in the shared cache.

A fixed window per key (or user): one `INCR` + `EXPIRE NX` round trip to Redis per request,
instead of DRF's `SimpleRateThrottle`, which reads and rewrites a list of every request time in
the window (two round trips and a list as long as the rate). Over the limit: 429 with
Retry-After (seconds to the end of the window). If the cache cannot be reached the request is
let through: a rate limit must not take the decision path down with Redis.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from access.authentication import request_key
from access.keys import rate_parse
from access.selectors import VerifiedKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "verdict:throttle:"


def _hit(name: str, period: int) -> int:
    """Count one request in window `name` (expiring after `period` s); return the count."""
    if isinstance(cache, RedisCache) or isinstance(getattr(cache, "_wrapped", None), RedisCache):
        backend: Any = getattr(cache, "_wrapped", cache)
        client = backend._cache.get_client(None, write=True)
        pipe = client.pipeline(transaction=False)
        full = backend.make_key(name)
        pipe.incr(full)
        pipe.expire(full, period, nx=True)
        hits, _ = pipe.execute()
        return int(hits)
    cache.add(name, 0, timeout=period)
    return int(cache.incr(name))


def _default(name: str) -> tuple[int, int] | None:
    return rate_parse(str(settings.VERDICT.get(name) or ""))


def rate_wait(*, who: str, rate: tuple[int, int] | None) -> float | None:
    """Count one request of `who` (`key:<id>` or `user:<pk>`) against `rate` (limit, period).

    Returns None when the request is within the rate (or there is no rate, or the shared cache
    cannot be reached), else the seconds until the window ends (for Retry-After).
    """
    if rate is None:
        return None
    limit, period = rate
    now = time.time()
    window = int(now // period)
    try:
        hits = _hit(f"{KEY_PREFIX}{who}:{period}:{window}", period)
    except Exception:
        logger.warning("rate limit not counted: shared cache unreachable", exc_info=True)
        return None
    if hits <= limit:
        return None
    return max(1.0, math.ceil((window + 1) * period - now))


def key_rate(key: VerifiedKey) -> tuple[int, int] | None:
    """The rate a key is held to: its own, else VERDICT["API_KEY_RATE"] (None: unlimited)."""
    return key.rate or _default("API_KEY_RATE")


class VerdictRateThrottle(BaseThrottle):
    """Per-key rate (the key's own or VERDICT["API_KEY_RATE"]) and per-user rate
    (VERDICT["USER_RATE"]) for session users; anonymous requests are refused before this."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        """Count the request; False (429) when its key or user is over the rate."""
        key = request_key(request)
        if key is not None:
            self._wait = rate_wait(who=f"key:{key.id}", rate=key_rate(key))
        elif request.user and request.user.is_authenticated:
            self._wait = rate_wait(who=f"user:{request.user.pk}", rate=_default("USER_RATE"))
        return self._wait is None

    def wait(self) -> float | None:
        """Seconds until the window ends (sent as Retry-After)."""
        return self._wait
