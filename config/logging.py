"""Log records as one JSON object per line, carrying the request id that caused them.

The request id lives in a context variable: `RequestIdMiddleware` sets it from the caller's
`X-Request-ID` (or a new one) for each request, `config/celery.py` sends it with every task the
request publishes and restores it in the worker, and egress sends it on with each webhook, so
one id ties a request to its tasks and deliveries. `RequestIdFilter` puts it on every record;
`JsonFormatter` (VERDICT_LOG_FORMAT=json, the default without DEBUG) or the plain format
writes it out.

A record may carry a decision context as `extra={"context": ..., "sensitive_paths": [...]}`:
the formatter masks those paths (`rules_engine.masking`) before writing it, and values of
extra fields named like secrets (password, secret, token, api_key, authorization) are never
written.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from config.ids import new_hex_id

# The id of the request (or the task's originating request) being served in this context.
request_id_var: ContextVar[str | None] = ContextVar("verdict_request_id", default=None)
# The Celery task running in this context: (task id, task name).
task_var: ContextVar[tuple[str, str] | None] = ContextVar("verdict_task", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller may send as a request id: short and without spaces or control characters, so
# it can be logged and echoed in a header as is (anything else is replaced by a new id).
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,100}")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "task_id",
    "task_name",
    "context",
    "sensitive_paths",
    "request_tag",
}
_SECRET_NAME = re.compile(r"passw|secret|token|api_?key|authori[sz]ation|signature", re.I)
REDACTED = "***"


def current_request_id() -> str | None:
    """The request id of the current context, or None outside a request or task."""
    return request_id_var.get()


def accept_request_id(value: str | None) -> str:
    """The caller's request id if it is acceptable as is, else a new one (32 hex digits)."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return new_hex_id()


def bind_request_id(value: str | None) -> Token[str | None]:
    """Set the context's request id (None clears it); returns the token to `reset` it."""
    return request_id_var.set(value)


def request_id_headers() -> dict[str, str]:
    """`{"X-Request-ID": <id>}` for an outgoing call made on behalf of a request, or {}."""
    request_id = request_id_var.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


class RequestIdFilter(logging.Filter):
    """Put `request_id`, `task_id` and `task_name` on every record (empty strings if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops one."""
        record.request_id = request_id_var.get() or ""
        task = task_var.get()
        record.task_id, record.task_name = task if task else ("", "")
        return True


class PlainFormatter(logging.Formatter):
    """The human format: time, level, logger, `[request id]` when there is one, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request_tag)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record on one line (plus its traceback, if any)."""
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        record.request_tag = f" [{request_id}]" if request_id else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request and task ids, the
    exception if any, and the record's extra fields (contexts masked, secrets redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get() or None,
            "process": record.process,
        }
        task_id = getattr(record, "task_id", "")
        if task_id:
            entry["task_id"] = task_id
            entry["task_name"] = getattr(record, "task_name", "")
        if hasattr(record, "context"):
            entry["context"] = masked_context(
                record.context, getattr(record, "sensitive_paths", ())
            )
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = REDACTED if _SECRET_NAME.search(name) else _plain(value)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def masked_context(context: Any, paths: Iterable[str] | None) -> Any:
    """A context with its sensitive paths masked, as the audit snapshot stores it."""
    from rules_engine.masking import mask_paths

    return mask_paths(context, tuple(paths or ()))


def _plain(value: Any) -> Any:
    """A JSON-friendly stand-in for an extra field (a Django request becomes method + path)."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    method, path = getattr(value, "method", None), getattr(value, "path", None)
    if isinstance(method, str) and isinstance(path, str):
        return {"method": method, "path": path}
    return str(value)
