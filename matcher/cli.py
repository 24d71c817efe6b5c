"""``matcher``: run the service, make development certificates, cut a batch, inspect a batch file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .batches import describe, read_batch_file, write_batch_file
from .certs import write_dev_pki
from .cli_support import CliError, Parser, main_for, print_json, region_arg, time_arg
from .clock import clock, iso
from .config import (
    DEFAULT_AUTHORITY_LISTEN,
    DEFAULT_LISTEN,
    DEFAULT_PROCESSES,
    DEFAULT_STORE,
    SERVING_ONLY_FIELDS,
    Config,
    env_name,
)
from .layout import AUTHORITIES_FILE, SERVER, check_server_folder
from .publisher import Publisher
from .signing import TrustedKeys, load_signing_key, load_verifying_key
from .store import LockLost, Store, open_store

PROG = "matcher"


def _config(args: argparse.Namespace, *, serving: bool) -> Config:
    config = Config.from_sources(vars(args), os.environ)
    problems = config.problems(serving=serving)
    if problems:
        raise CliError("; ".join(problems))
    check_server_folder(config.tls_dir)  # least privilege: no CA's or authority's key where the server reads
    return config


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Runs the service until SIGTERM: public and authority listeners, health, reflection, publishing; on every
    core (--processes, one server process a core by default)."""
    from . import memory

    config = _config(args, serving=True)
    memory.tune()  # before any thread: flat memory and no page faults per megabyte sent (matcher/memory.py)
    _logging(args.verbose)
    path = config.store.removeprefix("sqlite:").removeprefix("//")
    new_store = config.store.startswith("sqlite:") and bool(path) and not Path(path).exists()

    def announce(public_port: int, authority_port: int, metrics_port: int | None) -> None:
        if new_store:
            # The one command that makes a store database; it says so, since a mistyped path would start empty.
            logging.getLogger(PROG).warning("%s did not exist: created a new, empty store", config.store)
        ready = {
            "public": f"{config.listen.rpartition(':')[0]}:{public_port}",
            "authority": f"{config.authority_listen.rpartition(':')[0]}:{authority_port}",
            "metrics": metrics_port,
            "store": config.store.split("@")[-1],
            "processes": config.processes,
        }
        # One line on stdout when ready, so that scripts and tests that bind port 0 learn the ports.
        print(
            json.dumps(ready)
            if args.json
            else f"serving public={ready['public']} authority={ready['authority']} processes={config.processes}",
            flush=True,
        )

    if config.processes > 1:
        from .processes import serve_processes

        try:
            return serve_processes(config, lambda ports: announce(**ports))
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
    from .server import create_server, serve_until_signalled

    running = create_server(config)
    announce(running.public_port, running.authority_port, running.metrics_port)
    serve_until_signalled(running, config.shutdown_grace)
    return 0


def cmd_certs(args: argparse.Namespace) -> None:
    """Makes (or extends) a development PKI: a server CA and an authority CA, the server's certificate and signing
    key pair, a client certificate per authority; one folder per role (server/, phone/, authority-NAME/, ca/)."""
    written, fingerprints = write_dev_pki(Path(args.out), args.authority, region=args.region)
    if args.json:
        print_json({"folder": str(args.out), "written": written, "certificate_sha256": fingerprints})
        return
    print(f"{args.out}: " + (", ".join(written) if written else "nothing new to write"))
    # What an operator pastes into a production authorities file; the development one already pins them.
    for name, pin in fingerprints.items():
        print(
            f'authority {name}: "certificate_sha256": ["{pin}"] (pinned in {Path(args.out, SERVER, AUTHORITIES_FILE)})'
        )


def cmd_publish(args: argparse.Namespace) -> None:
    """Cuts and signs batches from the pending keys that are due now, once (serve also does it on a timer)."""
    config = _config(args, serving=False)
    _logging(args.verbose)
    store = open_store(config.store, create=False)
    try:
        publisher = Publisher.from_config(config, store, load_signing_key(config.tls_dir / "signing.key"))
        try:
            run = publisher.publish(clock(config.now)())
        except LockLost as exc:
            # Paused or slowed past its lease, another publisher may have taken over: fencing refused the commit.
            raise CliError(
                f"{exc}; batches committed before stay published, the other keys stay pending for the next run"
            ) from None
        if args.out:
            _write_files(store, Path(args.out), [p.sequence for p in run.batches])
    finally:
        store.close()
    if args.json:
        print_json(
            {"batches": [dataclasses.asdict(p) for p in run.batches], "held": [dataclasses.asdict(h) for h in run.held]}
        )
        return
    if not run.batches and not run.held:
        print("nothing to publish")
    for p in run.batches:
        print(
            f"batch {p.sequence} ({p.region}): {p.keys} keys, {p.elements} elements, "
            f"{p.sections} sections, {p.body_bytes} bytes"
        )
    for h in run.held:
        print(
            f"held ({h.region}): {h.keys} keys in {h.sections} sections of fewer than "
            f"{config.anonymity_min_cases} cases, until they have {config.anonymity_min_cases} "
            f"or {iso(h.until)} at the latest"
        )


