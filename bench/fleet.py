"""A thousand phones at once: each its own TLS connection, all doing their hourly sync at the same moment.

An hourly sync is what a phone that is up to date does when a batch is published: ListBatches after the last
sequence it holds (one new header), then DownloadBatch of that batch's whole body. Real phones spread over the
hour; here all of them start together, round after round, the worst case a push notification or a clock at the
top of the hour would make. Phones are well behaved: one sync at a time each, a 60-second deadline per call, no
retries (an error is counted, not hidden).

The phones run in a few processes (spawned: no gRPC state inherited), each an asyncio loop of grpc.aio channels,
one per phone, with a subchannel pool of its own so that every phone really has its own TCP and TLS connection.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CALL_TIMEOUT = 60.0
CONNECT_SECONDS = 120.0


@dataclass
class FleetResult:
    phones: int
    rounds: int
    latencies: list[float] = field(default_factory=list)  # seconds, one per sync
    errors: Counter = field(default_factory=Counter)  # status code name -> count
    round_seconds: list[float] = field(default_factory=list)  # from a round's start to its last phone's end
    body_bytes: int = 0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


async def _phones(
    address: str, ca_file: str, n: int, after: int, sequence: int, start: float, rounds: int, gap: float
) -> tuple[list[float], dict[str, int], list[tuple[float, float]], int]:
    import grpc

    from exposure.v1 import distribution_pb2, distribution_pb2_grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())
    channels = [
        grpc.aio.secure_channel(address, credentials, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(n)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), CONNECT_SECONDS)
        stubs = [distribution_pb2_grpc.DistributionStub(c) for c in channels]
        latencies: list[float] = []
        errors: Counter = Counter()
        spans: list[tuple[float, float]] = []  # each round's start and the end of its last sync, in this process
        body = [0]

        async def sync(stub) -> None:
            began = time.monotonic()
            try:
                listing = await stub.ListBatches(
                    distribution_pb2.ListBatchesRequest(after_sequence=after), timeout=CALL_TIMEOUT
                )
                if len(listing.batches) != 1:
                    raise AssertionError(f"expected the one new header, got {len(listing.batches)}")
                size = 0
                async for chunk in stub.DownloadBatch(
                    distribution_pb2.DownloadBatchRequest(sequence=sequence), timeout=CALL_TIMEOUT
                ):
                    size += len(chunk.data)
                body[0] = size
                latencies.append(time.monotonic() - began)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1

        for round_ in range(rounds):
            await asyncio.sleep(max(0.0, start + round_ * gap - time.monotonic()))
            began = time.monotonic()
            await asyncio.gather(*(sync(stub) for stub in stubs))
            spans.append((began, time.monotonic()))
        return latencies, dict(errors), spans, body[0]
    finally:
        await asyncio.gather(*(c.close() for c in channels))


def _run_phones(*args) -> tuple[list[float], dict[str, int], list[tuple[float, float]], int]:
    return asyncio.run(_phones(*args))


def hourly_sync(
    address: str,
    ca_file: str,
    *,
    phones: int,
    after: int,
    sequence: int,
    rounds: int = 3,
    gap: float = 5.0,
    processes: int = 4,
) -> FleetResult:
    """``phones`` phones in ``processes`` processes, each syncing (after ``after``, downloading batch ``sequence``)
    at the start of every one of ``rounds`` rounds, ``gap`` seconds apart (a process whose phones are still busy
    starts its next round when they are done). Connections are made before the first round and are not timed."""
    spawn = multiprocessing.get_context("spawn")
    share = [phones // processes + (1 if p < phones % processes else 0) for p in range(processes)]
    result = FleetResult(phones, rounds)
    with futures.ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        # Start a little after the slowest process could have connected all of its phones.
        start = time.monotonic() + 10.0 + phones * 0.01
        running = [
            pool.submit(_run_phones, address, ca_file, n, after, sequence, start, rounds, gap) for n in share if n
        ]
        spans = []
        for done in running:
            latencies, errors, process_spans, body = done.result()
            result.latencies += latencies
            result.errors.update(errors)
            spans.append(process_spans)
            result.body_bytes = max(result.body_bytes, body)
    for round_ in range(rounds):
        result.round_seconds.append(max(s[round_][1] for s in spans) - min(s[round_][0] for s in spans))
    return result
