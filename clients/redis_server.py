"""A real ``redis-server`` for tests and benchmarks: started on a free 127.0.0.1 port in its own directory, never
assumed running.

Usage::

    with RedisServer(tmp_path, appendonly=True) as server:   # waits until it answers PING
        store = RedisStore(server.url)
        server.kill()       # SIGKILL, as a crash
        server.start()      # again, same port and directory (with appendonly, the AOF is reloaded)
    # stopped on exit

A missing binary raises RedisServerMissing, whose message says how to install it; tests let it fail, never skip.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

INSTALL_HINT = (
    "redis-server is not installed; the storage and integration tests need it. "
    "Install it with `sudo apt-get install redis-server` (or run `make test`, which installs it)."
)
STARTUP_SECONDS = 10.0


class RedisServerMissing(RuntimeError):
    """The redis-server binary is not on PATH."""


class RedisServerFailed(RuntimeError):
    """redis-server did not come up; the message carries the end of its log."""


def free_port(*, cluster: bool = False) -> int:
    """A loopback port nobody listens on now. A cluster node also binds port + 10000 (its bus), which Redis wants
    at most 65535, so for a cluster both ports are probed in a lower range."""
    if not cluster:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    while True:
        port = random.randint(20_000, 55_535)
        if all(_bindable(p) for p in (port, port + 10_000)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisServer:
    """One redis-server process on 127.0.0.1 in ``directory`` (a fresh temporary one if None).

    With ``appendonly`` it writes an append-only file with ``appendfsync always``: every acknowledged write is on
    disk before the reply, so a SIGKILL loses nothing acknowledged. Without it nothing is persisted. With
    ``cluster`` it is a one-node Redis Cluster that owns all 16384 slots (unless ``own_slots`` is False: then a
    cluster node waiting to be joined, see tests/support/redis_cluster.py): a command or script whose keys span
    slots is refused (CROSSSLOT) as on a real cluster. Once started, it keeps its port for every restart.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        appendonly: bool = False,
        cluster: bool = False,
        port: int | None = None,
        own_slots: bool = True,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RedisServerMissing(INSTALL_HINT)
        self._own_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="redis-")) if directory is None else Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.cluster = cluster
        self.own_slots = own_slots  # a one-node cluster; False: a node that `redis-cli --cluster create` joins
        self.extra = extra
        self._fixed_port = port is not None
        self.port = port or free_port(cluster=cluster)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        """A plain redis-py client on database 0 (bytes in, bytes out)."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_timeout=10)

    def start(self) -> RedisServer:
        """Starts the server (again, on the same port and directory after stop or kill) and waits for PING."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        for _ in range(3):
            self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            if self._wait_until_ready():
                if self.cluster and self.own_slots:
                    self._own_all_slots()
                self._fixed_port = True  # clients hold its URL: a restart must come back on the same port
                return self
            # The free port may have been taken between probing and binding: try another one, unless fixed.
            if self._fixed_port:
                break
            self.port = free_port(cluster=self.cluster)
        raise RedisServerFailed(f"redis-server on port {self.port} did not start; its log ends:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stops the server gracefully (SIGTERM), waiting for it to exit."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILLs the server, as a crash would: no shutdown, no final save."""
        self._signal(signal.SIGKILL)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stops the server and removes the directory if this object made it."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _command(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        return [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--save", "",
            "--daemonize", "no",
            *persistence,
            *(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] if self.cluster else []),
            *self.extra,
        ]  # fmt: skip

    def _own_all_slots(self) -> None:
        client = self.client()
        try:
            if int(client.cluster("info")["cluster_slots_assigned"]) == 0:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + STARTUP_SECONDS
            while client.cluster("info")["cluster_state"] != "ok":
                if time.monotonic() > deadline:
                    raise RedisServerFailed(f"the one-node cluster on port {self.port} did not reach state ok")
                time.sleep(0.02)
        finally:
            client.close()

    def _wait_until_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        client = self.client()
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    # PING answers while an append-only file is still loading; other commands do not. The pid check
                    # makes sure that the answer is ours, not another server's that holds the port.
                    info = client.info()
                    if info["process_id"] == self.process.pid and info["loading"] == 0:
                        return True
                except redis.ConnectionError:  # also BusyLoadingError
                    pass
                time.sleep(0.02)
        finally:
            client.close()
        self._signal(signal.SIGKILL)
        return False

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        self.process.wait(timeout=30)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
