"""Channels: how one delivery is sent to its destination (webhook POST, Redis stream XADD).

A channel makes exactly one attempt and reports it as a SendResult; it never touches the
database, so no transaction is open while it waits on the network. Retrying, recording and
dead-lettering are `egress.services`' job.

Webhook requests carry:

    Content-Type: application/json            (body: canonical JSON of the payload)
    X-Verdict-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>
    Idempotency-Key / X-Verdict-Delivery: <delivery id>   (the same on every retry)
    User-Agent: Verdict
    X-Request-ID: <id of the request that led to it>   (when known; config/logging.py)

A receiver verifies by recomputing the HMAC over the timestamp, a dot and the raw body, and
should refuse timestamps far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from django.conf import settings

from config.logging import request_id_headers
from egress.models import Delivery, Destination

USER_AGENT = "Verdict"
SIGNATURE_HEADER = "X-Verdict-Signature"
# How much of a response body is kept with the attempt (enough to read an error message).
RESPONSE_EXCERPT_BYTES = 500

# Publishes to a stream at most once per delivery: the first call XADDs and remembers the
# entry id under the dedupe key; a retry after a lost answer (or a worker killed after the
# XADD) gets the same entry id back instead of adding the message again.
PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then
  return existing
end
local id
if tonumber(ARGV[3]) > 0 then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
                  'delivery_id', ARGV[1], 'data', ARGV[2])
else
  id = redis.call('XADD', KEYS[2], '*', 'delivery_id', ARGV[1], 'data', ARGV[2])
end
redis.call('SET', KEYS[1], id, 'EX', ARGV[4])
return id
"""


@dataclass(frozen=True)
class SendResult:
    """The outcome of one attempt: ok, the HTTP status (webhooks), the error, the answer.

    `retry_after` is the receiver's Retry-After in seconds, when it sent one.
    """

    ok: bool
    status_code: int | None = None
    error: str = ""
    response: str = ""
    retry_after: float | None = None


def _egress_setting(name: str, default: float) -> float:
    return float(getattr(settings, "VERDICT", {}).get(name, default))


def canonical_body(payload: Any) -> bytes:
    """The bytes sent and signed: compact JSON with sorted keys, the same on every retry."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The X-Verdict-Signature value: `t=<timestamp>,v1=<hex HMAC-SHA256>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def send(*, destination: Destination, delivery: Delivery) -> SendResult:
    """Make one attempt to send `delivery` through its destination's channel. Raises nothing
    for network failures (they are a failed SendResult); unexpected errors propagate."""
    if destination.kind == Destination.Kind.WEBHOOK:
        return send_webhook(
            destination=destination, delivery_id=str(delivery.pk), payload=delivery.payload
        )
    if destination.kind == Destination.Kind.REDIS_STREAM:
        return send_stream(
            destination=destination, delivery_id=str(delivery.pk), payload=delivery.payload
        )
    return SendResult(ok=False, error=f"unknown destination kind {destination.kind!r}")


# --- webhooks ------------------------------------------------------------------------------

_client_lock = threading.Lock()
_http_client: httpx.Client | None = None


def http_client() -> httpx.Client:
    """The process's HTTP client (connection pool), created on first use.

    Created lazily so each forked worker process gets its own pool. Redirects are never
    followed: a destination is a registered URL, and a redirect could point anywhere.
    """
    global _http_client
    with _client_lock:
        if _http_client is None:
            _http_client = httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})
        return _http_client


def send_webhook(*, destination: Destination, delivery_id: str, payload: Any) -> SendResult:
    """POST the signed payload once; 2xx is delivered, anything else (3xx too) a failure."""
    body = canonical_body(payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret=destination.secret, timestamp=timestamp, body=body),
        "Idempotency-Key": delivery_id,
        "X-Verdict-Delivery": delivery_id,
        # The id of the request that led to this delivery, when the sending task carries one.
        **request_id_headers(),
    }
    timeout = httpx.Timeout(destination.timeout_seconds)
    try:
        with http_client().stream(
            "POST", destination.url, content=body, headers=headers, timeout=timeout
        ) as response:
            excerpt = _read_excerpt(response)
    except httpx.TimeoutException as exc:
        return SendResult(
            ok=False,
            error=f"timed out after {destination.timeout_seconds:g} s ({type(exc).__name__})",
        )
    except httpx.HTTPError as exc:
        return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    code = response.status_code
    if 200 <= code < 300:
        return SendResult(ok=True, status_code=code, response=excerpt)
    if 300 <= code < 400:
        location = response.headers.get("Location", "")
        error = f"HTTP {code}: redirect to {location!r} not followed"
    else:
        error = f"HTTP {code}"
    return SendResult(
        ok=False,
        status_code=code,
        error=error,
        response=excerpt,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _read_excerpt(response: httpx.Response) -> str:
    """The start of the body; the rest is never read (a receiver may answer with megabytes)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_EXCERPT_BYTES:
            break
    return b"".join(chunks)[:RESPONSE_EXCERPT_BYTES].decode(errors="replace")


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta-seconds form; an HTTP date is ignored)."""
    if not value or not value.strip().isdigit():
        return None
    return float(value.strip())


# --- Redis streams -------------------------------------------------------------------------

_redis_lock = threading.Lock()
_redis_clients: dict[tuple[str, float], tuple[redis.Redis, Any]] = {}


def _stream_client(timeout: float) -> tuple[redis.Redis, Any]:
    """A Redis client on settings.REDIS_URL with this timeout, and its publish-once script."""
    url = settings.REDIS_URL
    if not url:
        raise redis.ConnectionError("no Redis is configured (REDIS_URL is empty)")
    with _redis_lock:
        entry = _redis_clients.get((url, timeout))
        if entry is None:
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            entry = (client, client.register_script(PUBLISH_ONCE))
            _redis_clients[(url, timeout)] = entry
        return entry


def send_stream(*, destination: Destination, delivery_id: str, payload: Any) -> SendResult:
    """XADD `{delivery_id, data: <JSON>}` to the destination's stream, at most once per id."""
    _client, publish_once = _stream_client(destination.timeout_seconds)
    maxlen = int(_egress_setting("EGRESS_STREAM_MAXLEN", 0))
    dedupe_ttl = int(_egress_setting("EGRESS_STREAM_DEDUPE_SECONDS", 7 * 24 * 3600))
    try:
        entry_id = publish_once(
            keys=[f"verdict:egress:published:{delivery_id}", destination.stream],
            args=[delivery_id, canonical_body(payload).decode(), maxlen, dedupe_ttl],
        )
    except redis.TimeoutError as exc:
        return SendResult(
            ok=False, error=f"timed out after {destination.timeout_seconds:g} s ({exc})"
        )
    except redis.RedisError as exc:
        return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return SendResult(ok=True, response=f"stream entry {entry_id}")
