"""`manage.py ingress_consume` as a process: Redis outages, configuration errors.

The Redis outage runs against a private redis-server started by the test (the shared one is
never stopped), so stopping it disturbs nothing else.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command

from ingress.models import Event
from ingress.streams import publish_event, redis_client
from tests.support.processes import manage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _settled(worker: Any) -> Iterator[None]:
    """Every event a test accepted is decided by the worker before the tables are flushed."""
    yield
    wait_for(lambda: not Event.objects.filter(status__in=["received", "processing"]).exists())


class PrivateRedis:
    """A throwaway redis-server on a free local port, without persistence."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        """Start it and wait until it answers."""
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*args, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _answers(client), timeout=10)
        client.close()
        return self

    def stop(self) -> None:
        """Stop it (its data is gone: no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A private Redis, not started yet; stopped after the test."""
    server = PrivateRedis()
    yield server
    server.stop()


def test_consumer_survives_redis_outages_and_recreates_its_group(private_redis, demo, demo_context):
    stream = f"test:{uuid.uuid4().hex[:10]}:events"
    # given a consumer started while its Redis is down
    consumer = manage(
        "consumer-redis",
        "ingress_consume",
        "--redis-url",
        private_redis.url,
        "--stream",
        stream,
        "--consumer",
        "consumer-redis",
        "--block-ms",
        "200",
        "--backoff-max",
        "0.3",
    )
    try:
        consumer.start()
        wait_for(lambda: "Redis unavailable" in consumer.log_tail())
        # when Redis comes up, then the consumer gets ready and accepts events
        private_redis.start()
        wait_for(lambda: "ingress_consume ready" in consumer.log_tail())
        client = redis_client(private_redis.url)
        publish_event(client, type="checkout", key="r-1", payload=demo_context, stream=stream)
        wait_for(lambda: Event.objects.filter(key="r-1").exists())
        # when Redis stops (losing the stream and the group) and comes back empty
        failures = consumer.log_tail(500).count("Redis unavailable")
        private_redis.stop()
        wait_for(lambda: consumer.log_tail(500).count("Redis unavailable") >= failures + 2)
        assert consumer.alive()
        private_redis.start()
        publish_event(client, type="checkout", key="r-2", payload=demo_context, stream=stream)
        # then the consumer reconnects, creates the group again and accepts the new event
        wait_for(lambda: Event.objects.filter(key="r-2").exists())
        wait_for(lambda: client.xpending(stream, "verdict-ingress")["pending"] == 0)
        assert "creating it again" in consumer.log_tail(500)
        client.close()
        # and SIGTERM still stops it cleanly
        consumer.stop()
        assert consumer.proc is not None and consumer.proc.returncode == 0, consumer.log_tail()
    finally:
        consumer.stop()


def test_command_refuses_to_start_without_redis(settings):
    # given no Redis configured
    settings.REDIS_URL = ""
    # when the consumer is started, then it fails with a clear message
    with pytest.raises(CommandError, match="REDIS_URL is not set"):
        call_command("ingress_consume")
