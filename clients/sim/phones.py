"""The phones: each a real phone-library PhoneStore, grouped in shards that live in worker processes.

A shard holds its phones' databases in memory and does what those phones do: make the day's key and say what it
broadcasts (``keys.day_broadcasts``), record what the scanner heard (``PhoneStore.add_sightings``), share its
keys with a one-time code (``share.share``; as a case's contact, only the days from the exposure its own F1 alert
dates, ``share.exposure_day``), hand its keys to the health authority, and every morning sync over
TLS (``sync.sync``: download, verify signatures and digests) and check (``matching.match_new`` then
``scoring.score`` with the signed configuration it downloaded, and ``scoring.venue_risks`` for its check-ins).
Phones check in at venues from the QR code's text (``PhoneStore.add_checkin``, what ``matcher-phone checkin``
does) and show their check-ins to the authority when diagnosed. One TLS channel per shard serves all its phones.

:class:`ShardProcess` runs a shard in its own process (spawned, so that no gRPC state crosses a fork);
:class:`LocalShard` runs it in this one. Both answer the same calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental
import numpy as np

from clients.phone.keys import day_broadcasts, keys_to_share, set_tx_power
from clients.phone.matching import match_new
from clients.phone.scoring import score, venue_risks
from clients.phone.share import NotAContact, exposure_day, share, share_request
from clients.phone.store import PhoneStore
from clients.phone.sync import sync
from matcher.exposure_config import config_in_force
from matcher.signing import TrustedKeys, load_verifying_key
from matcher.venues import Venue, parse_payload

PROGRESS_EVERY = 50  # phones between progress reports
DEFAULT_WORKERS = 4  # processes: while some phones wait for the server, others match


class ShardError(RuntimeError):
    """A shard's call failed; the message is one line."""


@dataclass(frozen=True)
class Checked:
    """One morning's sync and check of a shard's phones (arrays in the shard's phone order)."""

    bytes_downloaded: np.ndarray  # (n,) everything the phone downloaded this morning
    new_batches: np.ndarray  # (n,)
    refused: np.ndarray  # (n,) batches or configurations refused (verification failures)
    interrupted: np.ndarray  # (n,) bool, a download cut short
    sync_seconds: np.ndarray  # (n,)
    check_seconds: np.ndarray  # (n,) matching and scoring
    # (phone index in the shard, UTC day "YYYY-MM-DD", level "F1" or "F2") of every day that alerts
    alerts: list[tuple[int, str, str]]
    # (phone index in the shard, UTC day of the visit "YYYY-MM-DD") of every check-in that alerts (kind venue)
    venue_alerts: list[tuple[int, str]]


