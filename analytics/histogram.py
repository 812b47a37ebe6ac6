"""Latency histograms with fixed bounds: mergeable by adding counts, read as percentiles.

Bucket `i` holds durations `d` with `BOUNDS_MS[i-1] <= d < BOUNDS_MS[i]` (bucket 0: below the
first bound, the last: at or above the last bound), which is `bisect_right` in Python and
PostgreSQL's `width_bucket(d, bounds)`, so both rollup paths bucket alike.

A percentile is read by nearest rank: the bucket holding the `ceil(p/100 * n)`-th fastest
sample gives its upper bound, capped at the slowest sample seen (so a bucket of one slow
decision reports that decision, and the open last bucket reports the maximum). The value is
therefore an upper bound of the true percentile, never more than one bucket above it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

BOUNDS_MS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
    100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
)  # fmt: skip
SIZE = len(BOUNDS_MS) + 1


def empty() -> list[int]:
    """A histogram with no samples."""
    return [0] * SIZE


def index(duration_ms: float) -> int:
    """The bucket of one duration."""
    return bisect_right(BOUNDS_MS, duration_ms)


def merge(into: list[int], other: Sequence[int]) -> list[int]:
    """Add `other`'s counts to `into` (in place; a short or missing list counts as zeros)."""
    for i, count in enumerate(other[:SIZE]):
        into[i] += int(count)
    return into


def percentile(counts: Sequence[int], p: int, max_ms: float) -> float | None:
    """The nearest-rank `p`th percentile's bucket upper bound, capped at `max_ms`; None if empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, -(-p * total // 100))  # ceil in integers: no float rounding of the rank
    seen = 0
    for i, count in enumerate(counts):
        seen += count
        if seen >= rank:
            upper = BOUNDS_MS[i] if i < len(BOUNDS_MS) else max_ms
            return min(upper, max_ms)
    return max_ms  # unreachable: the counts add up to total
