"""The Redis Streams ingress: consumer group, ack after commit, poison, reclaim, outages.

In-process tests drive `StreamConsumer.run_once()` against the real test Redis and PostgreSQL;
the others run `manage.py ingress_consume` as real processes next to a real Celery worker.
Every test uses its own stream names; the Redis outage runs against a private redis-server
started by the test (the shared one is never stopped).
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from ingress.models import Event, PendingCancellation
from ingress.streams import (
    RELEASED_IDLE_MS,
    ConsumerConfig,
    Handled,
    Outcome,
    StreamConsumer,
    publish_cancel,
    publish_event,
    redis_client,
)
from rules_engine.models import Execution
from tests.support.processes import ManagedProcess, database_url, manage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "verdict-ingress"


class Streams(NamedTuple):
    """The stream names of one test."""

    stream: str
    dead: str


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A stream client on the test Redis (bytes replies, like the consumer's)."""
    r = redis_client(settings.REDIS_URL)
    yield r
    r.close()


@pytest.fixture
def names(client: redis.Redis) -> Iterator[Streams]:
    """Unique stream and dead-letter stream names, deleted afterwards."""
    unique = uuid.uuid4().hex[:10]
    streams = Streams(f"test:{unique}:events", f"test:{unique}:events:dead")
    yield streams
    client.delete(*streams)


@pytest.fixture
def publish_checkout(
    client: redis.Redis, names: Streams, demo_context: dict[str, Any]
) -> Callable[..., str]:
    """Publish a checkout event with the demo context on the test's stream; returns its id."""

    def publish(key: str, source: str | None = None) -> str:
        return publish_event(
            client,
            type="checkout",
            key=key,
            source=source,
            payload=demo_context,
            stream=names.stream,
        )

    return publish


@pytest.fixture(autouse=True)
def _settled(worker: Any) -> Iterator[None]:
    """Every event a test accepted is decided by the worker before the tables are flushed.

    The session's worker keeps deciding after a test ends, and a decision still running while
    pytest-django truncates the tables deadlocks the flush.
    """
    yield
    wait_for(lambda: not Event.objects.filter(status__in=["received", "processing"]).exists())


def make_consumer(
    client: redis.Redis, names: Streams, name: str = "consumer-a", **options: Any
) -> StreamConsumer:
    """An in-process consumer of the test streams with its group created."""
    config = ConsumerConfig(
        stream=names.stream,
        group=GROUP,
        consumer=name,
        dead_letter_stream=names.dead,
        block_ms=100,
        **options,
    )
    consumer = StreamConsumer(client, config)
    consumer.ensure_group()
    return consumer


def pending(client: redis.Redis, names: Streams) -> list[dict[str, Any]]:
    """The group's pending entries: id, consumer, idle ms, delivery count."""
    rows: Any = client.xpending_range(names.stream, GROUP, "-", "+", 100)
    return [
        {
            "id": row["message_id"].decode(),
            "consumer": row["consumer"].decode(),
            "idle": row["time_since_delivered"],
            "deliveries": row["times_delivered"],
        }
        for row in rows
    ]


