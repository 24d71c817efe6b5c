"""The batch builder against its baselines, and a phone checking a day of batches.

Rows, all measured in the same run:

- builder: ``build_batch`` from diagnosis keys to signed-ready header and body (RPIs one AES call per key, tags two
  AES calls per group of keys, hashes, sorting and Golomb-Rice coding with numpy), in elements per second, for
  growing batches, with the coded set's bits per element next to log2(1/eps), the Rice expectation and the Bloom
  bound;
- baseline (a): pybloom-live's plain ``add`` loop with its own hashing, on the same elements (their tags, handed
  over for free) in a filter sized for the whole batch at the same error rate, timed on a subset and reported per
  element: what publishing the same elements in a Bloom filter (format 1) costs in Python;
- baseline (b): RPI derivation with one AES call per interval, next to each batch size (on a subset of its keys)
  and against ours with one call per key;
- phone: observations tested per second when a phone with 5,000 observations a day over 14 days checks a day of
  hourly batches (24), verification of signature, digests and coding included.
"""

from __future__ import annotations

import hashlib
import math
import os
import time

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pybloom_live import BloomFilter

from bench.common import Curve, Section, best_of, seconds_left
from exposure.v1 import batch_pb2
from matcher import batches, crypto, filters, fprate
from matcher.exposure_config import default_config
from matcher.model import DiagnosisKey, ReportType
from matcher.signing import TrustedKeys, generate_signing_key

QUICK = True
ELASTIC = True  # runs last: the largest batch is built only if its projected time fits what is left of the run

DAY = 2642976  # 2020-04-02
PUBLISHED_AT = (DAY + 14 * 144) * 600
SIGNING_KEY = generate_signing_key()
CONFIG = default_config()
SIZING = fprate.sizing()  # the default sizing: what the publisher gives a batch of an hourly run with one region
ERROR_RATE = SIZING.error_rate
LOG2_INV_EPS = SIZING.log2_inv_eps
RICE_BITS = SIZING.rice_bits_per_element  # the expected size of a Golomb-Rice coded set at this rate
BLOOM_BOUND = SIZING.bloom_bits_per_element  # an optimal Bloom filter at this rate: 1.44 x log2(1/eps)
MAX_BUILD_SECONDS = 340.0  # for the builder rows, 10^6 keys included
BUILD_SPEEDUP_BAR = 20.0  # the builder against pybloom-live's add loop, in the same run
CHECK_RATE_BAR = 1_000_000  # observation tests a second of the phone's daily check
# The phone's day of batches: 1,000 cases a day of 8 daily keys, cut hourly (mixed report types and onsets, so
# that batches have the two sections of the default configuration).
PHONE_KEYS_PER_BATCH = 1_000 * 8 // 24


def make_keys(
    count: int,
    seed: int = 0,
    report_types: tuple[ReportType, ...] = (ReportType.CONFIRMED_TEST,),
    onsets: tuple[int | None, ...] = (None,),
) -> list[DiagnosisKey]:
    """Full-day keys spread over 14 days, cycling through the given report types and days since onset."""
    prefix = seed.to_bytes(4, "little")
    return [
        DiagnosisKey(
            hashlib.sha256(prefix + n.to_bytes(8, "little")).digest()[:16],
            DAY + 144 * (n % 14),
            144,
            report_types[n % len(report_types)],
            onsets[n % len(onsets)],
        )
        for n in range(count)
    ]


def build(keys: list[DiagnosisKey], sequence: int = 1, salt: bytes | None = None) -> batches.BuiltBatch:
    return batches.build_batch(
        keys,
        sequence=sequence,
        published_at=PUBLISHED_AT,
        region="VN",
        config=CONFIG,
        signing_key=SIGNING_KEY,
        error_rate=ERROR_RATE,
        salt=salt,
    )


