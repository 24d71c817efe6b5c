"""The Redis store: any number of server replicas on one Redis (or Redis Cluster), with redis-py.

Layout (docs/storage.md has the full table). Every key name starts with the hash tag ``{exposure}``, so every
key lives in one hash slot. That is what lets a Lua script touch the submission record, the code, the
de-duplication set and the pending set in one atomic step on Redis Cluster too (a script may only touch keys of
one slot). The cost: one slot is one shard, so a Cluster gives this store availability (replicas, failover) but
no write scale-out. That is the right trade here: the data is small (a key is a few hundred bytes, a day of a
large country's submissions fits in memory many times over), while exactly-once publication needs the
submission, de-duplication and batch cut to be atomic with each other, which no cross-slot design offers.

Atomicity: ``submit``, ``commit_batch``, ``put_code``, the lock and ``purge`` are Lua scripts (EVALSHA through
redis-py Script objects): each write is one atomic step and one round trip, and a client that dies while sending
a command leaves nothing, because Redis runs a script only once it has all of it. Reads that need several
commands go in one pipeline.

Expiry: every key has a TTL except the few in ``KEYS_WITHOUT_TTL``. TTLs are relative (seconds from the ``now``
a call passes in to the record's expiry), never EXPIREAT, so that simulated or historical clocks work. TTLs are a
safety net on real time; ``purge`` deletes by the data clock, removing records and their index entries.
"""

from __future__ import annotations

import struct
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from hashlib import sha256
from typing import Any

import redis
import redis.cluster
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.exceptions import (
    AskError,
    ClusterError,
    ReadOnlyError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry

from ..errors import NotFound
from ..model import Submission
from .base import (
    BatchCommit,
    CodeRecord,
    LockLost,
    PendingKey,
    PurgeCounts,
    Store,
    StoredBatch,
    StoreError,
    SubmitResult,
)
from .common import PendingItem, columns_of, invalid_code, item_of, new_case_id, submission_id_taken

PREFIX = "{exposure}:"

# Redis Cluster failover (see RedisStore._on_primary): how long a write waits for the slot's replicas, and how
# often and how long it retries while a replica takes over (a failover takes cluster-node-timeout, 15 s by
# default, plus an election; callers see UNAVAILABLE past this and retry, every write being idempotent).
CLUSTER_WAIT_MS = 2000
CLUSTER_ATTEMPTS = 8
CLUSTER_RETRY_FIRST_DELAY = 0.1
CLUSTER_RETRY_MAX_DELAY = 2.0
# What a write meets while a replica takes over: the old master gone, answers from a node that is no longer (or
# not yet) the slot's master, the cluster saying it is down.
FAILOVER_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    RedisClusterException,  # no node answered the slot map, or the slot has no master yet
    ClusterError,  # with ClusterDownError
    AskError,  # with MovedError
    TryAgainError,
    ReadOnlyError,
)

# The only keys without a TTL. None holds personal data, and each must outlive retention: phones keep a cursor
# into the batch sequence (it must never go back, even after every batch expired), a fencing token must never be
# issued twice, and the exposure configuration stays current until it is replaced.
SEQUENCE_KEY = PREFIX + "sequence"
FENCE_KEY = PREFIX + "fence"
CONFIG_KEY = PREFIX + "config"
KEYS_WITHOUT_TTL = frozenset({SEQUENCE_KEY, FENCE_KEY, CONFIG_KEY})

LOCK_KEY = PREFIX + "lock"  # hash {o: owner, f: fence}, PX lease
SEEN_KEY = PREFIX + "seen"  # zset fingerprint -> end of the key's validity: every key held, pending or published
PENDING_KEY = PREFIX + "pending"  # zset fingerprint -> publish_after
KEY_DATA_KEY = PREFIX + "keys"  # hash fingerprint -> packed key, region, case, received_at (pending keys only)
BATCHES_KEY = PREFIX + "batches"  # zset sequence -> sequence (listing)
BATCH_TIMES_KEY = PREFIX + "batch-times"  # zset sequence -> published_at (retention)
CODES_KEY = PREFIX + "codes"  # zset code hash (hex) -> expires_at
SUBMISSIONS_KEY = PREFIX + "submissions"  # zset record name -> stored_at


def batch_key(sequence: int) -> str:
    return f"{PREFIX}batch:{sequence}"  # hash {h: signed header, t: published_at, n: body size, f: fence}


