"""Every number of the simulated world, in one frozen dataclass, with the reason for each.

docs/simulation.md describes the model with these values; the report copies them (``Params.as_json``), so a
reader of a report.json knows what world produced it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# (name, calibrated TX power in dBm, share of phones). GAEN phones advertise a per-model calibrated TX power; batches
# do not carry it (docs/spec.md, "Risk classes and sections"), so a phone that matched computes attenuation with
# the configuration's -8 dBm, off by -4 to +3 dB for these four models.
DEVICE_MODELS: tuple[tuple[str, int, float], ...] = (
    ("model-a", -4, 0.20),
    ("model-b", -7, 0.30),
    ("model-c", -9, 0.25),
    ("model-d", -11, 0.25),
)

# Settings of an encounter, as stored in Encounters.setting.
HOME, WORK, CHANCE = 0, 1, 2
SETTING_NAMES = ("home", "work/school", "chance")

# Kinds of venue, as stored in Venues.kind.
SHOP, RESTAURANT, OFFICE = 0, 1, 2
VENUE_KIND_NAMES = ("shop", "restaurant", "office")


@dataclass(frozen=True)
class Params:
    # --- population ----------------------------------------------------------------------------------------------
    # Household sizes 1..5 and their shares (about a European distribution, mean 2.4 people).
    household_sizes: tuple[float, ...] = (0.28, 0.34, 0.16, 0.15, 0.07)
    student_share: float = 0.18  # in a school class on weekdays
    worker_share: float = 0.55  # at a workplace on weekdays; the rest stay home (retired, home workers)
    class_size: int = 24
    workplace_median: float = 8.0  # workplace sizes are log-normal around this, 2..60 people
    # --- encounters (durations in minutes, distances in metres, times in hours of the UTC day) --------------------
    home_distance_median: float = 1.6
    desk_distance_median: float = 2.2  # desk or class neighbours: hours a day at 1-4 m
    meetings_per_worker: float = 1.5  # meetings with a random colleague, per weekday
    meeting_minutes_median: float = 25.0
    meeting_distance_median: float = 1.6
    chance_per_person: float = 3.0  # shops, transport, streets: anybody, per day
    chance_minutes_median: float = 6.0
    chance_distance_median: float = 2.5
    # --- radio (log-distance path loss; attenuation = TX power - RSSI) --------------------------------------------
    path_loss_at_1m_db: float = 50.0
    path_loss_exponent: float = 2.0
    encounter_sigma_db: float = 2.0  # per encounter: body shadowing, pocket or bag, orientation
    sighting_sigma_db: float = 3.0  # per sighting: multipath fading
    sensitivity_dbm: int = -100  # weaker advertisements are not heard
    scan_period_seconds: int = 300  # GAEN-like: each phone scans every 5 minutes, at its own phase
    # --- ground truth -------------------------------------------------------------------------------------------
    close_range_m: float = 2.0  # "close": median attenuation 56 dB, 7 dB inside the weight-1 buckets (<= 63 dB)
    # Truly exposed: this long at close range in one day with infectious cases (F1), or with truly F1-exposed
    # people who shared as contacts, after their exposure (F2). One definition for both tiers: the phone's F2
    # threshold is 30 weighted minutes (the exposure configuration's, an authority's choice), and the report gives
    # F2 recall by duration, so that the threshold's effect shows.
    exposure_minutes: float = 15.0
    # --- epidemic -----------------------------------------------------------------------------------------------
    infected_share: float = 0.01  # people whose symptoms start during the run (seeded infections)
    imported_per_person_day: float = 0.0002  # infections from outside the population
    incubation_days_median: float = 5.0  # infection to symptom onset, log-normal, 3..10 days
    # Infectious from 2 days before onset (the default configuration's HIGH days, -2..3, then STANDARD to 14).
    relative_infectiousness_standard: float = 0.5
    transmission_per_minute: float = 0.003  # at 1 m or closer, falling with 1/distance^2
    symptomatic_share: float = 0.7  # the others are never tested: unreported infections
    tested_share: float = 0.85  # of the symptomatic: tested 0-2 days after onset, diagnosed the same day
    # Of the diagnosed: uploads with the app and a one-time code, or keys pushed by the authority (phones without
    # the app's share flow); the rest decline, and their contacts can never be warned.
    share_with_code: float = 0.75
    pushed_by_authority: float = 0.2
    # --- contacts of cases (F1 -> F2) --------------------------------------------------------------------------
    # Of the people whose phone raises a new F1 alert (and who are not cases), the share who upload as a case's
    # contact with a RECURSIVE code from the authority, so that their own contacts are warned at F2. A contact is
    # not ill and is asked more of than a case (to upload before any diagnosis), and there is no push route for a
    # contact's keys: half, against the cases' 95 %, is a middle guess; the cost in keys scales with it.
    contact_share: float = 0.5
    # A contact who shares is designated F1 by the authority that morning and told to isolate: from that morning
    # on they meet nobody, so every contact they had after their exposure lies on a day whose key they uploaded.
    # Those who do not share are not reached, and go on as before.
    contacts_isolate: bool = True
    # --- venues (check-ins by QR code, shared air in rooms) ---------------------------------------------------------
    # Shops and restaurants are visited by anybody out and about; every workplace is an office with a QR code at
    # its door, where its workers spend the working day (schools have none). Visits are where the air is shared:
    # Bluetooth encounters are generated apart (a chance encounter may happen in a shop), so a room's visitors
    # are mostly out of each other's phones' range.
    shops_per_person: float = 0.01  # one shop for 100 people
    restaurants_per_person: float = 0.006
    shop_visits_per_person: float = 0.5  # a day
    restaurant_visits_per_person: float = 0.15
    shop_minutes_median: float = 20.0
    restaurant_minutes_median: float = 60.0
    office_hours_median: float = 8.0
    # People who scan the QR code at every venue they visit (the others never do): a habit, drawn once per person.
    checkin_share: float = 0.6
    # Airborne transmission: a hazard per minute of shared time in the room with one infectious person (HIGH; a
    # STANDARD one counts relative_infectiousness_standard), by kind of venue (shop, restaurant, office): a
    # restaurant's talking, unmasked diners above a shop's passing customers; an office's is low per minute but
    # lasts the working day.
    airborne_per_minute: tuple[float, float, float] = (0.0001, 0.0004, 0.00002)
    # Truly exposed at a venue: this long in the same room at the same time as infectious cases, in one day (the
    # default configuration's minimum_venue_overlap_minutes, 15, asks as much of a check-in's warned hours).
    venue_exposure_minutes: float = 15.0
    # --- the service ---------------------------------------------------------------------------------------------
    # One batch a day: the publisher sizes batches for one batch a day over the retention window.
    publish_interval_seconds: int = 86400
    morning_hour: int = 5  # uploads, publishing, and every phone's sync and check, before the day's encounters
    device_models: tuple[tuple[str, int, float], ...] = field(default=DEVICE_MODELS)
    # Contact-interval pruning (docs/privacy.md): the authority publishes only the intervals in which a sharing
    # phone heard others, and phones that share say which. Off, as in the service.
    contact_intervals: bool = False

    def median_attenuation_db(self, distance_m: float) -> float:
        return self.path_loss_at_1m_db + 10 * self.path_loss_exponent * math.log10(distance_m)

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["device_models"] = [{"name": n, "tx_power_dbm": p, "share": s} for n, p, s in self.device_models]
        values["close_range_median_attenuation_db"] = round(self.median_attenuation_db(self.close_range_m), 1)
        return values
