"""The real service for tests, through the one launcher (clients/launch.py): the fixed clock of the service
tests, and `matcher serve` with what most tests want of its publish timer."""

from __future__ import annotations

from pathlib import Path

from clients import launch

# 2026-11-20 12:00:00 UTC, interval 2991960: the fixed clock of the service tests.
NOW = 1795176000
TODAY = NOW // 600 - (NOW // 600) % 144
# Most tests publish a case or two and expect them in the next batch: they are about submission, publication,
# distribution or faults, not about the anonymity hold, which would keep such small sections back for a day.
# Their servers and `matcher publish` runs get K = 1 (hold nothing); the tests of the hold use the defaults.
PUBLISH_EVERY_CASE = ("--anonymity-min-cases", "1")


def start_server(pki: Path, store: str, *extra: str, log: Path | None = None) -> launch.Server:
    """`matcher serve` on free loopback ports, ready (clients.launch.start_server), its own publish timer holding
    nothing back (PUBLISH_EVERY_CASE) unless ``extra`` says otherwise: the last value of an option wins."""
    return launch.start_server(pki, store, *PUBLISH_EVERY_CASE, *extra, log=log)
