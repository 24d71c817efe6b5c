"""The simulated venues: who visits which room when, who checks in, the air they share, airborne infections and
the truth of room exposures."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clients.sim.encounters import LAST_SECOND
from clients.sim.epidemic import NEVER, Epidemic
from clients.sim.params import OFFICE, RESTAURANT, SHOP, Params
from clients.sim.population import WORKER, build_population
from clients.sim.truth import Truth
from clients.sim.venues import Visits, build_venues, check_in_habit, day_visits, shared_air

PARAMS = Params()
MONDAY = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp())


@pytest.fixture(scope="module")
def world():
    population = build_population(1000, PARAMS, np.random.default_rng(7))
    return population, build_venues(population, PARAMS)


def test_every_workplace_is_an_office_and_school_classes_are_not(world):
    population, venues = world
    assert (venues.kind == SHOP).sum() == 10 and (venues.kind == RESTAURANT).sum() == 6
    workplaces = np.unique(population.group[population.role == WORKER])
    assert (venues.kind[venues.office_of_group[workplaces]] == OFFICE).all()
    assert (venues.kind == OFFICE).sum() == len(workplaces)
    classes = np.setdiff1d(np.unique(population.group[population.group >= 0]), workplaces)
    assert (venues.office_of_group[classes] == -1).all()


def test_a_weekday_sends_present_workers_to_their_office_and_anybody_present_to_shops_and_restaurants(world):
    population, venues = world
    present = np.ones(population.size, dtype=bool)
    present[:100] = False  # in isolation
    habit = check_in_habit(population.size, PARAMS, np.random.default_rng(1))
    visits = day_visits(population, venues, MONDAY, 0, present, habit, PARAMS, np.random.default_rng(2))
    assert present[visits.person].all() and (visits.exit > visits.entry).all()
    assert (visits.entry >= MONDAY).all() and (visits.exit <= MONDAY + LAST_SECOND).all()
    assert (visits.checked_in == habit[visits.person]).all()
    office = venues.kind[visits.venue] == OFFICE
    workers = np.flatnonzero(present & (population.role == WORKER))
    assert sorted(visits.person[office].tolist()) == workers.tolist()
    assert (visits.venue[office] == venues.office_of_group[population.group[visits.person[office]]]).all()
    assert (~office).sum() > 0
    sunday = day_visits(population, venues, MONDAY + 6 * 86400, 6, present, habit, PARAMS, np.random.default_rng(2))
    assert not (venues.kind[sunday.venue] == OFFICE).any()


def _visits(rows, checked_in=None):
    person, venue, entry, exit_ = (np.array(column, dtype=np.int64) for column in zip(*rows))
    flags = np.ones(len(rows), dtype=bool) if checked_in is None else np.array(checked_in)
    return Visits(person, venue, MONDAY + entry, MONDAY + exit_, flags)


def test_shared_air_pairs_each_source_visit_with_every_overlapping_visit_of_the_same_venue_only():
    visits = _visits(
        [
            (0, 5, 0, 3600),  # the source, at venue 5 from 00:00 to 01:00
            (1, 5, 1800, 7200),  # overlaps 30 minutes
            (2, 5, 3600, 4000),  # comes as the source leaves: no overlap
            (3, 6, 0, 3600),  # same time, another venue
            (4, 5, 600, 1200),  # 10 minutes, inside
        ],
        checked_in=[True, False, True, True, True],
    )
    air = shared_air(visits, np.array([True, False, False, False, False]))
    rows = sorted(zip(air.visitor.tolist(), air.source.tolist(), air.seconds.tolist(), air.visitor_checked_in.tolist()))
    assert rows == [(1, 0, 1800, False), (4, 0, 600, True)]
    assert air.source_checked_in.all() and (air.venue == 5).all()


def test_airborne_infections_come_only_from_infectious_people_in_the_room():
    params = Params(infected_share=0, airborne_per_minute=(10.0, 10.0, 10.0))  # certain, to test who
    epidemic = Epidemic.seeded(6, 5, params, np.random.default_rng(0))
    epidemic.infected_day[0], epidemic.onset_day[0] = -3, 0  # infectious (HIGH) on day 0
    epidemic.infected_day[5], epidemic.onset_day[5] = -10, -9  # infected long ago: not susceptible
    visits = _visits([(0, 1, 0, 3600), (1, 1, 0, 600), (2, 2, 0, 3600), (5, 1, 0, 3600), (3, 1, 7200, 9000)])
    air = shared_air(visits, epidemic.infectiousness(0) > 0)
    kinds = np.array([SHOP, RESTAURANT, OFFICE], dtype=np.int8)
    assert epidemic.transmit_in_rooms(air, kinds, 0, np.random.default_rng(1)) == 1
    assert epidemic.infected_day[1] == 0 and epidemic.infected_by[1] == 0
    assert epidemic.infected_day[2] == NEVER and epidemic.infected_day[3] == NEVER


def test_room_exposures_sum_minutes_with_reported_cases_and_count_apart_those_where_both_checked_in():
    truth = Truth(close_range_m=2.0)
    infectious = np.array([2, 1, 0, 0, 0])
    visits = _visits(
        [(0, 1, 0, 3600), (1, 1, 0, 3600), (2, 1, 0, 1200), (3, 1, 1800, 3600), (4, 2, 0, 3600)],
        checked_in=[True, False, True, True, True],
    )
    truth.record_rooms(shared_air(visits, infectious > 0), infectious, 0)
    only_0 = truth.room_exposures(np.array([True, False, False, False, False]))
    rows = {
        (p, d): (m, c)
        for p, d, m, c in zip(
            only_0.person.tolist(), only_0.day.tolist(), only_0.minutes.tolist(), only_0.checked_in_minutes.tolist()
        )
    }
    # 1 did not check in; 2 was there 20 minutes, 3 for 30; 4 was elsewhere.
    assert rows == {(1, 0): (60, 0), (2, 0): (20, 20), (3, 0): (30, 30)}
    both = truth.room_exposures(np.array([True, True, False, False, False]))
    assert dict(zip(zip(both.person.tolist(), both.day.tolist()), both.minutes.tolist()))[(2, 0)] == 40
    assert both.exposed(15) == {(0, 0), (1, 0), (2, 0), (3, 0)}
