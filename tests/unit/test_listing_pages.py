"""ListBatches answers are bounded in bytes as well as in count: large headers never make a page a phone's
gRPC receive limit (4 MiB) refuses."""

from __future__ import annotations

from exposure.v1 import batch_pb2, distribution_pb2
from matcher.distribution import MAX_PAGE_BYTES, header_element, listing_bytes

PHONE_RECEIVE_LIMIT = 4 << 20


def signed(count: int, size: int) -> list[batch_pb2.SignedBatchHeader]:
    return [batch_pb2.SignedBatchHeader(header=bytes([n % 256]) * size) for n in range(count)]


def headers(count: int, size: int) -> list[bytes]:
    return [header_element(h.SerializeToString()) for h in signed(count, size)]


def test_a_page_of_a_thousand_large_headers_is_cut_by_bytes_and_says_more_follow():
    page = listing_bytes(headers(1000, 8 << 10), more=False)  # 8 MB of headers: twice a phone's receive limit
    parsed = distribution_pb2.ListBatchesResponse.FromString(page)
    assert len(page) <= MAX_PAGE_BYTES < PHONE_RECEIVE_LIMIT and parsed.more
    assert 0 < len(parsed.batches) < 1000 and list(parsed.batches) == signed(1000, 8 << 10)[: len(parsed.batches)]


def test_small_pages_are_whole_and_keep_their_more_flag():
    elements = headers(100, 500)
    for more in (False, True):
        parsed = distribution_pb2.ListBatchesResponse.FromString(listing_bytes(elements, more=more))
        assert len(parsed.batches) == 100 and parsed.more is more


def test_a_single_header_larger_than_a_page_is_still_sent_so_that_syncing_moves_on():
    parsed = distribution_pb2.ListBatchesResponse.FromString(listing_bytes(headers(3, MAX_PAGE_BYTES + 10), more=False))
    assert len(parsed.batches) == 1 and parsed.more
