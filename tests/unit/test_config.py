"""Server configuration: command line over environment over defaults, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from matcher.config import Config


def test_the_command_line_wins_over_the_environment_which_wins_over_the_defaults():
    config = Config.from_sources(
        {"store": "sqlite:a.db", "workers": None}, {"MATCHER_STORE": "sqlite:b.db", "MATCHER_WORKERS": "8"}
    )
    assert config.store == "sqlite:a.db" and config.workers == 8 and config.publish_interval == 3600


def test_now_accepts_iso_8601_from_the_environment():
    assert Config.from_sources({}, {"MATCHER_NOW": "2020-04-02T00:00:00Z"}).now == 1585785600


def test_every_problem_is_reported_together(tmp_path: Path):
    config = Config(
        store="mysql://x", tls_dir=tmp_path / "missing", listen="nowhere", publish_interval=5, retention_days=90
    )
    problems = config.problems()
    assert len(problems) == 5
    assert any("--store" in p for p in problems) and any("--tls-dir" in p for p in problems)
    assert any("--listen" in p for p in problems) and any("publish interval" in p for p in problems)


def test_a_tls_folder_without_its_files_names_each_missing_file(tmp_path: Path):
    problems = Config(tls_dir=tmp_path).problems()
    for name in ("signing.key", "authority-ca.pem", "server.pem", "server.key", "authorities.json"):
        assert any(name in p for p in problems), name


def test_publishing_alone_needs_only_the_signing_key(tmp_path: Path):
    problems = Config(tls_dir=tmp_path).problems(serving=False)
    assert problems == [f"--tls-dir {tmp_path}: signing.key is missing (`matcher certs --out DIR` writes DIR/server)"]


def test_the_anonymity_hold_defaults_to_five_cases_or_a_day_and_reads_its_own_variables():
    assert (Config().anonymity_min_cases, Config().anonymity_deadline_seconds) == (5, 86400)
    from_env = Config.from_sources({}, {"MATCHER_ANONYMITY_MIN_CASES": "3", "MATCHER_ANONYMITY_DEADLINE": "7200"})
    assert (from_env.anonymity_min_cases, from_env.anonymity_deadline_seconds) == (3, 7200)
    flags_win = Config.from_sources(
        {"anonymity_min_cases": 1, "anonymity_deadline_seconds": 0},
        {"MATCHER_ANONYMITY_MIN_CASES": "3", "MATCHER_ANONYMITY_DEADLINE": "7200"},
    )
    assert (flags_win.anonymity_min_cases, flags_win.anonymity_deadline_seconds) == (1, 0)


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"anonymity_min_cases": 0}, "anonymity minimum of 0 cases: must be at least 1"),
        ({"anonymity_deadline_seconds": -1}, "anonymity deadline -1s: must be 0..1209599"),
        ({"anonymity_deadline_seconds": 14 * 86400}, "anonymity deadline 1209600s: must be 0..1209599"),
        (
            {"anonymity_deadline_seconds": 3 * 86400, "retention_days": 3},
            "anonymity deadline 259200s: must be 0..259199",
        ),
    ],
)
def test_an_anonymity_setting_out_of_range_is_a_problem_saying_what_is_allowed(tmp_path: Path, values, problem):
    (tmp_path / "signing.key").write_text("")  # all that publishing needs besides
    [found] = Config(tls_dir=tmp_path, **values).problems(serving=False)
    assert found.startswith(problem)


def test_environment_values_that_are_not_numbers_are_one_error_naming_each_variable():
    with pytest.raises(ValueError) as refused:
        Config.from_sources(
            {}, {"MATCHER_ANONYMITY_MIN_CASES": "five", "MATCHER_ANONYMITY_DEADLINE": "1d", "MATCHER_WORKERS": "8"}
        )
    assert str(refused.value) == (
        "MATCHER_ANONYMITY_MIN_CASES='five' is not a whole number; MATCHER_ANONYMITY_DEADLINE='1d' is not a whole number"
    )


def test_the_upload_limit_per_connection_reads_its_variable_and_must_be_at_least_one(tmp_path: Path):
    assert Config().uploads_per_minute == 60
    assert Config.from_sources({}, {"MATCHER_UPLOADS_PER_MINUTE": "5"}).uploads_per_minute == 5
    problems = Config(tls_dir=tmp_path, uploads_per_minute=0).problems()
    assert "uploads per minute 0: must be 1..1000000" in problems
