"""What `--help` tells an operator: the MATCHER_* variables serve and publish read, and how to name a cluster."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from matcher.config import SERVING_ONLY_FIELDS, Config, env_name

BIN = Path(sys.executable).parent


def help_of(*command: str) -> str:
    result = subprocess.run(
        [str(BIN / "matcher"), *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_serve_and_publish_help_list_every_environment_variable_they_read_and_how_to_name_a_redis_cluster():
    for command, serving in (("serve", True), ("publish", False)):
        text = help_of(command)
        for field in dataclasses.fields(Config):
            listed = env_name(field.name) in text.split()
            assert listed == (serving or field.name not in SERVING_ONLY_FIELDS), (command, field.name)
        assert "?cluster=true" in text and "failover, not write" in " ".join(text.split())
