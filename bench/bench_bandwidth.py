"""Bandwidth: bytes published per confirmed case and downloaded per phone per day, at 1,000 and 10,000 cases a
day, from batches really cut by the publisher, next to GAEN export files for the same keys and DP-3T.

A day of cases is pushed into a real SQLite store an hour at a time and the publisher cuts the hourly batch
(24 a day, with its own choice of error rate and filters); a phone downloads every batch of the day, so its daily
bytes are all the signed headers and bodies. The baselines carry the same keys: GAEN export files built with the
health-authority client's ``build_export`` (one signed export.zip per hourly batch, as a GAEN key server
publishes), the rule of thumb of 28 bytes a key, and the 2,880 bytes a case of DP-3T's unlinkable design.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path

from bench.common import Curve, Section
from clients.ha.gaen_export import build_export, write_export_zip
from clients.ha.source_keys import SourceKey
from exposure.v1 import batch_pb2
from matcher.model import DiagnosisKey, ReportType, Submission
from matcher.publisher import Publisher
from matcher.signing import SigningKey, generate_signing_key
from matcher.store.sqlite import SqliteStore

QUICK = False
CASES_PER_DAY = (1_000, 10_000)
DAYS_PER_CASE = 8  # published days of a case: 2 before symptom onset to 5 after
GAEN_BYTES_PER_KEY = 28
DP3T_BYTES_PER_CASE = 2_880  # DP-3T white paper, unlinkable design: a case's published identifiers
DAY = 1795132800  # 2026-11-20 00:00 UTC
FIRST_INTERVAL = DAY // 600
RETENTION_DAYS = 14


def case_keys(case: int) -> list[DiagnosisKey]:
    """A case's 8 daily keys, 9 to 2 days ago (past their embargo at any hour of the day), 2 days before symptom
    onset to 5 after: all published, in the HIGH and STANDARD filters of the default configuration."""
    return [
        DiagnosisKey(
            hashlib.sha256(f"case-{case}-{day}".encode()).digest()[:16],
            FIRST_INTERVAL - 144 * (9 - day), 144, ReportType.CONFIRMED_TEST, day - 2,
        )
        for day in range(DAYS_PER_CASE)
    ]


def gaen_export_bytes(keys: list[DiagnosisKey], hour: int, folder: Path, signing_key: SigningKey) -> tuple[int, int]:
    """Sizes of the signed export.zip a GAEN key server would publish for this hour's keys, and of its export.bin
    and export.sig unzipped."""
    source = [SourceKey(f"keys[{i}]", k.key_data, k.rolling_start, k.rolling_period, k.report_type,
                        k.days_since_onset) for i, k in enumerate(keys)]
    start = DAY + hour * 3600
    export_bin, export_sig = build_export(source, signing_key, region="VN", start_timestamp=start,
                                          end_timestamp=start + 3600)
    path = folder / f"export-{hour}.zip"
    write_export_zip(path, export_bin, export_sig)
    return path.stat().st_size, len(export_bin) + len(export_sig)


def one_day(cases: int, folder: Path) -> dict:
    """Cuts a day of hourly batches for ``cases`` cases; what they and the GAEN exports weigh."""
    signing_key = generate_signing_key()
    store = SqliteStore(folder / "store.db")
    publisher = Publisher(store, signing_key, retention_days=RETENTION_DAYS, publish_interval=3600,
                          max_keys_per_batch=200_000)
    published, gaen_zip, gaen_raw, keys_total = [], 0, 0, 0
    try:
        for hour in range(24):
            at = DAY + (hour + 1) * 3600
            hour_cases = range(cases * hour // 24, cases * (hour + 1) // 24)
            keys = [key for case in hour_cases for key in case_keys(case)]
            keys_total += len(keys)
            # One submission an hour: how the keys were grouped on the way in makes no difference to the batch.
            store.submit(Submission("ha", f"hour-{hour}", "VN", tuple(keys), hashlib.sha256(b"%d" % hour).digest()),
                         response=b"", now=at, retention_seconds=RETENTION_DAYS * 86400)
            published += publisher.publish(at)
            zipped, raw = gaen_export_bytes(keys, hour, folder, signing_key)
            gaen_zip, gaen_raw = gaen_zip + zipped, gaen_raw + raw
        stored = store.list_batches(after=0, limit=1000)
    finally:
        store.close()
    if len(stored) != 24 or sum(p.keys_published for p in published) != keys_total:
        raise AssertionError(f"expected 24 batches with {keys_total} keys, got {published}")
    headers = [batch_pb2.BatchHeader.FromString(batch_pb2.SignedBatchHeader.FromString(b.signed_header).header)
               for b in stored]
    filters = [info for header in headers for info in header.filters]
    return {
        "keys": keys_total,
        "elements": sum(p.elements for p in published),
        "bytes": sum(b.body_size + len(b.signed_header) for b in stored),
        "header bytes": sum(len(b.signed_header) for b in stored),
        "filter bits": sum(info.num_slices * info.bits_per_slice for info in filters),
        "filters": len(filters),
        "error rates": sorted({info.error_rate for info in filters}),
        "gaen zip bytes": gaen_zip,
        "gaen raw bytes": gaen_raw,
    }


def run(quick: bool) -> Section:
    rows, summary, series = [], {}, {}
    days = {}
    for cases in CASES_PER_DAY:
        with tempfile.TemporaryDirectory(prefix="bench-bandwidth-") as tmp:
            days[cases] = one_day(cases, Path(tmp))
    for cases, day in days.items():
        ours = day["bytes"]
        estimated = GAEN_BYTES_PER_KEY * day["keys"]
        for what, per_day in (
            ("exposure matcher: signed headers + filter bodies", ours),
            ("GAEN export.zip per hourly batch, same keys (baseline)", day["gaen zip bytes"]),
            ("GAEN export.bin + export.sig unzipped, same keys (baseline)", day["gaen raw bytes"]),
            (f"GAEN, {GAEN_BYTES_PER_KEY} bytes a key (baseline)", estimated),
            (f"DP-3T unlinkable design, {DP3T_BYTES_PER_CASE:,} bytes a case (baseline)", DP3T_BYTES_PER_CASE * cases),
        ):
            rows.append({
                "what": what,
                "cases/day": cases,
                "bytes/case": round(per_day / cases),
                "MB per phone per day": round(per_day / 1e6, 3),
                "ours / this": round(ours / per_day, 1) if per_day != ours else None,
            })
            series.setdefault(what.removesuffix(" (baseline)"), []).append((cases, per_day / 1e6))
        summary[f"bandwidth_{cases}_cases_bytes_per_case"] = round(ours / cases)
        summary[f"bandwidth_{cases}_cases_mb_per_phone_day"] = round(ours / 1e6, 2)

    day = days[CASES_PER_DAY[-1]]
    bits = day["filter bits"] / day["elements"]
    rates = ", ".join(f"{rate:.4g}" for rate in day["error rates"])
    bound = 1.44 * math.log2(1 / max(day["error rates"]))
    notes = (
        f"Each case publishes {DAYS_PER_CASE} daily keys x 144 intervals = {DAYS_PER_CASE * 144:,} elements; the "
        f"day's cases are split over 24 hourly batches cut by the publisher (matcher.publisher.Publisher over an "
        f"SQLite store, default configuration, {RETENTION_DAYS}-day retention, hourly publishing), "
        f"{day['filters'] // 24} filters a batch. At {CASES_PER_DAY[-1]:,} cases a day the filters hold "
        f"{bits:.2f} bits per element at error rate {rates} (Bloom bound {bound:.2f}); signed headers are "
        f"{day['header bytes'] / 24:.0f} bytes a batch. A phone downloads every batch, so its daily bytes are all of "
        "them (plus a few bytes of gRPC framing, left out). GAEN: export.bin + export.sig, built by "
        "clients/ha/gaen_export.build_export from the same keys with report type and days since onset, one file an "
        "hour, zipped as phones download it and unzipped. Unlinkability costs the ratio in the last column: a GAEN "
        "phone can link a case's identifiers to one another, ours cannot."
    )
    curve = Curve(title="Bandwidth per phone per day", x_label="confirmed cases a day", y_label="MB per phone per day",
                  series=series, log_x=True, log_y=True)
    return Section(title="Bandwidth: bytes per case and per phone per day", rows=rows, notes=notes,
                   summary=summary, curves=[curve])
