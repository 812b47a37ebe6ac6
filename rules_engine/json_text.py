"""Checks on JSON text that a parsed value no longer shows, each answering with the JSON path
of the first offending node: integers beyond 64 bits (which orjson reads as floats) and keys
named twice in one object (which every parser here resolves silently, last value winning).

Shared by everything that takes JSON from outside: the API's parser, the Redis Streams
consumer, the admin's JSON boxes and `rules_import` files.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from rules_engine.paths import json_path


def _marker_path(value: Any, marker: type) -> tuple[Any, list[str | int]] | None:
    """The first `marker` instance in a parsed tree, with the path to it, or None."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, marker):
            return node, path
        if isinstance(node, dict):
            stack.extend((child, [*path, key]) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(node))
    return None


# orjson reads an integer beyond 64 bits as the nearest float, silently: two different
# 30-digit ids would become one subject. Such a literal takes at least 19 digits in a row
# (below -2**63; above 2**64 - 1 it takes 20).
_LONG_DIGITS = re.compile(rb"[0-9]{19,}")
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1


class _OutOfRange:
    """Stands for an integer literal orjson would have read as a float."""


def out_of_range_integer_path(raw: bytes) -> str | None:
    """The JSON path of the first integer literal beyond 64 bits in `raw` (valid JSON), or
    None. Cheap for nearly every body: only one with 19 digits in a row is parsed again."""
    if not _LONG_DIGITS.search(raw):
        return None

    def integer(text: str) -> Any:
        value = int(text)
        return _OutOfRange() if not _INT_MIN <= value <= _UINT_MAX else value

    found = _marker_path(json.loads(raw, parse_int=integer), _OutOfRange)
    return None if found is None else json_path(found[1])


_NOT_GIVEN: Any = object()


class _DuplicateKey:
    """Stands for an object that names `key` more than once."""

    def __init__(self, key: str) -> None:
        self.key = key


def duplicate_key_path(raw: bytes, parsed: Any = _NOT_GIVEN) -> str | None:
    """The JSON path of the first key named twice in one object of `raw` (valid JSON), or
    None. orjson, like most parsers, keeps the last value silently; a body whose meaning
    depends on which parser reads it (a gateway checking the first `amount`, the engine
    deciding on the last) is refused instead.

    With `parsed` (orjson's reading of `raw`), nearly every body is settled by counting
    colons: without a backslash in `raw`, its strings are written as orjson writes them
    back, so `raw` has more colons than `orjson.dumps(parsed)` exactly when a key (with its
    value) was dropped or a string written twice holds one. Any other body is parsed again
    by the standard library with a hook that sees every key.
    """
    if parsed is not _NOT_GIVEN and b"\\" not in raw:
        try:
            if raw.count(b":") == orjson.dumps(parsed).count(b":"):
                return None
        except orjson.JSONEncodeError:
            pass  # nested too deep for orjson's writer: the full parse decides
    found = False

    def unique(pairs: list[tuple[str, Any]]) -> Any:
        nonlocal found
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        found = True
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                return _DuplicateKey(key)
            seen.add(key)
        return obj  # pragma: no cover  (a shorter dict means a repeated key)

    parsed = json.loads(raw, object_pairs_hook=unique)
    marker = _marker_path(parsed, _DuplicateKey) if found else None
    return None if marker is None else json_path([*marker[1], marker[0].key])
