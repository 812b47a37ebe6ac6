"""Redis Streams ingress: the consumer behind `manage.py ingress_consume`, and a producer helper.

Message format
--------------
Producers XADD one entry per message to the ingress stream (`VERDICT["INGRESS_STREAM"]`,
default `verdict:events`) with one field, `data`, holding a JSON object:

    {"kind": "event", "type": "checkout", "key": "order-1", "payload": {...},
     "source": "shop", "subject": "user-42"}
    {"kind": "cancel", "key": "order-1", "source": "shop", "reason": "order withdrawn"}

An event message is the body of `POST /new-event` plus `"kind": "event"`; a cancel message is
the body of `POST /api/events/cancel/` plus `"kind": "cancel"`. `source` defaults to `"stream"`
(so a stream event and a REST event with the same key are different events unless the producer
names the same source), `subject` and `reason` are optional. The REST limits apply: `type` at
most 100 characters, `key` 200, `subject` and `reason` 200, `source` matching `SOURCE_PATTERN`,
`payload` a JSON object, `data` at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes and MAX_JSON_DEPTH
deep, no NaN/Infinity. Unknown fields are ignored, so producers may add fields first.
`publish_event` and `publish_cancel` write such messages.

Guarantees of the consumer (`StreamConsumer`, one per process, any number per group)
-------------------------------------------------------------------------------------
* At least once, applied once: a message is XACKed only after its service call committed
  (the event row, the cancellation, or the remembered early cancellation). A crash between
  commit and XACK delivers the message again, and the (source, key) idempotency of
  `event_accept` makes that second delivery return the stored event.
* Cancellations travel on the same stream; one that arrives before its event is stored by
  `event_cancel_by_key` and applied by `event_accept` when the event arrives.
* Poison messages (no `data`, not UTF-8/JSON, not an object, unknown `kind`, missing or
  mistyped fields, unknown event type, payload failing the entry point's schema, a value
  PostgreSQL refuses such as `\\u0000`) are copied to the dead-letter stream
  (`INGRESS_DEAD_LETTER_STREAM`, default `verdict:events:dead`) and acked, atomically (MULTI).
  A dead letter holds the original fields plus `code` (machine-readable), `reason` (human,
  with every JSON path), `details` (JSON list of {path, message}), `original_id`, `stream`,
  `group` and `consumer`; an original field with one of those names is kept as
  `original_<name>`.
* A database outage is not poison: the message stays pending (not acked), the consumer retries
  it in place with capped, jittered backoff and keeps its claim fresh (XCLAIM JUSTID, which does
  not count as a delivery) so no other consumer takes it meanwhile. Only if the database answers
  a health probe and the message still fails three times in a row is it left pending for
  redelivery (see the delivery limit below).
* Any other error while applying a message (a bug) is logged and the message left pending: it
  comes back through XAUTOCLAIM after INGRESS_CLAIM_MIN_IDLE_MS, at most INGRESS_MAX_DELIVERIES
  times, then it is dead-lettered. The stream keeps flowing meanwhile.
* Redis connection errors: the round is abandoned, the consumer reconnects with capped backoff
  and first re-reads its own pending entries; a stream or group that vanished (Redis restarted
  without persistence) is created again.
* Dead consumers: every INGRESS_RECLAIM_INTERVAL seconds each consumer XAUTOCLAIMs entries idle
  for INGRESS_CLAIM_MIN_IDLE_MS and handles them like new ones. An entry delivered more than
  INGRESS_MAX_DELIVERIES times (it keeps killing or stalling its consumers) is dead-lettered
  with reason "delivered N times".
* Stop (SIGTERM/SIGINT in the command): the current message is finished; entries of the batch
  not started yet are released (their idle time set high, without counting a delivery) so the
  next XAUTOCLAIM of any consumer takes them at once.

The group is created at id 0 with MKSTREAM, so messages published before the first consumer
started are consumed too. Producers may cap the stream (`maxlen`), but only well above the
backlog: trimming an entry that was never acked loses it (the consumer logs such entries).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import (
    DataError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from ingress import services
from ingress.serializers import SOURCE_PATTERN
from rules_engine.api.parsers import json_depth_exceeds
from rules_engine.errors import Conflict, ErrorDetail, InvalidInput, NotFound
from rules_engine.json_text import duplicate_key_path, out_of_range_integer_path
from rules_engine.paths import json_path, json_type

logger = logging.getLogger(__name__)

DEFAULT_STREAM = "verdict:events"
DEFAULT_GROUP = "verdict-ingress"
DEFAULT_DEAD_LETTER_STREAM = "verdict:events:dead"
DEFAULT_SOURCE = "stream"
DATA_FIELD = "data"
DEAD_LETTER_FIELDS = frozenset(
    {"code", "reason", "details", "original_id", "stream", "group", "consumer"}
)
# A released entry looks idle this long, so the next XAUTOCLAIM of any consumer takes it.
# Redis clamps idle times beyond "now" to now, so keep it far below the epoch in ms.
RELEASED_IDLE_MS = 86_400_000
# Consecutive database errors tolerated for one message while the database itself answers.
DB_FAILURES_WHILE_HEALTHY = 3

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)

_SOURCE = re.compile(SOURCE_PATTERN)


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventMessage:
    """An event to accept: the body of POST /new-event."""

    type: str
    key: str
    payload: dict[str, Any]
    source: str = DEFAULT_SOURCE
    subject: str = ""


@dataclass(frozen=True)
class CancelMessage:
    """A cancellation by (source, key): the body of POST /api/events/cancel/."""

    key: str
    source: str = DEFAULT_SOURCE
    reason: str = ""


class PoisonMessage(Exception):
    """A message that can never be processed; the consumer dead-letters it.

    `code` is machine-readable (missing_data, too_large, invalid_json, invalid_message,
    unknown_kind, unknown_event_type, invalid_context, rejected_by_database,
    too_many_deliveries); `reason` is the human summary including every detail's path.
    """

    def __init__(self, code: str, message: str, details: Iterable[ErrorDetail] = ()) -> None:
        self.code = code
        self.message = message
        self.details: list[ErrorDetail] = sorted(details, key=lambda d: (d["path"], d["message"]))
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """The message, followed by `path: message` of each detail."""
        if not self.details:
            return self.message
        listed = "; ".join(f"{d['path']}: {d['message']}" for d in self.details)
        return f"{self.message}: {listed}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: Mapping[Any, Any], name: str) -> Any:
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser would accept them otherwise.
    raise ValueError(f"{name} is not valid JSON")


class _Fields:
    """Collects type errors of a message body, each with its JSON path."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.errors: list[ErrorDetail] = []

    def error(self, name: str, message: str) -> None:
        self.errors.append({"path": json_path([name]), "message": message})

    def text(
        self,
        name: str,
        *,
        max_length: int,
        required: bool = False,
        default: str = "",
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = self.body.get(name)
        if value is None:
            if required:
                self.error(name, "required")
            return default
        if not isinstance(value, str):
            self.error(name, f"must be a string, not {json_type(value)}")
        elif required and not value:
            self.error(name, "must not be empty")
        elif len(value) > max_length:
            self.error(name, f"must be at most {max_length} characters")
        elif pattern is not None and not pattern.fullmatch(value):
            self.error(name, f"must match {pattern.pattern}")
        else:
            return value
        return default

    def object(self, name: str) -> dict[str, Any]:
        value = self.body.get(name)
        if value is None:
            self.error(name, "required")
        elif not isinstance(value, dict):
            self.error(name, f"must be a JSON object, not {json_type(value)}")
        else:
            return value
        return {}


def parse_message(fields: Mapping[Any, Any]) -> EventMessage | CancelMessage:
    """Decode and check one stream entry's fields (bytes or str). Raises PoisonMessage."""
    raw = _field(fields, DATA_FIELD)
    if raw is None:
        raise PoisonMessage("missing_data", f"the message has no {DATA_FIELD!r} field")
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 256 * 1024
    if len(data) > limit:
        raise PoisonMessage("too_large", f"data is larger than {limit} bytes")
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise PoisonMessage("invalid_json", "data is not UTF-8") from exc
    except RecursionError as exc:
        raise PoisonMessage("invalid_json", "data is nested too deep") from exc
    except ValueError as exc:
        raise PoisonMessage("invalid_json", f"data is not valid JSON: {exc}") from exc
    max_depth = int(settings.VERDICT["MAX_JSON_DEPTH"])
    if json_depth_exceeds(body, max_depth):
        raise PoisonMessage("invalid_json", f"data is nested deeper than {max_depth} levels")
    if (where := out_of_range_integer_path(data)) is not None:
        # Stored and sent on as JSON numbers, it could not be kept exactly (as over HTTP).
        raise PoisonMessage("invalid_json", f"data holds an integer beyond 64 bits at {where}")
    if (where := duplicate_key_path(data, body)) is not None:
        raise PoisonMessage("invalid_json", f"data names a key twice at {where}")
    if not isinstance(body, dict):
        raise PoisonMessage("invalid_message", f"data must be a JSON object, not {json_type(body)}")
    kind = body.get("kind")
    if kind not in ("event", "cancel"):
        shown = json.dumps(kind) if "kind" in body else "nothing"
        raise PoisonMessage("unknown_kind", f'kind must be "event" or "cancel", not {shown}')
    check = _Fields(body)
    source = check.text("source", max_length=100, default=DEFAULT_SOURCE, pattern=_SOURCE)
    message: EventMessage | CancelMessage
    if kind == "event":
        message = EventMessage(
            type=check.text("type", max_length=100, required=True),
            key=check.text("key", max_length=200, required=True),
            payload=check.object("payload"),
            source=source,
            subject=check.text("subject", max_length=200),
        )
    else:
        message = CancelMessage(
            key=check.text("key", max_length=200, required=True),
            source=source,
            reason=check.text("reason", max_length=200),
        )
    if check.errors:
        raise PoisonMessage("invalid_message", f"invalid {kind} message", check.errors)
    return message


# --- producer ---------------------------------------------------------------------------------


def ingress_setting(name: str, default: Any) -> Any:
    """One INGRESS_* knob from settings.VERDICT, or `default` when it is not configured."""
    return getattr(settings, "VERDICT", {}).get(f"INGRESS_{name}", default)


def redis_client(url: str | None = None, *, block_ms: int = 1000) -> redis.Redis:
    """A Redis client for the ingress streams (REDIS_URL unless `url` is given).

    Replies stay bytes, so a message that is not UTF-8 is dead-lettered instead of failing the
    whole read. redis-py's own retries are off: a lost XREADGROUP reply would otherwise be
    retried silently, leaving entries pending that nobody handles until they are reclaimed; the
    consumer retries itself and re-reads its pending entries. Raises ImproperlyConfigured when
    no URL is configured.
    """
    url = url or settings.REDIS_URL
    if not url:
        raise ImproperlyConfigured("REDIS_URL is not set: the Redis Streams ingress needs Redis")
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        # The socket must outlive the longest XREADGROUP BLOCK.
        socket_timeout=block_ms / 1000 + 5,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )


