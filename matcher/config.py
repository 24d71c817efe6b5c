"""The server's configuration: one frozen dataclass, read from the command line and the environment in one place.

``Config.from_sources(args, environ)`` takes both as arguments (tests build a Config directly, never patch
globals); ``problems()`` reports every problem at once and the server refuses to start on any.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .anonymity import DEFAULT_ANONYMITY_DEADLINE_SECONDS, DEFAULT_ANONYMITY_MIN_CASES
from .distribution import DEFAULT_CACHE_MB
from .intervals import SECONDS_PER_DAY
from .layout import AUTHORITIES_FILE, AUTHORITY_CA_FILE
from .model import DEFAULT_RETENTION_DAYS
from .store import LEASE_SECONDS

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_AUTHORITY_LISTEN = "127.0.0.1:50052"
DEFAULT_STORE = "sqlite:matcher.db"
DEFAULT_PROCESSES = os.cpu_count() or 1
MAX_PROCESSES = 64
ENV_PREFIX = "MATCHER_"
# Settings only `matcher serve` reads (`matcher publish` reads the rest).
SERVING_ONLY_FIELDS = frozenset(
    {
        "listen",
        "authority_listen",
        "metrics_listen",
        "code_ttl",
        "workers",
        "shutdown_grace",
        "authorities_file",
        "download_seconds",
        "uploads_per_minute",
    }
)


@dataclass(frozen=True)
class Config:
    """Everything `matcher serve` and `matcher publish` need. Each field can also come from MATCHER_<NAME>."""

    store: str = DEFAULT_STORE
    tls_dir: Path = Path("tls/server")  # the server's folder of `matcher certs --out tls`
    listen: str = DEFAULT_LISTEN
    authority_listen: str = DEFAULT_AUTHORITY_LISTEN
    metrics_listen: str = ""  # empty: no metrics endpoint
    # Seconds between batches. Publishing more often costs bandwidth per phone (every batch is a download) and
    # lowers the per-lookup false-positive budget (more batches to test against); less often delays alerts.
    publish_interval: int = 3600
    # Seconds a publisher holds the publish lock. A publisher that dies holding it (a crash, SIGKILL) keeps the
    # other replicas from publishing until it runs out; one that outlives it cannot commit (fencing), and its keys
    # wait for the next run. So: longer than a run takes, short enough to recover quickly.
    publish_lease: float = LEASE_SECONDS
    retention_days: int = DEFAULT_RETENTION_DAYS
    code_ttl: int = 3600
    max_keys_per_batch: int = 200_000
    # The anonymity hold (docs/privacy.md): a section of a batch is published once its keys belong to this many
    # cases, or once its oldest key has waited anonymity_deadline_seconds. A larger K protects more and delays
    # more where cases are few; K = 1 turns the hold off. The deadline bounds the delay: past it a section of
    # fewer cases is published anyway, because a warning held back for ever protects nobody.
    anonymity_min_cases: int = DEFAULT_ANONYMITY_MIN_CASES
    anonymity_deadline_seconds: int = field(
        default=DEFAULT_ANONYMITY_DEADLINE_SECONDS, metadata={"env": "ANONYMITY_DEADLINE", "flag": "anonymity-deadline"}
    )
    # Server processes on the same ports (SO_REUSEPORT): grpcio runs a process's Python code on one core, so one
    # process a core is what serves on every core (matcher/processes.py). 1 runs a single process, no supervisor.
    processes: int = DEFAULT_PROCESSES
    # Worker threads for gRPC calls, per process; a download stream holds one while it runs.
    workers: int = 32
    # Calls a process holds at once, running or queued for a worker thread; past it grpcio refuses new calls with
    # RESOURCE_EXHAUSTED. Distribution calls are cheap and small, so this is sized for a burst of a thousand phones
    # syncing at the same moment to wait its turn rather than be refused.
    max_calls: int = 1024
    # Megabytes of signed headers and batch bodies each process keeps in memory, serialised (matcher/distribution.py).
    # A fortnight of hourly batches at 1,000 cases a day is about 55 MB.
    cache_mb: int = DEFAULT_CACHE_MB
    # Seconds one download stream may take, whatever the reader's pace: a phone that reads slowly or not at all
    # cannot hold a worker thread for longer. A cut download resumes from its offset, so nothing is lost; 120 s is a
    # whole day of batches over a slow 3G link.
    download_seconds: float = 120.0
    # SubmitWithCode calls one connection may make a minute, that many at once at most (matcher/ratelimit.py). A
    # phone makes one call, or a decoy (docs/privacy.md), now and then; this bounds what one connection that
    # multiplexes calls can cost the store. It cannot stop many connections: a front proxy has to (docs/operations.md).
    uploads_per_minute: int = 60
    # Seconds in-flight calls get to finish on SIGTERM.
    shutdown_grace: float = 10.0
    # Fixed clock (--now); None means the real clock.
    now: int | None = None
    authorities_file: Path | None = None  # default: <tls_dir>/authorities.json

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * SECONDS_PER_DAY

    @property
    def authorities_path(self) -> Path:
        return self.authorities_file or self.tls_dir / AUTHORITIES_FILE

    @classmethod
    def from_sources(cls, args: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Config:
        """Command-line values win over MATCHER_* environment variables, which win over the defaults.

        ValueError, in one line naming each variable, when environment values are not numbers where numbers are
        needed (command-line values arrive converted: argparse checked them)."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for f in fields(cls):
            variable = env_name(f.name)
            if args.get(f.name) is not None:
                values[f.name] = args[f.name]
                sources[f.name] = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
            elif variable in environ:
                values[f.name] = environ[variable]
                sources[f.name] = variable
        return cls()._coerced(values, sources)

    def _coerced(self, values: dict[str, Any], sources: Mapping[str, str]) -> Config:
        converted: dict[str, Any] = {}
        bad: list[str] = []
        for f in fields(self):
            if f.name not in values:
                continue
            value = values[f.name]
            default = getattr(self, f.name)
            try:
                if f.name in ("tls_dir", "authorities_file"):
                    converted[f.name] = Path(value)
                elif f.name == "now":
                    from .clock import parse_time

                    converted[f.name] = value if isinstance(value, int) else parse_time(str(value))
                elif isinstance(default, bool):
                    converted[f.name] = str(value).lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    converted[f.name] = int(value)
                elif isinstance(default, float):
                    converted[f.name] = float(value)
                else:
                    converted[f.name] = str(value)
            except ValueError:
                kind = "a time" if f.name == "now" else "a whole number" if isinstance(default, int) else "a number"
                bad.append(f"{sources.get(f.name, f.name)}={value!r} is not {kind}")
        if bad:
            raise ValueError("; ".join(bad))
        return replace(self, **converted)

    def problems(self, *, serving: bool = True) -> list[str]:
        """Every problem with this configuration, for a one-shot report before anything starts."""
        found: list[str] = []
        if not (self.store.startswith("sqlite:") or self.store.startswith(("redis://", "rediss://", "unix://"))):
            found.append(f"--store {self.store!r}: use sqlite:PATH or redis://HOST:PORT/DB")
        if not self.tls_dir.is_dir():
            found.append(f"--tls-dir {self.tls_dir}: no such folder (make one with `matcher certs --out DIR`)")
        else:
            wanted = ["signing.key"] + ([AUTHORITY_CA_FILE, "server.pem", "server.key"] if serving else [])
            for name in wanted:
                if not (self.tls_dir / name).is_file():
                    found.append(
                        f"--tls-dir {self.tls_dir}: {name} is missing (`matcher certs --out DIR` writes DIR/server)"
                    )
            if serving and not self.authorities_path.is_file():
                found.append(f"{self.authorities_path}: the authorities file is missing (`matcher certs` writes it)")
        if serving:
            for name in ("listen", "authority_listen") + (("metrics_listen",) if self.metrics_listen else ()):
                if not _is_host_port(getattr(self, name)):
                    found.append(f"--{name.replace('_', '-')} {getattr(self, name)!r}: expected HOST:PORT")
            if self.listen == self.authority_listen and not self.listen.endswith(":0"):
                found.append("--listen and --authority-listen must differ: authorities get their own port")
            if not 1 <= self.uploads_per_minute <= 1_000_000:
                found.append(f"uploads per minute {self.uploads_per_minute}: must be 1..1000000")
        if not 60 <= self.publish_interval <= 86400:
            found.append(f"publish interval {self.publish_interval}s: must be 60..86400")
        if not 1 <= self.publish_lease <= 86400:
            found.append(f"publish lease {self.publish_lease}s: must be 1..86400")
        if not 1 <= self.retention_days <= 30:
            found.append(f"retention {self.retention_days} days: must be 1..30")
        if not 60 <= self.code_ttl <= 86400:
            found.append(f"code lifetime {self.code_ttl}s: must be 60..86400")
        if self.workers < 2:
            found.append("workers: at least 2")
        if not 1 <= self.processes <= MAX_PROCESSES:
            found.append(f"processes {self.processes}: must be 1..{MAX_PROCESSES}")
        if self.max_calls < self.workers:
            found.append(f"max calls {self.max_calls}: at least the {self.workers} worker threads")
        if not 1 <= self.download_seconds <= 3600:
            found.append(f"download seconds {self.download_seconds:g}: must be 1..3600")
        if self.cache_mb < 0:
            found.append(f"cache {self.cache_mb} MB: must be 0 or more")
        if self.anonymity_min_cases < 1:
            found.append(f"anonymity minimum of {self.anonymity_min_cases} cases: must be at least 1 (1 holds nothing)")
        if not 0 <= self.anonymity_deadline_seconds < self.retention_seconds:
            found.append(
                f"anonymity deadline {self.anonymity_deadline_seconds}s: must be 0..{self.retention_seconds - 1} "
                "(less than the retention, which would delete held keys before they are published)"
            )
        return found


def env_name(field_name: str) -> str:
    """The environment variable of a Config field: MATCHER_ and the field's name, or the name it was given."""
    for f in fields(Config):
        if f.name == field_name:
            name: str = f.metadata.get("env", field_name.upper())
            return ENV_PREFIX + name
    raise KeyError(field_name)


def _is_host_port(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535)