def _write_files(store: Store, folder: Path, sequences: list[int]) -> None:
    from exposure.v1 import batch_pb2

    folder.mkdir(parents=True, exist_ok=True)
    for sequence in sequences:
        [stored] = store.list_batches(after=sequence - 1, limit=1)
        body = store.read_body(sequence, 0, stored.body_size) if stored.body_size else b""
        write_batch_file(
            folder / f"batch-{sequence}.bin", batch_pb2.SignedBatchHeader.FromString(stored.signed_header), body
        )


def cmd_mirror(args: argparse.Namespace) -> None:
    """Writes (with --watch: keeps current) a static tree of the published batches for any HTTPS server, CDN or
    bucket: one immutable file a batch and a signed index.bin (docs/operations.md, "A static mirror")."""
    import signal
    import threading

    from .mirror import write_mirror

    config = _config(args, serving=False)
    _logging(args.verbose)
    if args.interval < 1:
        raise CliError(f"--interval {args.interval}: at least 1 second")
    stop = threading.Event()
    if args.watch:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    store = open_store(config.store, create=False)  # a mistyped store must not yield an empty mirror
    signing_key = load_signing_key(config.tls_dir / "signing.key")
    try:
        while True:
            run = write_mirror(
                store, signing_key, Path(args.out), now=clock(config.now)(), retention_seconds=config.retention_seconds
            )
            if args.json:
                print_json({"out": args.out, **dataclasses.asdict(run)})
            elif run.written or run.added or run.removed or not args.watch:
                print(
                    f"{args.out}: {run.files} batch files listed (newest batch {run.newest_sequence}), "
                    f"{len(run.added)} written, {len(run.removed)} removed",
                    flush=True,
                )
            if not args.watch or stop.wait(args.interval):
                break
    finally:
        store.close()


def cmd_inspect(args: argparse.Namespace) -> int:
    """Prints a batch file's header and checks its digests and signature; exit 1 when it must not be used."""
    if not args.pubkey and not args.tls_dir:
        raise CliError("no key to check the signature with: give --tls-dir DIR (its signing.pub.pem) or --pubkey PEM")
    pinned = [load_verifying_key(Path(p)) for p in args.pubkey]
    if args.tls_dir:
        pinned.append(load_verifying_key(Path(args.tls_dir) / "signing.pub.pem"))
    signed, body = read_batch_file(Path(args.file))
    report = describe(signed, body, TrustedKeys(pinned))
    if args.json:
        print_json(report)
    else:
        _print_inspection(args.file, report)
    return 0 if report["ok"] else 1


def _print_inspection(name: str, report: dict[str, Any]) -> None:
    header = report.get("header")
    if header:
        print(
            f"{name}: batch {header['sequence']} ({header['region']}, format {header['format_version']}), "
            f"published {header['published_at_utc']}, intervals {header['first_interval']}..{header['last_interval']}, "
            f"{header['body_size']} bytes"
        )
        if header["sections"]:
            print(
                f"  false-positive budget eps = {header['error_rate']:.3g} (log2(1/eps) = {header['log2_inv_eps']}), "
                f"{header['bits_per_element']} bits an element with the signed header"
            )
        for s in header["sections"]:
            what = (
                "venue warnings"
                if s["kind"] == "venue"
                else f"{' + '.join(s['report_types'])} / {' + '.join(s['infectiousness'])}"
            )
            print(
                f"  {what}: {s['count']:,} elements "
                f"in a hash range of {s['hash_range']:,} (eps {s['error_rate']:.3g}), Rice parameter "
                f"{s['rice_parameter']}, {s['length']:,} bytes ({s['bits_per_element']} bits an element)"
            )
    print(f"signature: {'ok' if report['signature_ok'] else report['signature_error']} (key {report['key_id']})")
    print(f"body: {'ok' if report['body_ok'] else report['body_error']}")
    print("verdict: " + ("valid" if report["ok"] else "REFUSED: do not use this batch"))


