"""`matcher-ha push` against the real service: a real GAEN export, mutual TLS, idempotent re-runs, publication."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clients.ha.gaen_export import read_export
from exposure.v1 import distribution_pb2
from matcher import crypto
from matcher.batches import match, open_body, open_header
from matcher.clock import parse_time
from matcher.signing import TrustedKeys, load_verifying_key
from tests.conftest import DATA
from tests.integration.harness import start_server
from tests.integration.test_service import download, publish

EXPORT = DATA / "internals_sample_diagnosis_key_file.zip"
EXPORT_KEY = DATA / "internals_310-v1_public.pem"
# The sample's 140 keys are from 2020; on this day all of them are inside the retention window.
EXPORT_NOW = parse_time("2020-07-01T00:00:00Z")


def ha(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.ha.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def export_day_server(pki, store_url, tmp_path):
    running = start_server(pki, store_url, "--now", str(EXPORT_NOW), log=tmp_path / "serve.log")
    yield running
    running.stop()


def push(server, *extra: str) -> dict:
    result = ha(
        "push",
        "--server",
        server.authority,
        "--tls-dir",
        str(server.pki / "authority-ha-north"),
        "--authority",
        "ha-north",
        "--export",
        str(EXPORT),
        "--verify-key",
        str(EXPORT_KEY),
        "--region",
        "VN",
        "--now",
        str(EXPORT_NOW),
        "--output",
        "json",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_real_gaen_export_is_pushed_published_and_matched(export_day_server):
    summary = push(export_day_server)
    assert summary["parsed"] == 140 and summary["accepted"] == 140 and summary["rejected"] == []
    assert summary["submissions"] == 5  # 140 keys in submissions of at most 30

    batches = publish(export_day_server, now=EXPORT_NOW + 86400)
    assert sum(b["keys"] for b in batches) == 140

    trusted = TrustedKeys([load_verifying_key(export_day_server.tls_dir / "signing.pub.pem")])
    distribution = export_day_server.distribution_stub()
    listing = distribution.ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10)
    opened = [
        (h, open_body(h, download(distribution, h.sequence)))
        for h in (open_header(b, trusted) for b in listing.batches)
    ]
    keys = read_export(EXPORT).source_keys()
    for key in keys[:: len(keys) // 7]:  # a handful across the file, heard mid-day
        interval = key.rolling_start + 70
        rpi = np.frombuffer(crypto.rpi_at(key.key_data, interval), dtype=np.uint8).reshape(1, 16)
        heard_at = np.array([interval * 600 + 300])  # unix seconds, mid-interval
        hits = [match(header, sections, rpi, heard_at).section[0] for header, sections in opened]
        assert sum(h >= 0 for h in hits) == 1, "every pushed key is in exactly one batch"


def test_pushing_the_same_export_again_is_answered_from_the_first_time(export_day_server):
    first = push(export_day_server)
    again = push(export_day_server)
    assert again["replayed"] == again["submissions"] == first["submissions"]
    assert again["accepted"] == first["accepted"] == 140
    assert sum(b["keys"] for b in publish(export_day_server, now=EXPORT_NOW + 86400)) == 140


def test_a_push_with_an_authority_the_server_does_not_know_fails_in_one_line(export_day_server):
    result = ha(
        "push",
        "--server",
        export_day_server.authority,
        "--tls-dir",
        str(export_day_server.pki / "authority-ha-revoked"),
        "--authority",
        "ha-revoked",
        "--export",
        str(EXPORT),
        "--now",
        str(EXPORT_NOW),
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "PERMISSION_DENIED" in result.stderr and "Traceback" not in result.stderr
