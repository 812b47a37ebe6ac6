"""Errors the rules engine raises to its callers (API, admin, tasks)."""

from __future__ import annotations

from typing import TypedDict


class ErrorDetail(TypedDict):
    """One problem in a document: where it is (JSON path) and what is wrong."""

    path: str
    message: str


class InvalidInput(Exception):
    """Input refused as a whole; `details` lists every problem with its JSON path.

    `code` names the kind for API clients: invalid_rule, invalid_entry_point,
    invalid_template, invalid_context, invalid_answer.
    """

    code = "invalid_input"

    def __init__(self, details: list[ErrorDetail], code: str | None = None) -> None:
        self.details = sorted(details, key=lambda d: (d["path"], d["message"]))
        if code:
            self.code = code
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in self.details[:3])
        super().__init__(f"{self.code}: {summary}")


class InvalidContext(InvalidInput):
    """The context does not match the entry point's JSON Schema."""

    code = "invalid_context"


class NotFound(Exception):
    """A named thing (entry point, execution, version) does not exist or is inactive."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Conflict(Exception):
    """The request contradicts what is stored (e.g. an idempotency key already used by an
    event of another type); answered with 409."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