class Shard:
    """Phones ``first .. first + len(tx_powers) - 1``."""

    def __init__(self, first: int, tx_powers: list[int], tls_dir: str) -> None:
        self.first = first
        self.tls_dir = Path(tls_dir)
        self.phones = [PhoneStore(":memory:") for _ in tx_powers]
        for store, power in zip(self.phones, tx_powers):
            set_tx_power(store, int(power))
        self.trusted = TrustedKeys([load_verifying_key(self.tls_dir / "signing.pub.pem")])
        self._channel: tuple[str, grpc.Channel] | None = None
        self.venues: list[Venue] = []

    def channel(self, address: str) -> grpc.Channel:
        """The shard's TLS channel to the service's public listener (a new one when the address changed)."""
        if self._channel is None or self._channel[0] != address:
            self.close_channel()
            credentials = grpc.ssl_channel_credentials(root_certificates=(self.tls_dir / "ca.pem").read_bytes())
            # Downloads are streams; the single-threaded form spares a thread per call.
            options = [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
            self._channel = (address, grpc.secure_channel(address, credentials, options=options))
        return self._channel[1]

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel[1].close()
            self._channel = None

    def begin_day(self, interval: int) -> tuple[np.ndarray, np.ndarray]:
        """Each phone's key for the day of ``interval``; returns what they broadcast: RPIs ``(n, 144, 16)`` and
        AEMs ``(n, 144, 4)``."""
        days = [day_broadcasts(store, interval) for store in self.phones]
        return np.stack([rpis for _, rpis, _ in days]), np.stack([aems for _, _, aems in days])

    def record(
        self,
        phone: np.ndarray,
        rpis: np.ndarray,
        intervals: np.ndarray,
        times: np.ndarray,
        rssi: np.ndarray,
        aems: np.ndarray,
    ) -> int:
        """Stores sightings; ``phone`` (shard indices) is sorted, and each phone's rows are in time order."""
        rpi_bytes = np.ascontiguousarray(rpis).view("V16").ravel().tolist()
        aem_bytes = np.ascontiguousarray(aems).view("V4").ravel().tolist()
        intervals, times, rssi = intervals.tolist(), times.tolist(), rssi.tolist()
        bounds = np.searchsorted(phone, np.arange(len(self.phones) + 1))
        for index, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
            if hi > lo:
                self.phones[index].add_sightings(
                    zip(rpi_bytes[lo:hi], intervals[lo:hi], times[lo:hi], rssi[lo:hi], aem_bytes[lo:hi])
                )
        return len(times)

    def share(
        self, phone: int, code: str, now: int, address: str, contact_intervals: bool, since: str | None = None
    ) -> tuple[int, int, int, list[tuple[int, bytes, int]]]:
        """The phone uploads its keys with ``code`` (and its contact intervals, if asked), as a case's contact only
        those of the days from ``since`` (YYYY-MM-DD) on: (accepted, embargoed, rejected, the keys it sent)."""
        store = self.phones[phone]
        day = dt.date.fromisoformat(since) if since else None
        response = share(self.channel(address), store, code, now, contact_intervals, since=day)
        sent = [
            (key.rolling_start_interval_number, key.key_data, key.rolling_period)
            for key in share_request(store, code, now, since=day).keys
        ]
        return response.accepted, response.embargoed, len(response.rejected), sent

    def exposure_day(self, phone: int) -> tuple[str | None, str]:
        """The day of the phone's exposure as a case's contact, as it tells the authority (its latest F1 alert):
        (YYYY-MM-DD, "") or (None, why the phone refuses: no F1 alert, or only F2 ones)."""
        store = self.phones[phone]
        try:
            return exposure_day(store, config_in_force(store.get("config"))).isoformat(), ""
        except NotAContact as exc:
            return None, str(exc)

    def scan_venues(self, payloads: list[str]) -> int:
        """The venues' QR codes, as the phones read them at the door (the text of each code)."""
        self.venues = [parse_payload(payload) for payload in payloads]
        return len(self.venues)

    def check_in(self, phone: np.ndarray, venue: np.ndarray, entry: np.ndarray, exit_: np.ndarray) -> int:
        """Each phone records its visits from the venue's QR code, entry to exit (``matcher-phone checkin``'s
        ``PhoneStore.add_checkin``); nothing is sent."""
        for index, where, start, end in zip(phone.tolist(), venue.tolist(), entry.tolist(), exit_.tolist()):
            scanned = self.venues[where]
            self.phones[index].add_checkin(scanned.venue_id, scanned.name, start, end)
        return len(phone)

    def checkins_for_authority(self, phone: int) -> list[tuple[bytes, int, int]]:
        """The phone's check-ins, as a case shows them to the health authority: (venue_id, entry, exit)."""
        return [(visit.venue_id, visit.entry, visit.exit) for visit in self.phones[phone].checkins()]

    def keys_for_authority(self, phone: int, now: int) -> list[tuple[int, bytes, int]]:
        """The keys the phone gives to the health authority (the same ones it would share itself)."""
        return keys_to_share(self.phones[phone], now)

    def sync_and_check(self, address: str, now: int, *, progress: Callable[[int], None] | None = None) -> Checked:
        channel = self.channel(address)
        n = len(self.phones)
        downloaded, batches, refused = (np.zeros(n, dtype=np.int64) for _ in range(3))
        interrupted = np.zeros(n, dtype=bool)
        sync_seconds, check_seconds = np.zeros(n), np.zeros(n)
        alerts: list[tuple[int, str, str]] = []
        venue_alerts: list[tuple[int, str]] = []
        for index, store in enumerate(self.phones):
            store.expire(now)
            began = time.perf_counter()
            report = sync(channel, store, self.trusted)
            synced = time.perf_counter()
            config = config_in_force(store.get("config"))
            match_new(store, config)
            days = score(store, config)
            visits = venue_risks(store, config)
            check_seconds[index] = time.perf_counter() - synced
            sync_seconds[index] = synced - began
            downloaded[index], batches[index] = report.bytes_downloaded, len(report.new_batches)
            refused[index], interrupted[index] = len(report.refused), report.interrupted is not None
            alerts += [(index, d.day, d.level) for d in days if d.alert]
            venue_alerts += [(index, v.day) for v in visits if v.alert]
            if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
        if progress is not None and n % PROGRESS_EVERY:
            progress(n % PROGRESS_EVERY)
        return Checked(downloaded, batches, refused, interrupted, sync_seconds, check_seconds, alerts, venue_alerts)

    def ready(self) -> int:
        return len(self.phones)

    def close(self) -> None:
        self.close_channel()
        for store in self.phones:
            store.close()


class LocalShard:
    """A shard in this process: ``submit`` then ``result``, like :class:`ShardProcess`."""

    def __init__(self, first: int, tx_powers: list[int], tls_dir: str) -> None:
        self.shard = Shard(first, tx_powers, tls_dir)
        self.first, self.size = first, len(tx_powers)
        self._call: tuple[str, tuple[Any, ...]] | None = None

    def submit(self, method: str, *args: Any) -> None:
        self._call = (method, args)

    def result(self, progress: Callable[[int], None] | None = None) -> Any:
        assert self._call is not None, "submit first"
        method, args = self._call
        self._call = None
        if method == "sync_and_check":
            return self.shard.sync_and_check(*args, progress=progress)
        return getattr(self.shard, method)(*args)

    def close(self) -> None:
        self.shard.close()


def _serve(connection: Connection, first: int, tx_powers: list[int], tls_dir: str) -> None:
    """A shard process: runs each call it receives and sends back ("ok", result), ("progress", n) along the way,
    or ("error", one line) when a call fails. Stops on None."""
    try:
        shard = Shard(first, tx_powers, tls_dir)
    except Exception as exc:
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while (message := connection.recv()) is not None:
        method, args = message
        try:
            if method == "sync_and_check":
                result = shard.sync_and_check(*args, progress=lambda n: connection.send(("progress", n)))
            else:
                result = getattr(shard, method)(*args)
            connection.send(("ok", result))
        except Exception as exc:
            last = traceback.extract_tb(exc.__traceback__)[-1]
            connection.send(
                ("error", f"{method}: {type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})")
            )
    shard.close()


class ShardProcess:
    """A shard in a worker process."""

    def __init__(self, first: int, tx_powers: list[int], tls_dir: str) -> None:
        self.first, self.size = first, len(tx_powers)
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, first, tx_powers, tls_dir), daemon=True)
        self._process.start()
        child.close()

    def submit(self, method: str, *args: Any) -> None:
        self.connection.send((method, args))

    def receive(self, progress: Callable[[int], None] | None = None) -> tuple[bool, Any]:
        """One message from the worker: (True, result) for the answer, (False, None) for a progress report."""
        try:
            kind, value = self.connection.recv()
        except EOFError:
            raise ShardError(f"the phone worker for phones {self.first}.. stopped unexpectedly") from None
        if kind == "error":
            raise ShardError(f"phones {self.first}..{self.first + self.size - 1}: {value}")
        if kind == "progress":
            if progress is not None:
                progress(value)
            return False, None
        return True, value

    def result(self, progress: Callable[[int], None] | None = None) -> Any:
        while True:
            done, value = self.receive(progress)
            if done:
                return value

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self.connection.send(None)
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self.connection.close()