def _publish(
    client: redis.Redis, body: dict[str, Any], stream: str | None, maxlen: int | None
) -> str:
    message_id = client.xadd(
        stream or ingress_setting("STREAM", DEFAULT_STREAM),
        {DATA_FIELD: json.dumps(body, separators=(",", ":"))},
        maxlen=maxlen,
        approximate=True,
    )
    return _text(message_id)


def publish_event(
    client: redis.Redis,
    *,
    type: str,
    key: str,
    payload: dict[str, Any],
    source: str | None = None,
    subject: str | None = None,
    stream: str | None = None,
    maxlen: int | None = None,
) -> str:
    """XADD one event message to the ingress stream; returns its stream id.

    `maxlen` trims the stream approximately (only safe well above the consumers' backlog).
    Raises redis errors.
    """
    body: dict[str, Any] = {"kind": "event", "type": type, "key": key, "payload": payload}
    if source is not None:
        body["source"] = source
    if subject is not None:
        body["subject"] = subject
    return _publish(client, body, stream, maxlen)


def publish_cancel(
    client: redis.Redis,
    *,
    key: str,
    source: str | None = None,
    reason: str | None = None,
    stream: str | None = None,
    maxlen: int | None = None,
) -> str:
    """XADD one cancellation of (source, key) to the ingress stream; returns its stream id.

    Raises redis errors.
    """
    body: dict[str, Any] = {"kind": "cancel", "key": key}
    if source is not None:
        body["source"] = source
    if reason is not None:
        body["reason"] = reason
    return _publish(client, body, stream, maxlen)


