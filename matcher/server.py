"""Wiring: one grpcio server process with two TLS listeners, health checking, reflection and the publish timer.

- The public listener (``--listen``) has server TLS only: phones download batches and upload with a code.
- The authority listener (``--authority-listen``) requires a client certificate from the authorities' CA
  (grpcio cannot ask for an optional one, and an operator wants the authorities' surface on its own port).

Both listeners serve every service; authority methods check the verified certificate themselves, so they refuse
an uncertified caller on whatever port it arrives.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from exposure.v1 import authority_pb2, authority_pb2_grpc, config_pb2, distribution_pb2, sharing_pb2, sharing_pb2_grpc

from . import codes
from .authz import Authorities
from .certs import check_certificate, check_private_key
from .clock import Clock, clock
from .config import Config
from .distribution import BatchCache
from .exposure_config import config_in_force, sign_config
from .layout import AUTHORITY_CA_FILE
from .metrics import serve_metrics
from .publisher import Publisher, PublishLoop
from .servicers import AuthorityServicer, DistributionServicer, Services, SharingServicer, add_distribution_servicer
from .signing import SigningKey, load_signing_key
from .store import Store, StoreError, open_store

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    authority_pb2.DESCRIPTOR.services_by_name["Authority"].full_name,
    sharing_pb2.DESCRIPTOR.services_by_name["Sharing"].full_name,
    distribution_pb2.DESCRIPTOR.services_by_name["Distribution"].full_name,
)
# Requests are small (30 keys is about 1.5 KB); anything near this is hostile or broken and is refused by grpcio
# with RESOURCE_EXHAUSTED before any of our code runs.
MAX_REQUEST_BYTES = 64 * 1024
# The authority port's own threads: a few authorities' submission systems, never phones.
AUTHORITY_WORKERS = 8
HEALTH_CHECK_SECONDS = 2.0
# HTTP/2 flow control: grpc core's defaults (a 64 KiB initial stream window, grown by probing the bandwidth-delay
# product, and 16 KiB frames) are kept. The window that limits a download is the one the phone announces, and
# interleaved A/B runs of 1 MiB-chunk downloads with a 16 MiB window, 16 MiB frames, larger TCP reads or all of
# them measured the same as the defaults to within 3% (docs/operations.md, "Every core serving").


@dataclass
class RunningServer:
    servers: tuple[grpc.Server, ...]  # the public port's and the authority port's, each with its own threads
    public_port: int
    authority_port: int
    metrics_port: int | None
    store: Store
    health: health.HealthServicer
    cache: BatchCache
    authorities: Authorities  # reloaded on SIGHUP
    _stoppers: list[Any]

    def stop(self, grace: float) -> None:
        """Stops accepting calls, lets in-flight calls finish for ``grace`` seconds, then closes the store."""
        for stopper in self._stoppers:
            stopper()
        self.health.enter_graceful_shutdown()
        stopped = [server.stop(grace) for server in self.servers]
        for event in stopped:
            event.wait()
        self.store.close()


def ensure_signed_config(store: Store, signing_key: SigningKey, now: int) -> None:
    """Makes sure phones can get a configuration signed with the current key: on first start, and after a
    signing-key rotation (the configuration in force is re-signed, its version unchanged)."""
    stored = store.get_exposure_config()
    if stored is not None and config_pb2.SignedExposureConfig.FromString(stored).key_id == signing_key.key_id:
        return
    config = config_in_force(stored)
    if stored is None:
        config.version, config.issued_at = 1, now
    # Another replica starting at the same moment may have stored it first: then its copy stands.
    store.put_exposure_config(sign_config(config, signing_key).SerializeToString(), replacing=stored)


def _listen(server: grpc.Server, address: str, credentials: grpc.ServerCredentials) -> int:
    """Binds ``address``; the bound port. A port in use is the operator's to fix: one line, not a traceback."""
    try:
        port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio >= 1.60 raises; older versions return 0
        port = 0
    if not port:
        raise OSError(f"cannot listen on {address}: the port is in use or the address is not this machine's")
    return port


def _tls_files(config: Config) -> tuple[bytes, bytes, bytes]:
    """The server's key and certificate and the authority CA's certificate; a file that is not what it should be is
    ValueError naming it (grpcio would only fail to bind, which reads as a port in use)."""
    tls = config.tls_dir
    key, cert = (tls / "server.key").read_bytes(), (tls / "server.pem").read_bytes()
    ca = (tls / AUTHORITY_CA_FILE).read_bytes()
    check_private_key(key, tls / "server.key")
    check_certificate(cert, tls / "server.pem")
    check_certificate(ca, tls / AUTHORITY_CA_FILE)
    return key, cert, ca


def check_files(config: Config) -> None:
    """Reads every file a server needs and refuses a wrong one (ValueError, OSError naming it), creating no grpc
    object: what matcher/processes.py checks before it opens the store and forks its workers."""
    _tls_files(config)
    load_signing_key(config.tls_dir / "signing.key")
    codes.load_secret(config.tls_dir / codes.SECRET_FILE)


def _credentials(config: Config, *, require_client_auth: bool) -> grpc.ServerCredentials:
    key, cert, ca = _tls_files(config)
    pair = [(key, cert)]
    if require_client_auth:
        return grpc.ssl_server_credentials(pair, root_certificates=ca, require_client_auth=True)
    return grpc.ssl_server_credentials(pair)


