"""Tests for the ruleset generation check (rules_engine.cache) and config.cache's backend."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache as shared_cache
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.exceptions import ImproperlyConfigured

from config.cache import RedisCache
from rules_engine import cache
from rules_engine.cache import GENERATION_KEY, current_generation

needs_redis = pytest.mark.skipif(not django_settings.REDIS_URL, reason="REDIS_URL is not set")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The generation check's clock, at 100.0 until a test moves it."""
    fake = FakeClock()
    monkeypatch.setattr(cache, "_monotonic", fake)
    return fake


@pytest.fixture
def interval(settings: Any) -> float:
    """CACHE_CHECK_INTERVAL set to 0.5 s for the test."""
    settings.VERDICT = {**settings.VERDICT, "CACHE_CHECK_INTERVAL": 0.5}
    return 0.5


def write_from_another_process(stamp: str) -> None:
    """Move the shared stamp the way another process's bump does, bypassing this process."""
    shared_cache.set(GENERATION_KEY, stamp, timeout=None)


# --------------------------------------------------------------------------------------------
# The generation check


def test_without_interval_every_call_reads_the_shared_stamp(clock: FakeClock) -> None:
    # Given the default interval (0) and a stamp already read
    write_from_another_process("a")
    assert current_generation() == "a"

    # When another process moves the stamp, with no time passing
    write_from_another_process("b")

    # Then the next call sees it
    assert current_generation() == "b"


def test_with_interval_another_process_s_bump_is_seen_after_the_interval(
    clock: FakeClock, interval: float
) -> None:
    # Given an interval of 0.5 s and the stamp read at t=100.0
    write_from_another_process("a")
    assert current_generation() == "a"

    # When another process moves the stamp
    write_from_another_process("b")

    # Then it is not seen before 0.5 s have passed, and is seen at 0.5 s
    clock.now = 100.499
    assert current_generation() == "a"
    clock.now = 100.5
    assert current_generation() == "b"


def test_with_interval_a_bump_in_this_process_is_seen_at_once(
    clock: FakeClock, interval: float
) -> None:
    # Given an interval of 0.5 s and the stamp read
    write_from_another_process("a")
    assert current_generation() == "a"

    # When this process bumps the generation, with no time passing
    cache.bump_generation()

    # Then the next call returns the new shared stamp
    new = shared_cache.get(GENERATION_KEY)
    assert new != "a"
    assert current_generation() == new


@pytest.mark.django_db
def test_with_interval_invalidate_in_this_process_is_seen_at_once(
    clock: FakeClock, interval: float
) -> None:
    # Given an interval of 0.5 s and the stamp read
    write_from_another_process("a")
    assert current_generation() == "a"

    # When this process invalidates (inside the test's transaction: the immediate bump)
    cache.invalidate()

    # Then the next call returns the new shared stamp
    new = shared_cache.get(GENERATION_KEY)
    assert new != "a"
    assert current_generation() == new


