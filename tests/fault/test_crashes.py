"""Crashes: the server SIGKILLed while authorities submit, a publisher SIGKILLed or frozen half way through its
batches, Redis SIGKILLed and restarted. After recovery every acknowledged key is in exactly one batch, every
batch is whole and verifies, and the service answers health SERVING (tests/support/published.py checks)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from clients.redis_server import RedisServer
from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.store import Store, open_store
from tests.integration.harness import NOW, PUBLISH_EVERY_CASE, TODAY, start_server
from tests.integration.test_service import publish
from tests.support.published import KeyLike, check_exactly_once
from tests.support.submitters import NOT_SERVING, SERVING, Ledger, Worker, started, submit_until, wait_for_health

PENDING_KEYS = 10_000
KEYS_PER_BATCH = 1_000  # ten batches of about 0.15 s each: a publisher can be stopped between any two
SEED = 17  # where the publisher is killed: reproducible from run to run


def trusted(pki: Path) -> TrustedKeys:
    return TrustedKeys([load_verifying_key(pki / "server" / "signing.pub.pem")])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def start_submitters(stubs, ledger: Ledger, stop: threading.Event, count: int, **kwargs) -> list[Worker]:
    return started(*(Worker(submit_until, stubs, f"w{w}", ledger, stop, **kwargs) for w in range(count)))


# --- the server --------------------------------------------------------------------------------------------------


def test_a_server_killed_during_submissions_keeps_every_acknowledged_key_and_publishes_each_once(
    fault_pki, store_url, tmp_path
):
    server = start_server(fault_pki, store_url, "--now", str(NOW), log=tmp_path / "first.log")
    ledger, stop = Ledger(), threading.Event()
    workers = start_submitters([server.authority_stub()], ledger, stop, 4, retry=False)
    wait_until(lambda: len(ledger.acknowledged) >= 40, "40 acknowledged submissions")
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    for worker in workers:
        worker.finish()
    assert not ledger.refused and len(ledger.unanswered) <= len(workers)

    restarted = start_server(fault_pki, store_url, "--now", str(NOW), log=tmp_path / "second.log")
    try:
        wait_for_health(restarted.public_channel(), SERVING)
        first = publish(restarted)
        store = open_store(store_url)
        found = check_exactly_once(store, trusted(fault_pki), ledger.keys(), ledger.keys("unanswered"))
        assert sum(batch["keys"] for batch in first) == found.keys_found >= ledger.accepted_keys

        # The authorities resend what was never answered: stored now, or answered as the first time.
        stub = restarted.authority_stub()
        for request in ledger.unanswered:
            stub.SubmitKeys(request, timeout=10)
        publish(restarted)
        everything = ledger.keys() + ledger.keys("unanswered")
        assert check_exactly_once(store, trusted(fault_pki), everything).keys_found == len(everything)
    finally:
        restarted.stop()


# --- the publisher -----------------------------------------------------------------------------------------------


def fill(store: Store, count: int = PENDING_KEYS) -> list[KeyLike]:
    """Pending keys written straight into the store, as acknowledged submissions leave them."""
    keys = [
        DiagnosisKey(
            hashlib.sha256(b"pending/%d" % n).digest()[:16],
            TODAY - 144 * (1 + n % 10),
            144,
            ReportType.CONFIRMED_TEST,
            0,
        )
        for n in range(count)
    ]
    for first in range(0, count, 1000):
        part = tuple(keys[first : first + 1000])
        store.submit(
            Submission("ha-north", f"fill-{first}", "VN", part, hashlib.sha256(b"%d" % first).digest()),
            response=b"",
            now=NOW,
            retention_seconds=14 * 86400,
        )
    return [(key.key_data, key.rolling_start, key.rolling_period) for key in keys]


def start_publisher(
    store_url: str, pki: Path, *extra: str, per_batch: int = KEYS_PER_BATCH, log: Path | None = None
) -> subprocess.Popen:
    """`matcher publish` as a subprocess; its stderr goes to ``log`` (a file the test can read while it runs) if
    given, else to a pipe."""
    env = {**os.environ, "MATCHER_MAX_KEYS_PER_BATCH": str(per_batch)}
    with open(log, "w") if log else contextlib.nullcontext(subprocess.PIPE) as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "matcher.cli", "publish", "--store", store_url, "--tls-dir", str(pki / "server"),
             "--now", str(NOW), "--json", *PUBLISH_EVERY_CASE, *extra],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )  # fmt: skip


def publish_rest(store_url: str, pki: Path) -> list[dict]:
    import json

    process = start_publisher(store_url, pki)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)["batches"]


def kill_at_batch(process: subprocess.Popen, store: Store, batch: int) -> None:
    """SIGKILLs ``process`` once ``batch`` is committed. It is looked at while stopped (SIGSTOP), so that it commits
    nothing between the look and the kill."""
    deadline = time.monotonic() + 120
    while True:
        process.send_signal(signal.SIGSTOP)
        if process.poll() is not None or store.last_sequence() >= batch:
            break
        process.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, f"batch {batch} was not committed in 120 s"
        time.sleep(0.01)
    exited = process.poll()
    process.kill()
    process.wait()
    assert exited is None, f"the publisher exited by itself ({exited}): {process.stderr.read()}"


# The killed publisher's lease: longer than its whole run of 10 batches takes on busy cores (it takes the lock once
# for the run), so that it is killed half way rather than losing the lock by itself; the next run waits it out.
KILLED_LEASE = 15.0


def test_a_publisher_killed_half_way_leaves_whole_batches_and_the_next_run_publishes_the_rest_once(
    fault_pki, store_url
):
    store = open_store(store_url)
    keys = fill(store)
    kill_after = random.Random(SEED).randint(1, 5)
    process = start_publisher(store_url, fault_pki, "--publish-lease", str(KILLED_LEASE))
    wait_until(lambda: lock_holder(store_url) is not None or process.poll() is not None, "the lock to be taken")
    taken_at = time.monotonic()  # no earlier than the lease began: it runs out by taken_at + KILLED_LEASE
    kill_at_batch(process, store, kill_after)
    done = store.last_sequence()
    assert kill_after <= done < PENDING_KEYS // KEYS_PER_BATCH, f"killed after batch {kill_after}: {done} batches"
    # What the dead publisher committed is whole; no key is in two batches; the rest is still pending.
    partial = check_exactly_once(store, trusted(fault_pki), [], keys)
    assert partial.keys_found == done * KEYS_PER_BATCH

    time.sleep(max(0.0, taken_at + KILLED_LEASE + 0.5 - time.monotonic()))  # the dead publisher's lease runs out
    rest = publish_rest(store_url, fault_pki)
    assert [batch["sequence"] for batch in rest] == list(range(done + 1, PENDING_KEYS // KEYS_PER_BATCH + 1))
    assert sum(batch["keys"] for batch in rest) == PENDING_KEYS - partial.keys_found
    assert check_exactly_once(store, trusted(fault_pki), keys).keys_found == PENDING_KEYS


def lock_holder(store_url: str) -> str | None:
    """Who holds the publish lock now (read only, to know when a publisher has started its run)."""
    if store_url.startswith("sqlite:"):
        with sqlite3.connect(f"file:{store_url.removeprefix('sqlite:')}?mode=ro", uri=True) as db:
            row = db.execute("SELECT owner FROM publish_lock").fetchone()
        return row and row[0]
    import redis

    from matcher.store.redis import LOCK_KEY

    holder = redis.Redis.from_url(store_url).hget(LOCK_KEY, "o")
    return holder and holder.decode()


def test_a_publisher_frozen_past_its_lease_cannot_commit_after_another_took_over(fault_pki, store_url, tmp_path):
    store = open_store(store_url)
    keys = fill(store)
    # One batch of every key: it takes seconds to build, and the publisher is frozen in the middle of it, once its
    # debug log says that it has read the pending keys under the lock and is building the batch.
    log = tmp_path / "frozen.log"
    frozen = start_publisher(store_url, fault_pki, "--publish-lease", "2", "-v", per_batch=PENDING_KEYS, log=log)
    wait_until(lambda: lock_holder(store_url) is not None or frozen.poll() is not None, "the lock to be taken")
    taken_at = time.monotonic()  # no earlier than the lease began: it runs out by taken_at + 2
    wait_until(lambda: "building batch 1:" in log.read_text() or frozen.poll() is not None, "the build to start")
    frozen.send_signal(signal.SIGSTOP)
    try:
        assert frozen.poll() is None, log.read_text()
        assert store.last_sequence() == 0
        time.sleep(max(0.0, taken_at + 2.5 - time.monotonic()))  # its lease runs out (a long pause, a stalled VM)
        rest = publish_rest(store_url, fault_pki)
        assert sum(batch["keys"] for batch in rest) == PENDING_KEYS
    finally:
        frozen.send_signal(signal.SIGCONT)
    out, _ = frozen.communicate(timeout=60)
    err = log.read_text()
    assert frozen.returncode == 1 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("matcher: error: ") and "no longer holds the lock" in err
    # It ran with --json: the error is also its one JSON object on stdout, and nothing else is.
    assert json.loads(out) == {"error": err.splitlines()[-1].removeprefix("matcher: error: "), "exit": 1}
    assert check_exactly_once(store, trusted(fault_pki), keys).keys_found == PENDING_KEYS


# --- Redis -------------------------------------------------------------------------------------------------------


def test_redis_killed_and_restarted_loses_no_acknowledged_key_and_the_service_recovers(fault_pki, tmp_path):
    with RedisServer(tmp_path / "redis", appendonly=True) as redis:
        server = start_server(fault_pki, redis.url, "--now", str(NOW), log=tmp_path / "serve.log")
        try:
            ledger, stop = Ledger(), threading.Event()
            codes: list[grpc.StatusCode] = []
            workers = start_submitters(
                [server.authority_stub()],
                ledger,
                stop,
                4,
                retry=True,
                on_error=lambda error: codes.append(error.code()),
            )
            wait_until(lambda: len(ledger.acknowledged) >= 30, "30 acknowledged submissions")
            redis.kill()
            wait_for_health(server.public_channel(), NOT_SERVING)
            wait_until(lambda: grpc.StatusCode.UNAVAILABLE in codes, "a submission refused while Redis is down")
            during = len(ledger.acknowledged)
            redis.start()
            wait_for_health(server.public_channel(), SERVING)
            wait_until(lambda: len(ledger.acknowledged) >= during + 30, "30 more acknowledged submissions")
            stop.set()
            for worker in workers:
                worker.finish()

            assert set(codes) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}, codes
            assert not ledger.refused and not ledger.unanswered
            publish(server)
            found = check_exactly_once(open_store(redis.url), trusted(fault_pki), ledger.keys())
            assert found.keys_found == ledger.accepted_keys == len(ledger.keys())
        finally:
            server.stop()
