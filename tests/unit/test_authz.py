"""The authorities file: what each authority may do, read once, refused with the first problem named."""

from __future__ import annotations

import json

import pytest

from matcher.authz import load_policies


def write(tmp_path, **entry):
    path = tmp_path / "authorities.json"
    base = {"regions": ["VN"], "report_types": ["CONFIRMED_TEST"]}
    path.write_text(json.dumps({"authorities": {"ha-north": {**base, **entry}}}))
    return path


def test_contact_interval_pruning_is_off_unless_an_authority_chooses_it(tmp_path):
    assert not load_policies(write(tmp_path))["ha-north"].contact_intervals_only
    assert load_policies(write(tmp_path, contact_intervals_only=True))["ha-north"].contact_intervals_only


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_flag_that_is_not_true_or_false_is_refused_naming_the_authority(tmp_path, value):
    with pytest.raises(ValueError, match="authority 'ha-north' is malformed .*contact_intervals_only must be true or false"):
        load_policies(write(tmp_path, contact_intervals_only=value))
