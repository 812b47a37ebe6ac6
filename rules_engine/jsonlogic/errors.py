"""Exceptions raised by the JSONLogic compiler and by compiled rules.

Every error carries the path from the rule root to the offending node, so an editor can point
at the exact spot of a large rule instead of just saying "something is wrong".
"""

from __future__ import annotations

from collections.abc import Iterable

from rules_engine.paths import json_path as render_json_path

PathSegment = str | int
Path = tuple[PathSegment, ...]


class JsonLogicError(Exception):
    """Base class of every JSONLogic error; carries ``message`` and ``path``.

    ``path`` is a tuple of ``str | int`` segments from the rule root to the offending node.
    Raises nothing itself.
    """

    def __init__(self, message: str, path: Iterable[PathSegment] = ()) -> None:
        self.message = message
        self.path: Path = tuple(path)
        # Passing both to Exception keeps the error picklable (Celery moves errors across
        # processes) because unpickling calls cls(*args).
        super().__init__(message, self.path)

    def json_path(self, prefix: str = "$") -> str:
        """Return the path rendered like ``$.and[1]["=="][0]``. Raises nothing."""
        return render_json_path(self.path, prefix)

    def __str__(self) -> str:
        return f"{self.message} (at {self.json_path()})"


class JsonLogicCompileError(JsonLogicError):
    """The rule cannot be compiled: unknown operator, bad arity, or a size limit exceeded."""


class JsonLogicRuntimeError(JsonLogicError):
    """Evaluating a compiled rule failed (e.g. a custom function raised). Raises nothing."""


class JsonLogicLimitError(JsonLogicRuntimeError):
    """Evaluation exceeded a run-time limit (array items, string length); names the limit."""


class JsonLogicBudgetError(JsonLogicLimitError):
    """Evaluation ran past the request's evaluation budget (a deadline)."""
