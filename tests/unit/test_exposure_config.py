"""The exposure configuration: defaults, rules, infectiousness classes and signing."""

from __future__ import annotations

import pytest

from matcher.envelope import Rejected
from matcher.exposure_config import (
    check_config,
    default_config,
    infectiousness_of,
    open_config,
    sign_config,
)
from matcher.model import Infectiousness
from matcher.signing import TrustedKeys, generate_signing_key


def test_the_default_configuration_is_valid():
    assert check_config(default_config()) == []


@pytest.mark.parametrize(
    "days, expected",
    [
        (None, Infectiousness.STANDARD),
        (-5, Infectiousness.NONE),
        (-2, Infectiousness.HIGH),
        (3, Infectiousness.HIGH),
        (4, Infectiousness.STANDARD),
        (14, Infectiousness.STANDARD),
    ],
)
def test_infectiousness_follows_days_since_onset(days, expected):
    assert infectiousness_of(default_config(), days) == expected


@pytest.mark.parametrize(
    "change, field",
    [
        (
            lambda c: c.attenuation_thresholds_db.__setitem__(slice(None), [60, 50, 70]),
            "config.attenuation_thresholds_db",
        ),
        (lambda c: c.attenuation_thresholds_db.__setitem__(slice(None), [50, 60]), "config.attenuation_thresholds_db"),
        (lambda c: c.attenuation_weights.__setitem__(slice(None), [1, 1, 1]), "config.attenuation_weights"),
        (lambda c: setattr(c, "weight_self_report", 3.0), "config.weight_self_report"),
        (lambda c: setattr(c, "weight_confirmed_test", float("nan")), "config.weight_confirmed_test"),
        (lambda c: setattr(c, "minimum_weighted_minutes_per_day", 0), "config.minimum_weighted_minutes_per_day"),
        (lambda c: setattr(c, "sighting_credit_cap_seconds", 601), "config.sighting_credit_cap_seconds"),
        (
            lambda c: c.infectiousness_for_days_since_onset.__setitem__(20, 1),
            "config.infectiousness_for_days_since_onset[20]",
        ),
    ],
)
def test_a_broken_configuration_names_the_field(change, field):
    config = default_config()
    change(config)
    assert field in [v.field for v in check_config(config)]


def test_a_signed_configuration_opens_only_with_the_pinned_key_and_untouched_bytes():
    key = generate_signing_key()
    signed = sign_config(default_config(), key)
    trusted = TrustedKeys([key.verifying_key()])
    assert open_config(signed, trusted) == default_config()
    signed.config = signed.config[:-1] + bytes([signed.config[-1] ^ 1])
    with pytest.raises(Rejected, match="exposure configuration refused: the signature does not verify"):
        open_config(signed, trusted)
