"""Egress fixtures: a real local HTTP receiver the test steers, destinations, a stream key.

The receiver is the only stand-in for the outside network: a `ThreadingHTTPServer` on
127.0.0.1 that records every request (path, headers, raw body) and answers from a plan the
test sets (`receiver.answer(500, "stall", "redirect")`), then 200 once the plan is used up.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django.conf import settings

from egress import services
from egress.models import Destination
from rules_engine import services as rules_services
from rules_engine.models import EntryPoint

Behaviour = int | str | tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Recorded:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes


class Receiver:
    """A webhook receiver on a free local port that records requests and answers as told.

    Behaviours: an int status code (body "ok" for 2xx, "boom" otherwise); `(status,
    headers)`; "stall" (answer nothing for `stall_seconds`, past the sender's timeout);
    "redirect" (302 to /elsewhere on this server).
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.stall_seconds = 1.0
        self._plan: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # Stalled handler threads must not keep the test run from ending.
        self._server.daemon_threads = True
        # A short poll interval makes stop() (shutdown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> Receiver:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/hook") -> str:
        """The URL of `path` on this receiver."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def answer(self, *behaviours: Behaviour) -> None:
        """Answer the next requests like this, in order; 200 after that."""
        with self._lock:
            self._plan.extend(behaviours)

    def record(self, request: Recorded) -> Behaviour:
        """Store a request and take the behaviour it gets."""
        with self._lock:
            self.requests.append(request)
            return self._plan.popleft() if self._plan else 200

    def paths(self) -> list[str]:
        """The paths requested, in order."""
        with self._lock:
            return [r.path for r in self.requests]


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            behaviour = receiver.record(Recorded(self.command, self.path, headers, body))
            if behaviour == "stall":
                time.sleep(receiver.stall_seconds)
                behaviour = 200
            extra: dict[str, str] = {}
            if behaviour == "redirect":
                status, extra = 302, {"Location": receiver.url("/elsewhere")}
            elif isinstance(behaviour, tuple):
                status, extra = behaviour
            else:
                status = int(behaviour)
            content = b"ok" if 200 <= status < 300 else b"boom"
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up (timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


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
