"""Running the service as a user runs it, from Python: the `matcher` command line, a development PKI (`matcher
certs`), and `matcher serve` as a subprocess on free loopback ports with real TLS channels to it.

The one launcher of `matcher serve` for the tests, the benchmarks and the simulation (clients/sim/service.py).
A server's log (its stderr) goes to a file, never a pipe, so that a chatty server can never block on a full pipe;
its standard output carries one JSON line once it is ready (`matcher serve --json`): its addresses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc

from exposure.v1 import authority_pb2_grpc, distribution_pb2_grpc, sharing_pb2_grpc
from matcher import layout

STOP_TIMEOUT = 30.0  # seconds a server has to exit after SIGTERM before it is killed
UNLIMITED = 1_000_000  # submissions a minute: a load that measures the service, not its rate limit


class LaunchError(RuntimeError):
    """`matcher` did not run or start; the message ends with what it said last."""


def matcher(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Runs the `matcher` command line with this interpreter, as a user would; with ``check``, an exit status
    other than 0 raises LaunchError with its standard error."""
    result = subprocess.run(
        [sys.executable, "-m", "matcher.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise LaunchError(f"matcher {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def make_pki(folder: Path, *authorities: str) -> Path:
    """`matcher certs --out FOLDER --authority NAME ...`: the PKI's root, with its server/, phone/,
    authority-NAME/ and ca/ folders (matcher/layout.py)."""
    args = ["certs", "--out", str(folder)]
    for name in authorities:
        args += ["--authority", name]
    matcher(*args)
    return folder


def pki_with(folder: Path, *authorities: str, edit: Callable[[dict[str, Any]], None] = lambda policies: None) -> Path:
    """:func:`make_pki`, every authority's rate limit out of the way (UNLIMITED); ``edit`` may then change the
    authorities file's policies (a dict by name) before it is written back."""
    make_pki(folder, *authorities)
    path = authorities_file(folder)
    document = json.loads(path.read_text())
    for policy in document["authorities"].values():
        policy["submissions_per_minute"] = UNLIMITED
    edit(document["authorities"])
    path.write_text(json.dumps(document))
    return folder


def authorities_file(pki: Path) -> Path:
    """The server's authorities file in a PKI `matcher certs` wrote."""
    return pki / layout.SERVER / layout.AUTHORITIES_FILE


def spawn_server(tls_dir: Path, store: str, *extra: str, log: Path) -> subprocess.Popen[str]:
    """Starts `matcher serve --json` on ``store`` with the server folder ``tls_dir`` on free loopback ports, its log in
    ``log``, and returns at once: :func:`read_ready` waits for it. ``extra`` are more options (the last value of
    an option wins)."""
    args = [
        sys.executable, "-m", "matcher.cli", "serve", "--json",
        "--store", store,
        "--tls-dir", str(tls_dir),
        "--listen", "127.0.0.1:0",
        "--authority-listen", "127.0.0.1:0",
        *extra,
    ]  # fmt: skip
    with open(log, "w") as log_file:
        return subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log_file, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )


def read_ready(process: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    """Waits for a spawned server's ready line: its addresses ("public", "authority", "metrics" if asked). A server
    that exits first raises LaunchError with its exit status and the last line of its log."""
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        status = stop_process(process)
        last = (log.read_text().strip().splitlines() or ["(no message)"])[-1]
        raise LaunchError(f"matcher serve did not start (exit {status}): {last}")
    ready: dict[str, Any] = json.loads(line)
    return ready


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
    """Signals ``process`` (unless it has exited) and waits for it, killing it after ``timeout``; its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
    if process.stdout:
        process.stdout.close()
    return status


@dataclass
class Server:
    """A running `matcher serve` subprocess and TLS channels to it (closed when it is stopped)."""

    process: subprocess.Popen[str]
    log: Path
    public: str
    authority: str
    pki: Path  # the root `matcher certs` wrote
    metrics: int | None = None
    _channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def tls_dir(self) -> Path:
        """The server's folder (its --tls-dir)."""
        return self.pki / layout.SERVER

    @property
    def store(self) -> str:
        """The store URL the server was started on (its --store)."""
        args = cast(list[str], self.process.args)  # spawn_server's command: a list of str
        return str(args[args.index("--store") + 1])

    @property
    def phone_dir(self) -> Path:
        """The phones' folder: the server CA's certificate and the signing key to pin."""
        return self.pki / layout.PHONE

    def public_channel(self, options: list[tuple[str, int]] | None = None) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(root_certificates=(self.phone_dir / layout.TRUSTED_CA).read_bytes())
        return self._keep(grpc.secure_channel(self.public, credentials, options=options))

    def authority_channel(self, name: str, tls_dir: Path | None = None, address: str | None = None) -> grpc.Channel:
        """An mTLS channel as authority ``name`` (its NAME.pem/NAME.key from ``tls_dir``, default its own folder)."""
        folder = tls_dir or self.pki / layout.authority_folder(name)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(self.phone_dir / layout.TRUSTED_CA).read_bytes(),
            private_key=(folder / f"{name}.key").read_bytes(),
            certificate_chain=(folder / f"{name}.pem").read_bytes(),
        )
        return self._keep(grpc.secure_channel(address or self.authority, credentials))

    def authority_stub(self, name: str = "ha-north") -> authority_pb2_grpc.AuthorityStub:
        return authority_pb2_grpc.AuthorityStub(self.authority_channel(name))

    def distribution_stub(self) -> distribution_pb2_grpc.DistributionStub:
        return distribution_pb2_grpc.DistributionStub(self.public_channel())

    def sharing_stub(self) -> sharing_pb2_grpc.SharingStub:
        return sharing_pb2_grpc.SharingStub(self.public_channel())

    def _keep(self, channel: grpc.Channel) -> grpc.Channel:
        self._channels.append(channel)
        return channel

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signals the server and waits for it to exit (killing it after ``timeout``); returns its exit status."""
        status = stop_process(self.process, sig, timeout)
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        return status

    def log_text(self) -> str:
        return self.log.read_text()

    def pids(self) -> list[int]:
        return service_pids(self.process.pid)


def service_pids(pid: int) -> list[int]:
    """A `matcher serve` process and the server processes it forked (matcher/processes.py); Linux /proc."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended while listing
            children += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return [pid, *children]


def start_server(pki: Path, store: str, *extra: str, log: Path | None = None) -> Server:
    """:func:`spawn_server` on the server folder of ``pki`` (a `matcher certs` root), then :func:`read_ready`: a
    running server (its log next to ``pki`` if not given)."""
    log = log or pki.parent / f"serve-{time.monotonic_ns()}.log"
    process = spawn_server(pki / layout.SERVER, store, *extra, log=log)
    ready = read_ready(process, log)
    return Server(process, log, ready["public"], ready["authority"], pki, ready.get("metrics"))
