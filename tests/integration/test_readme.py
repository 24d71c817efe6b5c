"""The README's walk-through works as written: its shell block runs unchanged and Bob's phone alerts.

Unchanged but for its two ports: the server's defaults (50051 and 50052) may be held by another program, or by an
ephemeral port of another test's connection, so the block runs on two free ports instead, given to `matcher serve`
through its environment (MATCHER_LISTEN, MATCHER_AUTHORITY_LISTEN) and to the clients in place of the numbers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from clients.redis_server import free_port
from matcher.config import DEFAULT_AUTHORITY_LISTEN, DEFAULT_LISTEN, env_name

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def walk_through() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Running it by hand") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's 'Running it by hand' section has no bash block"
    return block.group(1)


def test_the_readmes_walk_through_runs_as_written_and_bobs_phone_alerts(tmp_path: Path) -> None:
    script = walk_through()
    assert ". .venv/bin/activate" in script and "kill %1" in script
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    for field, default in (("listen", DEFAULT_LISTEN), ("authority_listen", DEFAULT_AUTHORITY_LISTEN)):
        address = f"127.0.0.1:{free_port()}"
        assert default in script, f"the walk-through no longer uses {default}"
        script = script.replace(default, address)
        environment[env_name(field)] = address
    shell = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )
    try:
        stdout, stderr = shell.communicate(timeout=100)
    finally:
        # the block's server too, should the block have stopped before its `kill %1`
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
    assert shell.returncode == 0, stderr[-3000:]
    assert "shared 1 keys" in stdout
    # The first publish holds Alice, the only case; the second, at her deadline, publishes her batch.
    assert (
        "held (VN): 1 keys in 1 sections of fewer than 5 cases, until they have 5 or 2026-11-24T08:00:00Z at the latest"
    ) in stdout
    assert "batch 1 (VN): 1 keys" in stdout
    assert "2026-11-22: near a case (F1): 4 matched intervals, 35 min, score 35 -> ALERT" in stdout
