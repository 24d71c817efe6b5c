"""A development PKI for load-bearing tests: `matcher certs` with authorities whose rate limit is out of the way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.harness import authorities_file, make_pki

UNLIMITED = 1_000_000  # submissions a minute: these tests measure the service, not its rate limit


def pki_with(folder: Path, *authorities: str, edit: Callable[[dict[str, Any]], None] = lambda policies: None) -> Path:
    """`matcher certs --authority NAME ...` into ``folder``, every authority unlimited; ``edit`` may then change the
    authorities file's policies (a dict by name) before it is written back."""
    make_pki(folder, *authorities)
    path = authorities_file(folder)
    document = json.loads(path.read_text())
    for policy in document["authorities"].values():
        policy["submissions_per_minute"] = UNLIMITED
    edit(document["authorities"])
    path.write_text(json.dumps(document))
    return folder
