"""Fast, strict JSON in and out: a parser that refuses oversized, over-deep and non-standard
bodies before any work, and an orjson renderer."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer

from rules_engine.json_text import duplicate_key_path, out_of_range_integer_path
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
