"""A real local webhook receiver the test steers: the only stand-in for the outside network.

A `ThreadingHTTPServer` on 127.0.0.1 that records every request (path, headers, raw body) and
answers from a plan the test sets (`receiver.answer(500, "stall", "redirect")`), then 200 once
the plan is used up.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
