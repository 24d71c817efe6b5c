"""The simulated world: households and groups, encounters, what scanners hear, infections and the truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clients.sim.encounters import LAST_SECOND, day_encounters
from clients.sim.epidemic import INFECTIOUSNESS, NEVER, PUSHED_BY_AUTHORITY, SHARED_WITH_CODE, Epidemic
from clients.sim.params import CHANCE, HOME, WORK, Params
from clients.sim.population import HOME_ONLY, build_population
from clients.sim.radio import attenuation_db, scan, scan_counts
from clients.sim.truth import Truth, union_seconds, union_seconds_by_group
from matcher.exposure_config import default_config, infectiousness_of

PARAMS = Params()
MONDAY = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp())


@pytest.fixture(scope="module")
def population():
    return build_population(1000, PARAMS, np.random.default_rng(7))


def test_households_hold_everyone_once_and_pairs_join_only_people_living_together(population):
    assert len(population.household) == 1000
    sizes = np.bincount(population.household)
    assert sizes.min() >= 1 and sizes.max() <= len(PARAMS.household_sizes)
    a, b = population.household_pairs.T
    assert (population.household[a] == population.household[b]).all() and (a < b).all()
    assert len(population.household_pairs) == sum(s * (s - 1) // 2 for s in sizes)


def test_neighbours_share_a_group_and_people_who_stay_home_have_none(population):
    a, b = population.neighbour_pairs.T
    assert (population.group[a] == population.group[b]).all() and (population.group[a] >= 0).all()
    assert (population.group[population.role == HOME_ONLY] == -1).all()


def test_phones_take_their_tx_power_from_their_model_and_scan_at_their_own_phase(population):
    powers = np.array([m[1] for m in PARAMS.device_models])
    assert (population.tx_power == powers[population.device]).all()
    assert population.scan_phase.min() >= 0 and population.scan_phase.max() < PARAMS.scan_period_seconds
    assert len(np.unique(population.device)) == len(PARAMS.device_models)


def test_a_weekday_has_home_work_and_chance_encounters_and_a_sunday_no_work(population):
    rng = np.random.default_rng(1)
    present = np.ones(1000, dtype=bool)
    monday = day_encounters(population, MONDAY, 0, present, PARAMS, rng)
    sunday = day_encounters(population, MONDAY + 6 * 86400, 6, present, PARAMS, rng)
    assert set(np.unique(monday.setting)) == {HOME, WORK, CHANCE}
    assert WORK not in set(np.unique(sunday.setting))
    for day in (monday, sunday):
        assert (day.duration > 0).all() and (day.a != day.b).all()


def test_encounters_stay_inside_their_day_so_that_they_never_span_two_daily_keys(population):
    encounters = day_encounters(population, MONDAY, 0, np.ones(1000, dtype=bool), PARAMS, np.random.default_rng(2))
    assert (encounters.start >= MONDAY).all() and (encounters.end <= MONDAY + LAST_SECOND).all()


def test_people_in_isolation_meet_nobody(population):
    present = np.ones(1000, dtype=bool)
    present[::3] = False
    encounters = day_encounters(population, MONDAY, 2, present, PARAMS, np.random.default_rng(3))
    assert present[encounters.a].all() and present[encounters.b].all()


@pytest.mark.parametrize("minutes", [15, 16, 20, 29])
def test_an_encounter_of_m_minutes_gets_m_over_5_scans_rounded_down_or_up_whatever_the_phase(minutes):
    phases = np.arange(300)
    start = np.full(300, MONDAY + 3600 + 17)
    _, count = scan_counts(start, start + minutes * 60, phases, 300)
    assert set(count.tolist()) <= {minutes // 5, -(-minutes // 5)}
    if minutes % 5 == 0:
        assert (count == minutes // 5).all()


def test_both_phones_of_an_encounter_hear_each_other_at_their_own_scans(population):
    from clients.sim.encounters import Encounters

    encounter = Encounters(
        a=np.array([0]),
        b=np.array([1]),
        start=np.array([MONDAY + 3600]),
        duration=np.array([1800]),
        distance=np.array([1.0]),
        setting=np.array([HOME], dtype=np.int8),
    )
    heard = scan(encounter, population, PARAMS, np.random.default_rng(4))
    assert sorted(set(zip(heard.observer.tolist(), heard.subject.tolist()))) == [(0, 1), (1, 0)]
    assert len(heard) == 12  # 30 minutes, 6 scans each
    for phone in (0, 1):
        times = heard.time[heard.observer == phone]
        assert ((times - population.scan_phase[phone]) % 300 == 0).all()


def test_rssi_is_the_advertised_tx_power_minus_the_attenuation_of_the_distance(population):
    from clients.sim.encounters import Encounters

    n = 4000
    quiet = Params(encounter_sigma_db=0.0, sighting_sigma_db=0.0)
    encounters = Encounters(
        a=np.zeros(n, dtype=np.int64),
        b=np.ones(n, dtype=np.int64),
        start=MONDAY + np.arange(n) * 600,
        duration=np.full(n, 300),
        distance=np.full(n, 2.0),
        setting=np.zeros(n, dtype=np.int8),
    )
    heard = scan(encounters, population, quiet, np.random.default_rng(5))
    expected = np.rint(population.tx_power[heard.subject] - attenuation_db(np.array(2.0), quiet))
    assert (heard.rssi == expected).all()


def test_a_15_minute_contact_at_close_range_reaches_the_alert_threshold_as_a_phone_scores_it(population):
    """The model's close range maps into the default configuration's full-weight buckets: a phone that hears a
    case 3 times at <= 2 m counts 15 weighted minutes nearly always, with the TX power the configuration assumes
    (batches do not carry the case's)."""
    from clients.sim.encounters import Encounters
    from matcher.exposure_config import attenuation_weights

    rng = np.random.default_rng(8)
    n = 3000
    pairs = rng.integers(0, 1000, size=(n, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    encounters = Encounters(
        a=pairs[:, 0],
        b=pairs[:, 1],
        start=MONDAY + rng.integers(0, 80000, len(pairs)),
        duration=np.full(len(pairs), 900),
        distance=rng.uniform(0.3, PARAMS.close_range_m, len(pairs)),
        setting=np.zeros(len(pairs), dtype=np.int8),
    )
    heard = scan(encounters, population, PARAMS, rng)
    config = default_config()
    weights = attenuation_weights(config.tx_power_dbm_when_unknown - heard.rssi.astype(np.float64), config)
    key = heard.encounter * 2 + (heard.observer == encounters.b[heard.encounter])
    minutes = np.bincount(key, weights=weights * 5)
    counted = minutes[np.unique(key)]
    assert (counted >= 15).mean() >= 0.97


def test_the_true_infectiousness_is_the_default_configurations_table():
    config = default_config()
    for days in range(-14, 15):
        assert INFECTIOUSNESS[days + 14] == infectiousness_of(config, days)


def test_seeded_infections_have_symptoms_during_the_run_and_diagnoses_follow_onset():
    epidemic = Epidemic.seeded(2000, 14, Params(infected_share=0.05), np.random.default_rng(6))
    infected = epidemic.infected_day < NEVER
    assert infected.sum() == 100
    assert (epidemic.onset_day[infected] >= 0).all() and (epidemic.onset_day[infected] < 13).all()
    diagnosed = epidemic.diagnosed_day < NEVER
    assert (epidemic.symptomatic[diagnosed]).all()
    delay = epidemic.diagnosed_day[diagnosed] - epidemic.onset_day[diagnosed]
    assert delay.min() >= 0 and delay.max() <= 2
    assert set(np.unique(epidemic.upload[diagnosed]).tolist()) <= {SHARED_WITH_CODE, PUSHED_BY_AUTHORITY, 3}


def test_nobody_is_infectious_on_the_day_of_their_own_infection():
    """Otherwise the key of that day would be published as infectious while the truth, which records a day's
    contacts before its infections, says the person was not: a real match would look like a filter false positive."""
    epidemic = Epidemic.seeded(5000, 14, Params(infected_share=0.5), np.random.default_rng(9))
    infected = np.flatnonzero(epidemic.infected_day < NEVER)
    assert (epidemic.onset_day[infected] - epidemic.infected_day[infected] >= 3).all()
    for day in range(-10, 14):
        newly = infected[epidemic.infected_day[infected] == day]
        assert (epidemic.infectiousness(day)[newly] == 0).all()


def test_a_person_diagnosed_on_a_day_is_out_that_day_and_isolated_from_the_next():
    epidemic = Epidemic.seeded(10, 5, Params(infected_share=0), np.random.default_rng(0))
    epidemic.diagnosed_day[3] = 2
    assert epidemic.present(2)[3] and not epidemic.present(3)[3]


def test_only_infectious_people_transmit_and_only_to_people_not_yet_infected(population):
    params = Params(infected_share=0, imported_per_person_day=0, transmission_per_minute=10.0)
    epidemic = Epidemic.seeded(1000, 10, params, np.random.default_rng(0))
    epidemic.infected_day[0], epidemic.onset_day[0] = 0, 2  # infectious from day 0 (onset - 2)
    epidemic.infected_day[2], epidemic.onset_day[2] = 0, 9  # infected, not yet infectious
    from clients.sim.encounters import Encounters

    encounters = Encounters(
        a=np.array([0, 2, 4]),
        b=np.array([1, 3, 0]),
        start=np.full(3, MONDAY),
        duration=np.full(3, 3600),
        distance=np.full(3, 1.0),
        setting=np.zeros(3, dtype=np.int8),
    )
    assert epidemic.transmit(encounters, 0, np.random.default_rng(1)) == 2
    assert epidemic.infected_by[1] == 0 and epidemic.infected_by[4] == 0
    assert epidemic.infected_day[3] == NEVER


def test_union_seconds_counts_overlapping_spans_once():
    assert union_seconds([]) == 0
    assert union_seconds([(0, 10), (5, 20), (30, 40)]) == 30
    assert union_seconds([(0, 100), (10, 20)]) == 100


def test_unions_by_group_never_carry_a_span_from_one_group_into_the_next_whatever_the_order():
    # Group 1's span [0, 50) would cover group 0's [10, 20) if the groups were one line.
    group = np.array([1, 0, 0, 1, 2, 0])
    start = np.array([0, 10, 0, 40, 5, 15])
    end = np.array([50, 20, 12, 60, 6, 30])
    shares = union_seconds_by_group(group, start, end)
    totals = np.bincount(group, weights=shares)
    assert totals.tolist() == [30, 60, 1]


def test_exposure_minutes_are_unions_per_case_summed_over_cases_and_close_counts_only_close_encounters():
    from clients.sim.encounters import Encounters

    truth = Truth(close_range_m=2.0)
    # Person 1 meets case 0 twice (overlapping, one close), and case 2 (close); person 3 meets case 0 far away.
    encounters = Encounters(
        a=np.array([0, 0, 2, 0]),
        b=np.array([1, 1, 1, 3]),
        start=MONDAY + np.array([0, 300, 0, 0]),
        duration=np.array([600, 600, 420, 3600]),
        distance=np.array([1.0, 3.0, 1.5, 5.0]),
        setting=np.zeros(4, dtype=np.int8),
    )
    infectious = np.array([2, 0, 1, 0])
    truth.record(encounters, infectious, day=4)
    exposures = truth.exposures(np.array([True, False, True, False]))
    rows = {
        (p, d): (c, a)
        for p, d, c, a in zip(exposures.person, exposures.day, exposures.close_minutes, exposures.any_minutes)
    }
    assert rows[(1, 4)] == (10 + 7, 15 + 7)
    assert rows[(3, 4)] == (0, 60)
    only_case_2 = truth.exposures(np.array([False, False, True, False]))
    assert list(only_case_2.person) == [1] and list(only_case_2.close_minutes) == [7]


def test_a_contact_who_shared_is_isolated_from_the_morning_they_shared_and_out_before():
    epidemic = Epidemic.seeded(10, 5, Params(infected_share=0), np.random.default_rng(0))
    epidemic.isolate_contact(4, 2)
    assert epidemic.present(1)[4] and not epidemic.present(2)[4] and not epidemic.present(4)[4]
    assert epidemic.present(4).sum() == 9


def _encounters(rows):
    """Encounters from (a, b, start offset in seconds, minutes, distance)."""
    from clients.sim.encounters import Encounters

    a, b, start, minutes, distance = (np.array(column) for column in zip(*rows))
    return Encounters(
        a=a,
        b=b,
        start=MONDAY + start,
        duration=minutes * 60,
        distance=distance.astype(float),
        setting=np.zeros(len(rows), dtype=np.int8),
    )


def test_the_truth_keeps_every_encounter_of_people_who_met_an_infectious_reported_case_from_that_day_on():
    truth = Truth(close_range_m=2.0)
    reported = np.array([True, False, False, False, False])
    infectious = np.array([2, 0, 0, 0, 0])
    # Day 0: 1 meets 2 in the morning, then meets the case 0; 3 meets 4 (neither ever met a case).
    truth.record(_encounters([(1, 2, 0, 30, 1.0), (0, 1, 3600, 20, 1.0), (3, 4, 0, 60, 1.0)]), infectious, 0, reported)
    truth.record(_encounters([(2, 1, 86400, 40, 3.0)]), np.zeros(5, dtype=np.int8), 1, reported)
    near = truth.near_contacts()
    # Rows (contact, source, day, start, end, close): every encounter of 1, from the day it met the case on (the
    # one with 2 before meeting the case too: the F2 truth clips by time); none of 3 and 4, who never met a case.
    kept = sorted((c, s, d) for c, s, d in near[:, :3].tolist())
    assert kept == [(0, 1, 0), (2, 1, 0), (2, 1, 1)]
    assert near[(near[:, 0] == 2) & (near[:, 2] == 1), 5].tolist() == [0]  # 3 m: not close


def test_f2_truth_counts_minutes_with_truly_exposed_contacts_after_their_exposure_on_days_they_shared():
    from clients.sim.truth import exposure_starts, f2_minutes

    truth = Truth(close_range_m=2.0)
    reported = np.array([True, False, False, False, False, False])
    infectious = np.array([2, 0, 0, 0, 0, 0])
    truth.record(
        _encounters(
            [
                (1, 2, 0, 30, 1.0),  # day 0, 00:00: 1 meets 2, before 1's exposure: never counts
                (0, 1, 3600, 20, 1.0),  # 01:00: 1 is truly exposed (20 close minutes with case 0)
                (1, 2, 7200, 25, 1.0),  # 02:00: 25 close minutes with 2, after the exposure
                (0, 5, 3600, 10, 1.0),  # 5 meets the case for 10 minutes: not truly exposed, but may alert and share
                (5, 3, 7200, 40, 1.0),  # 3 meets 5, who shared: minutes with a contact not truly exposed
            ]
        ),
        infectious,
        0,
        reported,
    )
    truth.record(_encounters([(1, 4, 86400, 30, 1.5)]), np.zeros(6, dtype=np.int8), 1, reported)
    exposures = truth.exposures(reported)
    exposed = exposures.exposed(15)
    assert exposed == {(1, 0)}
    starts = exposure_starts(truth.contacts(), reported, exposed)
    assert starts == {1: MONDAY + 3600}
    shared = np.zeros((6, 2), dtype=bool)
    shared[1, 0] = shared[5, 0] = True  # 1 and 5 shared day 0 only: 1's day-1 key was not uploaded
    f2 = f2_minutes(truth.near_contacts(), shared, starts)
    rows = {(p, d): c for p, d, c in zip(f2.person.tolist(), f2.day.tolist(), f2.close_minutes.tolist())}
    assert rows == {(2, 0): 25.0, (0, 0): 20.0}  # the case itself met 1 too; the report leaves out F1 days
    every = f2_minutes(truth.near_contacts(), shared)  # any sharing contact, whatever the time: what phones match
    rows = {(p, d): c for p, d, c in zip(every.person.tolist(), every.day.tolist(), every.close_minutes.tolist())}
    assert rows[(2, 0)] == 55.0 and rows[(3, 0)] == 40.0 and (4, 1) not in rows
