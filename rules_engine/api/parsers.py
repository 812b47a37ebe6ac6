"""Fast, strict JSON in and out: a parser that refuses oversized, over-deep and non-standard
bodies before any work, and an orjson renderer."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer

from rules_engine.paths import json_path


class RequestTooLarge(APIException):
    """The body is larger than VERDICT_MAX_BODY_BYTES (answered with 413)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests objects/arrays deeper than `limit` (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def nul_path(value: Any) -> str | None:
    """The JSON path of the first string (key or value) holding NUL (U+0000), or None.

    PostgreSQL cannot store NUL in text or jsonb, so such a body could never be stored.
    """
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return json_path(path)
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return json_path([*path, key])
                stack.append((child, [*path, key]))
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

    stack: list[tuple[Any, list[str | int]]] = [(json.loads(raw, parse_int=integer), [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _OutOfRange):
            return json_path(path)
        if isinstance(node, dict):
            stack.extend((child, [*path, key]) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(node))
    return None


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
    if not found:
        return None
    stack: list[tuple[Any, list[str | int]]] = [(parsed, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _DuplicateKey):
            return json_path([*path, node.key])
        if isinstance(node, dict):
            stack.extend((child, [*path, key]) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(node))
    return None  # pragma: no cover  (found means a marker is in the tree)


# Caps on one parsed body (override in settings.VERDICT). A body within the byte limit can
# still be costly to walk, validate and store: one enormous string or a flat object with
# tens of thousands of keys. Defaults leave room for any realistic context, rule or template.
DEFAULT_LIMITS: dict[str, int] = {
    "MAX_JSON_STRING_LENGTH": 100_000,
    "MAX_JSON_KEY_LENGTH": 1_000,
    "MAX_JSON_OBJECT_KEYS": 1_000,
    "MAX_JSON_ARRAY_ITEMS": 10_000,
}


def json_limits() -> dict[str, int]:
    """The caps in force: DEFAULT_LIMITS overridden by settings.VERDICT."""
    configured = getattr(settings, "VERDICT", {})
    return {name: int(configured.get(name, default)) for name, default in DEFAULT_LIMITS.items()}


def _over_limits(value: Any, limits: dict[str, int]) -> bool:
    """Whether any string, key, object or array in `value` is over its cap (no paths kept)."""
    max_string = limits["MAX_JSON_STRING_LENGTH"]
    max_key = limits["MAX_JSON_KEY_LENGTH"]
    max_keys = limits["MAX_JSON_OBJECT_KEYS"]
    max_items = limits["MAX_JSON_ARRAY_ITEMS"]
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if len(node) > max_string:
                return True
        elif isinstance(node, dict):
            if len(node) > max_keys or any(len(key) > max_key for key in node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            if len(node) > max_items:
                return True
            stack.extend(node)
    return False


def limit_violation(value: Any, limits: dict[str, int]) -> str | None:
    """The first cap `value` breaks, as "what: at <JSON path>", or None.

    Walks without paths first (the common case: nothing is over), and again with paths only
    when something is.
    """
    if not _over_limits(value, limits):
        return None
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if len(node) > limits["MAX_JSON_STRING_LENGTH"]:
                cap = limits["MAX_JSON_STRING_LENGTH"]
                return f"string longer than {cap} characters: at {json_path(path)}"
        elif isinstance(node, dict):
            if len(node) > limits["MAX_JSON_OBJECT_KEYS"]:
                cap = limits["MAX_JSON_OBJECT_KEYS"]
                return f"object with more than {cap} keys: at {json_path(path)}"
            for key, child in node.items():
                if len(key) > limits["MAX_JSON_KEY_LENGTH"]:
                    cap = limits["MAX_JSON_KEY_LENGTH"]
                    return f"key longer than {cap} characters: at {json_path(path)}"
                stack.append((child, [*path, key]))
        elif isinstance(node, list):
            if len(node) > limits["MAX_JSON_ARRAY_ITEMS"]:
                cap = limits["MAX_JSON_ARRAY_ITEMS"]
                return f"array with more than {cap} items: at {json_path(path)}"
            stack.extend((child, [*path, index]) for index, child in enumerate(node))
    return None


class SafeJSONParser(JSONParser):
    """JSON bodies only: at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes, MAX_JSON_DEPTH deep, with
    strings, keys, objects and arrays within `json_limits()`, no NUL in any string, no
    integer beyond 64 bits and no key named twice in one object.

    The default parser of every API endpoint (settings.REST_FRAMEWORK). Raises
    RequestTooLarge (413) or ParseError (400, `malformed_json`, with the JSON path of the
    offending node); never lets a RecursionError or a decode error become a 500.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        """Parse the body. Raises RequestTooLarge or ParseError."""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 256 * 1024
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"Request body is larger than {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"Request body is larger than {limit} bytes.")
        try:
            # orjson: strict JSON (no NaN/Infinity), UTF-8 checked, several times faster.
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        if (where := out_of_range_integer_path(raw)) is not None:
            raise ParseError(f"JSON integer beyond 64 bits (not kept exactly): at {where}.")
        max_depth = int(settings.VERDICT["MAX_JSON_DEPTH"])
        # Nesting deeper than max_depth takes more than max_depth brackets, so a body with
        # fewer (nearly all of them) skips the walk.
        brackets = raw.count(b"{") + raw.count(b"[")
        if brackets > max_depth and json_depth_exceeds(data, max_depth):
            raise ParseError(f"JSON nested deeper than {max_depth} levels.")
        if (where := duplicate_key_path(raw, data)) is not None:
            raise ParseError(
                f"JSON object names a key twice (which one counts is unclear): at {where}."
            )
        limits = json_limits()
        # Every cap needs at least this many bytes to be broken (a key or an item takes two
        # or more), so the usual small body skips the walk.
        smallest = min(
            limits["MAX_JSON_STRING_LENGTH"],
            limits["MAX_JSON_KEY_LENGTH"],
            2 * limits["MAX_JSON_OBJECT_KEYS"],
            2 * limits["MAX_JSON_ARRAY_ITEMS"],
        )
        if len(raw) > smallest and (problem := limit_violation(data, limits)) is not None:
            raise ParseError(f"JSON {problem}.")
        # NUL can only arrive escaped; the byte test keeps the walk off the common path.
        if b"\\u0000" in raw and (where := nul_path(data)) is not None:
            raise ParseError(f"JSON strings may not contain NUL (\\u0000): at {where}.")
        return data


class ORJSONRenderer(BaseRenderer):
    """JSON responses with orjson (UUIDs and datetimes native, other types as strings)."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        """Serialise the response body. Raises nothing for JSON-like data."""
        if data is None:
            return b""
        return orjson.dumps(data, default=str)
