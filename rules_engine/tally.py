"""Hot-path counting for Prometheus: increments kept in plain per-thread dicts, added to the
metrics in batches.

A request of the execute hot path counts about twenty series (request and response metrics,
the decision, its matched rules, its actions, the ruleset cache) and observes five
histograms. Each `inc()` or `observe()` of prometheus_client checks the metric, takes a lock
and (in multiprocess mode, as `make serve` runs) writes a memory-mapped file: together about
7 % of the request's instructions there (bench/README.md). Here a count is one dict update in
the calling thread's own dict (no lock: only that thread writes it), and the totals reach the
metrics' values:

- every `FLUSH_INTERVAL` seconds, from a background thread started on first use in each
  process (after a fork too), so other processes' counts reach a multiprocess /metrics
  within that interval;
- before every collection of the default registry (`REGISTRY.collect()`, what /metrics and
  `REGISTRY.get_sample_value` use) and before the multiprocess exposition, so this process's
  own counts are exact when read;
- at interpreter exit.

Each thread's dict holds running totals that only grow; a flush copies it (one C-level call,
atomic under the GIL) and adds the growth since the previous flush. A histogram observation
counts one bucket and the sum, added to prometheus_client's own bucket and sum values, so the
exposition is the same as with `observe()`; should a future prometheus_client lay its
histograms out otherwise, observations go to `observe()` directly.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
# The key of a histogram's sum beside its bucket indexes (0, 1, ...).
_SUM = -1

# One entry per thread that counted: [thread, its running totals, the totals last flushed].
_entries: list[list[Any]] = []
_entries_lock = threading.Lock()
# One flush at a time: two would both add the same growth.
_flush_lock = threading.Lock()
_local = threading.local()
_flusher: threading.Thread | None = None
# Histogram (child) -> its bucket bounds, or None to observe it directly (see _bounds_of);
# bounded like the label sets.
_bounds: dict[Any, Any] = {}
_UNSEEN = object()


def inc(child: Any, amount: float = 1) -> None:
    """Add `amount` (>= 0) to a labelled counter child (or an unlabelled counter)."""
    totals = _totals()
    totals[child] = totals.get(child, 0) + amount


def observe(child: Any, value: float) -> None:
    """Observe `value` in a labelled histogram child (or an unlabelled histogram)."""
    bounds = _bounds.get(child, _UNSEEN)
    if bounds is _UNSEEN:
        bounds = _bounds[child] = _bounds_of(child)
    if bounds is None:
        child.observe(value)
        return
    totals = _totals()
    # prometheus_client counts an observation in the first bucket whose bound is >= it.
    bucket = (child, bisect_left(bounds, value))
    totals[bucket] = totals.get(bucket, 0) + 1
    total = (child, _SUM)
    totals[total] = totals.get(total, 0) + value


def _bounds_of(histogram: Any) -> Any:
    """The histogram's bucket bounds if its values are laid out as this module adds to them
    (prometheus_client's `_upper_bounds`, `_buckets`, `_sum`), else None."""
    bounds = getattr(histogram, "_upper_bounds", None)
    if bounds is None or not hasattr(histogram, "_buckets") or not hasattr(histogram, "_sum"):
        return None
    return bounds


def flush() -> None:
    """Add every thread's growth since the last flush to the metrics' values."""
    with _flush_lock:
        with _entries_lock:
            entries = list(_entries)
        finished = []
        for entry in entries:
            thread, totals, flushed = entry
            # Read before copying: a thread seen dead has written its last count already.
            alive = thread.is_alive()
            current = totals.copy()
            for key, value in current.items():
                growth = value - flushed.get(key, 0)
                if growth:
                    _add(key, growth)
            entry[2] = current
            if not alive:
                finished.append(entry)
        if finished:
            with _entries_lock:
                for entry in finished:
                    _entries.remove(entry)


def _add(key: Any, growth: float) -> None:
    if type(key) is not tuple:
        key.inc(growth)
    elif key[1] == _SUM:
        key[0]._sum.inc(growth)
    else:
        key[0]._buckets[key[1]].inc(growth)


def _totals() -> dict[Any, float]:
    try:
        return _local.totals
    except AttributeError:
        return _register()


def _register() -> dict[Any, float]:
    global _flusher
    totals: dict[Any, float] = {}
    _local.totals = totals
    with _entries_lock:
        _entries.append([threading.current_thread(), totals, {}])
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_forever, name="verdict-tally", daemon=True)
            _flusher.start()
    return totals


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        try:
            flush()
        except Exception:  # the next round tries again; counting must not stop the process
            logger.exception("adding counts to the Prometheus metrics failed")


def _forget_after_fork() -> None:
    # The parent adds what it counted before the fork; the child starts with nothing, and
    # with no flusher (threads do not survive a fork).
    global _entries_lock, _flush_lock, _flusher, _local
    _entries.clear()
    _entries_lock = threading.Lock()
    _flush_lock = threading.Lock()
    _local = threading.local()
    _flusher = None


class _FlushOnCollect:
    """Registered first in the default registry: collecting it flushes, so every metric
    collected after it shows this process's counts. Describes and yields nothing."""

    def describe(self) -> list[Metric]:
        """No metrics of its own."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Flush; no metrics of its own."""
        flush()
        return iter(())


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(flush)
REGISTRY.register(_FlushOnCollect())
