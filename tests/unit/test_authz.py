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
    with pytest.raises(
        ValueError, match=r"authority 'ha-north' is malformed .*contact_intervals_only must be true or false"
    ):
        load_policies(write(tmp_path, contact_intervals_only=value))


def test_contact_codes_are_bounded_per_authority_and_day_and_refill_with_time(tmp_path):
    from matcher.authz import Authorities
    from matcher.errors import ResourceExhausted

    policy = load_policies(write(tmp_path, contact_codes_per_day=2))["ha-north"]
    authorities = Authorities({"ha-north": policy})
    now = [0.0]

    def clock() -> float:  # a settable clock
        return now[0]

    authorities.take_contact_code(policy, clock)
    authorities.take_contact_code(policy, clock)
    with pytest.raises(ResourceExhausted, match="over its limit of 2 contact codes a day"):
        authorities.take_contact_code(policy, clock)
    authorities.take(policy, clock)  # submissions have a budget of their own
    now[0] += 86_400 / 2  # half a day gives back one code
    authorities.take_contact_code(policy, clock)
    with pytest.raises(ResourceExhausted):
        authorities.take_contact_code(policy, clock)


def test_pinned_fingerprints_are_read_in_any_usual_spelling(tmp_path):
    pin = "AB:" * 31 + "AB"
    assert load_policies(write(tmp_path, certificate_sha256=[pin]))["ha-north"].pins == {"ab" * 32}
    assert load_policies(write(tmp_path))["ha-north"].pins == frozenset()  # optional: unpinned


@pytest.mark.parametrize("pins", ["ab" * 32, ["ab" * 31], ["zz" * 32], [1]])
def test_a_pin_that_is_not_a_sha256_fingerprint_is_refused_naming_the_authority(tmp_path, pins):
    with pytest.raises(ValueError, match=r"authority 'ha-north' is malformed .*certificate_sha256"):
        load_policies(write(tmp_path, certificate_sha256=pins))


def test_a_reload_replaces_the_policies_and_a_bad_file_keeps_the_old_ones(tmp_path, caplog):
    from matcher.authz import Authorities

    path = write(tmp_path, regions=["VN"])
    authorities = Authorities.from_file(path)
    write(tmp_path, regions=["TH"])
    assert authorities.reload() and authorities.named("ha-north").regions == ("TH",)
    path.write_text("{not json")
    assert not authorities.reload()
    assert authorities.named("ha-north").regions == ("TH",)
    assert "not reloaded, the previous one stays in force" in caplog.text


def test_submissions_are_bounded_per_authority_and_minute_and_refill_with_time_up_to_the_limit(tmp_path):
    from matcher.authz import Authorities
    from matcher.errors import ResourceExhausted

    policy = load_policies(write(tmp_path, submissions_per_minute=6))["ha-north"]
    authorities = Authorities({"ha-north": policy})
    now = [0.0]

    def clock() -> float:  # a settable clock
        return now[0]

    for _ in range(6):
        authorities.take(policy, clock)
    with pytest.raises(ResourceExhausted, match=r"over its limit of 6 submissions a minute; retry in 10\.0 s"):
        authorities.take(policy, clock)
    now[0] += 10  # a tenth of a minute gives back one submission, and only one
    authorities.take(policy, clock)
    with pytest.raises(ResourceExhausted, match=r"retry in 10\.0 s"):
        authorities.take(policy, clock)
    now[0] += 3600  # an idle hour fills the bucket up to the limit, no further
    for _ in range(6):
        authorities.take(policy, clock)
    with pytest.raises(ResourceExhausted, match="over its limit of 6 submissions a minute"):
        authorities.take(policy, clock)
