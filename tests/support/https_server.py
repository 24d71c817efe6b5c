"""A real HTTPS static file server for the mirror tests: Python's http.server over TLS with the service's own
certificate, answering Range requests (as nginx, CDNs and buckets do; http.server alone does not before Python
3.14), recording every request it gets, and able to cut a file's response short once, as a broken network would."""

from __future__ import annotations

import os
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpsFiles:
    """``folder`` served at https://127.0.0.1:PORT/ (``url``) until ``stop``."""

    folder: Path
    tls_dir: Path
    requests: list[Request] = field(default_factory=list)
    cut_once: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the connection is cut

    def start(self) -> HttpsFiles:
        files = self

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a CDN

            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(files.folder), **kwargs)

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                files.requests.append(
                    Request(
                        self.command, self.path, dict(self.headers.items()), self.rfile.read(length) if length else b""
                    )
                )

            def do_POST(self) -> None:
                self._record()
                self.send_error(405)

            def do_GET(self) -> None:
                self._record()
                path = Path(self.translate_path(self.path))
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start, wanted = 0, self.headers.get("Range")
                if wanted:
                    found = re.fullmatch(r"bytes=(\d+)-", wanted)
                    if not found or int(found[1]) >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    start = int(found[1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = files.cut_once.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(data[start : start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_dir / "server.pem", self.tls_dir / "server.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HttpsFiles:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    os.chmod(path, 0o644)
