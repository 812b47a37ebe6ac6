"""Latency histograms: buckets like PostgreSQL's width_bucket, percentiles by nearest rank."""

from __future__ import annotations

from analytics import histogram


def counts_of(*durations: float) -> list[int]:
    counts = histogram.empty()
    for duration in durations:
        counts[histogram.index(duration)] += 1
    return counts


def test_a_bound_belongs_to_the_bucket_above_it() -> None:
    # given durations on and around the first bounds (0.1, 0.25, 0.5)
    # then each bucket holds [lower, upper)
    assert [histogram.index(d) for d in (0.05, 0.1, 0.2, 0.25, 0.5, 0.7)] == [0, 1, 1, 2, 3, 3]
    assert histogram.index(10_000.0) == len(histogram.BOUNDS_MS) == histogram.SIZE - 1


def test_the_percentile_is_the_upper_bound_of_the_bucket_holding_the_rank() -> None:
    # given four durations: ranks 2 (p50) and 4 (p95)
    counts = counts_of(0.5, 1.5, 3.0, 12.0)
    # then p50 is 1.5's bucket [1, 2.5) -> 2.5; p95 is 12's bucket [10, 25) capped at 12
    assert histogram.percentile(counts, 50, 12.0) == 2.5
    assert histogram.percentile(counts, 95, 12.0) == 12.0


def test_the_open_last_bucket_reports_the_slowest_decision() -> None:
    counts = counts_of(20_000.0)
    assert histogram.percentile(counts, 95, 20_000.0) == 20_000.0


def test_no_samples_no_percentile() -> None:
    assert histogram.percentile(histogram.empty(), 50, 0.0) is None


def test_merge_adds_counts_and_reads_a_short_list_as_zeros() -> None:
    merged = histogram.merge(counts_of(0.5), [1])
    assert merged[0] == 1 and merged[3] == 1 and sum(merged) == 2
