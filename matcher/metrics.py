"""Counters and gauges in the Prometheus text format, served on an optional port (`matcher serve --metrics-listen`).

Counts only: calls by method and status, keys accepted and rejected, batches and bytes published and served, keys
held back. No label ever carries a key, an identifier or a client address.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HELP = {
    "matcher_rpc_total": "gRPC calls answered, by method and status code",
    "matcher_keys_accepted_total": "diagnosis keys accepted (new or already held)",
    "matcher_keys_rejected_total": "diagnosis keys refused by validation",
    "matcher_keys_stored_total": "diagnosis keys newly stored",
    "matcher_batches_published_total": "batches cut and committed by this process",
    "matcher_elements_published_total": "elements (key intervals) published by this process",
    "matcher_batch_bytes_published_total": "batch body bytes published by this process",
    "matcher_bytes_served_total": "batch body bytes streamed to phones",
    "matcher_codes_issued_total": "one-time upload codes issued",
    "matcher_decoy_shares_total": "decoy shares answered (phones' cover traffic, stored nowhere: docs/privacy.md)",
    "matcher_venue_hours_warned_total": "venue hours newly warned (owner-signed, from authorities)",
    "matcher_records_purged_total": "records deleted by retention, by kind",
    "matcher_keys_held": "pending keys the last publishing run of this process held back: sections of fewer "
    "cases than the anonymity minimum, before their deadline",
}
# Metrics that are set to a value rather than counted up; every other one is a counter.
GAUGES = frozenset({"matcher_keys_held"})


class Metrics:
    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        assert name in HELP and name not in GAUGES, f"undocumented metric or not a counter: {name}"
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        assert name in GAUGES, f"undocumented metric or not a gauge: {name}"
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def snapshot(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every value, for another process to add up (matcher/processes.py)."""
        with self._lock:
            return dict(self._values)

    def add(self, values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
        """Adds another process's snapshot. Gauges add up too: only the process that publishes sets one."""
        with self._lock:
            for key, value in values.items():
                self._values[key] += value

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        for name in HELP:
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} {'gauge' if name in GAUGES else 'counter'}"]
            for (metric, labels), value in items:
                if metric == name:
                    rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


REGISTRY = Metrics()


def serve_metrics(
    host: str, port: int, metrics: Metrics = REGISTRY, source: Callable[[], Metrics] | None = None
) -> ThreadingHTTPServer:
    """Starts the /metrics endpoint in a daemon thread; returns the HTTP server (``server_address`` has the port).
    With ``source``, each scrape renders what it returns (the sum over a service's processes)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = (source() if source is not None else metrics).render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # the default logs client addresses, which this service never records

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