AnyShard = LocalShard | ShardProcess


def gather(shards: list[AnyShard], progress: Callable[[int], None] | None = None) -> list[Any]:
    """The answers to the calls submitted to every shard, in shard order; worker processes run concurrently and
    their progress reports are passed on as they come."""
    results: dict[int, Any] = {}
    waiting: dict[object, tuple[int, ShardProcess]] = {}  # by connection
    for index, shard in enumerate(shards):
        if isinstance(shard, ShardProcess):
            waiting[shard.connection] = (index, shard)
        else:
            results[index] = shard.result(progress)
    while waiting:
        for connection in wait([process.connection for _, process in waiting.values()]):
            index, process = waiting[connection]
            done, value = process.receive(progress)
            if done:
                results[index] = value
                del waiting[connection]
    return [results[index] for index in range(len(shards))]


def call_all(
    shards: list[AnyShard], method: str, *args: Any, progress: Callable[[int], None] | None = None
) -> list[Any]:
    for shard in shards:
        shard.submit(method, *args)
    return gather(shards, progress)


def start_shards(tx_powers: np.ndarray, tls_dir: Path, workers: int) -> list[AnyShard]:
    """Splits the phones into ``max(workers, 1)`` shards: processes when ``workers`` >= 1, this process when 0."""
    count = max(workers, 1)
    bounds = np.linspace(0, len(tx_powers), count + 1).astype(int)
    kind = ShardProcess if workers >= 1 else LocalShard
    shards: list[AnyShard] = []
    try:
        for lo, hi in itertools.pairwise(bounds):
            shards.append(kind(int(lo), tx_powers[lo:hi].tolist(), str(tls_dir)))
        call_all(shards, "ready")  # the phones are built, or the first failure is raised here
    except BaseException:
        for shard in shards:
            shard.close()
        raise
    return shards
