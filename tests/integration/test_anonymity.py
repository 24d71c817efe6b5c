"""The anonymity hold with the real service: `matcher publish`, with the product's defaults (5 cases or 24 hours),
holds a lone case back and publishes it once its deadline has passed; cases are counted per submission, whether an
authority pushed them or a phone uploaded them with a code; bad settings are one line and change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from clients.launch import matcher
from exposure.v1 import distribution_pb2
from matcher import crypto
from matcher.batches import match, open_body, open_header
from matcher.store import open_store
from tests.integration.harness import NOW, TODAY
from tests.integration.test_service import diagnosis_key, download, issue_code, submit, tek, trusted, upload

DAY = 86_400


def publish_with_defaults(server, now: int, *extra: str, json_output: bool = True):
    """`matcher publish` as an operator runs it: no anonymity option, so K = 5 and a deadline of 24 hours."""
    store = server.store
    result = matcher(
        "publish",
        "--store",
        store,
        "--tls-dir",
        str(server.tls_dir),
        "--now",
        str(now),
        *(["--json"] if json_output else []),
        *extra,
    )
    return json.loads(result.stdout) if json_output else result.stdout


def listed(server) -> list:
    return list(server.distribution_stub().ListBatches(distribution_pb2.ListBatchesRequest(), timeout=10).batches)


def test_matcher_publish_holds_a_lone_case_and_publishes_it_once_its_deadline_has_passed(server):
    submit(server.authority_stub(), diagnosis_key(1), diagnosis_key(2, day=2))  # one case, received at NOW

    first = publish_with_defaults(server, NOW + 3600)
    said = publish_with_defaults(server, NOW + DAY - 1, json_output=False)

    assert first == {"batches": [], "held": [{"region": "VN", "keys": 2, "sections": 1, "until": NOW + DAY}]}
    assert said == (
        "held (VN): 2 keys in 1 sections of fewer than 5 cases, until they have 5 or "
        "2026-11-21T12:00:00Z at the latest\n"
    )
    assert listed(server) == []  # phones see nothing yet, not even an empty batch

    at_deadline = publish_with_defaults(server, NOW + DAY)
    [batch] = at_deadline["batches"]
    assert (batch["sequence"], batch["keys"], batch["keys_published"]) == (1, 2, 2) and at_deadline["held"] == []
    assert publish_with_defaults(server, NOW + DAY + 3600) == {"batches": [], "held": []}

    [signed] = listed(server)
    header = open_header(signed, trusted(server))
    sections = open_body(header, download(server.distribution_stub(), header.sequence))
    start = TODAY - 144
    heard_at = np.array([start + 10, start + 60]) * 600 + 300
    assert (match(header, sections, crypto.rpis(tek(1), start, 144)[[10, 60]], heard_at).section >= 0).all()


def test_five_cases_are_published_at_once_whether_pushed_by_an_authority_or_uploaded_with_a_code(server):
    stub = server.authority_stub()
    for n in range(1, 4):  # three pushes of two keys each: three cases, not six
        submit(stub, diagnosis_key(n), diagnosis_key(10 + n, day=2), submission_id=f"s-{n}")
    upload(server, issue_code(server).code, diagnosis_key(4))

    four = publish_with_defaults(server, NOW + 3600)
    upload(server, issue_code(server).code, diagnosis_key(5))
    five = publish_with_defaults(server, NOW + 3600)

    assert four["batches"] == [] and four["held"][0]["keys"] == 7
    [batch] = five["batches"]
    assert batch["keys"] == 8 and five["held"] == []


def test_bad_anonymity_settings_are_one_line_errors_and_change_nothing(server):
    submit(server.authority_stub(), diagnosis_key(1))
    store_url = server.store
    base = ["publish", "--store", store_url, "--tls-dir", str(server.tls_dir), "--now", str(NOW + DAY)]

    refusals = [
        (
            matcher(*base, "--anonymity-min-cases", "0", check=False),
            1,
            "anonymity minimum of 0 cases: must be at least 1",
        ),
        (matcher(*base, "--anonymity-deadline", "-1", check=False), 1, "anonymity deadline -1s: must be 0..1209599"),
        (matcher(*base, "--anonymity-deadline", "1d", check=False), 2, "argument --anonymity-deadline: invalid int"),
        (
            matcher(
                "serve",
                "--store",
                store_url,
                "--tls-dir",
                str(server.tls_dir),
                "--anonymity-min-cases",
                "-3",
                "--listen",
                "127.0.0.1:0",
                "--authority-listen",
                "127.0.0.1:0",
                check=False,
            ),
            1,
            "anonymity minimum of -3 cases",
        ),
    ]
    environ = {**os.environ, "MATCHER_ANONYMITY_MIN_CASES": "five"}
    from_env = subprocess.run(
        [sys.executable, "-m", "matcher.cli", *base],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    refusals.append((from_env, 1, "MATCHER_ANONYMITY_MIN_CASES='five' is not a whole number"))

    for result, status, message in refusals:
        assert result.returncode == status and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    store = open_store(store_url)
    try:
        assert store.last_sequence() == 0 and len(store.pending_keys(now=NOW + DAY, limit=10)) == 1
    finally:
        store.close()