def dead_letters(client: redis.Redis, names: Streams) -> list[dict[str, str]]:
    """Dead-letter entries with their fields as text."""
    entries: Any = client.xrange(names.dead, "-", "+")
    return [
        {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
        for _id, fields in entries
    ]


@pytest.fixture
def start_consumer(names: Streams) -> Iterator[Callable[..., ManagedProcess]]:
    """Start `manage.py ingress_consume` on the test streams; every one is stopped afterwards."""
    started: list[ManagedProcess] = []

    def start(name: str, *options: str, **env: str) -> ManagedProcess:
        process = manage(
            name,
            "ingress_consume",
            "--stream",
            names.stream,
            "--dead-letter-stream",
            names.dead,
            "--consumer",
            name,
            "--block-ms",
            "200",
            *options,
            ready_text="ingress_consume ready",
            **env,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


# --- accepting and cancelling ------------------------------------------------------------------


def test_event_message_is_committed_then_acked(client, names, demo, demo_context, publish_checkout):
    # given a consumer and an event message without a source
    consumer = make_consumer(client, names)
    message_id = publish_checkout("order-1")
    # when the consumer runs one round
    handled = consumer.run_once()
    # then the event row is stored under the "stream" source and the message is acked
    assert handled == [Handled(message_id, Outcome.ACCEPTED)]
    event = Event.objects.get()
    assert (event.type, event.source, event.key, event.subject) == (
        "checkout",
        "stream",
        "order-1",
        "42",
    )
    assert event.payload == demo_context
    assert pending(client, names) == []
    assert dead_letters(client, names) == []


def test_duplicate_message_returns_the_stored_event(
    client, names, demo, demo_context, publish_checkout
):
    # given the same (source, key) published twice
    consumer = make_consumer(client, names)
    first = publish_checkout("order-2", source="shop")
    second = publish_checkout("order-2", source="shop")
    # when the consumer runs
    handled = consumer.run_once()
    # then there is one event and both messages are acked
    assert handled == [Handled(first, Outcome.ACCEPTED), Handled(second, Outcome.DUPLICATE)]
    assert list(Event.objects.values_list("source", "key")) == [("shop", "order-2")]
    assert pending(client, names) == []


def test_a_batch_is_acked_together_and_rings_the_doorbell_at_most_twice(
    client, names, demo, demo_context, publish_checkout, monkeypatch
):
    # given four event messages, a consumer that counts its XACK calls, and a count of the
    # doorbell rings that reach the shared cache
    from ingress import services

    rings: list[str] = []
    first_in = services._first_in

    def counted_first_in(key: str, **options: Any) -> bool:
        rings.append(key)
        return first_in(key, **options)

    monkeypatch.setattr(services, "_first_in", counted_first_in)
    consumer = make_consumer(client, names)
    xacks: list[tuple[Any, ...]] = []
    xack = consumer.client.xack

    def counted_xack(*args: Any) -> Any:
        xacks.append(args[2:])
        return xack(*args)

    monkeypatch.setattr(consumer.client, "xack", counted_xack)
    ids = [publish_checkout(f"order-{n}") for n in range(4)]
    # when it handles them in one round
    handled = consumer.run_once()
    # then all four were accepted, acked by one XACK after their rows committed, and the
    # doorbell rang for the first and once more for the rest
    assert handled == [Handled(i, Outcome.ACCEPTED) for i in ids]
    assert xacks == [tuple(ids)]
    assert pending(client, names) == []
    assert rings == [services.DOORBELL_KEY] * 2
    assert Event.objects.count() == 4


def test_cancel_message_cancels_the_existing_event(client, names, demo, demo_context):
    # given a received event (stored, not yet picked up by any worker)
    event = Event.objects.create(type="checkout", source="shop", key="order-3", payload={})
    consumer = make_consumer(client, names)
    message_id = publish_cancel(
        client, key="order-3", source="shop", reason="customer withdrew", stream=names.stream
    )
    # when the cancellation is consumed
    handled = consumer.run_once()
    # then the event is cancelled with the reason, and the message acked
    assert handled == [Handled(message_id, Outcome.CANCELLED)]
    event.refresh_from_db()
    assert (event.status, event.cancel_reason) == ("cancelled", "customer withdrew")
    assert pending(client, names) == []


def test_cancel_before_its_event_is_applied_when_the_event_arrives(
    client, names, worker, demo, demo_context, publish_checkout
):
    # given a cancellation published before its event, then another event
    consumer = make_consumer(client, names)
    cancel_id = publish_cancel(
        client, key="order-4", source="shop", reason="fraud check", stream=names.stream
    )
    event_id = publish_checkout("order-4", source="shop")
    control_id = publish_checkout("order-5", source="shop")
    # when the consumer runs and the worker has decided the later event
    handled = consumer.run_once()
    control = wait_for(lambda: Event.objects.filter(key="order-5", status="completed").first())
    # then the early cancellation was stored, then applied: the event never ran
    assert handled == [
        Handled(cancel_id, Outcome.CANCEL_STORED),
        Handled(event_id, Outcome.ACCEPTED),
        Handled(control_id, Outcome.ACCEPTED),
    ]
    event = Event.objects.get(key="order-4")
    assert (event.status, event.cancel_reason) == ("cancelled", "fraud check")
    assert (event.execution_id, event.processed_at, event.attempts) == (None, None, 0)
    assert not Execution.objects.filter(request_id=str(event.pk)).exists()
    assert Execution.objects.filter(request_id=str(control.pk)).count() == 1
    assert not PendingCancellation.objects.exists()
    assert pending(client, names) == []


# --- poison ------------------------------------------------------------------------------------


def _data(body: Any) -> dict[str, Any]:
    return {"data": json.dumps(body)}


def _event(context: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"kind": "event", "type": "checkout", "key": "bad-1", "payload": context, **changes}


def _bad_context(context: dict[str, Any]) -> dict[str, Any]:
    del context["user"]["id"]
    context["cart"]["total"] = -1
    return context


def _nul_in_text(context: dict[str, Any]) -> dict[str, Any]:
    context["user"]["name"] = "Ada\u0000"
    return context


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


PoisonCase = tuple[Callable[[dict[str, Any]], dict[str, Any]], str, str, list[dict[str, str]]]

POISON: dict[str, PoisonCase] = {
    "no data field": (
        lambda ctx: {"body": json.dumps(_event(ctx))},
        "missing_data",
        "the message has no 'data' field",
        [],
    ),
    "not utf-8": (lambda ctx: {"data": b"\xff\xfe{}"}, "invalid_json", "data is not UTF-8", []),
    "invalid json": (
        lambda ctx: {"data": '{"kind": "event",'},
        "invalid_json",
        "data is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 18 (char 17)",
        [],
    ),
    "NaN": (
        lambda ctx: {"data": '{"kind": "event", "n": NaN}'},
        "invalid_json",
        "data is not valid JSON: NaN is not valid JSON",
        [],
    ),
    "too deep": (
        lambda ctx: _data(_event(ctx, extra=_nested(40))),
        "invalid_json",
        "data is nested deeper than 32 levels",
        [],
    ),
    "too large": (
        lambda ctx: _data(_event(ctx, extra="x" * 300_000)),
        "too_large",
        "data is larger than 262144 bytes",
        [],
    ),
    "integer beyond 64 bits": (
        lambda ctx: _data(_event({**ctx, "ref": 123456789012345678901234567891})),
        "invalid_json",
        "data holds an integer beyond 64 bits at $.payload.ref",
        [],
    ),
    "key named twice": (
        lambda ctx: {"data": json.dumps(_event(ctx))[:-1] + ', "payload": {"cart": {"total": 1}}}'},
        "invalid_json",
        "data names a key twice at $.payload",
        [],
    ),
    "key of another type": (
        lambda ctx: _data(_event(ctx, key="used", source="shop", type="order.created")),
        "idempotency_key_conflict",
        "key 'used' of source 'shop' is already used by an event of another type",
        [],
    ),
    "not an object": (
        lambda ctx: _data([_event(ctx)]),
        "invalid_message",
        "data must be a JSON object, not array",
        [],
    ),
    "unknown kind": (
        lambda ctx: _data(_event(ctx, kind="update")),
        "unknown_kind",
        'kind must be "event" or "cancel", not "update"',
        [],
    ),
    "no kind": (
        lambda ctx: _data({"type": "checkout", "key": "bad-1", "payload": ctx}),
        "unknown_kind",
        'kind must be "event" or "cancel", not nothing',
        [],
    ),
    "missing fields": (
        lambda ctx: _data({"kind": "event", "type": "checkout"}),
        "invalid_message",
        "invalid event message: $.key: required; $.payload: required",
        [{"path": "$.key", "message": "required"}, {"path": "$.payload", "message": "required"}],
    ),
    "wrong types": (
        lambda ctx: _data(_event([ctx], key=42, source="Not Valid!")),  # type: ignore[arg-type]
        "invalid_message",
        "invalid event message: $.key: must be a string, not number; "
        "$.payload: must be a JSON object, not array; "
        "$.source: must match ^[a-z0-9][a-z0-9_.\\-]{0,99}$",
        [
            {"path": "$.key", "message": "must be a string, not number"},
            {"path": "$.payload", "message": "must be a JSON object, not array"},
            {"path": "$.source", "message": "must match ^[a-z0-9][a-z0-9_.\\-]{0,99}$"},
        ],
    ),
    "cancel without key": (
        lambda ctx: _data({"kind": "cancel", "reason": 7}),
        "invalid_message",
        "invalid cancel message: $.key: required; $.reason: must be a string, not number",
        [
            {"path": "$.key", "message": "required"},
            {"path": "$.reason", "message": "must be a string, not number"},
        ],
    ),
    "unknown event type": (
        lambda ctx: _data(_event(ctx, type="refund")),
        "unknown_event_type",
        "no active entry point 'refund'",
        [],
    ),
    "schema failure": (
        lambda ctx: _data(_event(_bad_context(ctx))),
        "invalid_context",
        "payload does not match the schema of 'checkout': "
        "$.cart.total: -1 is less than the minimum of 0; $.user.id: 'id' is a required property",
        [
            {"path": "$.cart.total", "message": "-1 is less than the minimum of 0"},
            {"path": "$.user.id", "message": "'id' is a required property"},
        ],
    ),
    "refused by PostgreSQL": (
        lambda ctx: _data(_event(_nul_in_text(ctx))),
        "rejected_by_database",
        "unsupported Unicode escape sequence",
        [],
    ),
}


@pytest.mark.parametrize("case", list(POISON), ids=list(POISON))
def test_poison_message_is_dead_lettered_and_the_consumer_keeps_going(
    case, client, names, demo, demo_context, publish_checkout
):
    build, code, reason, details = POISON[case]
    # given a poison message followed by a valid event
    consumer = make_consumer(client, names)
    Event.objects.create(type="checkout", source="shop", key="used", payload={})
    fields = build(json.loads(json.dumps(demo_context)))
    poison_id = client.xadd(names.stream, fields).decode()
    good_id = publish_checkout("good-1")
    # when the consumer runs one round
    handled = consumer.run_once()
    # then the poison went to the dead-letter stream with its reason, both are acked,
    # and the valid event behind it was accepted
    assert handled == [
        Handled(poison_id, Outcome.DEAD_LETTERED),
        Handled(good_id, Outcome.ACCEPTED),
    ]
    [(_id, raw)] = client.xrange(names.dead, "-", "+")
    assert {k: raw[k.encode()] for k in fields} == {
        k: v if isinstance(v, bytes) else v.encode() for k, v in fields.items()
    }
    [dead] = dead_letters(client, names)
    assert (dead["code"], dead["reason"], json.loads(dead["details"])) == (code, reason, details)
    assert (dead["original_id"], dead["stream"], dead["group"], dead["consumer"]) == (
        poison_id,
        names.stream,
        GROUP,
        "consumer-a",
    )
    assert sorted(Event.objects.values_list("key", flat=True)) == ["good-1", "used"]
    assert pending(client, names) == []


def test_entry_delivered_too_many_times_is_dead_lettered(
    client, names, demo, demo_context, publish_checkout
):
    # given an entry a dead consumer read, and that has been redelivered 5 times already
    consumer = make_consumer(client, names, max_deliveries=5)
    message_id = publish_checkout("order-6")
    client.xreadgroup(GROUP, "ghost", {names.stream: ">"})
    client.xclaim(names.stream, GROUP, "ghost", 0, [message_id], idle=60_000, retrycount=5)
    # when a live consumer reclaims it (its sixth delivery)
    handled = consumer.run_once()
    # then it is dead-lettered instead of processed
    assert handled == [Handled(message_id, Outcome.DEAD_LETTERED)]
    [dead] = dead_letters(client, names)
    assert (dead["code"], dead["reason"], dead["original_id"]) == (
        "too_many_deliveries",
        "delivered 6 times",
        message_id,
    )
    assert not Event.objects.exists()
    assert pending(client, names) == []


def test_entry_deleted_while_pending_is_dropped_and_reported(
    client, names, demo, demo_context, caplog, publish_checkout
):
    # given an entry a dead consumer read, then deleted from the stream (XDEL) before any ack
    consumer = make_consumer(client, names)
    message_id = publish_checkout("order-13")
    client.xreadgroup(GROUP, "ghost", {names.stream: ">"})
    client.xclaim(names.stream, GROUP, "ghost", 0, [message_id], idle=60_000)
    client.xdel(names.stream, message_id)
    # when a live consumer reclaims pending entries
    handled = consumer.run_once()
    # then XAUTOCLAIM drops the vanished entry, and the loss is logged as an error
    assert handled == []
    assert pending(client, names) == []
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"1 pending entries of {names.stream} were trimmed before being acked (lost): {message_id}"
    ]


def test_pending_entry_without_fields_is_acked_as_gone(
    client, names, demo, demo_context, publish_checkout
):
    # given a pending entry whose record was deleted: re-reading a consumer's own pending
    # entries returns it with no fields
    consumer = make_consumer(client, names)
    message_id = publish_checkout("order-14")
    client.xreadgroup(GROUP, "consumer-a", {names.stream: ">"})
    client.xdel(names.stream, message_id)
    entries: Any = client.xreadgroup(GROUP, "consumer-a", {names.stream: "0"})
    [(entry_id, fields)] = entries[0][1]
    assert fields == {}
    # when the consumer handles it
    outcome = consumer.handle(entry_id, fields)
    # then it is acked as gone: no event, no dead letter
    assert outcome is Outcome.GONE
    assert pending(client, names) == []
    assert dead_letters(client, names) == []
    assert not Event.objects.exists()


def test_stop_finishes_the_current_message_and_releases_the_rest(
    client, names, demo, demo_context, publish_checkout
):
    # given three messages and a consumer asked to stop while it handles the first
    class StoppedDuringFirst(StreamConsumer):
        def handle(self, *args: Any, **kwargs: Any) -> Outcome:
            self.request_stop()
            return super().handle(*args, **kwargs)

    consumer = StoppedDuringFirst(client, make_consumer(client, names).config)
    ids = [publish_checkout(f"order-{n}") for n in (7, 8, 9)]
    # when it runs its round
    handled = consumer.run_once()
    # then the first message is finished and acked, the other two are handed back: still
    # delivered once, but idle enough for any consumer's next XAUTOCLAIM
    assert handled == [Handled(ids[0], Outcome.ACCEPTED)]
    assert [(p["id"], p["deliveries"]) for p in pending(client, names)] == [
        (ids[1], 1),
        (ids[2], 1),
    ]
    assert all(p["idle"] >= RELEASED_IDLE_MS for p in pending(client, names))
    other = make_consumer(client, names, name="consumer-b")
    assert other.run_once() == [
        Handled(ids[1], Outcome.ACCEPTED),
        Handled(ids[2], Outcome.ACCEPTED),
    ]
    assert sorted(Event.objects.values_list("key", flat=True)) == ["order-7", "order-8", "order-9"]
    assert pending(client, names) == []


# --- real processes ----------------------------------------------------------------------------


def test_event_over_the_stream_is_decided_by_the_worker(
    client, names, start_consumer, worker, demo, demo_context, publish_checkout
):
    # given the consumer command and a worker running
    consumer = start_consumer("consumer-e2e")
    # when an event is published on the stream
    publish_checkout("order-10", source="shop")
    # then it is committed, acked, and decided by the worker
    event: Any = wait_for(
        lambda: (
            Event.objects.filter(key="order-10", status="completed")
            .select_related("execution")
            .first()
        )
    )
    assert [r["name"] for r in event.execution.matched_rules] == [
        "Free shipping banner",
        "Age-restricted items need confirmation",
        "Count checkouts and show loyalty",
    ]
    wait_for(lambda: pending(client, names) == [])
    assert dead_letters(client, names) == []
    # and SIGTERM stops the consumer cleanly
    consumer.stop()
    assert consumer.proc is not None and consumer.proc.returncode == 0, consumer.log_tail()
    assert "ingress_consume stopped: consumer=consumer-e2e" in consumer.log_tail()


def test_consumer_killed_before_ack_is_reclaimed_and_processed_once(
    client, names, start_consumer, worker, demo, demo_context, publish_checkout
):
    # given consumer A, stuck inside its accept transaction (the event table is locked)
    first = start_consumer("consumer-a")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Event._meta.db_table} IN EXCLUSIVE MODE")
        message_id = publish_checkout("order-11", source="shop")
        wait_for(lambda: [p["consumer"] for p in pending(client, names)] == ["consumer-a"])
        wait_for(lambda: _waiting_on_a_lock())
        # when A is killed after reading but before committing and acking
        first.kill()
    # then the entry is still pending on A, delivered once and never acked (A's accept is one
    # statement, which the database may still finish without A: at most one row, not decided)
    assert list(Event.objects.values_list("status", flat=True)) in ([], ["received"])
    assert [(p["id"], p["consumer"], p["deliveries"]) for p in pending(client, names)] == [
        (message_id, "consumer-a", 1)
    ]
    # and when consumer B starts, it reclaims the entry and it is processed exactly once (a
    # repeat of an event still received rings for its processing)
    second = start_consumer("consumer-b", "--claim-min-idle-ms", "300", "--reclaim-interval", "0.2")
    event: Any = wait_for(lambda: Event.objects.filter(key="order-11", status="completed").first())
    wait_for(lambda: pending(client, names) == [])
    assert Event.objects.filter(key="order-11").count() == 1
    assert event.attempts == 1
    assert Execution.objects.filter(request_id=str(event.pk)).count() == 1
    assert dead_letters(client, names) == []
    assert "reclaimed 1 idle entries" in second.log_tail()


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            [Event._meta.db_table],
        )
        return bool(cursor.fetchone()[0])


