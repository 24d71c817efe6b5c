"""The per-lookup false-positive rate: from the system target, through the alarm rule, to the number batches
are sized for; and the numbers docs/spec.md states, as the code computes them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from matcher import fprate
from matcher.exposure_config import COHERENCE_INTERVALS
from matcher.intervals import CLOCK_SKEW_SECONDS

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()


def test_the_default_sizing_meets_the_target_with_equality():
    sizing = fprate.sizing()
    assert sizing.batches_retained == 14 * 24 == 336
    assert sizing.mean_tested_intervals == pytest.approx(1.4)
    assert sizing.coherent_test_pairs_per_day == pytest.approx(5 * 5000 * 4999 * 1.4**2 / 144)
    yearly = 365 * fprate.expected_false_alarms_per_day(sizing.error_rate, batches=336)
    assert yearly == pytest.approx(0.99e-4, rel=1e-9)  # venues take the other 1%


def test_venue_lookups_take_their_share_of_the_target_with_one_match_enough_to_alert():
    yearly = 365 * fprate.venue_error_rate() * fprate.CHECKIN_HOURS_PER_DAY * 336
    assert yearly == pytest.approx(fprate.VENUE_SHARE * 1e-4, rel=1e-9)
    assert fprate.venue_error_rate() == pytest.approx(3.397e-13, rel=1e-3)


def test_the_default_rate_is_about_2_2e_minus_8_or_25_5_bits():
    assert fprate.error_rate_for() == pytest.approx(2.178e-8, rel=1e-3)
    assert fprate.sizing().log2_inv_eps == pytest.approx(25.45, abs=0.01)


def test_more_batches_or_more_observations_mean_a_smaller_rate_by_their_square_root():
    base = fprate.error_rate_for()
    assert fprate.error_rate_for(retention_days=28) == pytest.approx(base / math.sqrt(2), rel=1e-9)
    assert fprate.error_rate_for(publish_interval_seconds=7200) == pytest.approx(base * math.sqrt(2), rel=1e-9)
    ten_thousand = fprate.sizing(observations_per_day=10_000).error_rate
    assert ten_thousand == pytest.approx(base * math.sqrt(5000 * 4999 / (10_000 * 9_999)), rel=1e-9)


@pytest.mark.parametrize("shares", [[1], [1, 1], [5, 3, 2], [997, 2, 1]])
def test_the_sections_of_a_run_share_its_squared_budget_in_proportion_to_their_elements(shares):
    run = fprate.error_rate_for()
    rates = [fprate.section_error_rate(run, n, sum(shares)) for n in shares]
    assert sum(rate**2 for rate in rates) == pytest.approx(run**2, rel=1e-12)


def test_that_division_costs_fewer_bits_than_any_other_of_the_same_budget():
    # minimise sum(n_s log2(1 / eps_s)) under sum(eps_s^2) = eps^2: the proportional split beats equal shares
    run, shares = fprate.error_rate_for(), [9, 1]

    def bits(rates):
        return sum(n * math.log2(1 / r) for n, r in zip(shares, rates))

    proportional = [fprate.section_error_rate(run, n, 10) for n in shares]
    assert bits(proportional) < bits([run / math.sqrt(2)] * 2)
    assert bits(proportional) < bits([run * math.sqrt(0.85), run * math.sqrt(0.15)])
    with pytest.raises(ValueError, match="a section of 0 elements"):
        fprate.section_error_rate(run, 0, 10)


def test_testing_every_neighbour_and_counting_any_two_matches_would_need_far_smaller_rates():
    # the levers of the alarm rule, each against the rule without it
    boundary = fprate.sizing()
    every_neighbour = fprate.sizing(skew_seconds=300)  # t = 2: the window of +-300 s always reaches a neighbour
    assert every_neighbour.mean_tested_intervals == 2.0
    assert boundary.error_rate / every_neighbour.error_rate == pytest.approx(2.0 / 1.4)
    wider = fprate.sizing(coherence_intervals=13)  # two hours instead of one
    assert boundary.error_rate / wider.error_rate == pytest.approx(math.sqrt(12 / 5))


def test_the_tested_intervals_grow_with_the_clock_skew():
    assert fprate.mean_tested_intervals(0) == 1.0
    assert fprate.mean_tested_intervals(CLOCK_SKEW_SECONDS) == pytest.approx(1.4)
    with pytest.raises(ValueError, match="at least 0"):
        fprate.mean_tested_intervals(-1)


def test_nonsense_windows_are_refused():
    with pytest.raises(ValueError, match="must be positive"):
        fprate.error_rate_for(retention_days=0)
    with pytest.raises(ValueError, match="W >= 2"):
        fprate.sizing(coherence_intervals=1)


def test_the_expected_rice_code_is_about_one_and_a_half_bits_above_log2_of_the_inverse_rate():
    for rate in (1e-3, 2.19e-8, 1e-12):
        assert 1.40 < fprate.rice_bits_per_element(rate) - math.log2(1 / rate) < 1.60


def documented(name: str) -> str:
    found = re.search(rf"`{name} = ([0-9][0-9.,e+-]*)`", SPEC)
    assert found, f"docs/spec.md does not state `{name} = ...`"
    return found.group(1).rstrip(".,")


def number(name: str) -> float:
    return float(documented(name).replace(",", ""))


def test_the_numbers_in_the_spec_are_the_ones_the_code_computes():
    sizing = fprate.sizing()
    assert number("O") == fprate.OBSERVATIONS_PER_DAY
    assert number("W") == COHERENCE_INTERVALS
    assert number("skew") == CLOCK_SKEW_SECONDS
    assert number("t") == pytest.approx(sizing.mean_tested_intervals)
    assert number("Pi") == pytest.approx(sizing.coherent_test_pairs_per_day, rel=1e-3)
    assert number("B") == sizing.batches_retained
    assert number("per_day") == pytest.approx(sizing.false_alarms_per_day, rel=1e-3)
    assert number("eps") == pytest.approx(sizing.error_rate, rel=1e-3)
    assert number("log2_inv_eps") == pytest.approx(sizing.log2_inv_eps, abs=0.01)
    assert number("L") == pytest.approx(sizing.lookups_per_observation, rel=1e-3)
    assert number("rice_bits") == pytest.approx(sizing.rice_bits_per_element, abs=0.01)
    assert number("bloom_bits") == pytest.approx(sizing.bloom_bits_per_element, abs=0.01)
    for days in fprate.CASE_DAYS:
        assert number(f"case_{days}_days") == round(days * 144 * sizing.rice_bits_per_element / 8)
    assert number("gaen_case_8_days") == 8 * fprate.GAEN_BYTES_PER_KEY
    assert number("dp3t_case") == fprate.DP3T_BYTES_PER_CASE
    tenth = fprate.section_error_rate(sizing.error_rate, 1, 10)
    assert number("eps_tenth") == pytest.approx(tenth, rel=1e-3)
    assert number("eps_venue") == pytest.approx(fprate.venue_error_rate(), rel=1e-3)
    assert number("venue_share") == fprate.VENUE_SHARE


def test_the_numbers_the_spec_gives_for_the_old_rule_are_the_ones_its_arithmetic_gives():
    # Format 1 sized Bloom filters for 2 false matches anywhere in a day, 3 tested intervals and 84 class filters
    # per batch; the spec keeps those numbers to show what each lever saves.
    per_day = fprate.FALSE_ALARMS_PER_PHONE_YEAR / fprate.DAYS_PER_YEAR
    old_lambda = math.sqrt(2 * per_day)  # P(Poisson >= 2) ~ lambda^2 / 2
    old = old_lambda / (5000 * 3 * 336 * 84)
    assert number("eps_format_1") == pytest.approx(old, rel=2e-3)
