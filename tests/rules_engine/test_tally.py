"""Hot-path counting (rules_engine/tally.py): per-thread totals reach the Prometheus metrics
exactly, from any thread, after a fork and across processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from rules_engine import tally

ROOT = Path(__file__).resolve().parents[2]
BOUNDS = (0.001, 0.005, 0.01, 0.1)
_names = itertools.count(1)


def new_counter() -> Any:
    """A counter of its own in the default registry (each test counts from zero)."""
    return Counter(f"test_tally_{next(_names)}", "A test counter.", ["kind"])


def new_histogram() -> Any:
    return Histogram(f"test_tally_{next(_names)}_seconds", "A test histogram.", buckets=BOUNDS)


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def samples(metric: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A metric's samples by name and labels, without the creation timestamps."""
    (family,) = metric.collect()
    return {
        (s.name.removeprefix(f"{metric._name}_"), tuple(sorted(s.labels.items()))): s.value
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_counts_from_many_threads_all_arrive_once() -> None:
    # given a counter, 8 threads counting 5,000 each while the background flush runs, and
    # this (living) thread counting 1,000
    counter = new_counter()
    ok, error = counter.labels("ok"), counter.labels("error")

    def work() -> None:
        for i in range(5_000):
            tally.inc(ok)
            if i % 10 == 0:
                tally.inc(error, 2)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    # when a reader collects while they count, and again after
    seen_meanwhile = sample(f"{counter._name}_total", kind="ok") or 0.0
    for _ in range(1_000):
        tally.inc(ok)
    for thread in threads:
        thread.join()
    tally.flush()
    tally.flush()
    # then every count arrived exactly once, however often flushed
    assert seen_meanwhile <= 41_000
    assert sample(f"{counter._name}_total", kind="ok") == 41_000
    assert sample(f"{counter._name}_total", kind="error") == 8 * 500 * 2


def test_a_histogram_counted_through_the_tally_equals_observe() -> None:
    # given two histograms with the same buckets and values on and between the bounds
    tallied, observed = new_histogram(), new_histogram()
    values = [0.0, 0.0005, 0.001, 0.0011, 0.005, 0.0099, 0.01, 0.1, 0.10001, 7.5, 0.003]
    # when one counts through the tally and the other through observe()
    for value in values:
        tally.observe(tallied, value)
        observed.observe(value)
    tally.flush()
    # then their buckets, count and sum are the same, with a value on a bound in that bucket
    assert samples(tallied) == samples(observed)
    assert samples(tallied)[("bucket", (("le", "0.001"),))] == 3
    assert samples(tallied)[("bucket", (("le", "+Inf"),))] == len(values)
    assert samples(tallied)[("sum", ())] == sum(values)


def test_counts_reach_the_metric_without_a_collection_within_the_flush_interval() -> None:
    # given a count made in this thread
    counter = new_counter()
    child = counter.labels("ok")
    tally.inc(child, 3)
    # when nothing collects for a while
    deadline = time.monotonic() + 5 * tally.FLUSH_INTERVAL
    while child._value.get() != 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    # then the background flush added it to the metric's own value
    assert child._value.get() == 3


def test_a_finished_threads_counts_arrive_and_its_totals_are_dropped() -> None:
    # given a thread that counted and ended
    counter = new_counter()
    thread = threading.Thread(target=lambda: tally.inc(counter.labels("ok"), 4))
    thread.start()
    thread.join()
    assert any(entry[0] is thread for entry in tally._entries)
    # when flushed
    tally.flush()
    # then its counts arrived and its totals are no longer kept
    assert sample(f"{counter._name}_total", kind="ok") == 4
    assert not any(entry[0] is thread for entry in tally._entries)


def test_a_forked_child_counts_only_its_own() -> None:
    # given counts made here and not yet added to the metric
    counter = new_counter()
    child = counter.labels("ok")
    tally.flush()
    tally.inc(child, 5)
    read, write = os.pipe()
    # when the process forks, and the child counts 1 and reads the metric
    pid = os.fork()
    if pid == 0:  # pragma: no cover  (the child)
        try:
            tally.inc(child, 1)
            os.write(write, str(sample(f"{counter._name}_total", kind="ok")).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    in_child = os.read(read, 100).decode()
    os.close(read)
    # then the child saw its own count only, and the parent still adds its 5
    assert in_child == "1.0"
    assert sample(f"{counter._name}_total", kind="ok") == 5


def test_a_process_counts_reach_the_multiprocess_files_when_it_exits(tmp_path: Path) -> None:
    # given a process in multiprocess mode that counts through the tally and exits at once
    script = (
        "from prometheus_client import Counter, Histogram\n"
        "from rules_engine import tally\n"
        "c = Counter('mp_total', 'x', ['kind'])\n"
        "h = Histogram('mp_seconds', 'x', buckets=(0.01, 0.1))\n"
        "tally.inc(c.labels('ok'), 3)\n"
        "tally.observe(h, 0.05)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    # when the files are read as /metrics reads them in multiprocess mode
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    # then the counts arrived with the exit
    assert registry.get_sample_value("mp_total", {"kind": "ok"}) == 3
    assert registry.get_sample_value("mp_seconds_bucket", {"le": "0.1"}) == 1
    assert registry.get_sample_value("mp_seconds_sum") == 0.05


def test_a_histogram_laid_out_otherwise_is_observed_directly() -> None:
    # given a histogram without prometheus_client's bucket layout
    class Histogramish:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    histogram = Histogramish()
    # when values are observed through the tally, twice (the second from its remembered layout)
    tally.observe(histogram, 0.25)
    tally.observe(histogram, 4.0)
    # then each went to its own observe() at once
    assert histogram.seen == [0.25, 4.0]