def pybloom_add_rate(keys: list[DiagnosisKey], elements: int, subset: int, repeat: int = 2) -> float:
    """Elements per second of pybloom-live's own add loop, in a filter sized for the whole batch at the batches'
    error rate (a fresh one for each of ``repeat`` runs: adding a tag again only tests it; the best run counts, as
    for the builder)."""
    rpis, intervals = batches.key_elements(keys[: -(-subset // 144)])
    tags = [bytes(tag) for tag in filters.element_tags(rpis, intervals, bytes(16))[:subset]]
    best = math.inf
    for _ in range(repeat):
        bloom = BloomFilter(elements, ERROR_RATE)
        began = time.perf_counter()
        for tag in tags:
            bloom.add(tag)
        best = min(best, time.perf_counter() - began)
    return len(tags) / best


def per_interval_rpi_rate(keys: list[DiagnosisKey]) -> float:
    """Elements per second of RPI derivation with one cipher call per interval (the naive way). Nothing is shared
    between keys, so the rate does not depend on how many keys a batch has."""

    def derive() -> None:
        for key in keys:
            rpik = crypto.rpik(key.key_data)
            for block in crypto.padded_data(np.arange(key.rolling_start, key.end_interval)):
                encryptor = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
                encryptor.update(block.tobytes())

    return len(keys) * 144 / best_of(derive, repeat=2)


def _row(what: str, elements: int, seconds: float, baseline: str, baseline_rate: float | None) -> dict:
    rate = elements / seconds
    return {
        "what": what,
        "elements": elements,
        "seconds": round(seconds, 3),
        "elements/s": rate,
        "baseline": baseline,
        "baseline elements/s": baseline_rate,
        "speedup": round(rate / baseline_rate, 1) if baseline_rate else None,
    }


def coded_bits_per_element(header: batch_pb2.BatchHeader) -> float:
    """The body's bits per hash it holds: every section's two streams, padding included."""
    return header.body_size * 8 / sum(section.count for section in header.sections)


def builder_rows(sizes: list[int], subset: int, budget_seconds: float) -> tuple[list[dict], batches.BuiltBatch, str]:
    """One row per batch size, with both baselines (pybloom-live's add loop on ``subset`` of its elements, and
    per-interval AES on at most ``subset`` elements' keys); a size whose projected time (linear in the last one)
    would break the budget is left out, and the returned note says so."""
    rows: list[dict] = []
    largest: batches.BuiltBatch | None = None
    began = time.perf_counter()
    for count in sizes:
        if rows:
            # 10x more keys run ~2x slower per element: sorting and coding the hashes outgrow the caches (10^4 ->
            # 10^5 keys measured 2.2x on two cores); the keys and the baselines come on top
            projected = rows[-1]["seconds"] * count / rows[-1]["elements"] * 144 * 2.0
            if time.perf_counter() - began + projected > budget_seconds:
                return (
                    rows,
                    largest,
                    (
                        f"{count:,} keys left out: about {projected:.0f} s would exceed the "
                        f"{budget_seconds:.0f} s left for these rows in the run's time budget. "
                    ),
                )
        keys = make_keys(count)
        built: list[batches.BuiltBatch] = []
        seconds = best_of(
            lambda built=built, keys=keys: built.append(build(keys)),
            repeat=3 if count <= 10_000 else 1,
            budget_seconds=20,
        )
        batch = built[-1]
        built.clear()
        add_rate = pybloom_add_rate(keys, batch.elements, subset)
        aes_rate = per_interval_rpi_rate(keys[: -(-subset // 144)])
        row = _row(f"build_batch, {count:,} keys", batch.elements, seconds, "pybloom-live add loop", add_rate)
        rows.append(
            row
            | {
                "per-interval AES elements/s": aes_rate,
                "speedup vs per-interval AES": round(batch.elements / seconds / aes_rate, 1),
                "bits/element": round(coded_bits_per_element(batch.header), 3),
                "log2(1/eps)": round(LOG2_INV_EPS, 3),
                "Rice expected": round(RICE_BITS, 3),
                "Bloom bound": round(BLOOM_BOUND, 3),
            }
        )
        largest = batch
    assert largest is not None
    return rows, largest, ""


def phone_check(observations_per_day: int, days: int, batches_per_day: int, keys_per_batch: int) -> dict:
    """A phone's stored observations (some really from published keys) against a day of hourly batches."""
    rng = np.random.default_rng(1)
    n = observations_per_day * days
    rpis = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    intervals = DAY + rng.integers(0, days * 144, n)
    observed_at = intervals * 600 + rng.integers(0, 600, n)  # anywhere in the interval: 1.4 tests on average
    signed, bodies, planted = [], [], 0
    for hour in range(batches_per_day):
        keys = make_keys(
            keys_per_batch,
            seed=hour + 1,
            report_types=(ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, ReportType.SELF_REPORT),
            onsets=(None, 0),
        )
        built = build(keys, sequence=hour + 1)
        signed.append(batches.sign_header(built.header, SIGNING_KEY))
        bodies.append(built.body)
        key = keys[0]  # the phone met this case for 3 intervals: plant those observations, heard mid-interval
        rpis[planted : planted + 3] = crypto.rpis(key.key_data, key.rolling_start + 40, 3)
        observed_at[planted : planted + 3] = np.arange(key.rolling_start + 40, key.rolling_start + 43) * 600 + 300
        planted += 3
    trusted = TrustedKeys([SIGNING_KEY.verifying_key()])
    matched = np.zeros(n, dtype=bool)

    def check_day() -> None:
        for envelope, body in zip(signed, bodies):
            header, sections = batches.open_batch(envelope, body, trusted)
            matched[batches.match(header, sections, rpis, observed_at).section >= 0] = True

    seconds = best_of(check_day, repeat=3)
    found = int(matched[:planted].sum())
    if found != planted:
        raise AssertionError(f"the phone found {found} of {planted} planted matches")
    row = _row(
        f"phone check: {n:,} observations x {batches_per_day} batches of {keys_per_batch} keys",
        n * batches_per_day,
        seconds,
        "",
        None,
    )
    return row | {"false matches": int(matched[planted:].sum())}


def run(quick: bool) -> Section:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not quick and memory >= 16 << 30:
        sizes.append(1_000_000)  # ~8 GB at its peak: hashes, their sorted copy, gaps and quotients (8 bytes each)
    # the time left, less what the derivation and phone rows take (about 15 s)
    budget = 40 if quick else min(MAX_BUILD_SECONDS, seconds_left() - 15)
    rows, largest, skipped = builder_rows(sizes, subset=20_000 if quick else 50_000, budget_seconds=budget)
    if not quick and memory < 16 << 30:
        skipped += f"1,000,000 keys left out: {memory / 2**30:.0f} GB of memory, the build needs about 8. "

    derivation_keys = make_keys(200 if quick else 1_000, seed=99)
    per_key_seconds = best_of(lambda: batches.key_elements(derivation_keys), repeat=3)
    derivation = _row(
        "RPIs, one AES call per key",
        len(derivation_keys) * 144,
        per_key_seconds,
        "one AES call per interval",
        per_interval_rpi_rate(derivation_keys),
    )
    phone = phone_check(5_000, 14, 24, keys_per_batch=PHONE_KEYS_PER_BATCH)

    bits_per_element = coded_bits_per_element(largest.header)
    headline = rows[-1]
    slowest = min(row["speedup"] for row in rows)
    summary = {
        "build_elements_per_s": round(headline["elements/s"]),
        "pybloom_add_elements_per_s": round(headline["baseline elements/s"]),
        "build_speedup": headline["speedup"],
        "set_bits_per_element": round(bits_per_element, 3),
        "rice_expected_bits_per_element": round(RICE_BITS, 3),
        "bloom_bound_bits_per_element": round(BLOOM_BOUND, 3),
        "check_observations_per_s": round(phone["elements/s"]),
    }
    bars = (
        f"Bars: the builder at least {BUILD_SPEEDUP_BAR:.0f}x pybloom-live's add loop on every row (slowest "
        f"{slowest:.1f}x: {'met' if slowest >= BUILD_SPEEDUP_BAR else 'MISSED'}); the phone check at least "
        f"{CHECK_RATE_BAR:,} observation tests a second ({phone['elements/s']:,.0f}: "
        f"{'met' if phone['elements/s'] >= CHECK_RATE_BAR else 'MISSED'}). "
    )
    notes = (
        skipped
        + bars
        + (
            f"Error rate {ERROR_RATE:.4g}, log2(1/eps) = {LOG2_INV_EPS:.2f} bits (the default sizing: one batch an "
            "hour, docs/spec.md section 8). build_batch goes from DiagnosisKeys to header and body (one section); "
            "pybloom-live's add loop is timed on a subset of the same elements (their tags, handed to it for free) in a "
            "BloomFilter sized for the whole batch at the same error rate; per-interval AES is RPI derivation alone "
            "with one cipher call per interval, on a subset of the batch's keys (no set at all: an upper bound for any "
            f"builder that derives that way). The coded set holds {bits_per_element:.3f} bits per element, padding "
            f"included: {bits_per_element - LOG2_INV_EPS:.2f} above log2(1/eps), against the Rice expectation "
            f"{RICE_BITS:.3f} (fprate.rice_bits_per_element) and the Bloom bound 1.44 x log2(1/eps) = {BLOOM_BOUND:.3f} "
            f"({1 - bits_per_element / BLOOM_BOUND:.0%} smaller). The phone check verifies each batch's signature, "
            "digest and coding, then tests 14 days of 5,000 observations a day heard at random times (the elements "
            "column counts observation x batch tests), 3 of them per batch really from a published key (all found); "
            f"{phone['false matches']} other observations matched. The batches hold {PHONE_KEYS_PER_BATCH} keys each "
            "(1,000 cases a day of 8 daily keys, cut hourly) in two sections."
        )
    )
    curve = Curve(
        title="Batch build (keys -> published batch)",
        x_label="elements in the batch (keys x 144)",
        y_label="elements/s",
        log_x=True,
        log_y=True,
        series={
            name: [(row["elements"], row[column]) for row in rows]
            for name, column in (
                ("build_batch", "elements/s"),
                ("pybloom-live add loop", "baseline elements/s"),
                ("per-interval AES (derivation only)", "per-interval AES elements/s"),
            )
        },
    )
    return Section(
        title="Filters: batch builder, baselines and phone check",
        rows=[*rows, derivation, phone],
        notes=notes,
        summary=summary,
        curves=[curve],
        formats=dict.fromkeys(("bits/element", "log2(1/eps)", "Rice expected", "Bloom bound"), ".3f"),
    )