def body_key(sequence: int) -> str:
    return f"{PREFIX}batch:{sequence}:body"  # string


def code_key(code_hash: bytes) -> str:
    return f"{PREFIX}code:{code_hash.hex()}"  # hash {a, r, t, o, x, e}


def submission_key(name: str) -> str:
    return f"{PREFIX}submission:{name}"  # hash {d: digest, r: response, t: stored_at}


def submission_name(authority: str, submission_id: str) -> str:
    """The record name of (authority, submission_id): a hash, so that no separator can make two pairs collide."""
    encoded_authority = authority.encode()
    return sha256(struct.pack("<H", len(encoded_authority)) + encoded_authority + submission_id.encode()).hexdigest()


# A packed pending key: rolling start, rolling period, report type, which optional fields are present (bit 0 days
# since onset, bit 2 case, bit 3 contact intervals; bit 1 was the TX power, no longer kept), days since onset, a
# byte once the TX power and now 0, key length; then the key data; with bit 2, the time it was received (int64) and
# the case (a length byte, then utf-8); with bit 3, the contact-interval bitmap (a length byte, then the bitmap);
# then the region (utf-8, the rest of the value). Values written before cases existed lack bit 2: they are read as
# one case received at 0 (see unpack_key), so a Redis that holds them keeps working across the upgrade.
_PACKED = struct.Struct("<IHBBbbB")
_RECEIVED = struct.Struct("<qB")
_LENGTH = struct.Struct("<B")
_HAS_DAYS, _HAS_CASE, _HAS_CONTACTS = 1, 4, 8
# The case of every key packed before cases existed. One case for all of them, not one each: counting them as
# fewer people than they are can only hold them longer (up to the deadline), never publish a section too small.
LEGACY_CASE = "legacy"


def pack_key(key: PendingItem, region: str, case: str, received_at: int) -> bytes:
    key_data, start, period, report_type, days, contacts = columns_of(key)
    present = (_HAS_DAYS if days is not None else 0) | _HAS_CASE | (_HAS_CONTACTS if contacts is not None else 0)
    head = _PACKED.pack(start, period, report_type, present, days or 0, 0, len(key_data))
    encoded_case = case.encode()
    packed = head + key_data + _RECEIVED.pack(received_at, len(encoded_case)) + encoded_case
    if contacts is not None:
        packed += _LENGTH.pack(len(contacts)) + contacts
    return packed + region.encode()


def unpack_key(value: bytes) -> tuple[PendingItem, str, str, int]:
    """The key (or venue hour), region, case and time received of a packed pending item."""
    start, period, report_type, present, days, _, length = _PACKED.unpack_from(value)
    offset = _PACKED.size + length
    key_data = value[_PACKED.size : offset]
    case, received_at = LEGACY_CASE, 0
    if present & _HAS_CASE:
        received_at, case_length = _RECEIVED.unpack_from(value, offset)
        offset += _RECEIVED.size
        case = value[offset : offset + case_length].decode()
        offset += case_length
    contacts = None
    if present & _HAS_CONTACTS:
        (size,) = _LENGTH.unpack_from(value, offset)
        contacts = value[offset + _LENGTH.size : offset + _LENGTH.size + size]
        offset += _LENGTH.size + size
    region = value[offset:].decode()
    key = item_of(key_data, start, period, report_type, days if present & _HAS_DAYS else None, contacts)
    return key, region, case, received_at


def ttl_seconds(expires_at: int, now: int) -> int:
    """A relative TTL from the data clock; at least 1 s (EXPIRE with 0 or less would delete the key at once)."""
    return max(1, expires_at - now)


# Lua helper shared by the scripts: give an index the later of its current and the new expiry.
_EXTEND = """
local function extend(key, ttl)
  if redis.call('TTL', key) < tonumber(ttl) then redis.call('EXPIRE', key, ttl) end
end
"""

# KEYS: the configuration. ARGV: the new value, whether one is expected (0/1), the expected value.
# Compare and set: a version derived from a configuration that another writer has replaced meanwhile is refused.
_REPLACE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 1 end  -- this very write, sent again after its answer was lost
if ARGV[2] == '0' then
  if current then return 0 end
