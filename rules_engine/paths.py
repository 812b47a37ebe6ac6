"""JSON path formatting shared by every error that points into a document."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(segments: Iterable[str | int], prefix: str = "$") -> str:
    """Render path segments as `$.a[0]["odd key"]`: identifiers dotted, ints indexed."""
    parts = [prefix]
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _IDENTIFIER.match(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{json.dumps(segment)}]")
    return "".join(parts)
