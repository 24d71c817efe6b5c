"""Distribution: ``DownloadBatch`` throughput and ``ListBatches`` latency of the real service, on SQLite and on
Redis, next to nginx serving the same bytes as static files over TLS, in the same run, on the same machine.

The service holds a fortnight of hourly batches (336): 335 small ones cut by the publisher over the store, and a
realistic one cut by `matcher publish` from 1,000 cases of 8 daily keys pushed through SubmitKeys. Phones are
processes, each with its own channel (gRPC, server TLS) or keep-alive connection (nginx: Python's http.client
over TLS with the same CA), that fetch the whole body again and again; every client checks the body's SHA-256
once before it is timed. ListBatches is timed from one phone, for a first sync (all 336 headers in one page) and
for an hourly sync (the one new header), next to nginx serving the same response bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from bench.clients import ROUNDS, Clients, Load
from bench.common import Curve, Section
from bench.fleet import FleetResult, hourly_sync
from bench.grpc_floor import BODY_FILE, FULL_LIST_FILE, NEW_LIST_FILE
from bench.service import (
    AUTHORITY,
    NOW,
    STORES,
    TODAY,
    bench_pki,
    grpc_floor_serving,
    nginx_serving,
    serving,
    store_url,
)
from clients.launch import Server, matcher
from exposure.v1 import authority_pb2, authority_pb2_grpc, distribution_pb2, distribution_pb2_grpc, keys_pb2
from matcher.batches import open_body, open_header
from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.publisher import Publisher
from matcher.signing import TrustedKeys, load_signing_key, load_verifying_key
from matcher.store import open_store

QUICK = True
PHONES = (1, 32)
QUICK_SECONDS = 2.0  # each side's turn in `make bench QUICK=1`
FLEET_PHONES = 1_000
FLEET_ROUNDS = 3
DOWNLOAD_BAR = 0.8  # DownloadBatch's MB/s at least this share of nginx's, at every number of phones
FIRST_SYNC_BAR = 3.0  # a first sync's p50 at most this many times nginx's for the same bytes
DOWNLOAD_SECONDS = 3.0
LIST_SECONDS = 1.0
CASES = 1_000
HOURLY_CASES = CASES // 24  # the cases of one hourly batch at 1,000 cases a day
DAYS_PER_CASE = 8  # published days of a case: 2 before symptom onset to 5 after
HISTORY = 14 * 24  # a fortnight of hourly batches
CALL_TIMEOUT = 60.0
# grpcio alone, answering the same bytes with no service code (bench/grpc_floor.py): side name -> row label
FLOORS = {
    "floor": "grpcio's sync server alone, no service code",
    "floor-asyncio": "grpcio's asyncio server alone, no service code",
}


# --- the phones -------------------------------------------------------------------------------------------------


def _credentials(ca_file: str) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())


def _checked(data: bytes, sha256: str, what: str) -> bytes:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise AssertionError(f"{what}: {len(data)} bytes that are not the published ones")
    return data


class BatchDownloader:
    """A phone downloading one batch body whole with DownloadBatch (1 MiB chunks), again and again."""

    def __init__(self, address: str, ca_file: str, sequence: int, sha256: str) -> None:
        self.channel = grpc.secure_channel(address, _credentials(ca_file))
        self.stub = distribution_pb2_grpc.DistributionStub(self.channel)
        self.request = distribution_pb2.DownloadBatchRequest(sequence=sequence)
        _checked(self.fetch(), sha256, f"batch {sequence}")

    def fetch(self) -> bytes:
        return b"".join(chunk.data for chunk in self.stub.DownloadBatch(self.request, timeout=CALL_TIMEOUT))

    def __call__(self) -> int:
        return len(self.fetch())

    def close(self) -> None:
        self.channel.close()


class Lister:
    """A phone asking ListBatches for the headers after ``after``. It takes the response's bytes as they arrive,
    as the nginx phone takes the same bytes from a file: both sides deliver bytes, neither parses them."""

    def __init__(self, address: str, ca_file: str, after: int, sha256: str) -> None:
        self.channel = grpc.secure_channel(address, _credentials(ca_file))
        self.call = self.channel.unary_unary(
            "/exposure.v1.Distribution/ListBatches",
            request_serializer=distribution_pb2.ListBatchesRequest.SerializeToString,
            response_deserializer=bytes,
        )
        self.request = distribution_pb2.ListBatchesRequest(after_sequence=after, page_size=1000)
        _checked(self.fetch(), sha256, f"batches after {after}")

    def fetch(self) -> bytes:
        return self.call(self.request, timeout=CALL_TIMEOUT)

    def __call__(self) -> int:
        return len(self.fetch())

    def close(self) -> None:
        self.channel.close()


class FileDownloader:
    """The baseline phone: one keep-alive HTTPS connection to nginx, GETting one static file again and again."""

    def __init__(self, port: int, ca_file: str, name: str, sha256: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        self.connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=CALL_TIMEOUT)
        self.path = "/" + name
        _checked(self.fetch(), sha256, self.path)

    def fetch(self) -> bytes:
        self.connection.request("GET", self.path)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise AssertionError(f"nginx answered {response.status} for {self.path}")
        return data

    def __call__(self) -> int:
        return len(self.fetch())

    def close(self) -> None:
        self.connection.close()


# --- what the service holds ------------------------------------------------------------------------------------


def _key(name: str, rolling_start: int, days_since_onset: int) -> DiagnosisKey:
    data = hashlib.sha256(name.encode()).digest()[:16]
    return DiagnosisKey(data, rolling_start, 144, ReportType.CONFIRMED_TEST, days_since_onset)


def cut_history(store_url: str, tls_dir: Path, batches: int) -> None:
    """``batches`` small hourly batches before NOW, cut by the publisher itself over the store: two keys each
    (one HIGH and one STANDARD, in the one section the default configuration gives them: the header shape of a
    real hourly batch; their bodies are small)."""
    store = open_store(store_url)
    publisher = Publisher(
        store,
        load_signing_key(tls_dir / "server" / "signing.key"),
        retention_days=14,
        publish_interval=3600,
        max_keys_per_batch=1000,
        anonymity_min_cases=1,  # an hour of history is one submission: one "case"
    )
    try:
        for hour in range(batches, 0, -1):
            at = NOW - hour * 3600
            day = at // 600 - (at // 600) % 144
            keys = (_key(f"history-{hour}-a", day - 288, 0), _key(f"history-{hour}-b", day - 288, 5))
            submission = Submission(AUTHORITY, f"history-{hour}", "VN", keys, hashlib.sha256(b"%d" % hour).digest())
            store.submit(submission, response=b"", now=at, retention_seconds=14 * 86400)
            [published] = publisher.publish(at).batches
            if published.sections != 1 or published.keys_published != 2:
                raise AssertionError(f"history batch {published.sequence}: {published}")
    finally:
        store.close()


def push_cases(server: Server, tls_dir: Path, cases: int, first: int = 0) -> None:
    """Each case's 8 daily keys (2 days before symptom onset to 5 after, ending yesterday) in one submission;
    cases are numbered from ``first``."""
    from clients.ha.channel import authority_channel

    with authority_channel(server.authority, tls_dir / f"authority-{AUTHORITY}", AUTHORITY) as channel:
        stub = authority_pb2_grpc.AuthorityStub(channel)
        for case in range(first, first + cases):
            keys = [
                keys_pb2.DiagnosisKey(
                    key_data=hashlib.sha256(f"case-{case}-{day}".encode()).digest()[:16],
                    rolling_start_interval_number=TODAY - 144 * (DAYS_PER_CASE - day),
                    rolling_period=144,
                    report_type=ReportType.CONFIRMED_TEST,
                    days_since_onset_of_symptoms=day - 2,
                )
                for day in range(DAYS_PER_CASE)
            ]
            response = stub.SubmitKeys(
                authority_pb2.SubmitKeysRequest(submission_id=f"case-{case}", keys=keys), timeout=CALL_TIMEOUT
            )
            if response.accepted != DAYS_PER_CASE or response.embargoed:
                raise AssertionError(f"case {case}: {response}")


def publish(store: str, tls_dir: Path, now: int = NOW) -> dict:
    result = matcher("publish", "--store", store, "--tls-dir", str(tls_dir / "server"), "--now", str(now), "--json")
    [published] = json.loads(result.stdout)["batches"]  # 1,000 cases, each its own submission: nothing held
    return published


def published_files(server: Server, tls_dir: Path, sequence: int) -> dict[str, bytes]:
    """The bytes phones get, read through the service and verified as a phone would: the body of batch
    ``sequence``, and the ListBatches answers for a first sync and for an hourly one."""
    trusted = TrustedKeys([load_verifying_key(tls_dir / "phone" / "signing.pub.pem")])
    stub = server.distribution_stub()
    everything = stub.ListBatches(distribution_pb2.ListBatchesRequest(page_size=1000), timeout=CALL_TIMEOUT)
    new = stub.ListBatches(distribution_pb2.ListBatchesRequest(after_sequence=sequence - 1), timeout=CALL_TIMEOUT)
    if len(everything.batches) != sequence or everything.more or [len(new.batches), new.more] != [1, False]:
        raise AssertionError(f"expected {sequence} batches, listed {len(everything.batches)}")
    header = open_header(new.batches[0], trusted)
    request = distribution_pb2.DownloadBatchRequest(sequence=sequence)
    body = b"".join(chunk.data for chunk in stub.DownloadBatch(request, timeout=CALL_TIMEOUT))
    open_body(header, body)  # raises unless the body's digest matches its signed header and every section decodes
    return {BODY_FILE: body, FULL_LIST_FILE: everything.SerializeToString(), NEW_LIST_FILE: new.SerializeToString()}


# --- measuring --------------------------------------------------------------------------------------------------


def _sha(files: dict[str, bytes], name: str) -> str:
    return hashlib.sha256(files[name]).hexdigest()


def _download_row(what: str, load: Load, body: int, baseline: Load | None) -> dict:
    return {
        "what": what,
        "phones": load.clients,
        "MB/s": round(load.units_per_second / 1e6, 1),
        "downloads/s": round(load.calls_per_second, 1),
        "p50 ms": round(load.latency_ms(50), 1),
        "p99 ms": round(load.latency_ms(99), 1),
        "body bytes": body,
        "vs nginx": round(load.units_per_second / baseline.units_per_second, 2) if baseline else None,
    }


def _latency_row(what: str, load: Load, baseline: Load | None) -> dict:
    return {
        "what": what,
        "calls/s": round(load.calls_per_second),
        "response bytes": load.units // load.calls,
        "p50 ms": round(load.latency_ms(50), 2),
        "p99 ms": round(load.latency_ms(99), 2),
        "p50 vs nginx": round(load.latency_ms(50) / baseline.latency_ms(50), 1) if baseline else None,
    }


def measure(
    clients: Clients, server: Server, floors: dict[str, str], port: int, ca: str, sequence: int, files: dict[str, bytes]
) -> dict:
    """Every download and listing of the service next to grpcio's floors (side -> address) and nginx's, all
    taking turns."""

    def phones(n: int, **kwargs: object) -> list[dict]:
        return [dict(ca_file=ca, **kwargs)] * n

    def downloads(n: int) -> dict[str, Load]:
        grpc_phones = {"sequence": sequence, "sha256": _sha(files, BODY_FILE)}
        return clients.alternate(
            {
                "ours": (BatchDownloader, phones(n, address=server.public, **grpc_phones)),
                **{
                    side: (BatchDownloader, phones(n, address=address, **grpc_phones))
                    for side, address in floors.items()
                },
                "nginx": (FileDownloader, phones(n, port=port, name=BODY_FILE, sha256=_sha(files, BODY_FILE))),
            },
            DOWNLOAD_SECONDS,
        )

    def lists(name: str, after: int) -> dict[str, Load]:
        return clients.alternate(
            {
                "ours": (Lister, phones(1, address=server.public, after=after, sha256=_sha(files, name))),
                **{
                    side: (Lister, phones(1, address=address, after=after, sha256=_sha(files, name)))
                    for side, address in floors.items()
                },
                "nginx": (FileDownloader, phones(1, port=port, name=name, sha256=_sha(files, name))),
            },
            LIST_SECONDS,
        )

    return {
        "downloads": {n: downloads(n) for n in PHONES},
        "lists": {name: lists(name, after) for name, after in ((FULL_LIST_FILE, 0), (NEW_LIST_FILE, sequence - 1))},
    }


def run_quick() -> Section:
    """`make bench QUICK=1`: one phone downloading the 1,000-case batch from the service, from grpcio's floor and
    from nginx, a few seconds each, on SQLite (no history, no Redis)."""
    with tempfile.TemporaryDirectory(prefix="bench-distribution-") as tmp, Clients(1) as clients:
        tls = bench_pki(Path(tmp))
        url = f"sqlite:{Path(tmp) / 'matcher.db'}"
        with serving(tls, url) as server:
            push_cases(server, tls, CASES)
            sequence = publish(url, tls)["sequence"]
            files = published_files(server, tls, sequence)
            with nginx_serving(tls, files) as port, grpc_floors(tls, files) as floors:
                phone = {"ca_file": str(tls / "phone" / "ca.pem"), "sha256": _sha(files, BODY_FILE)}
                loads = clients.alternate(
                    {
                        "ours": (BatchDownloader, [dict(phone, address=server.public, sequence=sequence)]),
                        **{
                            side: (BatchDownloader, [dict(phone, address=address, sequence=sequence)])
                            for side, address in floors.items()
                        },
                        "nginx": (FileDownloader, [dict(phone, port=port, name=BODY_FILE)]),
                    },
                    QUICK_SECONDS,
                )
    ours, nginx = loads["ours"].units_per_second, loads["nginx"].units_per_second
    floor_rate = max(loads[side].units_per_second for side in FLOORS)
    return Section(
        title="Distribution (quick)",
        rows=[],
        summary={
            "download_vs_nginx": round(ours / nginx, 2),
            "download_grpcio_floor_vs_nginx": round(floor_rate / nginx, 2),  # the faster of grpcio's two servers
            "download_mb_per_s": round(ours / 1e6, 1),
            "download_nginx_mb_per_s": round(nginx / 1e6, 1),
        },
    )


def fleet(server: Server, tls: Path, url: str, after: int) -> FleetResult:
    """An hour's batch (HOURLY_CASES cases) published after ``after``, then FLEET_PHONES phones syncing it at once."""
    push_cases(server, tls, HOURLY_CASES, first=CASES)
    hourly = publish(url, tls, now=NOW + 3600)["sequence"]
    if hourly != after + 1:
        raise AssertionError(f"the hourly batch is {hourly}, expected {after + 1}")
    return hourly_sync(
        server.public,
        str(tls / "phone" / "ca.pem"),
        phones=FLEET_PHONES,
        after=after,
        sequence=hourly,
        rounds=FLEET_ROUNDS,
    )