elseif current ~= ARGV[3] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# Exactly-once step 0, de-duplicate (matcher/publisher.py): the submission record, the code, the fingerprints
# ("seen") and the pending keys change in this one script.
# KEYS: submission record, submissions index, code record, codes index, seen, pending, key data
# ARGV: digest, response, now, cutoff, record ttl, record name, use code (0/1), code member, keys ttl,
#       then per key: fingerprint, ends_at, publish_after, packed key
_SUBMIT = (
    _EXTEND
    + """
local earlier = redis.call('HMGET', KEYS[1], 'd', 'r', 't')
if earlier[1] and tonumber(earlier[3]) > tonumber(ARGV[4]) then
  if earlier[1] == ARGV[1] then return {'replayed', earlier[2]} end
  return {'exists'}
end
if ARGV[7] == '1' then
  local expires = redis.call('HGET', KEYS[3], 'x')
  if not expires or tonumber(expires) <= tonumber(ARGV[3]) then return {'denied'} end
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[8])
end
local stored, duplicates = 0, 0
for i = 10, #ARGV, 4 do
  if redis.call('ZSCORE', KEYS[5], ARGV[i]) then
    duplicates = duplicates + 1
  else
    redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i])
    redis.call('ZADD', KEYS[6], ARGV[i + 2], ARGV[i])
    redis.call('HSET', KEYS[7], ARGV[i], ARGV[i + 3])
    stored = stored + 1
  end
end
if stored > 0 then
  extend(KEYS[5], ARGV[9]); extend(KEYS[6], ARGV[9]); extend(KEYS[7], ARGV[9])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'r', ARGV[2], 't', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
extend(KEYS[2], ARGV[5])
return {'stored', stored, duplicates}
"""
)

# KEYS: code record, codes index. ARGV: now, ttl, code member, authority, region, report type, onset, expires_at,
# exposure date
# A live code with the same hash is "taken", unless it is this very record (the same put, sent again).
_PUT_CODE = (
    _EXTEND
    + """
local held = redis.call('HMGET', KEYS[1], 'a', 'r', 't', 'o', 'x', 'e')
if held[5] and tonumber(held[5]) > tonumber(ARGV[1]) then
  local same = held[1] == ARGV[4] and held[2] == ARGV[5] and held[3] == ARGV[6] and held[4] == ARGV[7]
  if same and held[5] == ARGV[8] and (held[6] or '') == ARGV[9] then return 1 end
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'a', ARGV[4], 'r', ARGV[5], 't', ARGV[6], 'o', ARGV[7], 'x', ARGV[8], 'e', ARGV[9])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[3])
extend(KEYS[2], ARGV[2])
return 1
"""
)

# Exactly-once steps 1 and 2, lock and fence (matcher/publisher.py); _RELEASE below ends step 1.
# KEYS: lock, fence counter. ARGV: owner, lease in milliseconds. Returns the new fence, or nil while another
# owner holds the lock.
_ACQUIRE = """
local holder = redis.call('HGET', KEYS[1], 'o')
if holder and holder ~= ARGV[1] then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'f', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return fence
"""

