"""Named lists in memory: item validation per kind and fast membership tests.

A :class:`ListMatcher` is built from a list's stored items when a ruleset is compiled; testing
membership is then a set lookup (strings, numbers) or, for IP ranges, one set lookup per prefix
length present (at most 33 or 129, whatever the size), with no database access.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rules_engine.errors import ErrorDetail

KINDS = ("strings", "numbers", "ip_ranges")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def normalize_items(
    kind: str, items: Any, *, max_items: int
) -> tuple[list[Any], list[ErrorDetail]]:
    """Validate `items` for a list of `kind`; return (normalised items, errors with paths).

    Strings are kept as given; numbers must be finite JSON numbers; IP ranges are CIDR
    networks (a bare address is a /32 or /128) written back in canonical form. Duplicates are
    dropped, order kept. Raises nothing.
    """
    if kind not in KINDS:
        return [], [{"path": "$.kind", "message": f"unknown kind {kind!r}"}]
    if not isinstance(items, list):
        return [], [{"path": "$.items", "message": "items must be a list"}]
    if len(items) > max_items:
        return [], [{"path": "$.items", "message": f"at most {max_items} items"}]
    errors: list[ErrorDetail] = []
    result: list[Any] = []
    seen: set[Any] = set()
    for index, item in enumerate(items):
        path = f"$.items[{index}]"
        value: Any
        if kind == "strings":
            if not isinstance(item, str):
                errors.append({"path": path, "message": "must be a string"})
                continue
            value = item
        elif kind == "numbers":
            if not _is_number(item) or not math.isfinite(item):
                errors.append({"path": path, "message": "must be a finite number"})
                continue
            value = item
        else:
            try:
                value = (
                    str(ipaddress.ip_network(item, strict=True)) if isinstance(item, str) else None
                )
            except ValueError as exc:
                errors.append({"path": path, "message": f"not an IP network: {exc}"})
                continue
            if value is None:
                errors.append({"path": path, "message": "must be a CIDR string"})
                continue
        if value not in seen:
            seen.add(value)
            result.append(value)
    return result, errors


@dataclass(frozen=True)
class _Ranges:
    """Networks of one IP version as one hash set of prefixes per prefix length.

    A lookup masks the address to each prefix length present and tests the set: at most 33
    (IPv4) or 129 (IPv6) set lookups whatever the list's size, so membership stays O(1) per
    lookup as lists grow (a sorted search would grow with the log of the size).
    """

    bits: int = 32
    # (prefix length, {network address >> host bits}), longest prefixes first.
    prefixes: tuple[tuple[int, frozenset[int]], ...] = ()

    def contains(self, address: int) -> bool:
        bits = self.bits
        return any((address >> (bits - length)) in keys for length, keys in self.prefixes)


def _ranges(networks: Sequence[IPNetwork], bits: int) -> _Ranges:
    # collapse_addresses merges overlapping and adjacent networks: fewer prefix lengths.
    merged = ipaddress.collapse_addresses(networks)  # type: ignore[type-var]
    by_length: dict[int, set[int]] = {}
    for network in merged:
        length = network.prefixlen
        by_length.setdefault(length, set()).add(int(network.network_address) >> (bits - length))
    return _Ranges(
        bits, tuple((length, frozenset(by_length[length])) for length in sorted(by_length)[::-1])
    )


class ListMatcher:
    """Membership test of one named list, version `version`. Raises nothing when called."""

    __slots__ = ("_numbers", "_strings", "_v4", "_v6", "kind", "name", "version")

    def __init__(self, name: str, kind: str, items: Sequence[Any], version: int = 1) -> None:
        self.name = name
        self.kind = kind
        self.version = version
        self._strings: frozenset[str] = frozenset()
        self._numbers: frozenset[float] = frozenset()
        self._v4 = _Ranges(32)
        self._v6 = _Ranges(128)
        if kind == "strings":
            self._strings = frozenset(item for item in items if isinstance(item, str))
        elif kind == "numbers":
            self._numbers = frozenset(float(item) for item in items if _is_number(item))
        else:
            networks = [ipaddress.ip_network(item, strict=False) for item in items]
            self._v4 = _ranges([n for n in networks if n.version == 4], 32)
            self._v6 = _ranges([n for n in networks if n.version == 6], 128)

    def __contains__(self, value: Any) -> bool:
        if self.kind == "strings":
            return isinstance(value, str) and value in self._strings
        if self.kind == "numbers":
            if isinstance(value, str):  # JSONLogic compares "5" == 5 loosely; so do we
                try:
                    value = float(value.strip()) if value.strip() else None
                except ValueError:
                    return False
            return _is_number(value) and float(value) in self._numbers
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        ranges = self._v4 if address.version == 4 else self._v6
        return ranges.contains(int(address))

    def __repr__(self) -> str:
        return f"<ListMatcher {self.name} ({self.kind}) v{self.version}>"
