"""SIGTERM while authorities are submitting: calls in flight finish, and every acknowledged key is kept."""

from __future__ import annotations

import signal
import threading
import time

import grpc

from exposure.v1 import authority_pb2
from tests.integration.harness import NOW, start_server
from tests.integration.test_service import LATER, diagnosis_key, publish


def test_sigterm_during_submissions_loses_no_acknowledged_key(pki, store_url, tmp_path):
    server = start_server(pki, store_url, "--now", str(NOW), log=tmp_path / "serve.log")
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def authority(worker: int) -> None:
        stub = server.authority_stub()
        n = 0
        while not stop.is_set():
            n += 1
            person = worker * 10_000 + n
            keys = [diagnosis_key(1, day=d, key_data=person.to_bytes(14, "big") + bytes([d, 0])) for d in (1, 2)]
            request = authority_pb2.SubmitKeysRequest(submission_id=f"w{worker}-{n}", keys=keys)
            try:
                response = stub.SubmitKeys(request, timeout=10)
            except grpc.RpcError:
                return  # the server is going away; this submission was not acknowledged
            with lock:
                acknowledged.append(response.accepted)

    workers = [threading.Thread(target=authority, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acknowledged) >= 20, server.log_text()
    assert server.stop(signal.SIGTERM) == 0
    stop.set()
    for worker in workers:
        worker.join()

    batches = publish(server, now=LATER)
    assert sum(b["keys"] for b in batches) == sum(acknowledged) > 0
    assert "stopped" in server.log_text()