def test_with_interval_a_read_overtaken_by_a_local_bump_is_not_reused(
    clock: FakeClock, interval: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a read of the shared stamp during which this process bumps the generation (a
    # request thread reading "a" while another thread commits a change)
    write_from_another_process("a")
    real_read = cache._read_generation

    def read_then_bump() -> str:
        stamp = real_read()
        monkeypatch.setattr(cache, "_read_generation", real_read)
        write_from_another_process("b")
        cache._forget_checked_generation()
        return stamp

    monkeypatch.setattr(cache, "_read_generation", read_then_bump)

    # When the generation is read, then read again with no time passing
    first = current_generation()
    second = current_generation()

    # Then the second call does not reuse the stamp read before the bump
    assert (first, second) == ("a", "b")


@pytest.mark.parametrize(
    ("now", "seen"),
    [(100.6, "a"), (101.0, "b")],
    ids=["expired-keeps-its-stamp", "a-second-old-reads-again"],
)
def test_with_interval_one_thread_refreshes_an_expired_stamp(
    clock: FakeClock, interval: float, now: float, seen: str
) -> None:
    # Given the stamp "a" read at t=100.0, then moved by another process, and another
    # thread of this process re-reading it once the interval expired
    write_from_another_process("a")
    assert current_generation() == "a"
    write_from_another_process("b")
    clock.now = now
    assert cache._refreshing.acquire(blocking=False)
    try:
        # When a thread asks for the stamp meanwhile
        during = current_generation()
    finally:
        cache._refreshing.release()

    # Then it keeps the stamp it had without asking Redis, but never once that stamp is a
    # second old; after the refresh the next call reads the new one
    assert during == seen
    assert current_generation() == "b"


def test_with_interval_an_unreachable_cache_is_not_remembered(
    clock: FakeClock, interval: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shared cache that cannot be reached
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("down")

    monkeypatch.setattr(shared_cache, "get", unreachable)

    # When the generation is read twice with no time passing
    first = current_generation()
    second = current_generation()

    # Then each call gets its own fresh stamp (compile per request, never stale)
    assert first.startswith("unreachable-")
    assert second.startswith("unreachable-")
    assert first != second


def test_clearing_the_ruleset_cache_forgets_the_stamp_read(
    clock: FakeClock, interval: float
) -> None:
    # Given an interval of 0.5 s and the stamp read
    write_from_another_process("a")
    assert current_generation() == "a"
    write_from_another_process("b")

    # When the process's ruleset cache is cleared
    cache.rulesets.clear()

    # Then the next call reads the shared stamp again
    assert current_generation() == "b"


@pytest.mark.parametrize("value", [1.0, 5, -0.1, math.nan, math.inf])
def test_interval_outside_zero_to_one_second_is_refused(settings: Any, value: float) -> None:
    # Given an interval that would let a change take 1 s or more to reach every process
    settings.VERDICT = {**settings.VERDICT, "CACHE_CHECK_INTERVAL": value}

    # When the generation is read / Then the configuration is refused
    with pytest.raises(ImproperlyConfigured) as caught:
        current_generation()
    assert str(caught.value) == (
        f"VERDICT_CACHE_CHECK_INTERVAL must be at least 0 and below 1 second, got {float(value)}"
        " (every process must see a rule change within one second)"
    )


# --------------------------------------------------------------------------------------------
# The Redis cache backend


@needs_redis
def test_project_cache_is_the_client_reusing_backend() -> None:
    # Given the settings with REDIS_URL set
    # When the default cache is looked up / Then it is the project's backend
    assert type(caches["default"]) is RedisCache


@needs_redis
def test_backend_reuses_one_redis_client_per_pool() -> None:
    # Given the project's backend on one server
    backend = RedisCache(django_settings.REDIS_URL, {})

    # When clients are asked for reads and writes several times
    clients = [backend._cache.get_client("k", write=write) for write in (False, True, False)]

    # Then one redis.Redis serves them all
    assert isinstance(clients[0], redis.Redis)
    assert clients[1] is clients[0]
    assert clients[2] is clients[0]


@needs_redis
def test_backend_with_replicas_keeps_a_client_per_server() -> None:
    # Given the project's backend with a primary and a read replica (the same server twice)
    url = django_settings.REDIS_URL
    backend = RedisCache(f"{url},{url}", {})

    # When write and read clients are asked for twice each
    writes = [backend._cache.get_client(write=True) for _ in range(2)]
    reads = [backend._cache.get_client(write=False) for _ in range(2)]

    # Then each server has its own client on its own pool, reused
    assert writes[0] is writes[1]
    assert reads[0] is reads[1]
    assert reads[0] is not writes[0]
    assert reads[0].connection_pool is not writes[0].connection_pool


@needs_redis
def test_backend_stores_keys_and_values_as_django_s_backend_does() -> None:
    # Given the project's backend and Django's own on the same Redis and prefix
    params = {"KEY_PREFIX": "verdict-test-cache"}
    ours = RedisCache(django_settings.REDIS_URL, params)
    django_s = DjangoRedisCache(django_settings.REDIS_URL, params)
    raw = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        # When each writes a value
        ours.set("ours", {"a": [1, "b"]}, timeout=60)
        django_s.set("theirs", 7, timeout=60)

        # Then each reads the other's, and the raw keys and bytes are Django's format
        assert django_s.get("ours") == {"a": [1, "b"]}
        assert ours.get("theirs") == 7
        stored = raw.get("verdict-test-cache:1:ours")
        assert isinstance(stored, bytes)
        assert pickle.loads(stored) == {"a": [1, "b"]}
        assert raw.get("verdict-test-cache:1:theirs") == b"7"
    finally:
        raw.delete("verdict-test-cache:1:ours", "verdict-test-cache:1:theirs")


def test_one_generation_reads_the_stamp_once_for_the_whole_block() -> None:
    # Given a stamp and a block deciding several contexts back to back
    write_from_another_process("a")
    seen: list[str | None] = []
    with cache.one_generation():
        seen.append(cache._pinned.generation)
        # When another process moves the stamp while the block runs
        write_from_another_process("b")
        with cache.one_generation():  # a nested block keeps the outer stamp
            seen.append(cache._pinned.generation)
    # Then the block kept the stamp it started with, and the next read sees the new one
    assert seen == ["a", "a"]
    assert cache._pinned.generation is None
    assert current_generation() == "b"
