"""What the health-authority client's tests share: the GAEN sample files and the dates that make them valid, a
development PKI, and an in-process stand-in for the service's authority listener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from matcher.certs import write_dev_pki
from tests.conftest import DATA
from tests.ha.authority_peer import AuthorityPeer, serve

INTERNALS_ZIP = DATA / "internals_sample_diagnosis_key_file.zip"
INTERNALS_PEM = DATA / "internals_310-v1_public.pem"
ENS_ZIP = DATA / "ens_testExport-2-records-1-of-1.zip"
ENS_PEM = DATA / "ens_examples_export_public.pem"

# The internals sample: 14 days x 10 keys, midnight-aligned, 2020-06-17 to 2020-06-30 (intervals 2653920 ..
# 2655792, each valid for 144 intervals). At 2020-07-01T00:00Z the newest key has just ended and the oldest
# still ends inside the 14-day retention window: all 140 are valid. Two days later the retention cut-off is
# interval 2654208, so the 20 keys of the first two days (ending at 2654064 and 2654208) are too old.
INTERNALS_ALL_VALID = "2020-07-01T00:00:00Z"
INTERNALS_TWO_DAYS_LATER = "2020-07-03T00:00:00Z"
INTERNALS_FIRST_TWO_DAYS = {2653920, 2654064}

# The ENS example: a key valid for 1 interval from 2649980 and one valid for 114 from 2649866 (both ending
# around 2020-05-20T15:20Z). At interval 2651996 (unix 1591197600) the retention cut-off is 2649980: the key
# ending exactly there is too old, the one ending one interval later is not.
ENS_BOTH_VALID = "2020-05-21T00:00:00Z"
ENS_ONE_TOO_OLD = "1591197600"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development PKI (`matcher certs`' folders) with a server certificate and client certificates for two
    authorities."""
    folder = tmp_path_factory.mktemp("tls")
    write_dev_pki(folder, ["vn-moh", "stranger"])
    return folder


def authority_dir(tls_dir: Path, authority: str) -> Path:
    """What `matcher-ha --tls-dir` reads for ``authority``: its own folder of the PKI."""
    return tls_dir / f"authority-{authority}"


@pytest.fixture
def peer() -> AuthorityPeer:
    """The stand-in's state (what it received, what it answers), its clock at 2020-05-22T20:00Z."""
    return AuthorityPeer(now=2650300 * 600)


@pytest.fixture
def peer_address(peer: AuthorityPeer, tls_dir: Path) -> Iterator[str]:
    """The stand-in listening with mutual TLS on a free loopback port: its address."""
    with serve(peer, tls_dir) as address:
        yield address
