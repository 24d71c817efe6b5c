"""The batch builder against its baselines, and a phone checking a day of batches.

Rows, all measured in the same run:

- builder: ``build_batch`` from diagnosis keys to signed-ready header and body (RPIs one AES call per key, tags two
  AES calls per group of keys, bit positions and bits with numpy), in elements per second, for growing batches;
- baseline (a): pybloom-live's plain ``add`` loop with its own hashing, on the same elements (their tags, handed
  over for free), timed on a subset and reported per element;
- baseline (b): RPI derivation with one AES call per interval, next to each batch size (on a subset of its keys)
  and against ours with one call per key;
- phone: observations tested per second when a phone with 5,000 observations a day over 14 days checks a day of
  hourly batches (24), verification of signature and digests included.
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
from matcher import batches, crypto, fprate
from matcher.exposure_config import default_config
from matcher.model import DiagnosisKey, ReportType
from matcher.signing import TrustedKeys, generate_signing_key

QUICK = True
ELASTIC = True  # runs last: the largest batch is built only if its projected time fits what is left of the run

DAY = 2642976  # 2020-04-02
PUBLISHED_AT = (DAY + 14 * 144) * 600
SIGNING_KEY = generate_signing_key()
CONFIG = default_config()
ERROR_RATE = fprate.error_rate_for(CONFIG)
BLOOM_BOUND = 1.44 * math.log2(1 / ERROR_RATE)  # bits per element of an optimal Bloom filter at this error rate
MAX_BUILD_SECONDS = 340.0  # for the builder rows, 10^6 keys included


def make_keys(count: int, seed: int = 0, report_types: tuple[ReportType, ...] = (ReportType.CONFIRMED_TEST,),
              onsets: tuple[int | None, ...] = (None,)) -> list[DiagnosisKey]:
    """Full-day keys spread over 14 days, cycling through the given report types and days since onset."""
    prefix = seed.to_bytes(4, "little")
    return [
        DiagnosisKey(hashlib.sha256(prefix + n.to_bytes(8, "little")).digest()[:16], DAY + 144 * (n % 14), 144,
                     report_types[n % len(report_types)], onsets[n % len(onsets)])
        for n in range(count)
    ]


def build(keys: list[DiagnosisKey], sequence: int = 1, salt: bytes | None = None) -> batches.BuiltBatch:
    return batches.build_batch(keys, sequence=sequence, published_at=PUBLISHED_AT, region="VN", config=CONFIG,
                               signing_key=SIGNING_KEY, error_rate=ERROR_RATE, salt=salt)


def pybloom_add_rate(keys: list[DiagnosisKey], elements: int, subset: int, repeat: int = 2) -> float:
    """Elements per second of pybloom-live's own add loop, in a filter sized for the whole batch (a fresh one for
    each of ``repeat`` runs: adding a tag again only tests it; the best run counts, as for the builder)."""
    tags = [bytes(tag) for tag in batches.class_tags(keys[: -(-subset // 144)], bytes(16))[:subset]]
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


def _row(what: str, elements: int, seconds: float, baseline: str, baseline_rate: float | None,
         bits_per_element: float | None = None) -> dict:
    rate = elements / seconds
    return {
        "what": what,
        "elements": elements,
        "seconds": round(seconds, 3),
        "elements/s": rate,
        "baseline": baseline,
        "baseline elements/s": baseline_rate,
        "speedup": round(rate / baseline_rate, 1) if baseline_rate else None,
        "bits/element": round(bits_per_element, 3) if bits_per_element else None,
    }


def builder_rows(sizes: list[int], subset: int, budget_seconds: float) -> tuple[list[dict], batches.BuiltBatch, str]:
    """One row per batch size, with both baselines (pybloom-live's add loop on ``subset`` of its elements, and
    per-interval AES on at most ``subset`` elements' keys); a size whose projected time (linear in the last one)
    would break the budget is left out, and the returned note says so."""
    rows: list[dict] = []
    largest: batches.BuiltBatch | None = None
    began = time.perf_counter()
    for count in sizes:
        if rows:
            # 10x more keys run ~2x slower per element: the filter outgrows the caches (10^4 -> 10^5 -> 10^6 keys
            # measured 2.2x and 1.8x on two cores); the keys and the baselines come on top
            projected = rows[-1]["seconds"] * count / rows[-1]["elements"] * 144 * 2.0
            if time.perf_counter() - began + projected > budget_seconds:
                return rows, largest, (f"{count:,} keys left out: about {projected:.0f} s would exceed the "
                                       f"{budget_seconds:.0f} s left for these rows in the run's time budget. ")
        keys = make_keys(count)
        built: list[batches.BuiltBatch] = []
        seconds = best_of(lambda: built.append(build(keys)), repeat=3 if count <= 10_000 else 1, budget_seconds=20)
        batch = built[-1]
        built.clear()
        add_rate = pybloom_add_rate(keys, batch.elements, subset)
        aes_rate = per_interval_rpi_rate(keys[: -(-subset // 144)])
        (info,) = batch.header.filters
        row = _row(f"build_batch, {count:,} keys", batch.elements, seconds, "pybloom-live add loop", add_rate,
                   info.num_slices * info.bits_per_slice / info.count)
        rows.append(row | {"per-interval AES elements/s": aes_rate,
                           "speedup vs per-interval AES": round(batch.elements / seconds / aes_rate, 1),
                           "Bloom bound bits/element": round(BLOOM_BOUND, 3)})
        largest = batch
    assert largest is not None
    return rows, largest, ""


def phone_check(observations_per_day: int, days: int, batches_per_day: int, keys_per_batch: int) -> dict:
    """A phone's stored observations (some really from published keys) against a day of hourly batches."""
    rng = np.random.default_rng(1)
    n = observations_per_day * days
    rpis = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    intervals = DAY + rng.integers(0, days * 144, n)
    signed, bodies, planted = [], [], 0
    for hour in range(batches_per_day):
        keys = make_keys(keys_per_batch, seed=hour + 1,
                         report_types=(ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS,
                                       ReportType.SELF_REPORT), onsets=(None, 0))
        built = build(keys, sequence=hour + 1)
        signed.append(batches.sign_header(built.header, SIGNING_KEY))
        bodies.append(built.body)
        key = keys[0]  # the phone met this case for 3 intervals: plant those observations
        rpis[planted : planted + 3] = crypto.rpis(key.key_data, key.rolling_start + 40, 3)
        intervals[planted : planted + 3] = np.arange(key.rolling_start + 40, key.rolling_start + 43)
        planted += 3
    observed_at = intervals * 600 + 1
    trusted = TrustedKeys([SIGNING_KEY.verifying_key()])
    matched = np.zeros(n, dtype=bool)

    def check_day() -> None:
        for envelope, body in zip(signed, bodies):
            header, filters = batches.open_batch(envelope, body, trusted)
            matched[batches.match(header, filters, rpis, intervals, observed_at) >= 0] = True

    seconds = best_of(check_day, repeat=2)
    found = int(matched[:planted].sum())
    if found != planted:
        raise AssertionError(f"the phone found {found} of {planted} planted matches")
    row = _row(f"phone check: {n:,} observations x {batches_per_day} batches of {keys_per_batch} keys",
               n * batches_per_day, seconds, "", None)
    return row | {"false matches": int(matched[planted:].sum())}


def run(quick: bool) -> Section:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not quick and memory >= 16 << 30:
        sizes.append(1_000_000)  # ~5.7 GB at its peak: 16 bytes of tag and ~7 bytes of filter per element
    # the time left, less what the derivation and phone rows take (about 15 s)
    budget = 40 if quick else min(MAX_BUILD_SECONDS, seconds_left() - 15)
    rows, largest, skipped = builder_rows(sizes, subset=20_000 if quick else 50_000, budget_seconds=budget)
    if not quick and memory < 16 << 30:
        skipped += f"1,000,000 keys left out: {memory / 2**30:.0f} GB of memory, the build needs about 6. "

    derivation_keys = make_keys(200 if quick else 1_000, seed=99)
    per_key_seconds = best_of(lambda: batches.key_elements(derivation_keys), repeat=3)
    derivation = _row("RPIs, one AES call per key", len(derivation_keys) * 144, per_key_seconds,
                      "one AES call per interval", per_interval_rpi_rate(derivation_keys))
    phone = phone_check(5_000, 14, 24, keys_per_batch=20 if quick else 100)

    (info,) = largest.header.filters
    bits_per_element = info.num_slices * info.bits_per_slice / info.count
    headline = rows[-1]
    summary = {
        "build_elements_per_s": round(headline["elements/s"]),
        "pybloom_add_elements_per_s": round(headline["baseline elements/s"]),
        "build_speedup": headline["speedup"],
        "bits_per_element": round(bits_per_element, 3),
        "bloom_bound_bits_per_element": round(BLOOM_BOUND, 3),
        "check_observations_per_s": round(phone["elements/s"]),
    }
    notes = skipped + (
        f"Error rate {ERROR_RATE:.4g} (the default sizing, k = {info.num_slices}). build_batch goes from "
        "DiagnosisKeys to header and body (one risk class); pybloom-live's add loop is timed on a subset of the same "
        "elements (their tags, handed to it for free) in a filter sized for the whole batch; per-interval AES is RPI "
        "derivation alone with one cipher call per interval, on a subset of the batch's keys (no filter at all: an "
        "upper bound for any builder that derives that way). Bits per element "
        f"{bits_per_element:.3f} against the Bloom bound 1.44 x log2(1/eps) = {BLOOM_BOUND:.3f} (ratio "
        f"{bits_per_element / BLOOM_BOUND:.4f}). The phone check verifies each batch's signature and digests, then "
        "tests 14 days of 5,000 observations a day (the elements column counts observation x batch tests), 3 of them "
        f"per batch really from a published key (all found); {phone['false matches']} other observations matched."
    )
    curve = Curve(
        title="Batch build (keys -> published batch)", x_label="elements in the batch (keys x 144)",
        y_label="elements/s", log_x=True, log_y=True,
        series={name: [(row["elements"], row[column]) for row in rows] for name, column in (
            ("build_batch", "elements/s"), ("pybloom-live add loop", "baseline elements/s"),
            ("per-interval AES (derivation only)", "per-interval AES elements/s"))},
    )
    return Section(title="Filters: batch builder, baselines and phone check", rows=rows + [derivation, phone],
                   notes=notes, summary=summary, curves=[curve])