def environment_help(*, serving: bool) -> str:
    """The MATCHER_* variables a command reads, from the Config fields themselves (one list, never a copy)."""
    names = [env_name(f.name) for f in dataclasses.fields(Config) if serving or f.name not in SERVING_ONLY_FIELDS]
    lines = ["environment: each setting can also come from a variable (the command line wins):"]
    line = " "
    for name in names:
        if len(line) + len(name) + 1 > 78:
            lines.append(line)
            line = " "
        line += " " + name
    return "\n".join([*lines, line, "grpcio's own log lines are off; GRPC_VERBOSITY=ERROR turns them back on."])


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def server_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            help=f"sqlite:PATH, redis://HOST:PORT/DB, or a Redis Cluster as "
            f"'redis://NODE:PORT/0?cluster=true' (any node as seed; replicas give failover, not write "
            f"scaling: the service's data is one hash slot) (default {DEFAULT_STORE})",
        )
        p.add_argument(
            "--tls-dir", help="the server's folder, DIR/server of `matcher certs --out DIR` (default ./tls/server)"
        )
        p.add_argument("--now", type=time_arg, help="fixed clock: unix seconds or ISO 8601 (default: real time)")
        p.add_argument("--retention-days", type=int, help="days keys and batches are kept (default 14)")
        p.add_argument("--publish-interval", type=int, help="seconds between batches (default 3600)")
        p.add_argument(
            "--publish-lease",
            type=float,
            metavar="SECONDS",
            help="seconds a publisher holds the publish lock; a crashed one blocks others this long (default 300)",
        )
        p.add_argument(
            "--anonymity-min-cases",
            type=int,
            metavar="K",
            help="publish a section of a batch once its keys belong to K cases (default 5; 1 holds nothing)",
        )
        p.add_argument(
            "--anonymity-deadline",
            type=int,
            metavar="SECONDS",
            dest="anonymity_deadline_seconds",
            help="or once its oldest key has waited this long, however few its cases (default 86400)",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    serve = commands.add_parser(
        "serve",
        help="run the service",
        description=cmd_serve.__doc__,
        epilog=environment_help(serving=True),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server_options(serve)
    serve.add_argument("--listen", help=f"public listener for phones, server TLS (default {DEFAULT_LISTEN})")
    serve.add_argument(
        "--authority-listen", help=f"listener for health authorities, mutual TLS (default {DEFAULT_AUTHORITY_LISTEN})"
    )
    serve.add_argument("--metrics-listen", help="HOST:PORT for Prometheus metrics at /metrics (default: off)")
    serve.add_argument("--code-ttl", type=int, help="seconds a one-time upload code lives (default 3600)")
    serve.add_argument(
        "--processes",
        type=int,
        help=f"server processes sharing the ports, one a core (default {DEFAULT_PROCESSES}, this "
        "machine's cores; 1: a single process)",
    )
    serve.add_argument("--workers", type=int, help="gRPC worker threads per process (default 32)")
    serve.add_argument(
        "--max-calls",
        type=int,
        help="calls a process holds at once, running or queued; more are refused (default 1024)",
    )
    serve.add_argument(
        "--cache-mb", type=int, help="MB of batch headers and bodies each process keeps in memory (default 256)"
    )
    serve.add_argument(
        "--download-seconds",
        type=float,
        help="longest a download stream may take; a phone resumes a cut one (default 120)",
    )
    serve.add_argument(
        "--uploads-per-minute",
        type=int,
        help="SubmitWithCode calls (shares and decoys) one connection may make a minute (default 60)",
    )
    serve.set_defaults(func=cmd_serve)

    certs = commands.add_parser("certs", help="make development certificates and keys", description=cmd_certs.__doc__)
    certs.add_argument("--out", required=True, help="folder to write (created if missing)")
    certs.add_argument("--authority", action="append", default=[], metavar="NAME", help="an authority (repeatable)")
    certs.add_argument(
        "--region",
        type=region_arg,
        default="VN",
        help="ISO 3166-1 alpha-2 region new authorities may submit for (default VN)",
    )
    certs.add_argument("--json", action="store_true", help="machine-readable output")
    certs.set_defaults(func=cmd_certs)

    publish = commands.add_parser(
        "publish",
        help="cut and sign batches now",
        description=cmd_publish.__doc__,
        epilog=environment_help(serving=False),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server_options(publish)
    publish.add_argument("--out", help="also write each new batch as a file (for `matcher inspect`)")
    publish.set_defaults(func=cmd_publish)

    mirror = commands.add_parser(
        "mirror", help="write a static tree of batch files and a signed index", description=cmd_mirror.__doc__
    )
    mirror.add_argument("--store", help=f"sqlite:PATH or redis://HOST:PORT/DB (default {DEFAULT_STORE})")
    mirror.add_argument("--tls-dir", help="the server's folder, with signing.key (default ./tls/server)")
    mirror.add_argument("--out", required=True, help="the tree's folder (created if missing)")
    mirror.add_argument("--watch", action="store_true", help="keep the tree current until SIGTERM")
    mirror.add_argument(
        "--interval", type=float, default=60.0, help="with --watch: seconds between looks at the store (default 60)"
    )
    mirror.add_argument("--retention-days", type=int, help="days batches stay listed (default 14)")
    mirror.add_argument("--now", type=time_arg, help="fixed clock: unix seconds or ISO 8601 (default: real time)")
    mirror.add_argument("--json", action="store_true", help="machine-readable output, a line a run")
    mirror.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    mirror.set_defaults(func=cmd_mirror)

    inspect = commands.add_parser("inspect", help="show and verify a batch file", description=cmd_inspect.__doc__)
    inspect.add_argument("file", help="a batch file (from `matcher publish --out` or a phone)")
    inspect.add_argument("--tls-dir", help="verify with the signing.pub.pem in this folder")
    inspect.add_argument("--pubkey", action="append", default=[], help="verify with this public key PEM (repeatable)")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    main_for(PROG, build_parser, argv)


if __name__ == "__main__":
    main()