def _admin_sql(sql: str, params: list[Any] | None = None) -> None:
    """Run SQL from the maintenance database (a database cannot refuse its own sessions)."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(sql, params)


def test_database_outage_is_retried_not_dead_lettered(
    client, names, start_consumer, demo, demo_context, publish_checkout
):
    # given a running consumer that holds a database session
    app_name = f"verdict-test-consumer-{uuid.uuid4().hex[:8]}"
    consumer = start_consumer(
        "consumer-db",
        "--backoff-max",
        "0.3",
        DATABASE_URL=f"{database_url()}?application_name={app_name}",
    )
    publish_checkout("order-warm")
    wait_for(lambda: Event.objects.filter(key="order-warm", status="completed").exists())
    db_name = connection.settings_dict["NAME"]
    try:
        # when the database drops that session and refuses new ones while an event arrives
        _admin_sql(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS false')
        _admin_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [app_name],
        )
        message_id = publish_checkout("order-12")
        wait_for(lambda: consumer.log_tail(200).count("database unavailable") >= 3)
        # then it is retried, not dead-lettered: still pending, delivered once, no row yet
        assert [(p["id"], p["deliveries"]) for p in pending(client, names)] == [(message_id, 1)]
        assert dead_letters(client, names) == []
        assert not Event.objects.filter(key="order-12").exists()
    finally:
        _admin_sql(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true')
    # and once the database is back, it is committed and acked
    wait_for(lambda: Event.objects.filter(key="order-12").exists())
    wait_for(lambda: pending(client, names) == [])
    assert dead_letters(client, names) == []
    assert consumer.alive()


# --- the command: Redis outages, configuration ---------------------------------------------------


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
