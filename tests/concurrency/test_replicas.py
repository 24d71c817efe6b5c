"""Scale-out: three `matcher serve` replicas on one Redis, 50 health authorities submitting to them round-robin
for 20 seconds, and `matcher publish` run over and over from two processes at once, racing each other for the
publish lock. Afterwards the keys in the published batches are exactly the acknowledged keys, each in exactly
one batch (tests/support/published.py checks each batch's filters key by key)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.launch import Server, pki_with
from clients.redis_server import RedisServer
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.store import open_store
from tests.integration.harness import NOW, PUBLISH_EVERY_CASE, start_server
from tests.support.published import check_exactly_once
from tests.support.submitters import Ledger, Worker, started, submit_until

AUTHORITIES = [f"ha-{n:02d}" for n in range(50)]
REPLICAS = 3
SUBMIT_SECONDS = 20
RACE_WAIT_SECONDS = 120  # at most this much longer, for publishers slow to start on a loaded machine
PUBLISHERS = 2


@pytest.fixture(scope="module")
def authorities_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki_with(tmp_path_factory.mktemp("replicas-pki") / "tls", *AUTHORITIES)


@pytest.fixture
def replicas(authorities_pki: Path, tmp_path: Path) -> Iterator[tuple[RedisServer, list[Server]]]:
    with RedisServer(tmp_path / "redis") as redis:
        started: list[Server] = []
        try:
            for n in range(REPLICAS):
                started.append(
                    start_server(authorities_pki, redis.url, "--now", str(NOW), log=tmp_path / f"replica-{n}.log")
                )
            yield redis, started
        finally:
            for replica in started:
                replica.stop()


def publish_once(store_url: str, pki: Path) -> list[dict]:
    """One `matcher publish` run: the batches it cut (none when another run held the lock or nothing was due)."""
    result = subprocess.run(
        [sys.executable, "-m", "matcher.cli", "publish", "--store", store_url, "--tls-dir", str(pki / "server"),
         "--now", str(NOW), "--json", *PUBLISH_EVERY_CASE],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["batches"]


def publish_until(store_url: str, pki: Path, stop: threading.Event, runs: list[list[dict]]) -> None:
    while not stop.is_set():
        runs.append(publish_once(store_url, pki))


def test_three_replicas_and_racing_publishers_publish_every_key_50_authorities_had_acknowledged_exactly_once(
    authorities_pki, replicas
):
    redis, servers = replicas
    ledger, stop_submitting, stop_publishing = Ledger(), threading.Event(), threading.Event()
    submitters = started(
        *(
            Worker(
                submit_until,
                [server.authority_stub(name) for server in servers],
                name,
                ledger,
                stop_submitting,
                retry=True,
            )
            for name in AUTHORITIES
        )
    )
    runs: list[list[dict]] = []
    publishers = started(
        *(Worker(publish_until, redis.url, authorities_pki, stop_publishing, runs) for _ in range(PUBLISHERS))
    )
    # Submit for SUBMIT_SECONDS, and on a busy machine (where each publisher process takes seconds to start) until
    # the racing publishers have cut batches in two runs at least, which is the race this test is about.
    began = time.monotonic()
    while time.monotonic() - began < SUBMIT_SECONDS or (
        sum(1 for run in runs if run) < 2 and time.monotonic() - began < SUBMIT_SECONDS + RACE_WAIT_SECONDS
    ):
        time.sleep(0.5)
    stop_submitting.set()
    for worker in submitters:
        worker.finish()
    stop_publishing.set()
    for worker in publishers:
        worker.finish()
    final = publish_once(redis.url, authorities_pki)  # what was acknowledged after the racing runs' last look

    assert not ledger.refused and not ledger.unanswered
    assert {request.submission_id.split(":")[0] for request in ledger.acknowledged} == set(AUTHORITIES)
    acknowledged = ledger.keys()
    trusted = TrustedKeys([load_verifying_key(authorities_pki / "server" / "signing.pub.pem")])
    found = check_exactly_once(open_store(redis.url), trusted, acknowledged)
    batches = [batch for run in [*runs, final] for batch in run]
    assert found.keys_found == len(acknowledged) == ledger.accepted_keys
    assert sum(batch["keys"] for batch in batches) == len(acknowledged)
    assert sorted(batch["sequence"] for batch in batches) == list(range(1, len(found.batches) + 1))
    assert sum(1 for run in runs if run) >= 2, "the racing publishers should have cut batches during the run"
    print(
        f"{len(ledger.acknowledged)} submissions ({len(acknowledged)} keys) acknowledged by {REPLICAS} replicas; "
        f"{len(runs)} racing publish runs, {sum(1 for run in runs if run)} of which cut batches; "
        f"{len(found.batches)} batches"
    )