@contextmanager
def grpc_floors(tls: Path, files: dict[str, bytes]) -> Iterator[dict[str, str]]:
    """Both of grpcio's servers alone, serving ``files``: side name (FLOORS) -> address."""
    with grpc_floor_serving(tls, files) as sync, grpc_floor_serving(tls, files, asyncio=True) as asyncio:
        yield {"floor": sync, "floor-asyncio": asyncio}


def _floor_note(ratios: list[float], bar: float, *, at_least: bool) -> str:
    """What grpcio alone reached against the same bar: whether a service built on it could meet the bar here."""
    best = max(ratios) if at_least else min(ratios)
    reachable = best >= bar if at_least else best <= bar
    return (
        "The floors, grpcio's sync and asyncio servers answering the same bytes with no service code "
        f"(bench/grpc_floor.py, as many processes as the service, taking turns with it), reached {best}x at best: "
        + (
            "the bar is within grpcio's reach on this machine in this run."
            if reachable
            else "no service built on grpcio's Python server reaches the bar on this machine in this run."
        )
    )


def run(quick: bool) -> Section | list[Section]:
    if quick:
        return run_quick()
    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-distribution-") as tmp, Clients(max(PHONES)) as clients:
        tls = bench_pki(Path(tmp))
        for kind in STORES:
            folder = Path(tmp) / kind
            folder.mkdir()
            with store_url(kind, folder) as url:
                cut_history(url, tls, HISTORY - 1)
                with serving(tls, url) as server:
                    push_cases(server, tls, CASES)
                    sequence = publish(url, tls)["sequence"]
                    files = published_files(server, tls, sequence)
                    with nginx_serving(tls, files) as port, grpc_floors(tls, files) as floors:
                        ca = str(tls / "phone" / "ca.pem")
                        measured[kind] = measure(clients, server, floors, port, ca, sequence, files)
                    if kind == "sqlite":
                        phones = fleet(server, tls, url, sequence)

    body = len(files[BODY_FILE])
    download_rows, list_rows, summary, series = [], [], {}, {}
    ours_vs_nginx, floor_vs_nginx, first_syncs, floor_first_syncs = [], [], [], []
    for kind in STORES:
        for n, loads in measured[kind]["downloads"].items():
            ours = _download_row(f"DownloadBatch, {kind}", loads["ours"], body, loads["nginx"])
            floor_rows = [_download_row(label, loads[side], body, loads["nginx"]) for side, label in FLOORS.items()]
            download_rows += [
                ours,
                *floor_rows,
                _download_row("nginx, the same body as a static file (baseline)", loads["nginx"], body, None),
            ]
            ours_vs_nginx.append(ours["vs nginx"])
            floor_vs_nginx += [row["vs nginx"] for row in floor_rows]
            summary[f"download_{kind}_{n}_phones_mb_per_s"] = ours["MB/s"]
            summary[f"download_{kind}_{n}_phones_vs_nginx"] = ours["vs nginx"]
            summary[f"download_{kind}_{n}_phones_grpcio_floor_vs_nginx"] = max(row["vs nginx"] for row in floor_rows)
            for side, label in (("ours", f"DownloadBatch, {kind}"), ("nginx", f"nginx, next to {kind}")):
                series.setdefault(label, []).append((n, loads[side].units_per_second / 1e6))
        for name, shape in ((FULL_LIST_FILE, f"all {HISTORY} headers"), (NEW_LIST_FILE, "the 1 new header")):
            loads = measured[kind]["lists"][name]
            ours = _latency_row(f"ListBatches, {kind}, {shape}", loads["ours"], loads["nginx"])
            floor_rows = [
                _latency_row(f"{label}, the same response bytes", loads[side], loads["nginx"])
                for side, label in FLOORS.items()
            ]
            list_rows += [
                ours,
                *floor_rows,
                _latency_row("nginx, the same response bytes (baseline)", loads["nginx"], None),
            ]
            short = "all" if name == FULL_LIST_FILE else "new"
            if short == "all":
                first_syncs.append(ours["p50 vs nginx"])
                floor_first_syncs += [row["p50 vs nginx"] for row in floor_rows]
                summary[f"list_{kind}_all_grpcio_floor_p50_vs_nginx"] = min(row["p50 vs nginx"] for row in floor_rows)
            summary[f"list_{kind}_{short}_p50_ms"] = round(loads["ours"].latency_ms(50), 2)
            summary[f"list_{kind}_{short}_p99_ms"] = round(loads["ours"].latency_ms(99), 2)

    lowest = min(ours_vs_nginx)

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    curve = Curve(
        title="Download throughput (same machine, same run)",
        x_label="concurrent phones",
        y_label="MB/s, all phones together",
        log_x=True,
        series=series,
    )
    setup = (
        f"`matcher serve` (its default: {os.cpu_count()} server processes on the same ports, grpcio sync servers of "
        "32 worker threads, batches served from memory), nginx (`worker_processes auto`, "
        f"TLS with the same certificate) and the phones all share this machine's {os.cpu_count()} cores. Each phone "
        "is its own Python process: absolute rates understate a real deployment, where phones are elsewhere; the "
        "ratio to nginx serving the same bytes on the same machine in the same run is the meaningful figure."
    )
    download_notes = (
        f"Bar: DownloadBatch at least {DOWNLOAD_BAR}x nginx's MB/s at {' and '.join(map(str, PHONES))} phones on "
        f"every store (lowest {lowest}x: {met(lowest >= DOWNLOAD_BAR)}). {setup} The batch: {CASES:,} cases x {DAYS_PER_CASE} daily keys pushed with SubmitKeys and cut by "
        f"`matcher publish` into one batch of {body:,} bytes. MB = 10^6 bytes; a phone downloads the whole body "
        f"again and again for {DOWNLOAD_SECONDS:g} s (gRPC: DownloadBatch in 1 MiB chunks; nginx: GET on one "
        "keep-alive HTTPS connection), each body checked once against its SHA-256 before timing. The service, the "
        f"floors and nginx (serving that store's batch) take {ROUNDS} turns each and keep their best, so that a burst of other "
        "work on the machine does not fall on one side only. "
        + _floor_note(floor_vs_nginx, DOWNLOAD_BAR, at_least=True)
    )
    list_notes = (
        f"Bar: a first sync's p50 within {FIRST_SYNC_BAR:g}x nginx's for the same bytes on every store (highest "
        f"{max(first_syncs)}x: {met(max(first_syncs) <= FIRST_SYNC_BAR)}). One phone calls back to back for {LIST_SECONDS:g} s, {ROUNDS} turns each for the service, the floors and nginx (the "
        f"turn with more calls a second is kept). The service holds {HISTORY} batches (a fortnight of "
        f"hourly batches: {HISTORY - 1} small ones cut by the publisher over the store, one section each, and the "
        "big one). 'all' is a first sync (page_size 1000, every signed header), 'new' an hourly sync (after the "
        "previous sequence: one header). The nginx rows serve the very same response bytes as static files. "
        + _floor_note(floor_first_syncs, FIRST_SYNC_BAR, at_least=False)
    )
    fleet_row = {
        "what": f"hourly sync, sqlite, {FLEET_PHONES:,} phones at once",
        "phones": FLEET_PHONES,
        "syncs": len(phones.latencies) + sum(phones.errors.values()),
        "errors": sum(phones.errors.values()),
        "RESOURCE_EXHAUSTED": phones.errors.get("RESOURCE_EXHAUSTED", 0),
        "p50 ms": round(phones.percentile_ms(50), 1),
        "p99 ms": round(phones.percentile_ms(99), 1),
        "slowest round s": round(max(phones.round_seconds), 2),
        "body bytes": phones.body_bytes,
    }
    summary.update(
        fleet_phones=FLEET_PHONES,
        fleet_p50_ms=fleet_row["p50 ms"],
        fleet_p99_ms=fleet_row["p99 ms"],
        fleet_errors=dict(phones.errors),
    )
    fleet_notes = (
        f"Bar: no error, RESOURCE_EXHAUSTED above all, for well-behaved phones ({fleet_row['errors']} errors: "
        f"{met(not fleet_row['errors'])}). {FLEET_PHONES:,} phones, each with its own TLS connection (grpc.aio channels in 4 client processes, a "
        "subchannel pool each), all up to date, all starting their hourly sync at the same moment: ListBatches "
        "after the sequence they hold (the one new header), then DownloadBatch of the new batch's whole body "
        f"({HOURLY_CASES} cases x {DAYS_PER_CASE} daily keys: an hour of 1,000 cases a day), {FLEET_ROUNDS} rounds. "
        "Latency is per sync, from its first call to its last byte; 'slowest round' is the time from a round's "
        "start to its last phone's end. Phones are well behaved (one sync at a time, a 60 s deadline, no retry): "
        "an error of any kind is counted here. The server, with its default processes, and the 1,000 phones share "
        f"the {os.cpu_count()} cores."
    )
    return [
        Section(
            title="Distribution: DownloadBatch next to nginx",
            rows=download_rows,
            notes=download_notes,
            summary=summary,
            curves=[curve],
        ),
        Section(title="Distribution: ListBatches latency", rows=list_rows, notes=list_notes),
        Section(title="Distribution: 1,000 phones at once", rows=[fleet_row], notes=fleet_notes),
    ]