# --- consumer ---------------------------------------------------------------------------------


def default_consumer_name() -> str:
    """`<hostname>-<pid>`: unique per process, so a restarted process never owns old entries."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ConsumerConfig:
    """Where and how one consumer reads; `from_settings` fills it from VERDICT INGRESS_*."""

    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    consumer: str = field(default_factory=default_consumer_name)
    dead_letter_stream: str = DEFAULT_DEAD_LETTER_STREAM
    count: int = 100
    block_ms: int = 1000
    claim_min_idle_ms: int = 30_000
    reclaim_interval: float = 5.0
    max_deliveries: int = 5
    backoff_initial: float = 0.2
    backoff_max: float = 5.0

    @classmethod
    def from_settings(cls, **overrides: Any) -> ConsumerConfig:
        """Settings (VERDICT INGRESS_*) with `overrides` on top; None overrides are ignored."""
        values: dict[str, Any] = {
            "stream": ingress_setting("STREAM", DEFAULT_STREAM),
            "group": ingress_setting("GROUP", DEFAULT_GROUP),
            "dead_letter_stream": ingress_setting("DEAD_LETTER_STREAM", DEFAULT_DEAD_LETTER_STREAM),
            "claim_min_idle_ms": int(ingress_setting("CLAIM_MIN_IDLE_MS", 30_000)),
            "reclaim_interval": float(ingress_setting("RECLAIM_INTERVAL", 5.0)),
            "max_deliveries": int(ingress_setting("MAX_DELIVERIES", 5)),
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


class Outcome(StrEnum):
    """What the consumer did with one message."""

    ACCEPTED = "accepted"  # a new event row (cancelled at once if its cancellation came first)
    DUPLICATE = "duplicate"  # the (source, key) was known: nothing written
    CANCELLED = "cancelled"  # the existing event went through event_cancel
    CANCEL_STORED = "cancel_stored"  # no such event yet: the cancellation waits for it
    DEAD_LETTERED = "dead_lettered"
    LEFT_PENDING = "left_pending"  # not acked; redelivered later (database trouble, bug)
    GONE = "gone"  # deleted from the stream while pending: acked, reported as lost


class Handled(NamedTuple):
    """One message and what became of it."""

    message_id: str
    outcome: Outcome


class StreamConsumer:
    """One consumer of the ingress group: reads batches, applies each message once, acks.

    `run()` loops until `request_stop()`; `run_once()` is one round (tests call it directly).
    Must run in autocommit mode (not inside `atomic`): each message commits on its own before
    its XACK. See the module docstring for the guarantees.
    """

    def __init__(self, client: redis.Redis, config: ConsumerConfig) -> None:
        self.client = client
        self.config = config
        self.stop_event = threading.Event()
        self._next_reclaim = 0.0
        self._reclaim_cursor = "0-0"
        # A consumer name may be reused (--consumer): its own pending entries come first.
        self._own_pending_cursor: str | None = "0"
        # Ids of the current batch's messages to XACK at its end (None outside a batch).
        self._acks: list[str] | None = None

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self.stop_event.is_set()

    def request_stop(self) -> None:
        """Finish the current message, release the rest of the batch, leave `run()`."""
        self.stop_event.set()

    def ensure_group(self) -> None:
        """Create the stream and the group at id 0 unless the group exists. Raises redis errors."""
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Consume until `request_stop()`; never raises for Redis, database or message errors.

        `on_ready` is called once, when the group exists and reading starts.
        """
        failures = 0
        group_ready = False
        announced = False
        while not self.stopping:
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                    if not announced and on_ready is not None:
                        on_ready()
                    announced = True
                self.run_once()
                failures = 0
            except REDIS_UNAVAILABLE as exc:
                failures += 1
                self._own_pending_cursor = "0"
                delay = self._backoff(failures)
                logger.warning("Redis unavailable (%s); reconnecting in %.2f s", exc, delay)
                self.stop_event.wait(delay)
            except redis.ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    logger.warning("stream or group vanished (%s); creating it again", exc)
                    group_ready = False
                    continue
                failures += 1
                delay = self._backoff(failures)
                logger.error("Redis refused a command (%s); retrying in %.2f s", exc, delay)
                self.stop_event.wait(delay)
            except Exception:
                # Crashing would only restart the process into the same state: log and retry.
                failures += 1
                delay = self._backoff(failures)
                logger.exception("consumer round failed; retrying in %.2f s", delay)
                self.stop_event.wait(delay)

    def run_once(self) -> list[Handled]:
        """One round: reclaim idle entries when due, then read one batch and handle it.

        Returns each handled message with its outcome. Raises redis errors (`run` backs off).
        """
        if not connection.in_atomic_block:
            # Long-running process: drop connections that broke or outlived CONN_MAX_AGE.
            close_old_connections()
        handled: list[Handled] = []
        if time.monotonic() >= self._next_reclaim:
            handled += self.reclaim()
            self._next_reclaim = time.monotonic() + self.config.reclaim_interval
        if self._own_pending_cursor is not None:
            entries = self._read(self._own_pending_cursor, block_ms=None)
            if entries:
                self._own_pending_cursor = _text(entries[-1][0])
                return handled + self._handle_batch(entries, counted=True)
            self._own_pending_cursor = None
        block_ms = None if handled else self.config.block_ms
        return handled + self._handle_batch(self._read(">", block_ms=block_ms), counted=False)

    def reclaim(self) -> list[Handled]:
        """XAUTOCLAIM entries idle for `claim_min_idle_ms` (any consumer's) and handle them.

        Walks the pending list across calls with XAUTOCLAIM's cursor. Raises redis errors.
        """
        reply: Any = self.client.xautoclaim(
            self.config.stream,
            self.config.group,
            self.config.consumer,
            min_idle_time=self.config.claim_min_idle_ms,
            start_id=self._reclaim_cursor,
            count=self.config.count,
        )
        self._reclaim_cursor = _text(reply[0])
        entries = [(mid, fields) for mid, fields in reply[1] if mid is not None]
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            logger.error(
                "%d pending entries of %s were trimmed before being acked (lost): %s",
                len(deleted),
                self.config.stream,
                ", ".join(_text(d) for d in deleted),
            )
        if entries:
            logger.info("reclaimed %d idle entries from %s", len(entries), self.config.stream)
        return self._handle_batch(entries, counted=True)

    def handle(
        self,
        message_id: Any,
        fields: Mapping[Any, Any] | None,
        *,
        deliveries: int = 1,
        held: Sequence[str] = (),
    ) -> Outcome:
        """Apply one message through the services, then XACK it (or dead-letter it).

        `deliveries` is the entry's delivery count; `held` are the ids this consumer holds and
        keeps claimed while it waits for the database. Raises redis errors.
        """
        message_id = _text(message_id)
        if not fields:
            # XADD needs a field, so no fields means the entry was deleted (XDEL, trimming)
            # while pending: there is nothing left to apply, only a loss to report.
            logger.error(
                "pending entry %s was deleted from %s before being acked (lost)",
                message_id,
                self.config.stream,
            )
            self._ack(message_id)
            return Outcome.GONE
        try:
            if deliveries > self.config.max_deliveries:
                raise PoisonMessage("too_many_deliveries", f"delivered {deliveries} times")
            message = parse_message(fields)
            outcome = self._apply_with_retry(message_id, message, held or [message_id])
        except PoisonMessage as poison:
            self.dead_letter(message_id, fields, poison)
            return Outcome.DEAD_LETTERED
        if outcome is not Outcome.LEFT_PENDING:
            self._ack(message_id)
        return outcome

    def dead_letter(
        self, message_id: str, fields: Mapping[Any, Any], poison: PoisonMessage
    ) -> None:
        """Copy the entry to the dead-letter stream with the reason and ack it, in one MULTI."""
        entry: dict[Any, Any] = {}
        for name, value in fields.items():
            text = _text(name)
            entry[f"original_{text}" if text in DEAD_LETTER_FIELDS else name] = value
        entry.update(
            code=poison.code,
            reason=poison.reason[:4000],
            details=json.dumps(poison.details),
            original_id=message_id,
            stream=self.config.stream,
            group=self.config.group,
            consumer=self.config.consumer,
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.config.dead_letter_stream, entry)
        pipe.xack(self.config.stream, self.config.group, message_id)
        pipe.execute()
        logger.warning(
            "message %s dead-lettered to %s: %s: %s",
            message_id,
            self.config.dead_letter_stream,
            poison.code,
            poison.reason[:500],
        )

    # -- internals --

    def _read(self, start: str, *, block_ms: int | None) -> list[tuple[Any, Any]]:
        reply: Any = self.client.xreadgroup(
            self.config.group,
            self.config.consumer,
            {self.config.stream: start},
            count=self.config.count,
            block=block_ms,
        )
        if not reply:
            return []
        return list(reply[0][1])

    def _handle_batch(self, entries: list[tuple[Any, Any]], *, counted: bool) -> list[Handled]:
        if not entries:
            return []
        # A batch's XACKs go out together at its end, and its accepts ring the event doorbell
        # at most twice (see services.events_ringing_together): two Redis round trips per
        # batch instead of two per message. A crash before the XACK redelivers messages whose
        # rows are committed: accepting them again finds the stored events.
        self._acks = []
        try:
            with services.events_ringing_together():
                return self._handle_entries(entries, counted=counted)
        finally:
            acks, self._acks = self._acks, None
            if acks:
                self.client.xack(self.config.stream, self.config.group, *acks)

    def _handle_entries(self, entries: list[tuple[Any, Any]], *, counted: bool) -> list[Handled]:
        ids = [_text(mid) for mid, _ in entries]
        # New entries (">") were delivered once; reclaimed or re-read ones say how often.
        deliveries = self._delivery_counts(ids) if counted else {}
        handled: list[Handled] = []
        for index, (message_id, fields) in enumerate(entries):
            if self.stopping:
                self._release(ids[index:])
                break
            outcome = self.handle(
                message_id, fields, deliveries=deliveries.get(ids[index], 1), held=ids[index:]
            )
            handled.append(Handled(ids[index], outcome))
            if outcome is Outcome.LEFT_PENDING and self.stopping:
                self._release(ids[index:])
                break
        return handled

    def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for message_id in ids:
            pipe.xpending_range(
                self.config.stream, self.config.group, min=message_id, max=message_id, count=1
            )
        counts: dict[str, int] = {}
        for rows in pipe.execute():
            for row in rows:
                counts[_text(row["message_id"])] = int(row["times_delivered"])
        return counts

    def _apply_with_retry(
        self, message_id: str, message: EventMessage | CancelMessage, held: Sequence[str]
    ) -> Outcome:
        failures = 0
        while True:
            try:
                return self._apply(message)
            except DATABASE_UNAVAILABLE as exc:
                failures += 1
                connections.close_all()
                if self._database_answers() and failures >= DB_FAILURES_WHILE_HEALTHY:
                    logger.error(
                        "message %s failed %d times with a database error while the database "
                        "answers; left pending for redelivery: %s",
                        message_id,
                        failures,
                        exc,
                    )
                    return Outcome.LEFT_PENDING
                delay = self._backoff(failures)
                logger.warning(
                    "database unavailable (%s); message %s stays pending, retry %d in %.2f s",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    message_id,
                    failures,
                    delay,
                )
                if self.stop_event.wait(delay):
                    return Outcome.LEFT_PENDING
                self._renew(held)
            except (PoisonMessage, *REDIS_UNAVAILABLE):
                raise
            except Exception:
                # A bug must not stop the stream; redelivery is bounded by max_deliveries.
                logger.exception(
                    "message %s could not be handled; left pending, redelivered after %d ms "
                    "idle, dead-lettered after %d deliveries",
                    message_id,
                    self.config.claim_min_idle_ms,
                    self.config.max_deliveries,
                )
                return Outcome.LEFT_PENDING

    def _apply(self, message: EventMessage | CancelMessage) -> Outcome:
        if isinstance(message, CancelMessage):
            event = services.event_cancel_by_key(
                source=message.source, key=message.key, reason=message.reason
            )
            return Outcome.CANCEL_STORED if event is None else Outcome.CANCELLED
        try:
            _event, created = services.event_accept(
                type=message.type,
                key=message.key,
                payload=message.payload,
                source=message.source,
                subject=message.subject,
            )
        except (NotFound, Conflict) as exc:
            raise PoisonMessage(exc.code, exc.message) from exc
        except InvalidInput as exc:
            raise PoisonMessage(
                exc.code, f"payload does not match the schema of {message.type!r}", exc.details
            ) from exc
        except DataError as exc:
            # PostgreSQL refuses the value itself (e.g. \u0000 in a JSON string): never fixable.
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "data error"
            raise PoisonMessage("rejected_by_database", first_line) from exc
        return Outcome.ACCEPTED if created else Outcome.DUPLICATE

    def _database_answers(self) -> bool:
        try:
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DATABASE_UNAVAILABLE:
            connections.close_all()
            return False
        return True

    def _ack(self, message_id: str) -> None:
        if self._acks is not None:  # inside a batch: sent with the others at its end
            self._acks.append(message_id)
        else:
            self.client.xack(self.config.stream, self.config.group, message_id)

    def _renew(self, ids: Sequence[str]) -> None:
        # XCLAIM resets the idle time; JUSTID keeps the delivery count as it is.
        try:
            self.client.xclaim(
                self.config.stream,
                self.config.group,
                self.config.consumer,
                0,
                list(ids),
                justid=True,
            )
        except redis.RedisError:
            logger.warning("could not renew the claim on %d entries", len(ids), exc_info=True)

    def _release(self, ids: Sequence[str]) -> None:
        try:
            self.client.xclaim(
                self.config.stream,
                self.config.group,
                self.config.consumer,
                0,
                list(ids),
                idle=RELEASED_IDLE_MS,
                justid=True,
            )
        except redis.RedisError:
            # They are still pending: XAUTOCLAIM takes them once they are idle long enough.
            logger.warning("could not release %d entries", len(ids), exc_info=True)
            return
        logger.info("released %d unstarted entries for other consumers", len(ids))

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
        # Jitter keeps consumers that failed together from retrying together.
        return ceiling * random.uniform(0.5, 1.0)
