"""Redis Cluster with replicas, for real: 3 masters and 1 replica each (tests/support/redis_cluster.py), the service
on ``redis://...?cluster=true``, authorities submitting, and the master that holds the service's slot SIGKILLed in
the middle. Its replica takes over, the service carries on without a restart, and every key it acknowledged,
before, during and after the failover, is published exactly once (tests/support/published.py checks).

What makes that hold is in matcher/store/redis.py: on a cluster a write is answered only once the slot's replicas
have it (WAIT), and a write that meets the failover reloads the slot map and tries again."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from matcher.signing import TrustedKeys, load_verifying_key
from matcher.store import open_store
from matcher.store.redis import PREFIX
from tests.fault.test_crashes import start_submitters, wait_until
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import publish
from tests.support.published import check_exactly_once
from tests.support.redis_cluster import ReplicatedCluster
from tests.support.submitters import SERVING, Ledger, wait_for_health

SUBMITTERS = 4
BEFORE, AFTER = 30, 30  # acknowledged submissions before the kill, and after the replica took over


def test_the_master_of_the_services_slot_killed_mid_load_fails_over_to_its_replica_and_loses_no_acknowledged_key(
    fault_pki: Path, tmp_path: Path
) -> None:
    with ReplicatedCluster(tmp_path / "cluster") as cluster:
        master = cluster.master_of(PREFIX)
        replica = cluster.replica_of(master)
        # The seed node given to the service must not be the one killed: an operator names several, or any live one.
        seed = next(node for node in cluster.nodes if node not in (master, replica))
        url = f"redis://127.0.0.1:{seed.port}/0?cluster=true"
        server = start_server(fault_pki, url, "--now", str(NOW), log=tmp_path / "serve.log")
        try:
            ledger, stop = Ledger(), threading.Event()
            codes: list[grpc.StatusCode] = []
            workers = start_submitters([server.authority_stub()], ledger, stop, SUBMITTERS, retry=True,
                                       on_error=lambda error: codes.append(error.code()))  # fmt: skip
            wait_until(lambda: len(ledger.acknowledged) >= BEFORE, f"{BEFORE} acknowledged submissions")

            master.kill()  # mid-load: submissions are in flight on every worker
            cluster.wait_for_master(replica)
            during = len(ledger.acknowledged)
            wait_until(lambda: len(ledger.acknowledged) >= during + AFTER, f"{AFTER} more acknowledged submissions")
            wait_for_health(server.public_channel(), SERVING)
            stop.set()
            for worker in workers:
                worker.finish()

            assert server.process.poll() is None, "the service stopped: it must ride through the failover"
            # A failover is transient: callers may be told to retry, never that their submission was bad.
            assert set(codes) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}, codes
            assert not ledger.refused and not ledger.unanswered
            publish(server)
            trusted = TrustedKeys([load_verifying_key(fault_pki / "server" / "signing.pub.pem")])
            found = check_exactly_once(open_store(url), trusted, ledger.keys())
            assert found.keys_found == ledger.accepted_keys == len(ledger.keys())
            assert "Traceback" not in server.log_text()
            assert cluster.master_of(PREFIX) is replica
        finally:
            server.stop()