class _HealthMonitor:
    """Reports SERVING only while the store answers, so that load balancers route around a replica that lost it."""

    def __init__(self, store: Store, servicer: health.HealthServicer) -> None:
        self.store, self.servicer = store, servicer
        self._stop = threading.Event()
        self._serving: bool | None = None
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def check(self) -> None:
        try:
            self.store.ping()
            serving = True
        except StoreError:
            serving = False
        if serving != self._serving:
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", *SERVICE_NAMES):
                self.servicer.set(name, status)
            log.log(logging.INFO if serving else logging.WARNING, "health: %s", "SERVING" if serving else "NOT_SERVING")
            self._serving = serving

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(HEALTH_CHECK_SECONDS):
            self.check()


def create_server(config: Config, *, publish_timer: bool = True, reuse_port: bool = False) -> RunningServer:
    """Builds and starts the server. Ports may be 0 (tests): the bound ports are in the result.

    Refuses to start (StoreError, ValueError, OSError) when the store cannot be reached or a file is wrong: an
    operator learns it now, not from a health check. A store lost later turns the health status NOT_SERVING
    until it answers again. With ``reuse_port`` the listeners set SO_REUSEPORT, so that the worker processes of
    matcher/processes.py can share the ports; a single server leaves it off, so that a second server on its port
    fails to start."""
    signing_key = load_signing_key(config.tls_dir / "signing.key")
    code_secret = codes.load_secret(config.tls_dir / codes.SECRET_FILE)
    public_credentials = _credentials(config, require_client_auth=False)
    authority_credentials = _credentials(config, require_client_auth=True)
    authorities = Authorities.from_file(config.authorities_path)
    now = clock(config.now)
    # Two servers, each with its own thread pool: nothing phones do on the public port (thousands of slow or stalled
    # downloads) can take the threads that authorities' submissions need on theirs.
    public = grpc_server("rpc", config.workers, config.max_calls, reuse_port)
    authority = grpc_server("authority-rpc", AUTHORITY_WORKERS, config.max_calls, reuse_port)
    servers = (public, authority)
    # The ports first, then the store: a port in use must not leave a new, empty store file behind.
    try:
        public_port = _listen(public, config.listen, public_credentials)
        authority_port = _listen(authority, config.authority_listen, authority_credentials)
        store = open_store(config.store)
    except BaseException:
        for server in servers:
            server.stop(None)
        raise
    try:
        ensure_signed_config(store, signing_key, now())
    except BaseException:
        store.close()
        for server in servers:
            server.stop(None)
        raise
    services = Services(
        store=store,
        authorities=authorities,
        signing_key=signing_key,
        code_secret=code_secret,
        clock=now,
        config=config,
    )
    cache = BatchCache(store, config.cache_mb << 20)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    # Both ports offer every service (the authority client reads the configuration; an authority method on the
    # public port is refused for want of a client certificate): the ports differ in who may connect, and the pools.
    for server in servers:
        authority_pb2_grpc.add_AuthorityServicer_to_server(AuthorityServicer(services), server)
        sharing_pb2_grpc.add_SharingServicer_to_server(SharingServicer(services), server)
        add_distribution_servicer(DistributionServicer(services, cache), server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    stoppers: list[Any] = []
    monitor = _HealthMonitor(store, health_servicer)
    monitor.check()
    monitor.start()
    stoppers.append(monitor.stop)

    metrics_port = None
    if config.metrics_listen:
        host, _, port = config.metrics_listen.rpartition(":")
        http = serve_metrics(host, int(port))
        metrics_port = http.server_address[1]
        stoppers.append(http.shutdown)

    if publish_timer:
        loop = start_publish_loop(config, store, signing_key, now)
        stoppers.append(lambda: loop.stop(timeout=config.shutdown_grace))

    for server in servers:
        server.start()
    return RunningServer(
        servers, public_port, authority_port, metrics_port, store, health_servicer, cache, authorities, stoppers
    )


def grpc_server(threads: str, workers: int, max_calls: int, reuse_port: bool) -> grpc.Server:
    # No cap on concurrent streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): grpcio clients do not
    # queue past it, they fail the extra calls UNAVAILABLE (REFUSED_STREAM). What a connection can hold is bounded
    # by the call limit, the download time limit and the chunk floor instead.
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=threads),
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES), ("grpc.so_reuseport", int(reuse_port))],
        maximum_concurrent_rpcs=max_calls,
    )


def start_publish_loop(config: Config, store: Store, signing_key: SigningKey, now: Clock) -> PublishLoop:
    """The publish timer: a batch run and the retention purge every publish interval."""
    publisher = Publisher.from_config(config, store, signing_key)
    loop = PublishLoop(publisher, store, now, config.publish_interval, config.retention_seconds)
    loop.start()
    return loop


def wait_for_signals(reload: Callable[[], object], stop: threading.Event | None = None) -> None:
    """Blocks until SIGTERM or SIGINT (or ``stop`` is set, perhaps by an earlier handler); on each SIGHUP calls
    ``reload`` (the authorities file), in this thread rather than in the signal handler, so that the handler never
    runs file reads and logging itself."""
    stop = stop or threading.Event()
    hup, woken = threading.Event(), threading.Event()

    def on(flag: threading.Event) -> Callable[..., None]:
        def handler(*_: Any) -> None:
            flag.set()
            woken.set()

        return handler

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on(stop))
    signal.signal(signal.SIGHUP, on(hup))
    while not stop.is_set():
        woken.wait()
        woken.clear()
        if hup.is_set() and not stop.is_set():
            hup.clear()
            reload()


def serve_until_signalled(running: RunningServer, grace: float) -> None:
    """Serves until SIGTERM or SIGINT, then shuts down gracefully: in-flight calls finish, nothing half-written.
    SIGHUP reloads the authorities file (matcher/authz.py)."""
    wait_for_signals(running.authorities.reload)
    log.info("shutting down: finishing in-flight calls (up to %.0fs)", grace)
    running.stop(grace)
    log.info("stopped")
