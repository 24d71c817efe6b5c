"""docs/health-authority.md says what the code does: its example runs, and its numbers are the code's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from clients.ha.retry import DEFAULT_POLICY
from matcher.model import MAX_KEYS_PER_SUBMISSION

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "health-authority.md").read_text()


def test_every_console_example_prints_what_the_guide_shows():
    examples = re.findall(r"```console\n\$ matcher-ha ([^\n]+)\n(.*?)```", GUIDE, re.S)
    assert examples, "the guide lost its example"
    for command, expected in examples:
        result = subprocess.run(
            [sys.executable, "-m", "clients.ha.cli", *command.split()], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, command


def test_the_retry_and_submission_numbers_in_the_guide_are_the_codes():
    policy = DEFAULT_POLICY
    assert f"`min({policy.max_backoff:g} s, {policy.initial_backoff:g} s × {policy.multiplier:g}^(n-1))`" in GUIDE
    assert f"(at most {policy.max_server_delay:g} s)" in GUIDE
    assert f"`--attempts N` (default {policy.max_attempts})" in GUIDE
    assert f"`--timeout SECONDS` (default {policy.call_timeout:g})" in GUIDE
    assert f"submissions of at most {MAX_KEYS_PER_SUBMISSION}" in GUIDE
