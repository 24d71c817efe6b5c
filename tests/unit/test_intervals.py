"""Interval arithmetic and time parsing: GAEN's 10-minute grid and UTC days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from matcher.clock import iso, parse_time
from matcher.intervals import (
    day_of,
    day_start,
    days_of,
    first_interval_of,
    interval_number,
    interval_numbers,
    interval_start,
)
from tests.conftest import VECTOR_DAY_START


def test_the_vector_day_starts_at_interval_2642976():
    assert interval_number(VECTOR_DAY_START) == 2642976
    assert day_start(2642976 + 143) == 2642976
    assert day_start(2642976 + 144) == 2642976 + 144


def test_an_interval_covers_exactly_ten_minutes():
    assert interval_number(VECTOR_DAY_START + 599) == interval_number(VECTOR_DAY_START)
    assert interval_number(VECTOR_DAY_START + 600) == interval_number(VECTOR_DAY_START) + 1
    assert interval_start(interval_number(VECTOR_DAY_START + 1234)) == VECTOR_DAY_START + 1200


def test_vectorised_intervals_agree_with_the_scalar_form():
    seconds = np.array([0, 599, 600, VECTOR_DAY_START, VECTOR_DAY_START + 86399])
    assert interval_numbers(seconds).tolist() == [interval_number(int(s)) for s in seconds]
    assert days_of(interval_numbers(seconds)).tolist() == [0, 0, 0, 18354, 18354]


def test_days_and_their_first_intervals_round_trip():
    assert day_of(2642976) == dt.date(2020, 4, 2)
    assert day_of(2642976 - 1) == dt.date(2020, 4, 1)
    assert first_interval_of(dt.date(2020, 4, 2)) == 2642976


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1585785600", 1585785600),
        ("1585785600.9", 1585785600),
        ("2020-04-02", 1585785600),
        ("2020-04-02T00:00:00Z", 1585785600),
        ("2020-04-02T02:00:00+02:00", 1585785600),
        ("2020-04-02T00:10:00", 1585786200),
    ],
)
def test_times_are_read_as_unix_seconds_or_iso_8601_in_utc(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2020-13-01", "", "12:00"])
def test_unreadable_times_are_refused_with_an_example(text):
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time(text)


def test_iso_output_is_utc():
    assert iso(1585785600) == "2020-04-02T00:00:00Z"
