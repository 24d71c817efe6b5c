"""Server configuration: command line over environment over defaults, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path

from matcher.config import Config


def test_the_command_line_wins_over_the_environment_which_wins_over_the_defaults():
    config = Config.from_sources({"store": "sqlite:a.db", "workers": None}, {"MATCHER_STORE": "sqlite:b.db",
                                                                             "MATCHER_WORKERS": "8"})
    assert config.store == "sqlite:a.db" and config.workers == 8 and config.publish_interval == 3600


def test_now_accepts_iso_8601_from_the_environment():
    assert Config.from_sources({}, {"MATCHER_NOW": "2020-04-02T00:00:00Z"}).now == 1585785600


def test_every_problem_is_reported_together(tmp_path: Path):
    config = Config(store="mysql://x", tls_dir=tmp_path / "missing", listen="nowhere", publish_interval=5,
                    retention_days=90)
    problems = config.problems()
    assert len(problems) == 5
    assert any("--store" in p for p in problems) and any("--tls-dir" in p for p in problems)
    assert any("--listen" in p for p in problems) and any("publish interval" in p for p in problems)


def test_a_tls_folder_without_its_files_names_each_missing_file(tmp_path: Path):
    problems = Config(tls_dir=tmp_path).problems()
    for name in ("signing.key", "ca.pem", "server.pem", "server.key", "authorities.json"):
        assert any(name in p for p in problems), name


def test_publishing_alone_needs_only_the_signing_key(tmp_path: Path):
    problems = Config(tls_dir=tmp_path).problems(serving=False)
    assert problems == [f"--tls-dir {tmp_path}: signing.key is missing (`matcher certs --out DIR` writes it)"]
