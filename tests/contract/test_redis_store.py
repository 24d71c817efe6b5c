"""What only the Redis backend has to show: crashes of the server and of a client in the middle of a command, the
one-slot layout on Redis Cluster, and that every key expires except the documented few."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import redis.cluster
from redis.connection import AbstractConnection
from redis.crc import key_slot

from clients.redis_server import RedisServer
from matcher.store import BatchCommit, CodeRecord, StoreError
from matcher.store.redis import _HAS_CASE, _PACKED, KEY_DATA_KEY, KEYS_WITHOUT_TTL, LEGACY_CASE, PREFIX, RedisStore
from tests.contract.builders import (
    AUTHORITY,
    LEASE,
    NOW,
    RETENTION,
    encode_body,
    key,
    pending_key_data,
    publish_once,
    published_key_data,
    submission,
    submit,
)
from tests.contract.conftest import keys_without_ttl

FORK = multiprocessing.get_context("fork")


def exercise_every_kind_of_record(store: RedisStore) -> None:
    store.put_code(b"\x01" * 32, CodeRecord(AUTHORITY, "VN", 1, "", NOW + 3600), now=NOW)
    store.put_code(b"\x02" * 32, CodeRecord(AUTHORITY, "VN", 1, "", NOW + 3600), now=NOW)
    submit(store, submission("phone", [key(1)]), code_hash=b"\x01" * 32)
    submit(store, submission("s1", [key(2), key(3, days_ago=0)]))
    publish_once(store, "publisher")
    store.acquire_publish_lock("publisher", LEASE)
    store.put_exposure_config(b"config", replacing=None)
    store.purge(now=NOW + 86_400, retention_seconds=RETENTION)


def test_every_key_has_a_ttl_except_the_allow_list(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    store = RedisStore(redis_server.url)
    exercise_every_kind_of_record(store)

    names = {name.decode() for name in client.scan_iter()}
    assert names >= KEYS_WITHOUT_TTL
    assert keys_without_ttl(client) == []
    client.set(PREFIX + "forgotten", b"x")  # the check itself notices a key that lives forever
    assert keys_without_ttl(client) == [PREFIX + "forgotten"]
    client.delete(PREFIX + "forgotten")


def test_the_documented_allow_list_is_the_one_the_code_enforces() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "storage.md").read_text()

    documented = re.findall(r"^\| `(\{exposure\}:[^`]+)` \|.*\| none \(allow-list\) \|$", text, re.M)

    assert set(documented) == KEYS_WITHOUT_TTL


def test_a_pending_key_packed_before_cases_existed_is_read_as_one_legacy_case_received_at_zero(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    client.flushall()
    store = RedisStore(redis_server.url)
    submit(store, submission("s1", [key(1), key(2)]))
    # Rewrite the values as the version before cases packed them: no case bit, nothing between key data and region.
    for fingerprint, value in client.hgetall(KEY_DATA_KEY).items():
        start, period, report_type, present, days, unused, length = _PACKED.unpack_from(value)
        old = _PACKED.pack(start, period, report_type, present & ~_HAS_CASE, days, unused, length)
        client.hset(KEY_DATA_KEY, fingerprint, old + value[_PACKED.size : _PACKED.size + length] + b"VN")

    pending = store.pending_keys(now=NOW, limit=10)

    assert {(p.key, p.region, p.case, p.received_at) for p in pending} == {
        (key(1), "VN", LEGACY_CASE, 0),
        (key(2), "VN", LEGACY_CASE, 0),
    }


def test_the_store_works_on_redis_cluster_with_every_key_in_one_slot(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "cluster", cluster=True) as server:
        store = RedisStore(server.url)
        exercise_every_kind_of_record(store)
        assert published_key_data(store) == {key(1).key_data: 1, key(2).key_data: 1}
        client = server.client()

        slots = {key_slot(name) for name in client.scan_iter()}

        assert slots == {key_slot(PREFIX.encode())}
        assert keys_without_ttl(client) == []


def test_a_cluster_url_uses_the_cluster_client_and_keeps_every_key_in_one_slot(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "cluster-client", cluster=True) as server:
        store = RedisStore(server.url + "?cluster=true")
        assert isinstance(store._redis, redis.cluster.RedisCluster)
        exercise_every_kind_of_record(store)
        assert published_key_data(store) == {key(1).key_data: 1, key(2).key_data: 1}
        assert {key_slot(name) for name in server.client().scan_iter()} == {key_slot(PREFIX.encode())}


def test_redis_killed_and_restarted_with_its_append_only_file_loses_no_acknowledged_key(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "aof", appendonly=True) as server:
        store = RedisStore(server.url)
        acknowledged: list[bytes] = []
        stop = threading.Event()

        def write() -> None:
            n = 0
            while not stop.is_set():
                sub = submission(f"s{n}", [key(3 * n + j) for j in range(3)])
                try:
                    submit(store, sub)
                except StoreError:
                    time.sleep(0.01)
                    continue  # sent again with the same id: stored once, whether or not it got through
                acknowledged.extend(k.key_data for k in sub.keys)
                n += 1

        def wait_for(count: int) -> None:
            while len(acknowledged) < count:
                time.sleep(0.005)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            wait_for(150)
            publish_once(store, "publisher")
            server.kill()
            time.sleep(0.2)
            server.start()
            wait_for(len(acknowledged) + 150)
        finally:
            stop.set()
            writer.join()

        fresh = RedisStore(server.url)
        published, pending = published_key_data(fresh), pending_key_data(fresh)
        assert published  # the batch committed before the crash
        assert published + pending == dict.fromkeys(acknowledged, 1)
        assert keys_without_ttl(server.client()) == []


def send_half_then_hang(url: str, reached: multiprocessing.synchronize.Event) -> None:
    """Publishes one batch with a big body, but its connection sends only half of the command, then hangs."""
    send = AbstractConnection.send_packed_command

    def send_half(self: AbstractConnection, command: list[bytes] | bytes, check_health: bool = True) -> None:
        data = b"".join([command] if isinstance(command, bytes) else command)
        if len(data) < 1_000_000:
            return send(self, command, check_health)
        self._sock.sendall(data[: len(data) // 2])
        reached.set()
        time.sleep(600)

    AbstractConnection.send_packed_command = send_half  # type: ignore[method-assign]
    store = RedisStore(url)
    fence = store.acquire_publish_lock("doomed", LEASE)
    pending = store.pending_keys(now=NOW, limit=100)
    store.commit_batch(
        BatchCommit(
            owner="doomed",
            fence=fence,
            sequence=1,
            published_at=NOW,
            signed_header=b"header",
            body=encode_body((p.key for p in pending), padding=4_000_000),
            key_ids=[p.id for p in pending],
            now=NOW,
            retention_seconds=RETENTION,
        )
    )


def test_a_publisher_killed_while_sending_its_commit_changes_nothing(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        store = RedisStore(server.url)
        submit(store, submission("s1", [key(n) for n in range(10)]))
        reached = FORK.Event()
        doomed = FORK.Process(target=send_half_then_hang, args=(server.url, reached))
        doomed.start()
        assert reached.wait(60)

        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join()
        store.ping()  # the server dropped the half command with its connection

        assert store.last_sequence() == 0
        assert store.list_batches(after=0, limit=10) == []
        assert pending_key_data(store) == {key(n).key_data: 1 for n in range(10)}


def test_a_store_whose_server_is_gone_raises_store_error_and_recovers_when_it_is_back(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        store = RedisStore(server.url)
        store.ping()
        server.stop()

        with pytest.raises(StoreError, match=r"redis store redis://127.0.0.1"):
            submit(store, submission("s1", [key(1)]))
        with pytest.raises(StoreError):
            store.ping()

        server.start()
        assert submit(store, submission("s1", [key(1)])).stored == 1


def test_a_password_in_the_url_stays_out_of_error_messages() -> None:
    store = RedisStore("redis://user:secret@127.0.0.1:1/0")

    with pytest.raises(StoreError) as error:
        store.ping()

    assert "secret" not in str(error.value)


def test_a_missing_redis_server_binary_fails_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(RuntimeError, match=r"sudo apt-get install redis-server.*make test"):
        RedisServer()
