"""Every console script and sub-command against each class of bad input, as a person types them.

The classes: a file that is missing, unreadable (its path runs through a file), of the wrong type (a folder, binary
bytes, text that is not what the flag names, a PEM that is not a key), and values or flags out of range or
unknown. Each must answer with one line on stderr naming what is wrong, no traceback, a non-zero exit, and must
create and change nothing: not in the folder it runs in, not among the files it was given. With --json or
--output json, stdout carries one JSON object naming the same error; otherwise stdout stays empty.

The real console scripts run as subprocesses, several at once (each spends most of its time importing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
NOW = "2026-11-22T09:00:00Z"
VENUE = "not-a-venue-payload"
PARALLEL = 4
INPUT_JSON = ("push", "export")  # where matcher-ha's --json names an input file, not the output


@dataclass(frozen=True)
class Case:
    script: str
    args: tuple[str, ...]
    says: str  # a part of the one-line error
    env: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return " ".join([self.script, *self.args])


def world(root: Path) -> dict[str, str]:
    """Files the cases name, made with the real commands: a PKI, a phone database, and bad files of each kind."""

    def run(*a: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(BIN / a[0]), *a[1:]], cwd=root, check=True, capture_output=True)

    run("matcher", "certs", "--out", "pki", "--authority", "moh")
    run("matcher-phone", "--db", "phone.db", "--now", NOW, "init")
    run("matcher-ha", "venue", "create", "--name", "Cafe", "--out", "venue")
    (root / "text.txt").write_text("just some text\n")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (root / "list.json").write_text("[1, 2]\n")
    (root / "keys.json").write_text(json.dumps([{"key": "11" * 16, "rolling_start": 2_992_752}]) + "\n")
    (root / "folder").mkdir()
    (root / "sightings.jsonl").write_text(
        json.dumps({"rpi": "00" * 16, "aem": "00" * 4, "rssi": -50, "time": 10**20}) + "\n"
    )
    pki = root / "pki"
    # Each command's folder of the PKI, and broken copies: a file that is garbage, one that is missing, and the
    # server's folder with a key in it that the server must never hold (a CA's, an authority's).
    broken = {
        "bad-tls": ("server", ["server.pem"]),
        "bad-phone-tls": ("phone", ["ca.pem", "signing.pub.pem"]),
        "bad-moh-tls": ("authority-moh", ["ca.pem"]),
    }
    for name, (folder, garbage) in broken.items():
        shutil.copytree(pki / folder, root / name)
        for file in garbage:
            (root / name / file).write_bytes(b"\x00\xff" * 40)
    no_secret = root / "no-secret-tls"
    shutil.copytree(pki / "server", no_secret)
    (no_secret / "codes.key").unlink()
    for name, key in (
        ("ca-key-tls", pki / "ca" / "authority-ca.key"),
        ("moh-key-tls", pki / "authority-moh" / "moh.key"),
    ):
        shutil.copytree(pki / "server", root / name)
        shutil.copy(key, root / name / "spare.key")
    names = {p.name: str(p) for p in root.iterdir()}
    names |= {"tls": str(pki / "server"), "phone-tls": str(pki / "phone"), "moh-tls": str(pki / "authority-moh")}
    names["unreadable"] = str(root / "text.txt" / "inside")  # a path through a file: ENOTDIR for any user
    names["missing"] = str(root / "missing.file")
    return names


def cases(f: dict[str, str], busy_port: int = 1) -> list[Case]:
    tls, bad_tls, db = f["tls"], f["bad-tls"], f["phone.db"]
    phone_tls, moh_tls = f["phone-tls"], f["moh-tls"]
    conn = ("--server", "127.0.0.1:1", "--tls-dir", moh_tls, "--authority", "moh")
    serve = ("serve", "--listen", "127.0.0.1:0", "--authority-listen", "127.0.0.1:0")
    return [
        # --- matcher ------------------------------------------------------------------------------------------
        Case("matcher", ("frobnicate",), "invalid choice"),
        Case("matcher", (*serve, "--tls-dir", f["missing"]), "no such folder"),
        Case("matcher", (*serve, "--tls-dir", f["text.txt"]), "no such folder"),
        Case(
            "matcher",
            (*serve, "--tls-dir", bad_tls, "--store", f"sqlite:{f['folder']}/s.db"),
            "server.pem: not a certificate",
        ),
        Case(
            "matcher",
            (*serve, "--tls-dir", f["no-secret-tls"], "--store", f"sqlite:{f['folder']}/s.db"),
            "codes.key is missing",
        ),
        Case("matcher", (*serve, "--tls-dir", f["pki"]), "server.pem is missing"),
        Case(
            "matcher",
            (*serve, "--tls-dir", f["ca-key-tls"]),
            "holds private keys that are not the server's (spare.key)",
        ),
        Case(
            "matcher",
            (*serve, "--tls-dir", f["moh-key-tls"]),
            "holds private keys that are not the server's (spare.key)",
        ),
        Case("matcher", ("publish", "--tls-dir", f["ca-key-tls"]), "holds private keys that are not the server's"),
        Case("matcher", (*serve, "--tls-dir", tls, "--store", f"sqlite:{f['folder']}"), "is a folder"),
        Case("matcher", (*serve, "--tls-dir", tls, "--store", f"sqlite:{f['binary.bin']}"), "binary.bin"),
        Case("matcher", (*serve, "--tls-dir", tls, "--store", "redis://127.0.0.1:1/0"), "127.0.0.1:1"),
        Case(
            "matcher",
            (*serve, "--tls-dir", tls, "--store", "redis://127.0.0.1:1/0?cluster=true"),
            "no Redis Cluster answers",
        ),
        Case("matcher", (*serve, "--tls-dir", tls, "--store", "redis://127.0.0.1:1/2?cluster=true"), "database 0 only"),
        Case("matcher", (*serve, "--tls-dir", tls, "--store", "mysql://x"), "use sqlite:PATH"),
        Case("matcher", (*serve, "--tls-dir", tls, "--listen", "nowhere"), "expected HOST:PORT"),
        # grpcio's C core logs its own lines when it cannot bind: the person must see ours only.
        Case(
            "matcher",
            (
                "serve",
                "--listen",
                f"127.0.0.1:{busy_port}",
                "--authority-listen",
                "127.0.0.1:0",
                "--tls-dir",
                tls,
                "--store",
                f"sqlite:{f['folder']}/s.db",
            ),
            "cannot listen",
        ),
        Case("matcher", (*serve, "--tls-dir", tls, "--retention-days", "400"), "must be 1..30"),
        Case("matcher", (*serve, "--tls-dir", tls, "--now", "-5"), "out of range"),
        Case("matcher", (*serve, "--tls-dir", tls, "--workers", "many"), "invalid int value"),
        Case(
            "matcher",
            (*serve, "--tls-dir", tls, "--json"),
            "MATCHER_PUBLISH_INTERVAL='abc'",
            (("MATCHER_PUBLISH_INTERVAL", "abc"),),
        ),
        Case("matcher", ("publish", "--tls-dir", tls), "no such database"),
        Case(
            "matcher", ("publish", "--tls-dir", tls, "--store", f"sqlite:{f['missing']}", "--json"), "no such database"
        ),
        Case("matcher", ("publish", "--tls-dir", tls, "--store", f"sqlite:{f['text.txt']}"), "text.txt"),
        Case("matcher", ("publish", "--tls-dir", bad_tls, "--store", f"sqlite:{f['missing']}"), "no such database"),
        Case("matcher", ("publish", "--tls-dir", tls, "--publish-interval", "5"), "must be 60..86400"),
        Case(
            "matcher",
            ("mirror", "--tls-dir", tls, "--store", f"sqlite:{f['missing']}", "--out", "tree"),
            "no such database",
        ),
        Case(
            "matcher",
            ("mirror", "--tls-dir", tls, "--store", f"sqlite:{f['text.txt']}", "--out", "tree", "--json"),
            "text.txt",
        ),
        Case("matcher", ("mirror", "--tls-dir", tls, "--out", "tree", "--interval", "0"), "at least 1 second"),
        Case("matcher", ("certs", "--out", "new", "--region", "Vietnam"), "not an ISO 3166-1 alpha-2 code"),
        Case("matcher", ("certs", "--out", "new", "--authority", "Not A Name"), "use lower-case letters"),
        Case("matcher", ("certs", "--out", f["text.txt"]), "is a file, not a folder"),
        Case("matcher", ("certs", "--out", f["unreadable"], "--json"), "text.txt"),
        Case("matcher", ("inspect", f["missing"], "--tls-dir", tls), "missing.file"),
        Case("matcher", ("inspect", f["folder"], "--tls-dir", tls), "folder"),
        Case("matcher", ("inspect", f["unreadable"], "--tls-dir", tls), "inside"),
        Case("matcher", ("inspect", f["binary.bin"], "--tls-dir", tls, "--json"), "not a batch file"),
        Case("matcher", ("inspect", f["binary.bin"]), "no key to check the signature with"),
        Case(
            "matcher",
            ("inspect", f["binary.bin"], "--pubkey", f["text.txt"]),
            "text.txt: not an ECDSA P-256 public key",
        ),
        # --- matcher-phone --------------------------------------------------------------------------------------
        Case("matcher-phone", ("--db", f["missing"] + "/x.db", "init"), "no such folder"),
        Case("matcher-phone", ("--db", f["folder"], "init"), "is a folder"),
        Case("matcher-phone", ("--db", f["text.txt"], "init", "--json"), "not a phone database"),
        Case("matcher-phone", ("--db", f["unreadable"], "init"), "no such folder"),
        Case("matcher-phone", ("--db", "typo.db", "check"), "no such phone database"),
        Case("matcher-phone", ("--db", "typo.db", "broadcast", "--json"), "no such phone database"),
        Case("matcher-phone", ("--db", db, "--now", "-5", "broadcast"), "out of range"),
        Case("matcher-phone", ("--db", db, "--now", "1e400", "broadcast"), "neither unix seconds"),
        Case("matcher-phone", ("--db", db, "rpis", "--tek", "zz", "--start", "1"), "not hexadecimal"),
        Case("matcher-phone", ("--db", db, "rpis", "--tek", "00" * 16, "--start", "-1"), "--start must be"),
        Case(
            "matcher-phone",
            ("--db", db, "rpis", "--tek", "00" * 16, "--start", "1", "--period", "999"),
            "--period must be",
        ),
        Case("matcher-phone", ("--db", db, "observe", f["missing"]), "no such file"),
        Case("matcher-phone", ("--db", db, "observe", f["folder"]), "is a folder"),
        Case("matcher-phone", ("--db", db, "observe", f["unreadable"]), "inside"),
        Case("matcher-phone", ("--db", db, "observe", f["binary.bin"], "--json"), "not text"),
        Case("matcher-phone", ("--db", db, "observe", f["list.json"]), "expected a JSON object"),
        Case("matcher-phone", ("--db", db, "observe", f["sightings.jsonl"]), "out of range"),
        Case("matcher-phone", ("--db", "typo.db", "observe", f["list.json"]), "expected a JSON object"),
        Case(
            "matcher-phone",
            ("--db", db, "sync", "--server", "127.0.0.1:1", "--tls-dir", f["missing"]),
            "no such folder",
        ),
        Case(
            "matcher-phone",
            ("--db", db, "sync", "--server", "127.0.0.1:1", "--tls-dir", f["bad-phone-tls"]),
            "ca.pem: not a certificate",
        ),
        Case(
            "matcher-phone",
            ("--db", "typo.db", "sync", "--server", "127.0.0.1:1", "--tls-dir", phone_tls),
            "no such phone database",
        ),
        Case(
            "matcher-phone",
            ("--db", db, "sync", "--mirror", "ftp://example.invalid/", "--tls-dir", phone_tls),
            "https://",
        ),
        Case(
            "matcher-phone",
            ("--db", db, "sync", "--server", "127.0.0.1:1", "--tls-dir", phone_tls, "--decoys-per-day", "-1"),
            "--decoys-per-day must be 0..1000, got -1",
        ),
        Case("matcher-phone", ("decoy", "--server", "127.0.0.1:1", "--tls-dir", f["missing"]), "no such folder"),
        Case(
            "matcher-phone",
            ("decoy", "--server", "127.0.0.1:1", "--tls-dir", f["bad-phone-tls"]),
            "ca.pem: not a certificate",
        ),
        Case("matcher-phone", ("decoy", "--server", "127.0.0.1:1", "--tls-dir", phone_tls, "--json"), "UNAVAILABLE"),
        Case(
            "matcher-phone",
            ("--db", db, "sync", "--mirror", "https://127.0.0.1:1/", "--tls-dir", f["missing"], "--json"),
            "missing.file",
        ),
        Case("matcher-phone", ("--db", db, "checkin", VENUE), "venue"),
        Case(
            "matcher-phone",
            (
                "--db",
                db,
                "checkin",
                Path(f["venue"], "payload.txt").read_text().strip(),
                "--at",
                "2026-01-01T10:00Z",
                "--until",
                "2026-01-01T09:00Z",
            ),
            "--until must be after --at",
        ),
        Case(
            "matcher-phone",
            ("--db", db, "share", "--server", "127.0.0.1:1", "--tls-dir", phone_tls, "--code", "NOPE"),
            "not an upload code",
        ),
        Case(
            "matcher-phone",
            ("--db", db, "share", "--server", "127.0.0.1:1", "--tls-dir", phone_tls, "--code", "NOPE", "--json"),
            "not an upload code",
        ),
        Case(
            "matcher-phone",
            (
                "--db",
                db,
                "share",
                "--server",
                "127.0.0.1:1",
                "--tls-dir",
                phone_tls,
                "--code",
                "23456789ABCD",
                "--since",
                "yesterday",
            ),
            "YYYY-MM-DD",
        ),
        # --- matcher-ha -----------------------------------------------------------------------------------------
        Case("matcher-ha", ("push", "--json", f["missing"], "--dry-run"), "missing.file"),
        Case("matcher-ha", ("push", "--json", f["folder"], "--dry-run"), "folder"),
        Case("matcher-ha", ("push", "--json", f["unreadable"], "--dry-run", "--output", "json"), "inside"),
        Case("matcher-ha", ("push", "--json", f["binary.bin"], "--dry-run"), "binary.bin"),
        Case("matcher-ha", ("push", "--csv", f["binary.bin"], "--dry-run"), "binary.bin"),
        Case(
            "matcher-ha",
            ("push", "--export", f["text.txt"], "--dry-run"),
            "neither a GAEN export zip nor an export.bin",
        ),
        Case(
            "matcher-ha",
            ("push", "--json", f["list.json"], "--dry-run", "--report-type", "RECURSIVE"),
            "choose one of CONFIRMED_TEST",
        ),
        Case(
            "matcher-ha",
            ("push", "--json", f["list.json"], "--dry-run", "--region", "Vietnam"),
            "not an ISO 3166-1 alpha-2",
        ),
        Case("matcher-ha", ("push", "--json", f["list.json"], "--dry-run", "--now", "-5"), "out of range"),
        Case(
            "matcher-ha", ("push", "--json", f["list.json"], "--server", "127.0.0.1:1"), "--tls-dir, --authority needed"
        ),
        Case(
            "matcher-ha",
            (
                "push",
                "--json",
                f["keys.json"],
                "--now",
                NOW,
                *conn[:2],
                "--tls-dir",
                f["missing"],
                "--authority",
                "moh",
            ),
            "missing.file",
        ),
        Case(
            "matcher-ha",
            (
                "push",
                "--json",
                f["keys.json"],
                "--now",
                NOW,
                *conn[:2],
                "--tls-dir",
                f["bad-moh-tls"],
                "--authority",
                "moh",
            ),
            "ca.pem",
        ),
        Case("matcher-ha", ("issue-code", *conn, "--report-type", "REVOKED"), "choose one of"),
        Case("matcher-ha", ("issue-code", *conn, "--region", "Vietnam", "--json"), "not an ISO 3166-1 alpha-2"),
        Case("matcher-ha", ("issue-code", *conn, "--ttl", "999999"), "must be 0..86400"),
        Case("matcher-ha", ("issue-code", *conn[:4], "--authority", "nobody"), "nobody"),
        Case("matcher-ha", ("set-config", *conn, "--file", f["missing"]), "no such file"),
        Case("matcher-ha", ("set-config", *conn, "--file", f["folder"]), "is a folder"),
        Case("matcher-ha", ("set-config", *conn, "--file", f["unreadable"]), "inside"),
        Case("matcher-ha", ("set-config", *conn, "--file", f["binary.bin"], "--json"), "not text"),
        Case("matcher-ha", ("set-config", *conn, "--file", f["list.json"]), "not an ExposureConfig"),
        Case("matcher-ha", ("venue", "create", "--name", "", "--out", "v"), "name"),
        Case("matcher-ha", ("venue", "create", "--name", "x" * 100, "--out", "v", "--json"), "name"),
        Case("matcher-ha", ("venue", "create", "--name", "Cafe", "--out", f["text.txt"]), "text.txt"),
        Case(
            "matcher-ha", ("venue-warn", *conn, "--trace", f["missing"], "--from", NOW, "--until", NOW), "missing.file"
        ),
        Case(
            "matcher-ha", ("venue-warn", *conn, "--trace", f["binary.bin"], "--from", NOW, "--until", NOW), "binary.bin"
        ),
        Case(
            "matcher-ha",
            ("venue-warn", *conn, "--trace", f["list.json"], "--from", NOW, "--until", NOW, "--json"),
            "list.json",
        ),
        Case(
            "matcher-ha",
            ("venue-warn", *conn, "--trace", str(Path(f["venue"], "trace.json")), "--from", NOW, "--until", "-5"),
            "out of range",
        ),
        Case(
            "matcher-ha",
            ("export", "--json", f["keys.json"], "--out", "x.zip", "--signing-key", f["text.txt"]),
            "text.txt",
        ),
        Case(
            "matcher-ha",
            (
                "export",
                "--json",
                f["keys.json"],
                "--out",
                f["unreadable"],
                "--signing-key",
                str(Path(tls, "signing.key")),
            ),
            "inside",
        ),
        Case(
            "matcher-ha",
            (
                "export",
                "--json",
                f["list.json"],
                "--out",
                "x.zip",
                "--signing-key",
                f["missing"],
                "--region",
                "Vietnam",
            ),
            "not an ISO 3166-1 alpha-2",
        ),
        Case(
            "matcher-ha",
            ("export", "--json", f["missing"], "--out", "x.zip", "--signing-key", str(Path(tls, "signing.key"))),
            "missing.file",
        ),
        # --- matcher-sim ----------------------------------------------------------------------------------------
        Case("matcher-sim", ("--people", "5", "--days", "1"), "must be 10..100000"),
        Case("matcher-sim", ("--people", "10", "--days", "99", "--json"), "must be 1..60"),
        Case("matcher-sim", ("--people", "10", "--days", "1", "--infected", "2"), "must be 0..1"),
        Case("matcher-sim", ("--people", "10", "--days", "1", "--start", "-5"), "out of range"),
        Case(
            "matcher-sim",
            ("--people", "10", "--days", "1", "--store", "redis://127.0.0.1:1/3?cluster=true"),
            "database 0 only",
        ),
        Case(
            "matcher-sim",
            ("--people", "10", "--days", "1", "--store", "redis://127.0.0.1:1/0?cluster=true", "--quiet"),
            "no Redis Cluster answers",
        ),
        Case("matcher-sim", ("--people", "10", "--days", "1", "--report", f["text.txt"]), "text.txt"),
    ]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a digest of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run_case(case: Case, cwd: Path) -> list[str]:
    """What is wrong with how the command answered ``case``; empty when it answered as it must."""
    cwd.mkdir()
    env = {**os.environ, **dict(case.env)}
    result = subprocess.run(
        [str(BIN / case.script), *case.args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    problems = []
    if result.returncode == 0:
        problems.append("exit status 0")
    lines = result.stderr.splitlines()
    if len(lines) != 1 or "Traceback" in result.stderr:
        problems.append(f"stderr is not one line: {result.stderr[-800:]!r}")
    elif not lines[0].startswith(case.script) or case.says not in lines[0]:
        problems.append(f"stderr does not say {case.says!r}: {lines[0]!r}")
    machine = "json" in case.args or (
        "--json" in case.args and not (case.script == "matcher-ha" and case.args[0] in INPUT_JSON)
    )
    if machine and result.returncode:
        try:
            answer = json.loads(result.stdout)
            assert (
                result.stdout.count("\n") == 1 and answer["exit"] == result.returncode and answer["error"] in lines[0]
            )
        except (ValueError, KeyError, AssertionError, TypeError, IndexError):
            problems.append(f"stdout is not one JSON error object: {result.stdout!r}")
    elif result.stdout:
        problems.append(f"stdout is not empty: {result.stdout[-300:]!r}")
    if any(cwd.iterdir()):
        problems.append(f"created {sorted(p.name for p in cwd.iterdir())}")
    return problems


def test_every_command_answers_every_bad_input_in_one_line_with_a_failing_exit_and_creates_nothing(tmp_path: Path):
    files = tmp_path / "files"
    files.mkdir()
    given = world(files)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        table = cases(given, busy.getsockname()[1])
        before = snapshot(files)
        with ThreadPoolExecutor(PARALLEL) as pool:
            outcomes = list(pool.map(lambda n: run_case(table[n], tmp_path / f"run-{n}"), range(len(table))))
    failures = [f"{case}\n    " + "\n    ".join(problems) for case, problems in zip(table, outcomes) if problems]
    assert not failures, f"{len(failures)} of {len(table)} cases:\n" + "\n".join(failures)
    assert snapshot(files) == before, "a bad input changed the files it was given"


def test_the_table_covers_every_console_script_and_sub_command(tmp_path: Path):
    from clients.ha.cli import build_parser as ha_parser
    from clients.phone.cli import build_parser as phone_parser
    from matcher.cli import build_parser as matcher_parser

    table = cases_with_venue(tmp_path)
    for script, parser in (
        ("matcher", matcher_parser()),
        ("matcher-phone", phone_parser()),
        ("matcher-ha", ha_parser()),
    ):
        for command in subcommands(parser):
            assert any(c.script == script and command in c.args for c in table), f"{script} {command} has no bad input"
    assert any(c.script == "matcher-sim" for c in table)


def cases_with_venue(files: Path) -> list[Case]:
    (files / "venue").mkdir(exist_ok=True)
    (files / "venue" / "payload.txt").write_text("x\n")
    names = {
        name: str(files / name)
        for name in (
            "tls",
            "bad-tls",
            "phone.db",
            "text.txt",
            "binary.bin",
            "list.json",
            "keys.json",
            "folder",
            "sightings.jsonl",
            "unreadable",
            "missing",
            "venue",
            "no-secret-tls",
            "pki",
            "phone-tls",
            "moh-tls",
            "bad-phone-tls",
            "bad-moh-tls",
            "ca-key-tls",
            "moh-key-tls",
        )
    }
    return cases(names)


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The names of a parser's sub-commands, the innermost ones for nested commands (``venue create``)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = subcommands(sub)
                found += nested or [name]
    return found
