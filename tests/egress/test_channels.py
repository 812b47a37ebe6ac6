"""Channels: one signed webhook POST (no redirects, timeouts) and one stream XADD per call."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from egress.channels import SendResult, canonical_body, send_stream, send_webhook, signature
from egress.models import Destination
from tests.egress.conftest import stream_entries

SECRET = "s3cret-for-tests"
DELIVERY_ID = "6f1c1a52-8d3b-4a53-9f3e-2f7d7a1b0c11"


def webhook(url: str, timeout: float = 0.3) -> Destination:
    # Channels never touch the database: an unsaved destination is enough.
    return Destination(name="crm", url=url, secret=SECRET, timeout_seconds=timeout)


def test_canonical_body_is_compact_sorted_utf8_json():
    assert canonical_body({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature(secret="k", timestamp=1700000000, body=b"{}") == f"t=1700000000,v1={expected}"


def test_webhook_post_is_signed_and_carries_the_idempotency_key(receiver):
    # given a receiver that answers 200
    payload = {"order": {"id": "o-1"}, "amount": 12.5}
    # when one delivery is sent
    before = int(time.time())
    result = send_webhook(
        destination=webhook(receiver.url()), delivery_id=DELIVERY_ID, payload=payload
    )
    # then it is delivered with the canonical body and Verdict's headers
    assert result == SendResult(ok=True, status_code=200, response="ok")
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.body == b'{"amount":12.5,"order":{"id":"o-1"}}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Verdict"
    assert request.headers["idempotency-key"] == DELIVERY_ID
    assert request.headers["x-verdict-delivery"] == DELIVERY_ID
    # and the signature verifies with the secret, as a receiver would check it
    parts = dict(item.split("=", 1) for item in request.headers["x-verdict-signature"].split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert before <= timestamp <= int(time.time())


def test_redirect_is_not_followed_and_is_a_failure(receiver):
    # given a receiver that redirects
    receiver.answer("redirect")
    # when sent
    result = send_webhook(destination=webhook(receiver.url()), delivery_id=DELIVERY_ID, payload={})
    # then the redirect target is never requested and the attempt failed
    assert result == SendResult(
        ok=False,
        status_code=302,
        error=f"HTTP 302: redirect to '{receiver.url('/elsewhere')}' not followed",
        response="boom",
    )
    assert receiver.paths() == ["/hook"]


def test_server_error_is_a_failure_with_the_start_of_the_answer(receiver):
    receiver.answer(500)
    result = send_webhook(destination=webhook(receiver.url()), delivery_id=DELIVERY_ID, payload={})
    assert result == SendResult(ok=False, status_code=500, error="HTTP 500", response="boom")


def test_retry_after_of_the_receiver_is_reported(receiver):
    receiver.answer((503, {"Retry-After": "7"}))
    result = send_webhook(destination=webhook(receiver.url()), delivery_id=DELIVERY_ID, payload={})
    assert (result.ok, result.status_code, result.retry_after) == (False, 503, 7.0)


def test_receiver_stalling_past_the_timeout_is_a_failure(receiver):
    # given a receiver that does not answer within the destination's 0.3 s
    receiver.answer("stall")
    # when sent
    started = time.monotonic()
    result = send_webhook(destination=webhook(receiver.url()), delivery_id=DELIVERY_ID, payload={})
    # then the attempt gives up after the timeout
    assert result == SendResult(ok=False, error="timed out after 0.3 s (ReadTimeout)")
    assert 0.3 <= time.monotonic() - started < 0.9


def test_unreachable_receiver_is_a_failure(receiver):
    # given a port nothing listens on any more
    url = receiver.url()
    receiver.stop()
    result = send_webhook(destination=webhook(url), delivery_id=DELIVERY_ID, payload={})
    assert (result.ok, result.status_code) == (False, None)
    assert result.error.startswith("ConnectError: ")


def test_stream_entry_is_added_once_per_delivery(stream_key):
    # given a stream destination
    destination = Destination(name="s", kind="redis_stream", stream=stream_key, timeout_seconds=1)
    # when the same delivery is published twice (a retry after a lost answer)
    first = send_stream(destination=destination, delivery_id=DELIVERY_ID, payload={"n": 1})
    second = send_stream(destination=destination, delivery_id=DELIVERY_ID, payload={"n": 1})
    # then the stream holds one entry, and both calls report it
    [(entry_id, fields)] = stream_entries(stream_key)
    assert fields == {b"delivery_id": DELIVERY_ID.encode(), b"data": b'{"n":1}'}
    assert first == second == SendResult(ok=True, response=f"stream entry {entry_id}")


def test_another_delivery_is_another_stream_entry(stream_key):
    destination = Destination(name="s", kind="redis_stream", stream=stream_key, timeout_seconds=1)
    send_stream(destination=destination, delivery_id="a", payload={"n": 1})
    send_stream(destination=destination, delivery_id="b", payload={"n": 1})
    entries = stream_entries(stream_key)
    assert [json.loads(fields[b"data"]) for _id, fields in entries] == [{"n": 1}, {"n": 1}]
    assert [fields[b"delivery_id"] for _id, fields in entries] == [b"a", b"b"]


def test_unreachable_redis_is_a_failure(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    destination = Destination(name="s", kind="redis_stream", stream="x", timeout_seconds=0.3)
    result = send_stream(destination=destination, delivery_id="a", payload={})
    assert (result.ok, result.error.split(":")[0]) == (False, "ConnectionError")
