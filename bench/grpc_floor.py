"""grpcio alone: the fastest that any service built on grpcio's Python servers can answer the distribution calls.

`python -m bench.grpc_floor --tls-dir DIR --files DIR --port N` serves the two calls phones make, with the server
that `matcher serve` builds (grpcio's sync server, the same worker threads, options, certificate and glibc malloc
settings), or with `--asyncio` grpcio's asyncio server (the same options), and nothing of the service: ListBatches
answers the response bytes of the file for a first sync (after sequence 0) or of the one for an hourly sync (any
other), DownloadBatch the body's 1 MiB BatchChunks, serialised once at start, whatever the request. No store, no
cache lookups, no logging, no metrics, no time limit. The distribution benchmark runs as many of these processes
on one port as `matcher serve` runs by default, next to the service and nginx: the distance from this floor to
nginx is grpcio's (its HTTP/2 transport and Python delivery, on both ends), not the service's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from exposure.v1 import distribution_pb2
from matcher import memory
from matcher.config import Config
from matcher.distribution import MAX_CHUNK_BYTES
from matcher.server import MAX_REQUEST_BYTES, grpc_server

SERVICE = "exposure.v1.Distribution"
BODY_FILE, FULL_LIST_FILE, NEW_LIST_FILE = "batch.bin", "list-all.bin", "list-new.bin"


class Answers:
    """The bytes the floor answers with: the body's BatchChunks, and the two listings."""

    def __init__(self, files: Path) -> None:
        body = (files / BODY_FILE).read_bytes()
        self.chunks = [
            distribution_pb2.BatchChunk(
                offset=offset, data=body[offset : offset + MAX_CHUNK_BYTES], body_size=len(body)
            ).SerializeToString()
            for offset in range(0, len(body), MAX_CHUNK_BYTES)
        ]
        self.first_sync, self.hourly_sync = (files / FULL_LIST_FILE).read_bytes(), (files / NEW_LIST_FILE).read_bytes()

    def listing(self, request: distribution_pb2.ListBatchesRequest) -> bytes:
        return self.hourly_sync if request.after_sequence else self.first_sync


def _handlers(list_batches: Callable[..., Any], download_batch: Callable[..., Any]) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ListBatches": grpc.unary_unary_rpc_method_handler(
                list_batches, request_deserializer=distribution_pb2.ListBatchesRequest.FromString
            ),
            "DownloadBatch": grpc.unary_stream_rpc_method_handler(download_batch),
        },
    )


def sync_handlers(answers: Answers) -> grpc.GenericRpcHandler:
    def list_batches(request: distribution_pb2.ListBatchesRequest, context: Any) -> bytes:
        return answers.listing(request)

    def download_batch(request: bytes, context: Any) -> Iterator[bytes]:
        yield from answers.chunks

    return _handlers(list_batches, download_batch)


def asyncio_handlers(answers: Answers) -> grpc.GenericRpcHandler:
    async def list_batches(request: distribution_pb2.ListBatchesRequest, context: Any) -> bytes:
        return answers.listing(request)

    async def download_batch(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for chunk in answers.chunks:
            yield chunk

    return _handlers(list_batches, download_batch)


def _credentials(tls_dir: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([((tls_dir / "server.key").read_bytes(), (tls_dir / "server.pem").read_bytes())])


def serve_sync(answers: Answers, tls_dir: Path, port: int, ready: Path) -> None:
    defaults = Config()
    server = grpc_server("floor-rpc", defaults.workers, defaults.max_calls, reuse_port=True)
    server.add_generic_rpc_handlers((sync_handlers(answers),))
    server.add_secure_port(f"127.0.0.1:{port}", _credentials(tls_dir))
    server.start()
    ready.touch()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


async def serve_asyncio(answers: Answers, tls_dir: Path, port: int, ready: Path) -> None:
    options = [("grpc.max_receive_message_length", MAX_REQUEST_BYTES), ("grpc.so_reuseport", 1)]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=Config().max_calls)
    server.add_generic_rpc_handlers((asyncio_handlers(answers),))
    server.add_secure_port(f"127.0.0.1:{port}", _credentials(tls_dir))
    await server.start()
    ready.touch()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(server.stop(0)))
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor", description=__doc__)
    parser.add_argument("--tls-dir", type=Path, required=True, help="the server's folder of `matcher certs`")
    parser.add_argument("--files", type=Path, required=True, help=f"{BODY_FILE}, {FULL_LIST_FILE}, {NEW_LIST_FILE}")
    parser.add_argument("--port", type=int, required=True, help="127.0.0.1 port, shared by every floor process")
    parser.add_argument("--asyncio", action="store_true", help="grpcio's asyncio server instead of its sync one")
    args = parser.parse_args(argv)
    memory.tune()
    answers = Answers(args.files)
    ready = args.files / f"ready-{os.getpid()}"  # for the benchmark, which waits until every process serves
    if args.asyncio:
        asyncio.run(serve_asyncio(answers, args.tls_dir, args.port, ready))
    else:
        serve_sync(answers, args.tls_dir, args.port, ready)


if __name__ == "__main__":
    main()
