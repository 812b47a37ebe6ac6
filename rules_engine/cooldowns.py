"""Cooldowns: a rule fires at most once per subject per period, atomically across processes.

With Redis configured (REDIS_URL) a cooldown is one key set with `SET NX PX`; the embedded
default (no Redis) keeps them in a database table with a unique (rule, subject) constraint.
Both stores list and clear active cooldowns for the API and the admin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

KEY_PREFIX = "verdict:cooldown:"


@dataclass(frozen=True)
class ActiveCooldown:
    """One active cooldown: the rule, the subject key, and milliseconds until it ends."""

    rule_id: str
    subject: str
    remaining_ms: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {"rule_id": self.rule_id, "subject": self.subject, "remaining_ms": self.remaining_ms}


class CooldownStore(Protocol):
    """Where cooldowns live; `claim` must be atomic across processes."""

    def claim(self, rule_id: str, subject: str, seconds: int) -> bool:
        """Start a cooldown unless one is active; True when this call started it."""
        ...

    def active(self, rule_id: str, subject: str) -> bool:
        """Whether a cooldown is active (dry runs check without claiming)."""
        ...

    def release(self, rule_id: str, subject: str) -> None:
        """End a cooldown now (a decision that claimed it failed, or an operator cleared it)."""
        ...

    def list(self, rule_id: str | None = None) -> list[ActiveCooldown]:
        """Active cooldowns, of one rule or all, sorted by rule then subject."""
        ...

    def clear(self, rule_id: str, subject: str | None = None) -> int:
        """End one rule's cooldowns (one subject or all); returns how many ended."""
        ...


class RedisCooldownStore:
    """Cooldowns as Redis keys `verdict:cooldown:<rule>:<subject>` with a TTL."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @staticmethod
    def _key(rule_id: str, subject: str) -> str:
        return f"{KEY_PREFIX}{rule_id}:{subject}"

    def claim(self, rule_id: str, subject: str, seconds: int) -> bool:
        """SET NX PX: atomic in Redis, so two processes never both fire."""
        return bool(self.client.set(self._key(rule_id, subject), "1", nx=True, px=seconds * 1000))

    def active(self, rule_id: str, subject: str) -> bool:
        """EXISTS on the key."""
        return bool(self.client.exists(self._key(rule_id, subject)))

    def release(self, rule_id: str, subject: str) -> None:
        """DEL the key."""
        self.client.delete(self._key(rule_id, subject))

    def list(self, rule_id: str | None = None) -> list[ActiveCooldown]:
        """SCAN the prefix and read each key's PTTL."""
        pattern = f"{KEY_PREFIX}{rule_id}:*" if rule_id else f"{KEY_PREFIX}*"
        keys = sorted(key.decode() for key in self.client.scan_iter(match=pattern, count=500))
        if not keys:
            return []
        pipeline = self.client.pipeline(transaction=False)
        for key in keys:
            pipeline.pttl(key)
        found = []
        for key, ttl in zip(keys, pipeline.execute(), strict=True):
            if ttl > 0:
                rule, _, subject = key[len(KEY_PREFIX) :].partition(":")
                found.append(ActiveCooldown(rule, subject, int(ttl)))
        return found

    def clear(self, rule_id: str, subject: str | None = None) -> int:
        """DEL one key or every key of the rule."""
        if subject is not None:
            return int(self.client.delete(self._key(rule_id, subject)))
        keys = list(self.client.scan_iter(match=f"{KEY_PREFIX}{rule_id}:*", count=500))
        return int(self.client.delete(*keys)) if keys else 0


class DatabaseCooldownStore:
    """Cooldowns as rows with a unique (rule, subject): the embedded default without Redis."""

    def claim(self, rule_id: str, subject: str, seconds: int) -> bool:
        """Delete an expired row, then insert; the unique constraint makes it atomic."""
        from rules_engine.models import Cooldown

        now = timezone.now()
        try:
            with transaction.atomic():
                Cooldown.objects.filter(
                    rule_id=rule_id, subject=subject, expires_at__lte=now
                ).delete()
                Cooldown.objects.create(
                    rule_id=rule_id, subject=subject, expires_at=now + timedelta(seconds=seconds)
                )
        except IntegrityError:
            return False
        return True

    def active(self, rule_id: str, subject: str) -> bool:
        """An unexpired row exists."""
        from rules_engine.models import Cooldown

        return Cooldown.objects.filter(
            rule_id=rule_id, subject=subject, expires_at__gt=timezone.now()
        ).exists()

    def release(self, rule_id: str, subject: str) -> None:
        """Delete the row."""
        from rules_engine.models import Cooldown

        Cooldown.objects.filter(rule_id=rule_id, subject=subject).delete()

    def list(self, rule_id: str | None = None) -> list[ActiveCooldown]:
        """Unexpired rows."""
        from rules_engine.models import Cooldown

        now = timezone.now()
        rows = Cooldown.objects.filter(expires_at__gt=now).order_by("rule_id", "subject")
        if rule_id:
            rows = rows.filter(rule_id=rule_id)
        return [
            ActiveCooldown(
                str(row.rule_id), row.subject, int((row.expires_at - now).total_seconds() * 1000)
            )
            for row in rows
        ]

    def clear(self, rule_id: str, subject: str | None = None) -> int:
        """Delete one row or all rows of the rule."""
        from rules_engine.models import Cooldown

        rows = Cooldown.objects.filter(rule_id=rule_id)
        if subject is not None:
            rows = rows.filter(subject=subject)
        deleted, _ = rows.delete()
        return deleted


@functools.cache
def _redis_store(url: str) -> RedisCooldownStore:
    return RedisCooldownStore(redis.Redis.from_url(url, socket_timeout=2))


def store() -> CooldownStore:
    """The configured store: Redis when REDIS_URL is set, else the database."""
    if settings.REDIS_URL:
        return _redis_store(settings.REDIS_URL)
    return DatabaseCooldownStore()
