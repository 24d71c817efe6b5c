"""What the Distribution service sends, kept in memory: every batch's signed header and body, serialised once.

A published batch never changes, and every phone downloads every batch, so the same bytes go out millions of
times. Reading them from the store and serialising them again for every call cost more than the rest of a call
(a first sync's 336 headers: 1.2 ms of SQLite reads and 0.7 ms of protobuf work, against 1 ms for an empty
gRPC call). This cache keeps, per batch, the wire bytes of its ``SignedBatchHeader`` as an element of
``ListBatchesResponse.batches`` and of its body as ``BatchChunk`` messages of ``MAX_CHUNK_BYTES``, and the
servicer hands those bytes to grpcio as they are (``PRESERIALISED``).

What the cache does not decide is which batches exist: every call still asks the store how many batches it
retains after the asked sequence, and the first and last of them (Store.batch_span, tens of microseconds), so a
batch that retention deleted is never listed or served again, and a new one is listed as soon as it is committed,
whichever process cut it. When those are every sequence from first to last, a page's bytes never change, and
whole ListBatches answers are kept too (a first sync asks every phone's same page). The cache is bounded in bytes
(least recently used batches leave first) and filled from the store on a miss; each server process has its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message

from exposure.v1 import distribution_pb2

from .errors import NotFound
from .store import Store

_Message = TypeVar("_Message", bound=Message)

MAX_CHUNK_BYTES = 1 << 20  # 1 MiB: far below grpcio's 4 MiB message limit, small enough to resume cheaply
# A ListBatches answer holds at most this many bytes of headers, whatever their count: a header with many sections
# is larger, and a page of a thousand of them must not pass a phone's 4 MiB receive limit.
MAX_PAGE_BYTES = 1 << 20
# A smaller chunk asked for is raised to this: a chunk is a message and a store read, and 1-byte chunks made a
# 20 KB download take 10 s of a worker. 64 KiB is HTTP/2's initial window: a chunk a round trip at worst.
MIN_CHUNK_BYTES = 64 << 10
DEFAULT_CACHE_MB = 256


def varint(value: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# ListBatchesResponse: field 1 (batches, length-delimited) repeated, then field 2 (more, varint). A repeated
# field's elements may be concatenated as they are: that is how protobuf defines the encoding, so a page is the
# join of its headers' elements.
_BATCHES_TAG = b"\x0a"
_MORE_TRUE = b"\x10\x01"


def header_element(signed_header: bytes) -> bytes:
    """A stored SignedBatchHeader as one element of ``ListBatchesResponse.batches``, in wire form."""
    return _BATCHES_TAG + varint(len(signed_header)) + signed_header


def listing_bytes(elements: Sequence[bytes], more: bool) -> bytes:
    """A serialised ListBatchesResponse of these header elements, cut to MAX_PAGE_BYTES (the rest: "more")."""
    total = 0
    for kept, element in enumerate(elements):
        total += len(element)
        if total > MAX_PAGE_BYTES and kept:
            return b"".join(elements[:kept]) + _MORE_TRUE
    return b"".join(elements) + (_MORE_TRUE if more else b"")


@dataclass(frozen=True)
class CachedBatch:
    sequence: int
    header: bytes  # the ListBatchesResponse element
    body_size: int
    chunks: tuple[bytes, ...] | None  # serialised BatchChunks of MAX_CHUNK_BYTES from offset 0; None: header only

    @property
    def size(self) -> int:
        return len(self.header) + sum(len(chunk) for chunk in self.chunks or ())


class BatchCache:
    """Signed headers and chunked bodies of batches, serialised, at most ``max_bytes`` of them (thread-safe)."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, CachedBatch] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._fill_lock = threading.Lock()  # one body read from the store at a time, not one per waiting phone
        # Whole ListBatches answers of contiguous runs of batches, at most an eighth of the budget: a first sync
        # asks for the same page from every phone, an hourly one for the same few.
        self._pages: OrderedDict[tuple[str, int, int, bool], bytes] = OrderedDict()
        self._page_bytes = 0

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def _get(self, sequence: int) -> CachedBatch | None:
        with self._lock:
            entry = self._entries.get(sequence)
            if entry is not None:
                self._entries.move_to_end(sequence)
            return entry

    def _put(self, entry: CachedBatch) -> None:
        if entry.size > self.max_bytes:
            return  # a body larger than the whole cache is read from the store each time (a chunk at a time)
        with self._lock:
            old = self._entries.pop(entry.sequence, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[entry.sequence] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    # --- ListBatches ---------------------------------------------------------------------------------------------

    def listing(self, after: int, page: int) -> bytes:
        """A serialised ListBatchesResponse: the headers of the (at most ``page``) retained batches after
        ``after``, and whether more follow."""
        count, first, last = self.store.batch_span(after=after)
        if not count:
            return listing_bytes([], more=False)
        if last - first + 1 != count:
            return self._listing_with_gaps(after, page)
        # Every sequence from first to last is there: the page is first..shown, whose bytes never change.
        shown = min(last, first + page - 1)
        key = ("page", first, shown, count > page)
        with self._lock:
            cached = self._pages.get(key)
            if cached is not None:
                self._pages.move_to_end(key)
                return cached
        elements = self._elements(list(range(first, shown + 1)))
        if len(elements) != shown - first + 1:
            return self._listing_with_gaps(after, page)  # some were deleted between the two reads
        listing = listing_bytes(elements, more=count > page)
        with self._lock:
            self._pages[key] = listing
            self._page_bytes += len(listing)
            while self._page_bytes > self.max_bytes // 8:
                _, evicted = self._pages.popitem(last=False)
                self._page_bytes -= len(evicted)
        return listing

    def _listing_with_gaps(self, after: int, page: int) -> bytes:
        """Batches deleted out of sequence order (a purge on a clock set back): read the page from the store."""
        found = self.store.list_batches(after=after, limit=page + 1)
        return listing_bytes([header_element(b.signed_header) for b in found[:page]], more=len(found) > page)

    def _elements(self, sequences: list[int]) -> list[bytes]:
        """The header elements of these sequences, from the cache or, in one store read, from the store (a batch
        the store no longer holds is left out)."""
        elements: dict[int, bytes] = {}
        missing = []
        for sequence in sequences:
            entry = self._get(sequence)
            if entry is None:
                missing.append(sequence)
            else:
                elements[sequence] = entry.header
        if missing:
            for stored in self.store.list_batches(after=missing[0] - 1, limit=missing[-1] - missing[0] + 1):
                if stored.sequence in elements:
                    continue
                element = header_element(stored.signed_header)
                elements[stored.sequence] = element
                self._put(CachedBatch(stored.sequence, element, stored.body_size, None))
        return [elements[s] for s in sequences if s in elements]

    # --- DownloadBatch -------------------------------------------------------------------------------------------

    def body_size(self, sequence: int) -> int:
        """The body size of a retained batch; NotFound for an unknown or expired one."""
        count, first, _ = self.store.batch_span(after=sequence - 1)
        if not count or first != sequence:
            raise NotFound(f"batch {sequence} does not exist or has expired")
        entry = self._get(sequence)
        if entry is None:
            self._elements([sequence])
            entry = self._get(sequence)
            if entry is None:
                raise NotFound(f"batch {sequence} does not exist or has expired")
        return entry.body_size

    def _chunks(self, sequence: int, body_size: int) -> tuple[bytes, ...] | None:
        """The batch's serialised chunks, read from the store on a miss (None when it is too large to keep)."""
        entry = self._get(sequence)
        if entry is not None and entry.chunks is not None:
            return entry.chunks
        with self._fill_lock:
            entry = self._get(sequence)
            if entry is not None and entry.chunks is not None:
                return entry.chunks
            if entry is None or len(entry.header) + body_size > self.max_bytes:
                return None
            body = self.store.read_body(sequence, 0, body_size) if body_size else b""
            if len(body) != body_size:
                raise NotFound(f"batch {sequence} expired during the download")
            chunks = tuple(
                distribution_pb2.BatchChunk(
                    offset=offset, data=body[offset : offset + MAX_CHUNK_BYTES], body_size=body_size
                ).SerializeToString()
                for offset in range(0, body_size, MAX_CHUNK_BYTES)
            )
            self._put(CachedBatch(sequence, entry.header, body_size, chunks))
            return chunks

    def chunks(self, sequence: int, body_size: int, offset: int, chunk: int) -> Iterator[tuple[bytes, int]]:
        """The body from ``offset`` in chunks of at most ``chunk`` bytes: (serialised BatchChunk, data bytes).

        A whole download (offset 0 or any multiple of MAX_CHUNK_BYTES, the default chunk size) is the cached
        chunks as they are; any other offset or size is cut from them.
        """
        cached = self._chunks(sequence, body_size)
        if cached is None:
            yield from self._from_store(sequence, body_size, offset, chunk)
            return
        if chunk == MAX_CHUNK_BYTES and offset % MAX_CHUNK_BYTES == 0:
            for index in range(offset // MAX_CHUNK_BYTES, len(cached)):
                yield cached[index], min(MAX_CHUNK_BYTES, body_size - index * MAX_CHUNK_BYTES)
            return
        index, data = -1, b""
        while offset < body_size:
            if offset // MAX_CHUNK_BYTES != index:
                index = offset // MAX_CHUNK_BYTES
                data = distribution_pb2.BatchChunk.FromString(cached[index]).data
            start = offset - index * MAX_CHUNK_BYTES
            piece = data[start : start + chunk]
            yield _chunk(offset, piece, body_size), len(piece)
            offset += len(piece)

    def _from_store(self, sequence: int, body_size: int, offset: int, chunk: int) -> Iterator[tuple[bytes, int]]:
        while offset < body_size:
            data = self.store.read_body(sequence, offset, chunk)
            if not data:
                raise NotFound(f"batch {sequence} expired during the download")
            yield _chunk(offset, data, body_size), len(data)
            offset += len(data)


def _chunk(offset: int, data: bytes, body_size: int) -> bytes:
    return distribution_pb2.BatchChunk(offset=offset, data=data, body_size=body_size).SerializeToString()


def preserialised(serializer: Callable[[_Message], bytes]) -> Callable[[_Message | bytes], bytes]:
    """A grpcio response serializer that sends bytes as they are and serialises messages as usual."""

    def serialize(response: _Message | bytes) -> bytes:
        return response if isinstance(response, bytes) else serializer(response)

    return serialize
