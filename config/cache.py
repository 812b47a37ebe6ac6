"""The project's Redis cache backend: Django's, without a new client object per call.

Django's `RedisCacheClient.get_client` builds a `redis.Redis` around its connection pool on
every cache call, and that construction (response callbacks, option handling) cost more CPU
than the GET itself on the decision path, which reads the ruleset generation stamp per request.
`redis.Redis` is thread-safe (each command borrows a connection from the pool), so one client
per pool is reused instead. Keys, pickling and pools are Django's own, so data written by
either backend is read by the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.cache.backends import redis as django_redis
from redis import ConnectionPool, Redis

__all__ = ["RedisCache", "ReusingRedisCacheClient"]


class ReusingRedisCacheClient(django_redis.RedisCacheClient):
    """Django's Redis cache client, keeping one `redis.Redis` per connection pool."""

    # Django's private pool lookup (chooses the server, creates its pool once); it is not in
    # django-stubs, so it is declared here for mypy. It is inherited, not redefined.
    _get_connection_pool: Callable[[bool], ConnectionPool]

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._clients: dict[ConnectionPool, Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Redis:
        """The client for the pool Django would use for this call, built once per pool."""
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            # What Django builds per call. Two threads racing here each build one and the last
            # stored wins: both work.
            client = self._clients[pool] = Redis(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    """`django.core.cache.backends.redis.RedisCache` using `ReusingRedisCacheClient`."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
