"""The real service for benchmarks: a development PKI, `matcher serve` on SQLite or on Redis, and nginx.

Everything here runs as a subprocess on free 127.0.0.1 ports in a temporary folder and is stopped in a
``finally``: a benchmark leaves no server, redis-server or nginx behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clients.launch import Server, pki_with, start_server, stop_process
from clients.redis_server import RedisServer, free_port
from matcher.config import DEFAULT_PROCESSES

AUTHORITY = "bench-ha"
# 2026-11-20 12:00:00 UTC: the server's fixed clock (--now), as in the integration tests.
NOW = 1795176000
TODAY = NOW // 600 - (NOW // 600) % 144  # the first interval of NOW's day
STORES = ("sqlite", "redis")
NGINX_INSTALL_HINT = (
    "nginx is not installed; the distribution benchmark compares the service with it. "
    "Install it with `sudo apt-get install nginx` (or run `make bench`, which installs it)."
)
NGINX_START_SECONDS = 10.0
FLOOR_START_SECONDS = 30.0


def bench_pki(folder: Path) -> Path:
    """`matcher certs` with one authority, whose rate limit is raised far above what a benchmark can send."""
    return pki_with(
        folder / "tls",
        AUTHORITY,
        edit=lambda policies: policies[AUTHORITY].update(submissions_per_minute=1_000_000_000),
    )


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh store: an SQLite file, or a redis-server of our own with ``appendfsync always`` (like SQLite's
    synchronous=FULL, an acknowledged key is on disk)."""
    if kind == "sqlite":
        yield f"sqlite:{folder / 'matcher.db'}"
        return
    with RedisServer(folder / "redis", appendonly=True) as redis:
        yield redis.url


@contextmanager
def serving(tls_dir: Path, store: str) -> Iterator[Server]:
    """`matcher serve` at NOW on ``store`` (its publish timer never fires during a benchmark)."""
    server = start_server(tls_dir, store, "--anonymity-min-cases", "1", "--now", str(NOW))
    try:
        yield server
    finally:
        server.stop()


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise RuntimeError(NGINX_INSTALL_HINT)
    return found


def _nginx_config(folder: Path, tls_dir: Path, port: int) -> str:
    temp = folder / "temp"
    return f"""
daemon off;
worker_processes auto;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tls_dir / "server" / "server.pem"};
        ssl_certificate_key {tls_dir / "server" / "server.key"};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {folder / "www"};
    }}
}}
"""


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def nginx_serving(tls_dir: Path, files: dict[str, bytes]) -> Iterator[int]:
    """nginx serving ``files`` (name -> bytes) as static files over TLS with the service's own certificate, on a
    free loopback port, which it yields. Run as root, its worker processes are an unprivileged user: its folder
    and the files are world-readable (the TLS key is read by the master process only)."""
    binary = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as name:
        folder = Path(name)
        (folder / "www").mkdir()
        (folder / "temp").mkdir()
        for file_name, data in files.items():
            (folder / "www" / file_name).write_bytes(data)
            (folder / "www" / file_name).chmod(0o644)
        for path in (folder, folder / "www"):
            path.chmod(0o755)
        yield from _run_nginx(binary, folder, tls_dir)


def _run_nginx(binary: str, folder: Path, tls_dir: Path) -> Iterator[int]:
    for _ in range(3):  # the free port may be taken between probing and binding: try another
        port = free_port()
        (folder / "nginx.conf").write_text(_nginx_config(folder, tls_dir, port))
        process = subprocess.Popen(
            [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(folder / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + NGINX_START_SECONDS
            while process.poll() is None and not _listening(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            if process.poll() is None and _listening(port):
                yield port
                return
        finally:
            stop_process(process)  # SIGTERM: nginx's fast shutdown, workers included
    log = (folder / "error.log").read_text(errors="replace") if (folder / "error.log").exists() else "(no log)"
    raise RuntimeError(f"nginx did not start; its log ends:\n{log[-2000:]}")


@contextmanager
def grpc_floor_serving(tls_dir: Path, files: dict[str, bytes], *, asyncio: bool = False) -> Iterator[str]:
    """bench/grpc_floor.py serving ``files`` (the body and the two listings, by the names nginx serves them under)
    with the service's certificate, on grpcio's sync server or its asyncio one: as many processes on one free
    loopback port as `matcher serve` runs by default. Yields the address."""
    with tempfile.TemporaryDirectory(prefix="bench-grpc-floor-") as name:
        folder = Path(name)
        for file_name, data in files.items():
            (folder / file_name).write_bytes(data)
        port = free_port()
        command = [sys.executable, "-m", "bench.grpc_floor", "--tls-dir", str(tls_dir / "server"), "--files", name]
        command += ["--asyncio"] if asyncio else []
        processes = [
            subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(DEFAULT_PROCESSES)
        ]
        try:
            deadline = time.monotonic() + FLOOR_START_SECONDS
            # Each process writes ready-PID into the folder once its server is bound and started.
            while any(not (folder / f"ready-{process.pid}").exists() for process in processes):
                if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                    raise RuntimeError(f"the grpcio floor server did not start on port {port}")
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            for process in processes:
                stop_process(process)
