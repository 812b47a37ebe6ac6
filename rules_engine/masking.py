"""Masking of sensitive values (card numbers, emails) before a context is stored or logged."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"


def mask_paths(document: Any, paths: Iterable[str]) -> Any:
    """Return a copy of `document` with the value at every dotted path replaced by "***".

    A `*` segment matches every key of an object or every item of a list, so
    `cart.items.*.card` masks the card of every item. Paths that are absent are ignored; the
    input is never modified.
    """
    result = document
    for path in paths:
        result = _mask(result, path.split("."))
    return result


def _mask(node: Any, segments: list[str]) -> Any:
    if not segments:
        return MASK
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        if head == "*":
            return {key: _mask(value, rest) for key, value in node.items()}
        if head in node:
            return {**node, head: _mask(node[head], rest)}
        return node
    if isinstance(node, list):
        if head == "*":
            return [_mask(item, rest) for item in node]
        if head.isdigit() and int(head) < len(node):
            index = int(head)
            return [*node[:index], _mask(node[index], rest), *node[index + 1 :]]
    return node
