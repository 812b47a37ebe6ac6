"""Egress fixtures: a real local HTTP receiver the test steers, destinations, a stream key.

The receiver is the only stand-in for the outside network: a `ThreadingHTTPServer` on
127.0.0.1 that records every request (path, headers, raw body) and answers from a plan the
test sets (`receiver.answer(500, "stall", "redirect")`), then 200 once the plan is used up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings

from egress import services
from egress.models import Destination
from rules_engine import services as rules_services
from rules_engine.models import EntryPoint
from tests.support.webhooks import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running local webhook receiver, stopped after the test."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def knobs(settings: Any) -> dict[str, Any]:
    """Egress knobs for tests: backoff 10 s doubling up to 60 s, republish after 10 s."""
    settings.VERDICT = {
        **settings.VERDICT,
        "EGRESS_BACKOFF_BASE_SECONDS": 10,
        "EGRESS_BACKOFF_CAP_SECONDS": 60,
        "EGRESS_REPUBLISH_AFTER": 10,
    }
    return settings.VERDICT


@pytest.fixture
def crm(db: Any, receiver: Receiver) -> Destination:
    """A webhook destination at the receiver: 0.3 s timeout, 3 attempts."""
    return services.destination_create(
        data={"name": "crm", "url": receiver.url(), "timeout_seconds": 0.3, "max_attempts": 3}
    )


@pytest.fixture
def stream_key() -> Iterator[str]:
    """A fresh Redis stream key, deleted (with its dedupe keys) after the test."""
    key = f"test:egress:{uuid.uuid4().hex}"
    yield key
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(key)
    dedupe = list(client.scan_iter("verdict:egress:published:*"))
    if dedupe:
        client.delete(*dedupe)


def stream_entries(key: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """XRANGE of a stream on the test Redis: (entry id, fields) from oldest to newest."""
    entries: Any = redis.Redis.from_url(settings.REDIS_URL).xrange(key)
    return [(entry_id.decode(), fields) for entry_id, fields in entries]


@pytest.fixture
def orders_stream(db: Any, stream_key: str) -> Destination:
    """A redis_stream destination on the test Redis."""
    return services.destination_create(
        data={"name": "orders-stream", "kind": "redis_stream", "stream": stream_key}
    )


ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order": {"type": "object"},
        "customer": {"type": "object"},
        "card": {"type": "object"},
    },
}


@pytest.fixture
def order_created(db: Any) -> EntryPoint:
    """The entry point `order.created`: subject customer.id, card.number is sensitive."""
    return rules_services.entry_point_create(
        data={
            "key": "order.created",
            "context_schema": ORDER_SCHEMA,
            "subject_path": "customer.id",
            "sensitive_paths": ["card.number"],
        }
    )


ORDER = {
    "order": {"id": "o-1", "total": 120},
    "customer": {"id": "c-7"},
    "card": {"number": "4242424242424242"},
}