# KEYS: lock. ARGV: owner. Compare-and-delete.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: pending, key data. ARGV: now, limit. Returns fingerprint, packed key, fingerprint, packed key, ...
_PENDING = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local found = {}
for i = 1, #ids, 1000 do
  local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
  local values = redis.call('HMGET', KEYS[2], unpack(chunk))
  for j = 1, #chunk do
    if values[j] then found[#found + 1] = chunk[j]; found[#found + 1] = values[j] end
  end
end
return found
"""

# KEYS: batches. ARGV: after, limit, key prefix. Returns sequence, header, published_at, body size, ... of the
# batches after ``after``, skipping records already gone on their TTL. One round trip for a whole page: a first
# sync lists a fortnight of batches, and a pipeline of one HMGET each cost more in the client than in Redis.
_LIST = """
local sequences = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
local found = {}
for _, sequence in ipairs(sequences) do
  local record = redis.call('HMGET', ARGV[3] .. 'batch:' .. sequence, 'h', 't', 'n')
  if record[1] then
    found[#found + 1] = sequence; found[#found + 1] = record[1]
    found[#found + 1] = record[2]; found[#found + 1] = record[3]
  end
end
return found
"""

# Exactly-once step 4, commit (matcher/publisher.py): the lock's owner and fence, and the sequence, are checked
# inside the script that writes the batch. The lease needs no check of its own: the lock key expires with it.
# KEYS: lock, sequence, batches, batch times, batch record, body, pending, key data
# ARGV: owner, fence, sequence, published_at, header, body, ttl, then the fingerprints of the batch's keys
_COMMIT = (
    _EXTEND
    + """
if redis.call('HGET', KEYS[5], 'f') == ARGV[2] then return 'ok' end  -- a resent commit that already happened
local lock = redis.call('HMGET', KEYS[1], 'o', 'f')
if lock[1] ~= ARGV[1] or lock[2] ~= ARGV[2] then return 'lock' end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last + 1 ~= tonumber(ARGV[3]) then return 'sequence' end
redis.call('HSET', KEYS[5], 'h', ARGV[5], 't', ARGV[4], 'n', string.len(ARGV[6]), 'f', ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[7])
redis.call('SET', KEYS[6], ARGV[6], 'EX', ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
extend(KEYS[3], ARGV[7]); extend(KEYS[4], ARGV[7])
redis.call('SET', KEYS[2], ARGV[3])
for i = 8, #ARGV, 1000 do
  local last_i = math.min(i + 999, #ARGV)
  redis.call('ZREM', KEYS[7], unpack(ARGV, i, last_i))
  redis.call('HDEL', KEYS[8], unpack(ARGV, i, last_i))
end
return 'ok'
"""
)

# Exactly-once step 5, purge (matcher/publisher.py).
# KEYS: seen, pending, key data, batches, batch times, codes, submissions
# ARGV: cutoff, now, chunk size, key prefix. Deletes up to a chunk of each kind of expired record; the caller
# repeats until a call deletes less than a chunk of every kind. Record names are built from the prefix: they
# share the hash tag, so they are in the slot of the declared keys.
_PURGE = """
local chunk = tonumber(ARGV[3])
local function expired(index, upto)
  return redis.call('ZRANGEBYSCORE', index, '-inf', upto, 'LIMIT', 0, chunk)
end
local keys = expired(KEYS[1], ARGV[1])
if #keys > 0 then
  redis.call('ZREM', KEYS[1], unpack(keys))
  redis.call('ZREM', KEYS[2], unpack(keys))
  redis.call('HDEL', KEYS[3], unpack(keys))
end
local batches = expired(KEYS[5], ARGV[1])
for _, sequence in ipairs(batches) do
  redis.call('DEL', ARGV[4] .. 'batch:' .. sequence, ARGV[4] .. 'batch:' .. sequence .. ':body')
  redis.call('ZREM', KEYS[4], sequence)
  redis.call('ZREM', KEYS[5], sequence)
end
local codes = expired(KEYS[6], ARGV[2])
for _, code in ipairs(codes) do
  redis.call('DEL', ARGV[4] .. 'code:' .. code)
  redis.call('ZREM', KEYS[6], code)
end
local submissions = expired(KEYS[7], ARGV[1])
for _, name in ipairs(submissions) do
  redis.call('DEL', ARGV[4] .. 'submission:' .. name)
  redis.call('ZREM', KEYS[7], name)
end
return {#keys, #batches, #codes, #submissions}
"""

_PURGE_KEYS = [SEEN_KEY, PENDING_KEY, KEY_DATA_KEY, BATCHES_KEY, BATCH_TIMES_KEY, CODES_KEY, SUBMISSIONS_KEY]
PURGE_CHUNK = 1000


def _cluster_option(url: str) -> tuple[str, bool]:
    """The URL without the ``cluster`` query option, and whether it asked for a cluster client."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    cluster = any(name == "cluster" and value.lower() in ("1", "true", "yes") for name, value in query)
    rest = urllib.parse.urlencode([(name, value) for name, value in query if name != "cluster"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), cluster


def _raw(answer: bytes | str | None) -> bytes | None:
    """A bytes answer as redis-py types it: the client is made without decode_responses, so never a str."""
    assert not isinstance(answer, str), "the Redis client decodes no answers"
    return answer


def _text(answer: bytes | str) -> str:
    """A text field of a hash, which the client answers as bytes (see _raw)."""
    assert isinstance(answer, bytes), "the Redis client decodes no answers"
    return answer.decode()


class RedisStore:
    """The Store protocol (matcher/store/base.py) on Redis, from a ``redis://HOST:PORT/DB`` URL.

    ``?cluster=true`` in the URL talks to a Redis Cluster (any node as the seed): the client follows the slot
    map and its redirections. Every key shares one hash slot, so every script stays on one shard.
    """

    def __init__(self, url: str, *, socket_timeout: float = 30.0) -> None:
        url, cluster = _cluster_option(url)
        self._cluster = cluster
        # Lost connections are retried a few times: every command here is safe to send twice (a submission
        # replays, a commit that already happened answers ok, the lock and purge are idempotent).
        options = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": 5.0,
            "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        }
        self._where = _describe(url)
        self._redis: redis.Redis | redis.cluster.RedisCluster
        if cluster:
            self._redis = self._cluster_client(url, options)
        else:
            self._redis = redis.Redis.from_url(
                url, health_check_interval=30, retry_on_error=[redis.ConnectionError, redis.TimeoutError], **options
            )
        register = self._redis.register_script
        self._submit = register(_SUBMIT)
        self._put_code = register(_PUT_CODE)
        self._acquire = register(_ACQUIRE)
        self._release = register(_RELEASE)
        self._pending = register(_PENDING)
        self._commit = register(_COMMIT)
        self._purge = register(_PURGE)
        self._list = register(_LIST)
        self._replace = register(_REPLACE)

    def _cluster_client(self, url: str, options: dict[str, Any]) -> redis.cluster.RedisCluster:
        if urllib.parse.urlsplit(url).path.strip("/") not in ("", "0"):
            raise StoreError(
                f"redis store {self._where}: a Redis Cluster has database 0 only: "
                "name it redis://HOST:PORT/0?cluster=true"
            )
        try:
            return redis.cluster.RedisCluster.from_url(url, **options)
        except (redis.RedisError, RedisClusterException) as error:
            raise StoreError(
                f"redis store {self._where}?cluster=true: no Redis Cluster answers there ({_one_line(error)})"
            ) from error

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, RedisClusterException) as error:
            raise StoreError(f"redis store {self._where}: {_one_line(error)}") from error

    def ping(self) -> None:
        with self._errors():
            if self._cluster:
                self._on_primary(lambda client: client.ping(), replicate=False)
            else:
                self._redis.ping()

    def _write(self, script: Script, *, keys: list[Any], args: list[Any]) -> Any:
        """Runs a writing script. On a cluster, the answer comes only once every replica the cluster lists for
        the slot has the write (WAIT): a master killed right after answering cannot take an acknowledged key
        with it, since the replica that takes over has it."""
        if not self._cluster:
            return script(keys=keys, args=args)
        return self._on_primary(lambda client: script(keys=keys, args=args, client=client), replicate=True)

    def _on_primary(self, queue: Callable[[Any], Any], *, replicate: bool) -> Any:
        """Runs what ``queue`` puts in a pipeline on the master of the service's slot, with WAIT on the same
        connection (WAIT counts that connection's writes), and through a failover: a lost connection, a MOVED
        or CLUSTERDOWN answer or too few replicas reloads the slot map and tries again, a few times over some
        seconds. Every write here is safe to send twice (see __init__). What still fails raises for _errors."""
        cluster = self._redis
        assert isinstance(cluster, redis.cluster.RedisCluster), "called on a cluster only"
        slot = cluster.keyslot(PREFIX)
        delay = CLUSTER_RETRY_FIRST_DELAY
        problem: str | Exception | None = None
        for _ in range(CLUSTER_ATTEMPTS):
            try:
                nodes = cluster.nodes_manager.slots_cache.get(slot) or []
                if not nodes:
                    raise SlotNotCoveredError(f"slot {slot} has no master")
                replicas = len(nodes) - 1 if replicate else 0
                pipe = cluster.get_redis_connection(nodes[0]).pipeline(transaction=False)
                queue(pipe)
                if replicas:
                    pipe.execute_command("WAIT", replicas, CLUSTER_WAIT_MS)
                answers = pipe.execute()
                if not replicas or answers[-1] >= replicas:
                    return answers[0]
                problem = f"the write reached {answers[-1]} of {replicas} replicas in {CLUSTER_WAIT_MS} ms"
            except FAILOVER_ERRORS as error:
                problem = error
            time.sleep(delay)
            delay = min(2 * delay, CLUSTER_RETRY_MAX_DELAY)
            try:
                cluster.nodes_manager.initialize()  # the slot map as the cluster now sees it
            except (redis.RedisError, RedisClusterException) as error:
                problem = error
        raise redis.ConnectionError(f"the cluster's master for the service's slot did not answer: {problem}")

    def close(self) -> None:
        self._redis.close()

    # --- submissions ---------------------------------------------------------------------------------------

    def submit(
        self,
        submission: Submission,
        *,
        response: bytes,
        now: int,
        retention_seconds: int,
        code_hash: bytes | None = None,
    ) -> SubmitResult:
        name = submission_name(submission.authority, submission.submission_id)
        case = new_case_id()
        key_args: list[Any] = []
        keys_expire_at = now
        items: tuple[PendingItem, ...] = (*submission.keys, *submission.venue_hours)
        for key in items:
            ends_at = key.ends_at
            keys_expire_at = max(keys_expire_at, ends_at + retention_seconds)
            key_args += [key.fingerprint(), ends_at, key.publish_after(), pack_key(key, submission.region, case, now)]
        with self._errors():
            answer = self._write(
                self._submit,
                keys=[
                    submission_key(name),
                    SUBMISSIONS_KEY,
                    code_key(code_hash or b""),
                    CODES_KEY,
                    SEEN_KEY,
                    PENDING_KEY,
                    KEY_DATA_KEY,
                ],
                args=[
                    submission.digest,
                    response,
                    now,
                    now - retention_seconds,
                    ttl_seconds(now + retention_seconds, now),
                    name,
                    int(code_hash is not None),
                    (code_hash or b"").hex(),
                    ttl_seconds(keys_expire_at, now),
                    *key_args,
                ],
            )
        outcome = answer[0]
        if outcome == b"replayed":
            return SubmitResult(replayed=answer[1])
        if outcome == b"exists":
            raise submission_id_taken()
        if outcome == b"denied":
            raise invalid_code()
        return SubmitResult(replayed=None, stored=int(answer[1]), duplicates=int(answer[2]))

    # --- one-time codes ------------------------------------------------------------------------------------

    def put_code(self, code_hash: bytes, record: CodeRecord, *, now: int) -> bool:
        with self._errors():
            written: int = self._write(
                self._put_code,
                keys=[code_key(code_hash), CODES_KEY],
                args=[
                    now,
                    ttl_seconds(record.expires_at, now),
                    code_hash.hex(),
                    record.authority,
                    record.region,
                    record.report_type,
                    record.symptom_onset,
                    record.expires_at,
                    record.exposure_date,
                ],
            )
        return written == 1

    def replay_of(
        self, authority: str, submission_id: str, digest: bytes, *, now: int, retention_seconds: int
    ) -> bytes | None:
        with self._errors():
            stored, response, stored_at = self._redis.hmget(
                submission_key(submission_name(authority, submission_id)), "d", "r", "t"
            )
        if stored is None:
            return None
        assert stored_at is not None, "a submission record is written whole"
        if int(stored_at) <= now - retention_seconds:
            return None
        if stored != digest:
            raise submission_id_taken()
        return _raw(response)

    def get_code(self, code_hash: bytes, *, now: int) -> CodeRecord | None:
        with self._errors():
            fields = self._redis.hgetall(code_key(code_hash))
        if not fields or int(fields[b"x"]) <= now:
            return None
        return CodeRecord(
            authority=_text(fields[b"a"]),
            region=_text(fields[b"r"]),
            report_type=int(fields[b"t"]),
            symptom_onset=_text(fields[b"o"]),
            expires_at=int(fields[b"x"]),
            exposure_date=_text(fields.get(b"e", b"")),
        )

    # --- publishing ----------------------------------------------------------------------------------------

    def acquire_publish_lock(self, owner: str, lease_seconds: float) -> int | None:
        with self._errors():
            fence = self._write(
                self._acquire, keys=[LOCK_KEY, FENCE_KEY], args=[owner, max(1, int(lease_seconds * 1000))]
            )
        return None if fence is None else int(fence)

    def release_publish_lock(self, owner: str) -> None:
        with self._errors():
            self._write(self._release, keys=[LOCK_KEY], args=[owner])

    def pending_keys(self, *, now: int, limit: int) -> list[PendingKey]:
        with self._errors():
            flat = self._pending(keys=[PENDING_KEY, KEY_DATA_KEY], args=[now, limit])
        found = []
        for fingerprint, value in zip(flat[::2], flat[1::2], strict=True):
            key, region, case, received_at = unpack_key(value)
            found.append(PendingKey(fingerprint.hex(), key, region, case, received_at))
        return found

    def last_sequence(self) -> int:
        with self._errors():
            value = self._redis.get(SEQUENCE_KEY)
        return 0 if value is None else int(value)

    def commit_batch(self, batch: BatchCommit) -> None:
        fingerprints = [bytes.fromhex(key_id) for key_id in batch.key_ids]
        with self._errors():
            outcome = self._write(
                self._commit,
                keys=[
                    LOCK_KEY,
                    SEQUENCE_KEY,
                    BATCHES_KEY,
                    BATCH_TIMES_KEY,
                    batch_key(batch.sequence),
                    body_key(batch.sequence),
                    PENDING_KEY,
                    KEY_DATA_KEY,
                ],
                args=[
                    batch.owner,
                    batch.fence,
                    batch.sequence,
                    batch.published_at,
                    batch.signed_header,
                    batch.body,
                    ttl_seconds(batch.published_at + batch.retention_seconds, batch.now),
                    *fingerprints,
                ],
            )
        if outcome == b"lock":
            raise LockLost(f"publisher {batch.owner!r} no longer holds the lock with fence {batch.fence}")
        if outcome == b"sequence":
            raise LockLost(f"batch {batch.sequence} does not follow the last committed batch")

    def list_batches(self, *, after: int, limit: int) -> list[StoredBatch]:
        with self._errors():
            flat = self._list(keys=[BATCHES_KEY], args=[after, limit, PREFIX])
        return [
            StoredBatch(int(sequence), int(published_at), header, int(size))
            for sequence, header, published_at, size in zip(*[iter(flat)] * 4, strict=True)
        ]

    def batch_span(self, *, after: int) -> tuple[int, int, int]:
        # The index alone, as _LIST reads it; a record gone on its TTL before purge removed it from the index is
        # still counted here (real clocks make the two agree; purge runs after every publishing run).
        with self._errors():
            pipe = self._redis.pipeline(transaction=True)  # one MULTI: the three answers agree
            pipe.zcount(BATCHES_KEY, f"({after}", "+inf")
            pipe.zrangebyscore(BATCHES_KEY, f"({after}", "+inf", start=0, num=1)
            pipe.zrange(BATCHES_KEY, -1, -1)
            count, first, last = pipe.execute()
        if not count:
            return 0, 0, 0
        return int(count), int(first[0]), int(last[0])

    def read_body(self, sequence: int, offset: int, length: int) -> bytes:
        key, start = body_key(sequence), max(offset, 0)
        with self._errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.exists(key)
            pipe.getrange(key, start, start + max(length, 1) - 1)  # GETRANGE's end is inclusive
            exists, chunk = pipe.execute()
        if not exists:
            raise NotFound(f"batch {sequence} does not exist or has expired")
        return chunk if length > 0 else b""

    # --- exposure configuration ----------------------------------------------------------------------------

    def put_exposure_config(self, signed_config: bytes, *, replacing: bytes | None) -> bool:
        with self._errors():
            return bool(
                self._write(
                    self._replace, keys=[CONFIG_KEY], args=[signed_config, int(replacing is not None), replacing or b""]
                )
            )

    def get_exposure_config(self) -> bytes | None:
        with self._errors():
            return _raw(self._redis.get(CONFIG_KEY))

    # --- retention -----------------------------------------------------------------------------------------

    def purge(self, *, now: int, retention_seconds: int) -> PurgeCounts:
        totals = [0, 0, 0, 0]
        with self._errors():
            while True:
                counts = self._write(
                    self._purge, keys=_PURGE_KEYS, args=[now - retention_seconds, now, PURGE_CHUNK, PREFIX]
                )
                totals = [total + int(count) for total, count in zip(totals, counts, strict=True)]
                if max(int(count) for count in counts) < PURGE_CHUNK:
                    break
        return PurgeCounts(*totals)


def _one_line(error: BaseException) -> str:
    """redis-py's message on one line, without its advice to read the docs."""
    return " ".join(str(error).split()) or type(error).__name__


def _describe(url: str) -> str:
    """The URL without a password, for error messages."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


# Checked by mypy: the backend satisfies the Store protocol (a method missing or with another signature fails the
# static check, not a contract test at run time).
_satisfies_store: type[Store] = RedisStore
