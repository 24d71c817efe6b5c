"""The report's arithmetic, on a hand-made outcome whose every number is known."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest

from clients.sim.epidemic import NEVER, SHARED_WITH_CODE, Epidemic
from clients.sim.params import Params
from clients.sim.population import build_population
from clients.sim.report import (
    TARGET_PER_10K_PERSON_DAYS,
    build_report,
    classify_alerts,
    classify_f2_alerts,
    f2_recall,
    f2_recall_by_duration,
    overall_recall,
    recall_by_duration,
)
from clients.sim.run import Batch, DayStats, Outcome, Settings
from clients.sim.truth import Exposures, RoomExposures

PEOPLE, DAYS = 100, 4


def outcome() -> Outcome:
    settings = Settings(people=PEOPLE, days=DAYS, start=dt.date(2026, 3, 2))
    epidemic = Epidemic.seeded(PEOPLE, DAYS, Params(infected_share=0), np.random.default_rng(0))
    epidemic.infected_day[0], epidemic.onset_day[0], epidemic.diagnosed_day[0] = -3, 1, 1
    epidemic.symptomatic[0], epidemic.upload[0] = True, SHARED_WITH_CODE
    # Person-days with contact to the case: (person, day, close minutes, minutes at any distance).
    rows = [
        (1, 0, 40.0, 40.0),
        (2, 0, 15.0, 15.0),
        (3, 1, 12.0, 12.0),
        (4, 1, 0.0, 90.0),
        (5, 1, 7.0, 7.0),
        (1, 1, 20.0, 25.0),
    ]
    exposures = Exposures(*(np.array(column) for column in zip(*rows)))
    alerts = {
        (1, 0): 2,  # truly exposed, found the morning after day 1 (2 days later)
        (1, 1): 2,
        (3, 1): 2,  # 12 minutes: shorter than the threshold
        (4, 1): 2,  # 90 minutes, farther than close range
        (9, 2): 3,  # no contact at all: a filter false positive
    }  # person 2 (15 minutes) was missed
    batch = Batch(
        day=1,
        sequence=1,
        keys=4,
        keys_published=4,
        elements=576,
        sections=1,
        body_bytes=4000,
        build_seconds=0.02,
        publish_command_seconds=0.7,
        gaen_export_bytes=300,
        case_elements=576,
        gaen_export_bytes_cases=300,
    )
    days = [
        DayStats(day=d, date=f"2026-03-0{d + 2}", bytes_downloaded=PEOPLE * 600, sightings=100 * PEOPLE)
        for d in range(DAYS)
    ]
    days[1].batch, days[1].cases_published = batch, 1
    return Outcome(
        settings=settings,
        population=build_population(PEOPLE, settings.params, np.random.default_rng(0)),
        epidemic=epidemic,
        exposures=exposures,
        contacts=np.empty((0, 6), dtype=np.int64),
        days=days,
        alerts=alerts,
        sync_seconds=np.full((DAYS, PEOPLE), 0.004),
        check_seconds=np.full((DAYS, PEOPLE), 0.002),
        phase_seconds={"phones": 3.0, "service": 1.0},
        held_at_end=[],
    )


def test_alerts_are_true_after_a_shorter_or_farther_contact_or_without_any_contact():
    kinds = classify_alerts(outcome())
    assert (kinds.true, kinds.shorter, kinds.farther, kinds.no_contact) == (2, 1, 1, 1)
    assert kinds.by_morning == {2: (2, 1, 1, 0), 3: (0, 0, 0, 1)}


def test_recall_counts_truly_exposed_people_by_their_worst_day():
    recall = overall_recall(outcome())
    assert (recall["people"], recall["people_found"]) == (2, 1)  # persons 1 (found) and 2 (missed)
    assert (recall["person_days"], recall["person_days_found"]) == (3, 2)
    assert recall["mean_days_to_alert"] == pytest.approx((2 + 1) / 2)


def test_recall_by_duration_buckets_people_by_their_longest_day_at_close_range():
    rows = {row["minutes"]: (row["people"], row["found"]) for row in recall_by_duration(outcome())}
    assert rows == {"5-10 min": (1, 0), "10-15 min": (1, 1), "15-30 min": (1, 0), "30+ min": (1, 1)}


def test_bytes_per_case_and_per_phone_day_next_to_gaen_for_the_same_keys():
    report = build_report(outcome())
    assert report["cases"] == 1
    assert report["bytes_per_case"] == 4000 and report["gaen_bytes_per_case"] == 300
    assert report["batch_bytes_per_phone_day"] == 4000 / DAYS
    assert report["gaen_bytes_per_phone_day"] == 300 / DAYS
    assert report["bytes_per_phone_day"] == 600
    assert report["bandwidth"]["bytes_per_element"] == pytest.approx(4000 / 576)


def test_false_alarms_are_counted_per_10000_person_days_against_the_specs_target():
    report = build_report(outcome())
    assert report["false_alarms_per_10k_person_days"] == pytest.approx(3 / (PEOPLE * DAYS) * 10_000)
    assert report["filter_false_alarms_per_10k_person_days"] == pytest.approx(1 / (PEOPLE * DAYS) * 10_000)
    # docs/spec.md: 1 false alarm per 10,000 phones per year
    assert pytest.approx(1 / 365) == TARGET_PER_10K_PERSON_DAYS
    assert report["alerts"]["target_scaled_to_run"] == pytest.approx(PEOPLE * DAYS / 10_000 / 365)


def test_the_report_has_the_keys_the_issue_names():
    report = build_report(outcome())
    for key in (
        "recall",
        "false_alarms_per_10k_person_days",
        "bytes_per_case",
        "bytes_per_phone_day",
        "gaen_bytes_per_phone_day",
        "people",
        "days",
        "cases",
    ):
        assert key in report
    assert report["people"] == PEOPLE and report["days"] == DAYS and report["recall"] == 0.5


def test_the_epidemic_summary_counts_uploads_only_for_diagnoses_inside_the_run():
    result = outcome()
    result.epidemic.infected_day[7], result.epidemic.onset_day[7] = 2, 6
    result.epidemic.diagnosed_day[7], result.epidemic.upload[7] = 7, SHARED_WITH_CODE  # after the run
    epidemic = build_report(result)["epidemic"]
    assert epidemic["infected"] == 2 and epidemic["diagnosed"] == 1 and epidemic["shared_with_code"] == 1
    assert result.epidemic.diagnosed_day[8] == NEVER


def test_a_morning_after_the_run_counts_its_batch_and_bytes_per_morning_the_phones_synced():
    result = outcome()
    extra = DayStats(day=DAYS, date="2026-03-05", after_the_run=True, bytes_downloaded=PEOPLE * 600, cases_published=2)
    extra.batch = Batch(
        day=DAYS,
        sequence=2,
        keys=8,
        keys_published=8,
        elements=1152,
        sections=1,
        body_bytes=8000,
        build_seconds=0.02,
        publish_command_seconds=0.7,
        gaen_export_bytes=500,
    )
    result.days.append(extra)
    result.held_at_end.extend([5, 6])

    report = build_report(result)

    assert report["cases"] == 3 and report["cases_per_batch"] == [1, 2]
    assert report["run"]["mornings_after_the_run"] == 1 and report["epidemic"]["cases_held_at_end"] == 2
    assert report["batch_bytes_per_phone_day"] == 12000 / (DAYS + 1) and report["bytes_per_phone_day"] == 600
    # false alarms stay per person-day of the run: a morning after it has no encounters
    assert report["alerts"]["person_days"] == PEOPLE * DAYS


def f2_outcome() -> Outcome:
    """outcome() with contacts: persons 1 and 4 (F1 alerts on morning 2) shared as contacts on morning 2, and the
    batch of morning 3 published their keys in a RECURSIVE section."""
    result = outcome()

    def minutes(rows):
        return Exposures(*(np.array(column, dtype=float if i > 1 else np.int64) for i, column in enumerate(zip(*rows))))

    # The truth of F2: minutes with truly exposed contacts who shared, from their exposure on.
    result.f2_exposures = minutes([(10, 2, 45.0, 45.0), (11, 2, 20.0, 20.0), (12, 2, 8.0, 8.0), (1, 1, 30.0, 30.0)])
    # Minutes with every contact who shared (4's exposure was a false alarm: 13 met only 4).
    result.f2_contact_minutes = minutes(
        [
            (10, 2, 45.0, 45.0),
            (11, 2, 20.0, 20.0),
            (12, 2, 8.0, 8.0),
            (13, 2, 40.0, 40.0),
            (14, 2, 2.0, 30.0),
            (1, 1, 30.0, 30.0),
        ]
    )
    result.f2_alerts = {
        (10, 2): 4,  # truly F2-exposed, warned at F2
        (12, 2): 4,  # 8 minutes: shorter
        (13, 2): 4,  # close, but with a contact who was not truly exposed
        (14, 2): 4,  # 30 minutes at a distance: farther
        (15, 2): 4,  # no contact with anyone who shared: a filter false positive
        (1, 1): 2,  # truly F1-exposed that day, and F1 won (also an F1 alert): not an F2 alert
        (2, 0): 3,  # truly F1-exposed, warned at F2 only (person 2 was missed at F1)
    }  # 11 (20 minutes, F2-exposed) was not warned
    result.contact_shares = {1: (2, 0, [0, 1]), 4: (2, 1, [1])}
    result.days[2].designated_f1, result.days[2].contacts_shared, result.days[2].contact_keys_accepted = 3, 2, 3
    result.days[2].batch = Batch(
        day=2,
        sequence=2,
        keys=3,
        keys_published=3,
        elements=432,
        sections=1,
        body_bytes=1500,
        build_seconds=0.02,
        publish_command_seconds=0.7,
        gaen_export_bytes=200,
        contact_keys_published=3,
        contact_elements=432,
        contact_bytes=1500,
    )
    result.days[2].contacts_published = 2
    result.f1_days_only_contact_keys = {(2, 0)}
    return result


def test_f2_alerts_are_true_or_truly_f1_exposed_or_false_after_a_shorter_farther_untrue_or_no_contact():
    kinds = classify_f2_alerts(f2_outcome())
    assert (kinds.true, kinds.f1_day, kinds.shorter, kinds.farther, kinds.untrue_source, kinds.no_contact) == (
        1,
        1,
        1,
        1,
        1,
        1,
    )
    assert kinds.false == 4 and kinds.by_morning == {3: (0, 1, 0, 0, 0, 0), 4: (1, 0, 1, 1, 1, 1)}


def test_f2_recall_counts_days_not_truly_f1_exposed_and_alerts_at_either_tier():
    recall = f2_recall(f2_outcome())
    # (1, 1) is truly F1-exposed, so not an F2 exposure; (12, 2) is 8 minutes: 10 found, 11 missed.
    assert (recall["people"], recall["people_found"], recall["people_found_at_f2"]) == (2, 1, 1)
    assert recall["mean_days_to_alert"] == 2
    rows = {row["minutes"]: (row["people"], row["found"]) for row in f2_recall_by_duration(f2_outcome())}
    assert rows == {"5-10 min": (1, 1), "10-15 min": (0, 0), "15-30 min": (1, 0), "30+ min": (1, 1)}


def test_the_report_gives_f1_and_f2_apart_and_the_bytes_with_and_without_f2():
    report = build_report(f2_outcome())
    assert report["recall"] == 0.5 and report["recall_f2"] == 0.5  # F1 counts F1 alerts only: (2, 0) was at F2
    assert report["alerts"]["truly_exposed_warned_at_f2_only"] == 1
    assert report["false_alarms_f2_per_10k_person_days"] == pytest.approx(4 / (PEOPLE * DAYS) * 10_000)
    f2 = report["alerts_f2"]
    assert f2["total"] == f2["truly_f2_exposed"] + f2["truly_f1_exposed"] + f2["false"] == 6
    bandwidth = report["bandwidth"]
    assert (bandwidth["case_keys_published"], bandwidth["contact_keys_published"]) == (4, 3)
    assert bandwidth["keys_multiplier"] == pytest.approx(7 / 4)
    assert bandwidth["elements_multiplier"] == pytest.approx((576 + 432) / 576)
    assert report["batch_bytes_per_phone_day"] == 5500 / DAYS
    assert report["batch_bytes_per_phone_day_without_f2"] == 4000 / DAYS
    assert report["bytes_per_phone_day_without_f2"] == pytest.approx(600 - 1500 / DAYS)
    assert report["bytes_per_case"] == 4000 and bandwidth["bytes_per_contact"] == 750
    assert bandwidth["gaen_bytes_per_phone_day_without_f2"] == 300 / DAYS
    contacts = report["contacts"]
    assert (contacts["designated_f1"], contacts["shared"], contacts["declined"]) == (3, 2, 1)
    assert contacts["shared_without_an_f1_alert"] == 0 and contacts["keys_before_exposure_day"] == 0
    assert contacts["f1_person_days_only_contact_keys"] == 1 and contacts["mean_days_shared"] == 1.5
    # Person 2 (15 minutes, missed at F1) could only be warned by keys shared as a contact's: the bucket says so.
    [bucket] = [row for row in report["recall_by_duration"] if row["minutes"] == "15-30 min"]
    assert (bucket["people"], bucket["found"], bucket["only_contact_keys"]) == (1, 0, 1)
    detail = report["recall_detail"]
    assert (detail["people"], detail["people_only_contact_keys"], detail["recall_with_case_keys"]) == (2, 1, 1.0)


def test_a_contact_who_shared_without_an_f1_alert_is_reported():
    result = f2_outcome()
    result.contact_shares[7] = (2, 0, [0])  # person 7 never alerted at F1
    assert build_report(result)["contacts"]["shared_without_an_f1_alert"] == 1


def venue_outcome() -> Outcome:
    """outcome() with venues: the case (0) was at venue 3 on day 0 from 12:00 to 13:00 and the authority warned
    hours 12 and 13 (a check-in to 13:30 at the case's word); visitors' truth and check-ins below."""
    result = outcome()
    noon = (dt.date(2026, 3, 2) - dt.date(1970, 1, 1)).days * 86400 + 12 * 3600
    result.room_exposures = RoomExposures(
        person=np.array([20, 21, 22, 23]),
        day=np.array([0, 0, 0, 0]),
        minutes=np.array([60.0, 30.0, 10.0, 45.0]),
        checked_in_minutes=np.array([60.0, 0.0, 10.0, 45.0]),
    )
    result.checkins = np.array(
        [
            (20, 3, noon, noon + 3600, 0),
            (22, 3, noon + 3000, noon + 5400, 0),
            (24, 3, noon + 3600, noon + 5400, 0),
            (25, 4, noon, noon + 3600, 0),
            (23, 3, noon, noon + 2700, 0),
        ],
        dtype=np.int64,
    )
    result.warned_hours = {(3, noon // 3600), (3, noon // 3600 + 1)}
    result.venue_alerts = {
        (20, 0): 2,  # an hour in the room with the case: true
        (22, 0): 2,  # 10 minutes with the case: shorter
        (24, 0): 2,  # 13:00-13:30, after the case left, in a warned hour: same hour
        (26, 0): 2,  # no check-in at a warned venue-hour: a filter false positive
    }  # 21 (30 minutes) did not check in; 23 checked in and was missed
    result.alerts[(23, 0)] = 2  # ... but Bluetooth warned 23
    result.venue_kinds = np.array([0, 0, 1, 1, 2], dtype=np.int8)
    result.days[0].venue_warnings, result.days[0].venue_hours_warned = 1, 2
    result.days[1].batch = replace(result.days[1].batch, venue_hours=2, venue_bytes=40, body_bytes=4040)
    return result


def test_venue_recall_counts_people_in_a_room_with_a_case_and_bluetooth_recall_of_the_same_people():
    venues = build_report(venue_outcome())["venues"]
    assert (venues["people"], venues["people_found"], venues["recall"]) == (3, 1, 1 / 3)
    assert (venues["reachable_people"], venues["reachable_found"]) == (2, 1)
    assert (venues["bluetooth_found"], venues["either_found"]) == (1, 2)
    assert venues["alerts"] == {"total": 4, "true": 1, "shorter": 1, "same_hour": 1, "no_visit": 1, "false": 3}
    assert venues["venues"] == {"shop": 2, "restaurant": 2, "office": 1}
    assert (venues["hours_published"], venues["bytes"], venues["warnings"]) == (2, 40, 1)


def test_venue_bytes_are_neither_a_case_s_nor_f2_s():
    report = build_report(venue_outcome())
    assert report["bytes_per_case"] == 4000 and report["bandwidth"]["venue_bytes"] == 40
    assert report["batch_bytes_per_phone_day_without_f2"] == 4040 / DAYS
