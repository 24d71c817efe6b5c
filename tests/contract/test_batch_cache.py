"""The Distribution cache (matcher/distribution.py) answers exactly what the store holds, on either backend: the
same listing bytes as a page built from list_batches, new batches at once, expired ones never, gaps included."""

from __future__ import annotations

import pytest

from exposure.v1 import distribution_pb2
from matcher.distribution import MAX_CHUNK_BYTES, BatchCache, header_element, listing_bytes
from matcher.errors import NotFound
from matcher.store import Store
from tests.contract.builders import DAY, NOW, RETENTION, key, publish_once, submission, submit


def publish(store: Store, n: int, *, now: int = NOW) -> int:
    submit(store, submission(f"s{n}", [key(n, days_ago=3)]), now=now)
    sequence = publish_once(store, "publisher", now=now)
    assert sequence is not None
    return sequence


def expected(store: Store, after: int, page: int) -> bytes:
    found = store.list_batches(after=after, limit=page + 1)
    return listing_bytes([header_element(b.signed_header) for b in found[:page]], more=len(found) > page)


def all_listings_agree(store: Store, cache: BatchCache) -> None:
    last = store.last_sequence()
    for after in range(-1, last + 2):
        for page in (1, 2, 3, 1000):
            assert cache.listing(after, page) == expected(store, after, page), (after, page)


def test_listings_from_the_cache_are_the_stores_pages_twice_over_and_follow_new_batches(store: Store) -> None:
    cache = BatchCache(store, max_bytes=1 << 20)
    for n in range(1, 6):
        publish(store, n)
    all_listings_agree(store, cache)
    all_listings_agree(store, cache)  # now from cached pages and headers
    publish(store, 6)
    all_listings_agree(store, cache)
    assert cache.listing(5, 10) == header_element(b"header 6")  # the store's stand-in signed header, as it is


def test_expired_batches_leave_the_listing_and_downloads_at_once_even_out_of_sequence_order(store: Store) -> None:
    cache = BatchCache(store, max_bytes=1 << 20)
    # Batch 2 is published with the clock set back a day, so retention removes it before 1 and 3: a gap.
    for n, now in ((1, NOW), (2, NOW - DAY), (3, NOW), (4, NOW)):
        publish(store, n, now=now)
    all_listings_agree(store, cache)
    store.purge(now=NOW - DAY + RETENTION, retention_seconds=RETENTION)
    assert [b.sequence for b in store.list_batches(after=0, limit=10)] == [1, 3, 4]
    all_listings_agree(store, cache)
    with pytest.raises(NotFound):
        cache.body_size(2)
    store.purge(now=NOW + RETENTION, retention_seconds=RETENTION)
    assert cache.listing(0, 1000) == b""
    with pytest.raises(NotFound):
        cache.body_size(4)


def test_bodies_come_whole_or_from_any_offset_as_the_store_holds_them_and_too_large_ones_from_the_store(
    store: Store,
) -> None:
    sequence = publish(store, 1)
    size = len(store.read_body(sequence, 0, 1 << 30))
    for cache in (BatchCache(store, max_bytes=1 << 20), BatchCache(store, max_bytes=16)):  # the second keeps none
        assert cache.body_size(sequence) == size
        for offset, chunk in ((0, MAX_CHUNK_BYTES), (5, MAX_CHUNK_BYTES), (3, 7)):
            pieces = [distribution_pb2.BatchChunk.FromString(c) for c, _ in cache.chunks(sequence, size, offset, chunk)]
            assert b"".join(p.data for p in pieces) == store.read_body(sequence, offset, size)
            assert all(len(p.data) <= chunk and p.body_size == size for p in pieces)
    assert BatchCache(store, max_bytes=16).bytes_held == 0
