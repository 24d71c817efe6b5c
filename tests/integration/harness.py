"""Running the real service for tests: `matcher certs`, `matcher serve` as a subprocess, real TLS channels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from exposure.v1 import authority_pb2_grpc, distribution_pb2_grpc, sharing_pb2_grpc
from matcher import layout

START_TIMEOUT = 30.0  # seconds
# Most tests publish a case or two and expect them in the next batch: they are about submission, publication,
# distribution or faults, not about the anonymity hold, which would keep such small sections back for a day.
# Their servers and `matcher publish` runs get K = 1 (hold nothing); the tests of the hold use the defaults.
PUBLISH_EVERY_CASE = ("--anonymity-min-cases", "1")


def matcher(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the `matcher` command line as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "matcher.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"matcher {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def make_pki(folder: Path, *authorities: str) -> Path:
    """`matcher certs --out folder`: the PKI's root, with its server/, phone/, authority-NAME/ and ca/ folders."""
    args = ["certs", "--out", str(folder)]
    for name in authorities:
        args += ["--authority", name]
    matcher(*args)
    return folder


def authorities_file(pki: Path) -> Path:
    """The server's authorities file in a PKI `matcher certs` wrote."""
    return pki / layout.SERVER / layout.AUTHORITIES_FILE


@dataclass
class Server:
    """A `matcher serve` subprocess and channels to it."""

    process: subprocess.Popen
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signals the server and waits for it to exit (killing it after ``timeout``); returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        return status

    def log_text(self) -> str:
        return self.log.read_text()


def start_server(pki: Path, store: str, *extra: str, log: Path | None = None) -> Server:
    """Starts `matcher serve` on the server folder of ``pki`` (a `matcher certs` root), on free loopback ports,
    and waits for its ready line. Its log (stderr) goes to a
    file, never a pipe, so that a chatty server can never block on a full pipe. Its own publish timer holds
    nothing back (PUBLISH_EVERY_CASE) unless ``extra`` says otherwise: the last value of an option wins."""
    log = log or pki.parent / f"serve-{time.monotonic_ns()}.log"
    args = [
        sys.executable,
        "-m",
        "matcher.cli",
        "serve",
        "--json",
        "--store",
        store,
        "--tls-dir",
        str(pki / layout.SERVER),
        "--listen",
        "127.0.0.1:0",
        "--authority-listen",
        "127.0.0.1:0",
        *PUBLISH_EVERY_CASE,
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as log_file:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
    line = process.stdout.readline()
    if not line:
        process.wait(START_TIMEOUT)
        raise AssertionError(f"matcher serve did not start (exit {process.returncode}): {log.read_text()}")
    ready = json.loads(line)
    return Server(process, log, ready["public"], ready["authority"], pki, ready.get("metrics"))
