"""Run-time bounds of rule evaluation: array and string sizes, and a per-request time budget.

The compiler bounds a rule's *size* (nodes, depth); these bound what a rule may *do* with the
data at run time, so that every rule is bounded whatever it is given:

* :data:`LIMITS` holds the process-wide sizes (``max_items`` for the arrays that ``map``,
  ``filter``, ``reduce``, ``all``, ``some``, ``none``, ``merge`` and the ``split`` function
  may process or build; ``max_string_length`` for the strings the string functions take and
  build; ``max_pattern_length`` for regular expressions). The Django layer configures them
  from settings (:func:`rules_engine.conditions.configure_limits`); they are read at run time,
  so a change applies to rules compiled before it.
* :func:`budget` sets a deadline for the evaluations of the current thread (the engine opens
  one per decision). Iterations check it when they start and every :data:`CHECK_EVERY`
  items, function calls before they run: a rule that runs past it fails with
  :class:`~.errors.JsonLogicBudgetError`, and every rule that reaches a check afterwards fails
  the same way, while rules with no loop or function (bounded by their node count) still
  evaluate. Nothing is checked per node, so the common path pays nothing.

Exceeding a limit is a run-time error of the rule (:class:`~.errors.JsonLogicLimitError`),
whose message names the limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import JsonLogicBudgetError, JsonLogicLimitError, Path

__all__ = [
    "CHECK_EVERY",
    "DEADLINE",
    "LIMITS",
    "Limits",
    "budget",
    "check_deadline",
    "check_items",
    "check_text",
    "configure",
    "iterate",
    "remaining",
]

# Items an iteration processes between two deadline checks; arrays up to this size are
# iterated as they are (one check when the iteration starts).
CHECK_EVERY: Final = 64


@dataclass(slots=True)
class Limits:
    """Process-wide run-time bounds (see the module docstring). Raises nothing."""

    max_items: int = 10_000
    max_string_length: int = 100_000
    max_pattern_length: int = 1_000


LIMITS: Final = Limits()


def configure(
    *,
    max_items: int | None = None,
    max_string_length: int | None = None,
    max_pattern_length: int | None = None,
) -> None:
    """Change the process-wide limits (None keeps a value). Raises ValueError for values < 1."""
    values = {
        "max_items": max_items,
        "max_string_length": max_string_length,
        "max_pattern_length": max_pattern_length,
    }
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
        setattr(LIMITS, name, value)


class _Deadline(threading.local):
    """The current thread's evaluation deadline (``time.monotonic()`` seconds)."""

    at: float = math.inf
    seconds: float = math.inf


DEADLINE: Final = _Deadline()
_clock: Final = time.monotonic


class budget:  # used like a function: ``with budget(0.2): ...``
    """Within the block, evaluations in this thread must finish within ``seconds`` from now.

    None or a non-positive value sets no deadline. A nested budget never extends the outer
    one. Raises nothing itself; evaluations past the deadline raise JsonLogicBudgetError.
    (A class rather than a generator context manager: it is entered once per decision.)
    """

    __slots__ = ("_previous", "_seconds")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._previous = (math.inf, math.inf)

    def __enter__(self) -> None:
        self._previous = (DEADLINE.at, DEADLINE.seconds)
        seconds = self._seconds
        if seconds is not None and seconds > 0:
            at = _clock() + seconds
            if at < DEADLINE.at:
                DEADLINE.at, DEADLINE.seconds = at, seconds

    def __exit__(self, *exc_info: object) -> None:
        DEADLINE.at, DEADLINE.seconds = self._previous


def remaining() -> float:
    """Seconds left in the current budget (``math.inf`` without one; never negative)."""
    at = DEADLINE.at
    if at == math.inf:
        return math.inf
    return max(0.0, at - _clock())


def budget_error(path: Path) -> JsonLogicBudgetError:
    """The error of an evaluation that ran past the deadline, at ``path``. Raises nothing."""
    milliseconds = DEADLINE.seconds * 1000
    return JsonLogicBudgetError(
        f"evaluation budget of {milliseconds:g} ms exceeded (EVALUATION_BUDGET_MS)", path
    )


def check_deadline(path: Path) -> None:
    """Raise JsonLogicBudgetError (at ``path``) if the current budget has run out."""
    if _clock() > DEADLINE.at:
        raise budget_error(path)


def check_items(count: int, what: str, path: Path) -> None:
    """Raise JsonLogicLimitError if ``what`` would process or build more than max_items."""
    if count > LIMITS.max_items:
        raise JsonLogicLimitError(
            f"{what}: {count} items exceed the limit of {LIMITS.max_items} (MAX_ARRAY_ITEMS)",
            path,
        )


def check_text(length: int, what: str, path: Path = ()) -> None:
    """Raise JsonLogicLimitError if a string of ``length`` exceeds max_string_length."""
    if length > LIMITS.max_string_length:
        raise JsonLogicLimitError(
            f"{what}: a string of {length} characters exceeds the limit of "
            f"{LIMITS.max_string_length} (MAX_STRING_LENGTH)",
            path,
        )


def iterate(items: Sequence[Any], what: str, path: Path) -> Iterable[Any]:
    """The items of an iteration, bounded: size and deadline checked now, then periodically.

    Raises JsonLogicLimitError for more than max_items items and JsonLogicBudgetError when
    the deadline has passed (now, or later while the returned iterator is consumed).
    """
    count = len(items)
    check_items(count, what, path)
    if _clock() > DEADLINE.at:
        raise budget_error(path)
    if count <= CHECK_EVERY:
        return items
    return _checked(items, path)


def _checked(items: Sequence[Any], path: Path) -> Iterator[Any]:
    deadline = DEADLINE.at
    for start in range(0, len(items), CHECK_EVERY):
        if start and _clock() > deadline:
            raise budget_error(path)
        yield from items[start : start + CHECK_EVERY]
