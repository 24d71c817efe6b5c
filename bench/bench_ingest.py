"""Ingestion: keys per second through ``Authority.SubmitKeys`` over mutual TLS into the real service, on SQLite
and on Redis, with 1 and 16 concurrent health-authority clients.

Each client is a process with its own mTLS channel (the HA client's ``authority_channel``) that sends 30-key
submissions of fresh keys, valid at the server's fixed clock, and checks that every one is accepted. The
baseline, measured in the same run against the same server and the same channels, is the cheapest unary call
the server has: ``grpc.health.v1.Health/Check``. Its rate is what grpcio, TLS and this machine allow before any
of our work; SubmitKeys' share of it is what validation and an atomic, idempotent, durable store write cost.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.clients import ROUNDS, Clients, Load
from bench.common import Section
from bench.service import AUTHORITY, NOW, STORES, TODAY, bench_pki, serving, store_url
from clients.ha.channel import authority_channel
from exposure.v1 import authority_pb2, authority_pb2_grpc, keys_pb2
from matcher.model import MAX_KEYS_PER_SUBMISSION, ReportType

QUICK = False
CONCURRENCY = (1, 16)
SECONDS = 2.5  # per turn
CALL_TIMEOUT = 30.0


class Submitter:
    """A health authority pushing 30-key submissions of new keys, one after another."""

    def __init__(self, address: str, tls_dir: str, prefix: str) -> None:
        self.channel = authority_channel(address, Path(tls_dir, f"authority-{AUTHORITY}"), AUTHORITY)
        self.stub = authority_pb2_grpc.AuthorityStub(self.channel)
        self.prefix = f"{prefix}-{os.urandom(4).hex()}"  # every run sends new submissions, never replays
        self.sent = 0
        self()  # connect and check, untimed

    def __call__(self) -> int:
        self.sent += 1
        name = f"{self.prefix}-{self.sent}"
        keys = [
            keys_pb2.DiagnosisKey(
                key_data=hashlib.sha256(f"{name}/{j}".encode()).digest()[:16],
                rolling_start_interval_number=TODAY - 144 * (1 + j % 14),  # yesterday .. 14 days ago: valid, due
                rolling_period=144,
                report_type=ReportType.CONFIRMED_TEST,
                days_since_onset_of_symptoms=j % 14 - 2,
            )
            for j in range(MAX_KEYS_PER_SUBMISSION)
        ]
        response = self.stub.SubmitKeys(
            authority_pb2.SubmitKeysRequest(submission_id=name, keys=keys), timeout=CALL_TIMEOUT
        )
        if response.accepted != len(keys) or response.replayed:
            raise AssertionError(f"submission {name}: {response}")
        return len(keys)

    def close(self) -> None:
        self.channel.close()


class HealthChecker:
    """The baseline: the server's cheapest unary call, over the same kind of mTLS channel."""

    def __init__(self, address: str, tls_dir: str, prefix: str) -> None:
        self.channel = authority_channel(address, Path(tls_dir, f"authority-{AUTHORITY}"), AUTHORITY)
        self.stub = health_pb2_grpc.HealthStub(self.channel)
        self()

    def __call__(self) -> int:
        response = self.stub.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise AssertionError(f"the server is not serving: {response}")
        return 0

    def close(self) -> None:
        self.channel.close()


def _side_by_side(clients: Clients, address: str, tls_dir: Path, n: int) -> dict[str, Load]:
    kwargs = [{"address": address, "tls_dir": str(tls_dir), "prefix": f"client-{i}"} for i in range(n)]
    return clients.alternate({"health": (HealthChecker, kwargs), "submit": (Submitter, kwargs)}, SECONDS)


def _row(what: str, load: Load, baseline: Load | None) -> dict:
    return {
        "what": what,
        "clients": load.clients,
        "calls/s": round(load.calls_per_second),
        "keys/s": round(load.units_per_second) if load.units else None,
        "p50 ms": round(load.latency_ms(50), 2),
        "p99 ms": round(load.latency_ms(99), 2),
        "vs Health/Check calls/s": round(load.calls_per_second / baseline.calls_per_second, 2) if baseline else None,
    }


def run(quick: bool) -> Section:
    rows: list[dict] = []
    summary: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, Clients(max(CONCURRENCY)) as clients:
        tls = bench_pki(Path(tmp))
        for kind in STORES:
            folder = Path(tmp) / kind
            folder.mkdir()
            with store_url(kind, folder) as url, serving(tls, url) as server:
                for n in CONCURRENCY:
                    loads = _side_by_side(clients, server.authority, tls, n)
                    rows.append(_row(f"SubmitKeys, {kind}", loads["submit"], loads["health"]))
                    rows.append(_row("Health/Check, same server (baseline)", loads["health"], None))
                    summary[f"ingest_{kind}_{n}_clients_keys_per_s"] = round(loads["submit"].units_per_second)
                    summary[f"ingest_{kind}_{n}_clients_calls_per_s"] = round(loads["submit"].calls_per_second)
    notes = (
        f"`matcher serve --now {NOW}` (one process, grpcio sync server, 32 worker threads) and its clients share this "
        f"machine's {os.cpu_count()} cores: each client is its own Python process with its own mTLS channel, calling "
        f"back to back for {SECONDS:g} s; SubmitKeys and Health/Check take {ROUNDS} turns each and keep their best. "
        "Absolute rates understate a real deployment, where clients run elsewhere; the ratio to Health/Check on the "
        "same server and channels in the same run is the meaningful figure. A submission is "
        f"{MAX_KEYS_PER_SUBMISSION} fresh keys (yesterday to 14 days ago), each one checked accepted. SQLite commits "
        "with synchronous=FULL and Redis (our own redis-server) with appendfsync always: every acknowledged key is "
        "on disk. The authority's rate limit is raised for the benchmark."
    )
    return Section(title="Ingestion: SubmitKeys over mutual TLS", rows=rows, notes=notes, summary=summary)
