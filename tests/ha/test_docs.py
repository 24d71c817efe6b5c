"""docs/health-authority.md says what the code does: its example runs, and its numbers are the code's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from google.protobuf import json_format

from clients.ha.retry import DEFAULT_POLICY
from clients.launch import authorities_file, make_pki
from exposure.v1 import config_pb2
from matcher.exposure_config import default_config
from matcher.model import MAX_KEYS_PER_SUBMISSION
from tests.integration.harness import start_server

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "health-authority.md").read_text()


def test_every_console_example_prints_what_the_guide_shows():
    examples = re.findall(r"```console\n\$ matcher-ha ([^\n]+)\n(.*?)```", GUIDE, re.S)
    assert examples, "the guide lost its example"
    for command, expected in examples:
        result = subprocess.run(
            [sys.executable, "-m", "clients.ha.cli", *command.split()],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, command


def test_the_retry_and_submission_numbers_in_the_guide_are_the_codes():
    policy = DEFAULT_POLICY
    assert (
        f"`min({policy.max_backoff:g} s, {policy.initial_backoff:g} s \N{MULTIPLICATION SIGN} {policy.multiplier:g}^(n-1))`"
        in GUIDE
    )
    assert f"(at most {policy.max_server_delay:g} s)" in GUIDE
    assert f"`--attempts N` (default {policy.max_attempts})" in GUIDE
    assert f"`--timeout SECONDS` (default {policy.call_timeout:g})" in GUIDE
    assert f"submissions of at most {MAX_KEYS_PER_SUBMISSION}" in GUIDE


def example_config() -> str:
    [example] = re.findall(r"```json exposure-config.json\n(.*?)```", GUIDE, re.S)
    return example


def test_the_example_configuration_is_the_servers_default_and_names_every_field_the_table_explains():
    parsed = json_format.Parse(example_config(), config_pb2.ExposureConfig())
    assert parsed == default_config()
    set_by_server = {"version", "issued_at"}
    fields = {f.name for f in config_pb2.ExposureConfig.DESCRIPTOR.fields} - set_by_server
    assert set(json.loads(example_config())) == fields
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", GUIDE, re.M))
    assert fields <= documented, fields - documented


def test_set_config_accepts_the_example_configuration_on_a_real_server(tmp_path: Path):
    tls = make_pki(tmp_path / "tls", "ha-north")
    policies = json.loads(authorities_file(tls).read_text())
    policies["authorities"]["ha-north"]["may_set_config"] = True  # granted, as an operator must
    authorities_file(tls).write_text(json.dumps(policies))
    (tmp_path / "exposure-config.json").write_text(example_config())
    server = start_server(tls, f"sqlite:{tmp_path / 'matcher.db'}")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "clients.ha.cli", "set-config", "--server", server.authority, "--tls-dir", str(tls / "authority-ha-north"),
             "--authority", "ha-north", "--file", str(tmp_path / "exposure-config.json"), "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["version"] == 2  # the server's first was the default, version 1
    finally:
        server.stop()
