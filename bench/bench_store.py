"""Storage: keys per second written through Store.submit (30-key submissions) and bytes stored per key, per backend.

The baseline for each backend is the plainest write of the same keys in the same run: SQLite rows inserted with
executemany in one transaction per submission, Redis hash fields set in one pipelined round trip per submission.
Their ratio is what idempotency, de-duplication and atomic one-step submissions cost. Bytes per key: SQLite's file
growth after a checkpoint; Redis's ``used_memory`` growth (INFO memory).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import Section
from clients.redis_server import RedisServer
from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.store.redis import RedisStore
from matcher.store.sqlite import SqliteStore

QUICK = False
KEYS_PER_SUBMISSION = 30
NOW = 1_585_828_800  # 2020-04-02 12:00 UTC
TODAY = NOW // 600 - 72
RETENTION = 14 * 86_400


def submissions(count: int, seed: int) -> list[Submission]:
    """Random keys of the last 14 days, as a health authority pushes them."""
    rng = hashlib.sha256(seed.to_bytes(8, "little"))
    made = []
    for i in range(count):
        keys = []
        for j in range(KEYS_PER_SUBMISSION):
            rng.update(b"k")
            keys.append(
                DiagnosisKey(rng.digest()[:16], TODAY - 144 * (1 + j % 14), 144, ReportType.CONFIRMED_TEST, j % 14)
            )
        made.append(Submission("health.example", f"bench-{seed}-{i}", "VN", tuple(keys), rng.digest()))
    return made


def timed(write: Callable[[Submission], object], subs: list[Submission]) -> float:
    began = time.perf_counter()
    for sub in subs:
        write(sub)
    return time.perf_counter() - began


@dataclass
class Measured:
    writer: str
    keys_per_second: float
    bytes_per_key: float | None = None  # measured for Store.submit only
    baseline: Measured | None = None  # the plain write it is compared with


def measure_store(
    name: str, store: SqliteStore | RedisStore, subs: list[Submission], size: Callable[[], int]
) -> Measured:
    """Keys per second and bytes per key of ``subs`` written through Store.submit."""
    before = size()
    seconds = timed(lambda sub: store.submit(sub, response=b"ok" * 20, now=NOW, retention_seconds=RETENTION), subs)
    keys = len(subs) * KEYS_PER_SUBMISSION
    return Measured(name, keys / seconds, (size() - before) / keys)


def sqlite_rows(path: Path, subs: list[Submission]) -> Measured:
    store = SqliteStore(path)

    def file_size() -> int:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return path.stat().st_size

    measured = measure_store("sqlite", store, subs, file_size)
    store.close()

    plain = sqlite3.connect(path.with_name("plain.db"), isolation_level=None)
    plain.execute("PRAGMA journal_mode = WAL")
    plain.execute("PRAGMA synchronous = FULL")
    plain.execute("CREATE TABLE keys (key_data BLOB, rolling_start INT, rolling_period INT, report_type INT)")

    def insert(sub: Submission) -> None:
        plain.execute("BEGIN IMMEDIATE")
        plain.executemany(
            "INSERT INTO keys VALUES (?, ?, ?, ?)",
            [(k.key_data, k.rolling_start, k.rolling_period, int(k.report_type)) for k in sub.keys],
        )
        plain.execute("COMMIT")

    measured.baseline = Measured("sqlite: plain INSERT", len(subs) * KEYS_PER_SUBMISSION / timed(insert, subs))
    plain.close()
    return measured


def redis_rows(directory: Path, subs: list[Submission], *, appendonly: bool) -> Measured:
    name = "redis, AOF fsync always" if appendonly else "redis, no persistence"
    with RedisServer(directory, appendonly=appendonly) as server:
        client = server.client()
        store = RedisStore(server.url)
        measured = measure_store(name, store, subs, lambda: int(client.info("memory")["used_memory"]))
        store.close()
        client.flushall()

        def hset(sub: Submission) -> None:
            pipe = client.pipeline(transaction=False)
            for k in sub.keys:
                pipe.hset("plain", k.key_data, k.rolling_start.to_bytes(4, "little") + bytes([k.report_type]))
            pipe.execute()

        rate = len(subs) * KEYS_PER_SUBMISSION / timed(hset, subs)
        measured.baseline = Measured(f"{name}: pipelined HSET", rate)
        client.close()
    return measured


def run(quick: bool) -> Section:
    count = 100 if quick else 1000
    subs = submissions(count, seed=1)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        measured = [
            ("sqlite", sqlite_rows(Path(tmp) / "store.db", subs)),
            ("redis", redis_rows(Path(tmp) / "redis", subs, appendonly=False)),
            ("redis_aof", redis_rows(Path(tmp) / "redis-aof", subs, appendonly=True)),
        ]

    rows, summary = [], {}
    for short, m in measured:
        assert m.baseline is not None
        rows.append(
            {
                "writer": m.writer,
                "keys/s": round(m.keys_per_second),
                "bytes/key": round(m.bytes_per_key or 0),
                "vs baseline": None,
            }
        )
        rows.append(
            {
                "writer": f"{m.baseline.writer} (baseline)",
                "keys/s": round(m.baseline.keys_per_second),
                "bytes/key": None,
                "vs baseline": round(m.keys_per_second / m.baseline.keys_per_second, 2),
            }
        )
        summary[f"store_{short}_keys_per_s"] = round(m.keys_per_second)
        summary[f"store_{short}_bytes_per_key"] = round(m.bytes_per_key or 0)
    return Section(
        title="Storage: keys written per second and bytes per key",
        rows=rows,
        notes=(
            f"{count} submissions of {KEYS_PER_SUBMISSION} random keys from one writer, through Store.submit "
            "(idempotency record, de-duplication by fingerprint, one atomic step). 'vs baseline' is Store.submit's "
            "rate divided by the plainest write of the same keys on the same backend in the same run. SQLite "
            "commits with synchronous=FULL and the AOF Redis with appendfsync always: an acknowledged key is on "
            f"disk. Bytes per key: SQLite file growth after a checkpoint, Redis used_memory growth. "
            f"{os.cpu_count()} cores."
        ),
        summary=summary,
    )
