"""JSON path formatting shared by every error that points into a document, and the JSON
type names errors use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_path(segments: Iterable[str | int], prefix: str = "$") -> str:
    """Render path segments as `$.and[1]["=="][0]`: identifiers dotted, other keys quoted.

    Integers render as `[n]`, identifier keys as `.key`, any other key as `["key"]`
    (JSON-quoted). Raises nothing.
    """
    parts = [prefix]
    for segment in segments:
        if isinstance(segment, int) and not isinstance(segment, bool):
            parts.append(f"[{segment}]")
        elif isinstance(segment, str) and _IDENTIFIER.fullmatch(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{json.dumps(str(segment), ensure_ascii=False)}]")
    return "".join(parts)


def json_type(value: Any) -> str:
    """The JSON type name of a parsed JSON value (`null`, `boolean`, `number`, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
