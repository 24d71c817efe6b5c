"""A real Redis Cluster with replicas for tests: 3 masters and 1 replica each, on free loopback ports.

Usage::

    with ReplicatedCluster(tmp_path / "cluster") as cluster:    # six redis-server processes, joined and in sync
        store = RedisStore(cluster.url)                          # redis://127.0.0.1:PORT/0?cluster=true
        master = cluster.master_of("{exposure}:")                # the node that holds the service's slot
        master.kill()                                            # SIGKILL
        cluster.wait_for_master(cluster.replica_of(master))      # its replica took over
    # every node stopped on exit

The nodes are made by clients/redis_server.py and joined with ``redis-cli --cluster create ...
--cluster-replicas 1``, as an operator would. A missing redis-server or redis-cli raises with the command that
installs it: the test fails, it never skips.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from clients.redis_server import RedisServer, RedisServerFailed

INSTALL_HINT = (
    "redis-cli is not installed; the Redis Cluster tests need it to join the nodes. "
    "Install it with `sudo apt-get install redis-tools` (or run `make test`, which installs redis-server and it)."
)
# How long a node may be unreachable before the others call it failed and its replica takes over. Redis's default,
# 15 s, is meant for real networks; on loopback a second is ample.
NODE_TIMEOUT_MS = 1000
READY_SECONDS = 60.0


class ReplicatedCluster:
    """``masters`` masters with ``replicas`` replicas each, in ``directory`` (one sub-folder a node)."""

    def __init__(self, directory: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.cli = shutil.which("redis-cli")
        if self.cli is None:
            raise RedisServerFailed(INSTALL_HINT)
        self.directory = Path(directory)
        self.masters, self.replicas = masters, replicas
        # A replica promotes itself however long it was cut off (validity factor 0): the test decides when.
        extra = ("--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0")
        self.nodes = [
            RedisServer(self.directory / f"node-{n}", cluster=True, own_slots=False, extra=extra)
            for n in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0?cluster=true"

    def start(self) -> ReplicatedCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RedisServerFailed(f"redis-cli --cluster create failed:\n{created.stdout[-2000:]}{created.stderr}")
        self._wait(self._ready, "every node to see the cluster ok and every replica in sync")
        return self

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> ReplicatedCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- who is who ----------------------------------------------------------------------------------------------

    def live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def master_of(self, key: str) -> RedisServer:
        """The node that is the master of ``key``'s slot now, as a live node sees it."""
        with self.live()[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self._node(int(master[1]))
        raise AssertionError(f"no master for slot {slot}")

    def replica_of(self, master: RedisServer) -> RedisServer:
        with master.client() as client:
            info = client.info("replication")
        return self._node(int(info["slave0"]["port"]))

    def wait_for_master(self, node: RedisServer) -> None:
        """Until ``node`` is a master and every live node says the cluster is ok again."""

        def promoted() -> bool:
            with node.client() as client:
                if client.info("replication")["role"] != "master":
                    return False
            return all(_cluster_ok(other) for other in self.live())

        self._wait(promoted, f"node {node.port} to become a master of a healthy cluster")

    # --- internals -------------------------------------------------------------------------------------------------

    def _node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def _ready(self) -> bool:
        if not all(_cluster_ok(node) for node in self.nodes):
            return False
        synced = 0
        for node in self.nodes:
            with node.client() as client:
                info = client.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") == "up":
                synced += 1
        return synced == self.masters * self.replicas

    def _wait(self, condition, what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass  # a node still starting or being promoted
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- node {n.port}:\n{n._log_tail(5)}" for n in self.nodes)
                raise RedisServerFailed(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.05)


def _cluster_ok(node: RedisServer) -> bool:
    with node.client() as client:
        return client.cluster("info")["cluster_state"] == "ok"
