"""grpcio alone: the fastest that any service built on grpcio's Python server can answer the distribution calls here.

`python -m bench.grpc_floor --tls-dir DIR --files DIR --port N` serves the two calls phones make, with the server
that `matcher serve` builds (grpcio's sync server, the same worker threads, options, certificate and glibc malloc
settings) and nothing of the service: ListBatches answers the response bytes of the file for a first sync (after
sequence 0) or of the one for an hourly sync (any other), DownloadBatch answers the body's 1 MiB BatchChunks,
serialised once at start, whatever the request. No store, no cache lookups, no logging, no metrics, no time limit.
The distribution benchmark runs as many of these processes on one port as `matcher serve` runs by default and
measures them next to the service and nginx: what separates the service from nginx that this floor does not close is
grpcio's (its HTTP/2 transport and its Python server), not the service's.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from exposure.v1 import distribution_pb2
from matcher import memory
from matcher.config import Config
from matcher.distribution import MAX_CHUNK_BYTES
from matcher.server import grpc_server

SERVICE = "exposure.v1.Distribution"
BODY_FILE, FULL_LIST_FILE, NEW_LIST_FILE = "batch.bin", "list-all.bin", "list-new.bin"


def handlers(files: Path) -> grpc.GenericRpcHandler:
    body = (files / BODY_FILE).read_bytes()
    chunks = [
        distribution_pb2.BatchChunk(
            offset=offset, data=body[offset : offset + MAX_CHUNK_BYTES], body_size=len(body)
        ).SerializeToString()
        for offset in range(0, len(body), MAX_CHUNK_BYTES)
    ]
    first_sync, hourly_sync = (files / FULL_LIST_FILE).read_bytes(), (files / NEW_LIST_FILE).read_bytes()

    def list_batches(request: distribution_pb2.ListBatchesRequest, context: Any) -> bytes:
        return hourly_sync if request.after_sequence else first_sync

    def download_batch(request: bytes, context: Any) -> Iterator[bytes]:
        yield from chunks

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ListBatches": grpc.unary_unary_rpc_method_handler(
                list_batches, request_deserializer=distribution_pb2.ListBatchesRequest.FromString
            ),
            "DownloadBatch": grpc.unary_stream_rpc_method_handler(download_batch),
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor", description=__doc__)
    parser.add_argument("--tls-dir", type=Path, required=True, help="the server's folder of `matcher certs`")
    parser.add_argument("--files", type=Path, required=True, help=f"{BODY_FILE}, {FULL_LIST_FILE}, {NEW_LIST_FILE}")
    parser.add_argument("--port", type=int, required=True, help="127.0.0.1 port, shared by every floor process")
    args = parser.parse_args(argv)
    memory.tune()
    defaults = Config()
    server = grpc_server("floor-rpc", defaults.workers, defaults.max_calls, reuse_port=True)
    server.add_generic_rpc_handlers((handlers(args.files),))
    pair = ((args.tls_dir / "server.key").read_bytes(), (args.tls_dir / "server.pem").read_bytes())
    server.add_secure_port(f"127.0.0.1:{args.port}", grpc.ssl_server_credentials([pair]))
    server.start()
    (args.files / f"ready-{os.getpid()}").touch()  # for the benchmark, which waits until every process serves
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
