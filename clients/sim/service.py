"""The real service, run as a user runs it: `matcher certs`, `matcher serve --now T` as a subprocess for each
simulated morning (the server's clock is the simulated one), and `matcher publish --now T`.

`matcher serve` is started by the one launcher of the service (clients/launch.py). The health authority's side
uses its own client library: IssueCode on the Authority service over mutual TLS
(``clients.ha.channel.authority_channel``), ``clients.ha.push.push_keys``, and for venues ``clients.ha.venue``
(``create``: payload, QR code and trace file; ``warning_request``: a window signed with the owner's trace file,
sent with SubmitVenueWarning).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from clients.ha import venue
from clients.ha.channel import authority_channel
from clients.launch import LaunchError, matcher, read_ready, spawn_server, stop_process
from exposure.v1 import authority_pb2, authority_pb2_grpc, batch_pb2, keys_pb2
from matcher.batches import read_batch_file
from matcher.model import ReportType
from matcher.store import StoreError, open_store

AUTHORITY = "sim-ha"
REGION = "VN"


class ServiceError(RuntimeError):
    """The service could not be run; the message is one line."""


def matcher_command(*args: str, timeout: float = 300) -> str:
    """Runs ``matcher ARGS`` with this interpreter; returns its standard output or raises ServiceError."""
    try:
        result = matcher(*args, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"matcher {args[0]} did not finish in {timeout:.0f}s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ServiceError(f"matcher {args[0]} failed: {last}")
    return result.stdout


def check_store_is_empty(url: str) -> None:
    """A simulation needs a store of its own: batches or keys of another run would mix into its numbers."""
    shown = url.split("@")[-1]  # never a password
    try:
        store = open_store(url)
    except (ValueError, OSError) as exc:
        raise ServiceError(f"--store {shown}: {exc}") from None
    try:
        occupied = store.last_sequence() > 0 or bool(store.pending_keys(now=2**40, limit=1))
    except StoreError as exc:
        raise ServiceError(f"--store {shown}: {exc}") from None
    finally:
        store.close()
    if occupied:
        raise ServiceError(f"--store {shown} already holds batches or keys; the simulation needs an empty store")


class Server:
    """A `matcher serve` process: ``ready()`` waits for its ready line and gives the running service; ``stop()``
    asks it to shut down (SIGTERM) and ``wait()`` waits until it has."""

    def __init__(self, process: subprocess.Popen[str], log: Path, tls_dir: Path) -> None:
        self.process, self.log, self.tls_dir = process, log, tls_dir

    @contextmanager
    def ready(self) -> Iterator[Running]:
        try:
            ready = read_ready(self.process, self.log)
        except LaunchError as exc:
            raise ServiceError(str(exc)) from None
        with authority_channel(ready["authority"], self.tls_dir / f"authority-{AUTHORITY}", AUTHORITY) as channel:
            yield Running(ready["public"], ready["authority"], channel)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        stop_process(self.process)


@dataclass(frozen=True)
class Running:
    """A ready service: its addresses and the health authority's channel to it."""

    public: str
    authority: str
    channel: grpc.Channel  # mutual TLS, as the health authority

    def issue_code(self, report_type: int, onset_date: str) -> str:
        stub = authority_pb2_grpc.AuthorityStub(self.channel)
        request = authority_pb2.IssueCodeRequest(
            report_type=keys_pb2.ReportType.ValueType(report_type), symptom_onset_date=onset_date
        )
        return stub.IssueCode(request, timeout=30).code

    def issue_contact_code(self, exposure_date: str) -> str:
        """A RECURSIVE code for a case's contact (F1) exposed on ``exposure_date``: their keys from that day on."""
        stub = authority_pb2_grpc.AuthorityStub(self.channel)
        request = authority_pb2.IssueCodeRequest(
            report_type=keys_pb2.ReportType.ValueType(ReportType.RECURSIVE),
            exposure_date=exposure_date,
            exposure_level=authority_pb2.EXPOSURE_LEVEL_F1,
        )
        return stub.IssueCode(request, timeout=30).code

    def warn_venue(self, trace: Path, start: int, end: int) -> int:
        """The authority warns a venue's visitors of ``[start, end)`` with the owner's trace file (as `matcher-ha
        venue-warn` does); returns the hours the service stored."""
        request = venue.warning_request(venue.read_trace(trace), start, end, REGION)
        stub = authority_pb2_grpc.AuthorityStub(self.channel)
        return stub.SubmitVenueWarning(request, timeout=30).hours


class Service:
    def __init__(self, folder: Path, store: str, publish_interval: int) -> None:
        self.folder = folder
        self.tls_dir = folder / "tls"  # `matcher certs`' root: server/, phone/, authority-NAME/, ca/
        self.logs = folder / "logs"
        self.store = store
        self.publish_interval = publish_interval

    def make_certs(self, contact_intervals_only: bool = False) -> None:
        """Development certificates for the service and the one authority, which prunes to contact intervals if
        asked (as an operator would set it in the authorities file)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        matcher_command("certs", "--out", str(self.tls_dir), "--authority", AUTHORITY, "--region", REGION)
        if contact_intervals_only:
            path = self.tls_dir / "server" / "authorities.json"
            document = json.loads(path.read_text())
            document["authorities"][AUTHORITY]["contact_intervals_only"] = True
            path.write_text(json.dumps(document, indent=2))

    def make_venues(self, names: list[str]) -> list[tuple[str, Path]]:
        """A QR code and a trace file for each venue, as `matcher-ha venue create` writes them: (the QR code's
        payload, the owner's trace file) in ``names`` order."""
        made = []
        for index, name in enumerate(names):
            created = venue.create(name, self.folder / "venues" / f"{index:05d}")
            made.append((created.owner.venue.payload(), created.folder / venue.TRACE_FILE))
        return made

    def _options(self, now: int) -> list[str]:
        return [
            "--store",
            self.store,
            "--tls-dir",
            str(self.tls_dir / "server"),
            "--now",
            str(now),
            "--publish-interval",
            str(self.publish_interval),
            "--json",
        ]

    def start(self, now: int, label: str) -> Server:
        """Starts `matcher serve` with its clock at ``now`` on free loopback ports; :meth:`Server.ready` waits for
        it. Starting early lets the server boot while the simulation does other work."""
        log = self.logs / f"serve-{label}.log"
        options = ["--now", str(now), "--publish-interval", str(self.publish_interval)]
        return Server(spawn_server(self.tls_dir / "server", self.store, *options, log=log), log, self.tls_dir)

    def publish(self, now: int) -> tuple[dict[str, Any], float]:
        """`matcher publish --now`: what it cut and held (its --json output, each batch with its signed header
        under "header", read from the batch file the command wrote) and the command's wall time."""
        out_dir = self.folder / "batches"
        began = time.perf_counter()
        out = matcher_command("publish", *self._options(now), "--out", str(out_dir))
        took = time.perf_counter() - began
        run = json.loads(out)
        for batch in run["batches"]:
            signed, _ = read_batch_file(out_dir / f"batch-{batch['sequence']}.bin")
            batch["header"] = batch_pb2.BatchHeader.FromString(signed.header)
        return run, took
