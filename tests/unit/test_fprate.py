"""The per-lookup false-positive rate: from the system target to the number filters are sized for."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from exposure.v1 import config_pb2
from matcher import fprate
from matcher.exposure_config import default_config
from matcher.filters import FilterParams

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()


def poisson_tail_by_definition(mean: float, m: int) -> float:
    return 1 - sum(math.exp(-mean) * mean**j / math.factorial(j) for j in range(m))


@pytest.mark.parametrize(("mean", "m"), [(0.5, 1), (0.5, 2), (3.0, 2), (3.0, 5), (20.0, 10), (40.0, 60)])
def test_the_poisson_tail_agrees_with_its_definition_where_that_is_accurate(mean, m):
    assert fprate.poisson_at_least(mean, m) == pytest.approx(poisson_tail_by_definition(mean, m), rel=1e-9)


def test_the_poisson_tail_stays_accurate_where_one_minus_the_sum_would_cancel():
    # P(X >= 2) = 1 - e^-x (1 + x) ~ x^2 / 2 for small x; the definition loses every digit at x = 1e-9
    assert fprate.poisson_at_least(1e-9, 2) == pytest.approx(0.5e-18, rel=1e-6)
    assert fprate.poisson_at_least(1e-4, 1) == pytest.approx(-math.expm1(-1e-4), rel=1e-12)


def test_the_default_sizing_meets_the_target_with_equality():
    sizing = fprate.sizing(default_config())
    assert sizing.matches_needed == 2
    assert sizing.batches_retained == 14 * 24 == 336
    assert sizing.lookups_per_observation == 3 * 336 * 84 == 84_672
    assert sizing.false_matches_per_day == pytest.approx(5000 * 84_672 * sizing.error_rate, rel=1e-12)
    yearly = 365 * fprate.poisson_at_least(sizing.false_matches_per_day, 2)
    assert yearly == pytest.approx(1e-4, rel=1e-9)
    assert 365 * fprate.poisson_at_least(sizing.false_matches_per_day * 1.001, 2) > 1e-4


def test_the_default_error_rate_is_about_1_7e_minus_12_needing_40_slices():
    rate = fprate.error_rate_for(default_config())
    assert rate == pytest.approx(1.749e-12, rel=1e-3)
    assert FilterParams.for_capacity(1000, rate).num_slices == 40


def test_a_configuration_where_one_match_can_alert_needs_a_far_smaller_rate():
    config = default_config()
    config.minimum_weighted_minutes_per_day = 5.0  # one 10-minute match at weight 1 alerts
    one = fprate.sizing(config)
    assert one.matches_needed == 1
    assert 365 * fprate.poisson_at_least(one.false_matches_per_day, 1) == pytest.approx(1e-4, rel=1e-9)
    assert one.error_rate < fprate.error_rate_for(default_config()) / 1000


def test_more_lookups_mean_a_smaller_rate_in_proportion():
    config = default_config()
    base = fprate.error_rate_for(config)
    assert fprate.error_rate_for(config, retention_days=28) == pytest.approx(base / 2, rel=1e-9)
    assert fprate.error_rate_for(config, tolerance=0) == pytest.approx(base * 3, rel=1e-9)
    assert fprate.error_rate_for(config, publish_interval_seconds=7200) == pytest.approx(base * 2, rel=1e-9)


def test_a_configuration_that_cannot_alert_gets_the_loosest_published_rate():
    config = config_pb2.ExposureConfig()
    config.CopyFrom(default_config())
    del config.attenuation_weights[:]
    config.attenuation_weights.extend([0.0, 0.0, 0.0, 0.0])
    assert fprate.error_rate_for(config) == fprate.MAX_ERROR_RATE


def test_nonsense_windows_are_refused():
    with pytest.raises(ValueError):
        fprate.error_rate_for(default_config(), retention_days=0)
    with pytest.raises(ValueError):
        fprate.error_rate_for(default_config(), tolerance=-1)


def documented(name: str) -> str:
    found = re.search(rf"`{name} = ([0-9][0-9.,e+-]*)`", SPEC)
    assert found, f"docs/spec.md does not state `{name} = ...`"
    return found.group(1)


def test_the_numbers_in_the_spec_are_the_ones_the_code_computes():
    sizing = fprate.sizing(default_config())
    case = FilterParams.for_capacity(fprate.EXAMPLE_CASE_ELEMENTS, sizing.error_rate)
    assert int(documented("m")) == sizing.matches_needed
    assert int(documented("B")) == sizing.batches_retained
    assert int(documented("L").replace(",", "")) == sizing.lookups_per_observation
    assert float(documented("lambda")) == pytest.approx(sizing.false_matches_per_day, rel=1e-3)
    assert float(documented("eps")) == pytest.approx(sizing.error_rate, rel=1e-3)
    assert int(documented("k")) == sizing.num_slices
    assert float(documented("bits_per_element")) == pytest.approx(sizing.bloom_bound_bits_per_element, abs=0.01)
    assert int(documented("case_bits_per_slice").replace(",", "")) == case.bits_per_slice
    assert int(documented("case_filter_bytes").replace(",", "")) == case.image_bytes
    assert int(documented("case_marginal_bytes").replace(",", "")) == round(
        fprate.EXAMPLE_CASE_ELEMENTS * sizing.bloom_bound_bits_per_element / 8
    )
    assert int(documented("gaen_case_bytes")) == 8 * fprate.GAEN_BYTES_PER_KEY
    assert int(documented("C")) == fprate.RISK_CLASSES
    assert int(documented("O").replace(",", "")) == fprate.OBSERVATIONS_PER_DAY
    assert float(documented("MAX_ERROR_RATE")) == fprate.MAX_ERROR_RATE
    one_match = default_config()
    one_match.minimum_weighted_minutes_per_day = 5.0
    assert float(documented("eps_one_match")) == pytest.approx(fprate.error_rate_for(one_match), rel=1e-3)


def test_a_run_with_fewer_filters_gets_looser_filters_in_proportion():
    config = default_config()
    worst = fprate.error_rate_for(config)
    assert fprate.error_rate_for(config, filters_per_period=fprate.RISK_CLASSES) == worst
    assert fprate.error_rate_for(config, filters_per_period=1) == pytest.approx(worst * fprate.RISK_CLASSES, rel=1e-9)
    with pytest.raises(ValueError):
        fprate.error_rate_for(config, filters_per_period=0)


def test_the_per_run_numbers_in_the_spec_are_the_ones_the_code_computes():
    one = fprate.sizing(default_config(), filters_per_period=1)
    assert float(documented("eps_one_filter")) == pytest.approx(one.error_rate, rel=1e-3)
    assert int(documented("case_filter_bytes_one_filter").replace(",", "")) == one.bytes_for(
        fprate.EXAMPLE_CASE_ELEMENTS
    )
    six = fprate.sizing(default_config(), filters_per_period=6)
    assert float(documented("eps_six_filters")) == pytest.approx(six.error_rate, rel=1e-3)
