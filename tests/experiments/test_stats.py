"""The sample-ratio-mismatch check: chi-square goodness of fit, computed without scipy."""

from __future__ import annotations

import math

import pytest

from experiments.stats import chi_square_sf, sample_ratio_check


@pytest.mark.parametrize(
    ("x", "df", "expected"),
    [
        (3.841458820694124, 1, 0.05),  # the textbook 5% critical values
        (5.991464547107979, 2, 0.05),
        (10.827566170662733, 1, 0.001),
        (0.5, 3, 0.9188914116546758),
        (30.0, 10, 0.0008566412107753),
        (0.0, 4, 1.0),
    ],
)
def test_the_chi_square_survival_function_matches_reference_values(
    x: float, df: int, expected: float
) -> None:
    assert chi_square_sf(x, df) == pytest.approx(expected, rel=1e-9)


def test_with_one_degree_of_freedom_it_equals_erfc() -> None:
    for x in (0.01, 0.7, 2.0, 9.0, 40.0):
        assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9)


def test_5000_against_4500_on_a_50_50_split_is_flagged() -> None:
    check = sample_ratio_check(observed=[5000, 4500], weights=[50, 50])
    assert check.chi_square == pytest.approx(26.315789473684212)
    assert check.degrees_of_freedom == 1
    assert check.p_value == pytest.approx(2.8990882828775596e-07, rel=1e-6)
    assert check.flagged is True


def test_5010_against_4990_on_a_50_50_split_is_not_flagged() -> None:
    check = sample_ratio_check(observed=[5010, 4990], weights=[50, 50])
    assert check.chi_square == pytest.approx(0.04)
    assert check.p_value == pytest.approx(0.8414805811217944, rel=1e-9)
    assert check.flagged is False


def test_three_variants_use_two_degrees_of_freedom() -> None:
    check = sample_ratio_check(observed=[2036, 2942, 5022], weights=[20, 30, 50])
    assert check.degrees_of_freedom == 2
    assert check.flagged is False


def test_no_exposures_is_nothing_to_test() -> None:
    check = sample_ratio_check(observed=[0, 0], weights=[50, 50])
    assert (check.p_value, check.flagged) == (1.0, False)


def test_exposures_of_a_weightless_variant_are_a_mismatch() -> None:
    check = sample_ratio_check(observed=[10, 90, 1], weights=[10, 90, 0])
    assert (check.p_value, check.flagged) == (0.0, True)
