"""`matcher serve --processes N`: N server processes on the same ports, one publisher, one metrics endpoint.

grpcio runs a process's Python code on one core at a time (the GIL), so one server process leaves every other
core idle. Serving on every core takes several processes listening on the same ports with SO_REUSEPORT, the
kernel spreading new connections over them: grpcio's own multiprocessing pattern. The parent reserves the ports,
then forks the workers before any grpc object exists in it (grpcio's fork rules: a process that has started grpc
must not fork, and neither must one that runs threads), and each worker builds its own server, store
connections, cache and health checking, exactly as a single server does.

The parent serves no calls. It runs what there must be one of: the publish timer (the store's lock would make
extra publishers harmless, but one is enough), and the metrics endpoint, which adds up the workers' counters,
asked for over a pipe at each scrape. SIGTERM or SIGINT to the parent is passed on to every worker, each of which
finishes its calls in flight as a single server does; so is SIGHUP, on which each worker reloads the authorities
file. A worker that dies stops the whole service (exit 1), so that whatever runs it (systemd, Kubernetes) restarts
it whole; and the workers die with the parent (PR_SET_PDEATHSIG), so that a killed service never leaves workers
serving behind it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .clock import clock
from .config import Config
from .metrics import REGISTRY, Metrics, serve_metrics
from .signing import load_signing_key
from .store import open_store

log = logging.getLogger(__name__)

START_SECONDS = 60.0  # for every worker to bind its ports and answer
METRICS_SECONDS = 5.0  # for a worker to send its counters to a scrape
_PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    process: Any  # multiprocessing.Process
    conn: multiprocessing.connection.Connection
    lock: threading.Lock


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def reserve(address: str) -> tuple[socket.socket, int]:
    """Takes ``address``'s port for this service: a bound socket with SO_REUSEPORT that the workers' listeners
    join, and that keeps the port from being given to anyone else meanwhile (it never listens, so it gets no
    connections). A port already bound elsewhere is refused, even if its owner set SO_REUSEPORT too (another
    `matcher serve`, say): the probe binds without it first."""
    host, port = _address(address)
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(where)
            port = probe.getsockname()[1]
        held = socket.socket(family, kind, proto)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((where[0], port, *where[2:]))
    except OSError:
        raise OSError(f"cannot listen on {address}: the port is in use or the address is not this machine's") from None
    return held, port


def _die_with_parent(parent: int) -> None:
    # Not Linux: a parent killed with SIGKILL may leave workers behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before prctl took effect


def _worker(config: Config, conn: multiprocessing.connection.Connection, parent: int) -> int:
    """One server process: serves until SIGTERM (or its parent's end), answering the parent's metrics requests."""
    # After the fork: grpc objects are made in the worker only.
    from .server import create_server, wait_for_signals

    _die_with_parent(parent)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until there is a server whose authorities to reload
    try:
        running = create_server(config, publish_timer=False, reuse_port=True)
    except Exception as exc:
        conn.send(("error", str(exc)))
        return 1
    conn.send(("ready", os.getpid()))

    def answer() -> None:
        try:
            while conn.recv() == "metrics":
                conn.send(REGISTRY.snapshot())
        except (EOFError, OSError):
            pass  # the parent is gone

    def parent_gone() -> None:
        answer()
        os.kill(os.getpid(), signal.SIGTERM)  # wakes wait_for_signals below

    threading.Thread(target=parent_gone, name="parent", daemon=True).start()
    wait_for_signals(running.authorities.reload, stop)
    log.info("worker %d shutting down: finishing in-flight calls (up to %.0fs)", os.getpid(), config.shutdown_grace)
    running.stop(config.shutdown_grace)
    return 0


def _run_worker(config: Config, conn: multiprocessing.connection.Connection, parent: int) -> None:
    raise SystemExit(_worker(config, conn, parent))


def _collect(workers: list[Worker]) -> Metrics:
    """The parent's own counters plus every worker's."""
    total = Metrics()
    total.add(REGISTRY.snapshot())
    for worker in workers:
        with worker.lock:
            try:
                worker.conn.send("metrics")
                if worker.conn.poll(METRICS_SECONDS):
                    total.add(worker.conn.recv())
            except (EOFError, OSError):
                pass  # a worker going away: the service is stopping
    return total


def _signal_workers(workers: list[Worker], sig: int) -> None:
    for worker in workers:
        if worker.process.is_alive():
            os.kill(worker.process.pid, sig)


def _stop_workers(workers: list[Worker], grace: float) -> None:
    _signal_workers(workers, signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            log.warning("worker %d did not stop in time: killed", worker.process.pid)
            worker.process.kill()
            worker.process.join()


def _ensure_config(config: Config) -> None:
    """What every worker would do at start, done once before they exist: a signed exposure configuration. A store
    that cannot be reached refuses the start (StoreError), as a single server does."""
    from .server import ensure_signed_config

    store = open_store(config.store)
    try:
        ensure_signed_config(store, load_signing_key(config.tls_dir / "signing.key"), clock(config.now)())
    finally:
        store.close()


def serve_processes(config: Config, announce: Callable[[dict[str, Any]], None]) -> int:
    """Runs ``config.processes`` workers until SIGTERM or SIGINT; ``announce`` gets the bound ports once every
    worker serves. Returns the exit status: 0 after a requested stop, 1 when a worker died."""
    held = []
    try:
        public, public_port = reserve(config.listen)
        held.append(public)
        authority, authority_port = reserve(config.authority_listen)
        held.append(authority)
        worker_config = replace(
            config,
            listen=f"{_address(config.listen)[0]}:{public_port}",
            authority_listen=f"{_address(config.authority_listen)[0]}:{authority_port}",
            metrics_listen="",
        )
        from .server import check_files

        check_files(config)  # a wrong file refuses the start before the store is opened (and perhaps created)
        _ensure_config(config)

        context = multiprocessing.get_context("fork")
        workers: list[Worker] = []
        try:
            for n in range(config.processes):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_run_worker, args=(worker_config, theirs, os.getpid()), name=f"matcher-serve-{n}"
                )
                process.start()
                theirs.close()
                workers.append(Worker(process, ours, threading.Lock()))
            for worker in workers:
                if not worker.conn.poll(START_SECONDS):
                    raise RuntimeError(f"a server process did not start within {START_SECONDS:.0f} s")
                kind, detail = worker.conn.recv()
                if kind != "ready":
                    raise RuntimeError(detail)
        except BaseException:
            _stop_workers(workers, 0)
            raise
        return _supervise(config, workers, public_port, authority_port, announce)
    finally:
        for sock in held:
            sock.close()


def _supervise(
    config: Config,
    workers: list[Worker],
    public_port: int,
    authority_port: int,
    announce: Callable[[dict[str, Any]], None],
) -> int:
    from .server import start_publish_loop

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # The workers serve the calls, so each reloads its own copy of the authorities file.
    signal.signal(signal.SIGHUP, lambda *_: _signal_workers(workers, signal.SIGHUP))
    store = open_store(config.store)
    loop = start_publish_loop(config, store, load_signing_key(config.tls_dir / "signing.key"), clock(config.now))
    http = None
    if config.metrics_listen:
        host, port = _address(config.metrics_listen)
        http = serve_metrics(host, port, source=lambda: _collect(workers))
    announce(
        {
            "public_port": public_port,
            "authority_port": authority_port,
            "metrics_port": http.server_address[1] if http else None,
        }
    )
    log.info("serving with %d processes: %s", len(workers), " ".join(str(w.process.pid) for w in workers))
    status = 0
    sentinels = [worker.process.sentinel for worker in workers]
    while not stop.is_set():
        if multiprocessing.connection.wait(sentinels, timeout=0.5):
            dead = [w.process.pid for w in workers if not w.process.is_alive()]
            log.error("server process %s died: stopping the service", ", ".join(map(str, dead)))
            status = 1
            break
    log.info("shutting down: finishing in-flight calls (up to %.0fs)", config.shutdown_grace)
    _stop_workers(workers, config.shutdown_grace)
    loop.stop(timeout=config.shutdown_grace)
    if http is not None:
        http.shutdown()
    store.close()
    log.info("stopped")
    return status
