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


class SafeJSONParser(JSONParser):
    """JSON bodies only, at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes and MAX_JSON_DEPTH deep.

    Raises RequestTooLarge (413) or ParseError (400) with a clear message; never lets a
    RecursionError or a decode error become a 500.
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
        max_depth = int(settings.VERDICT["MAX_JSON_DEPTH"])
        if json_depth_exceeds(data, max_depth):
            raise ParseError(f"JSON nested deeper than {max_depth} levels.")
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
