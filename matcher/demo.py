"""``make demo``: what the project does today, computed for real.

1. A phone makes today's daily key and derives the identifiers it broadcasts, one AES call for the whole day.
2. The same derivation reproduces Google's published GAEN test vectors (RPIK, AEMK, 144 RPIs and AEMs).
3. A health authority's submission is validated the way the server validates it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from exposure.v1 import authority_pb2, keys_pb2

from . import crypto
from .clock import iso
from .intervals import INTERVALS_PER_DAY, day_start, interval_number
from .model import DEFAULT_RETENTION_DAYS, ReportType
from .validation import check_keys

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "gaen_test_vectors_v1.2.json"


def phone_day(now: int) -> None:
    start = day_start(interval_number(now))
    tek = crypto.new_tek()
    began = time.perf_counter()
    rpis = crypto.rpis(tek, start, INTERVALS_PER_DAY)
    took = time.perf_counter() - began
    current = interval_number(now) - start
    print(f"1. A phone's key for {iso(start * 600)[:10]}: {tek.hex()}")
    print(f"   {len(rpis)} identifiers derived in one AES call ({took * 1e6:.0f} us); broadcasting now "
          f"(interval {start + current}): {rpis[current].tobytes().hex()}")


def gaen_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())
    tek = bytes.fromhex(vectors["tek"])
    rpis = crypto.rpis(tek, vectors["rolling_start_interval_number"], vectors["rolling_period"])
    keystream = crypto.metadata_keystream(crypto.aemk(tek), rpis)[:, :4]
    metadata = bytes.fromhex(vectors["ble_metadata"])
    rpi_ok = sum(rpis[v["i"]].tobytes().hex() == v["rpi"] for v in vectors["intervals"])
    aem_ok = sum(
        bytes(a ^ b for a, b in zip(keystream[v["i"]].tobytes(), metadata)).hex() == v["aem"]
        for v in vectors["intervals"]
    )
    print("2. GAEN test vectors (Google, spec v1.2):")
    print(f"   RPIK {'matches' if crypto.rpik(tek).hex() == vectors['rpik'] else 'DIFFERS'}, "
          f"AEMK {'matches' if crypto.aemk(tek).hex() == vectors['aemk'] else 'DIFFERS'}, "
          f"RPIs {rpi_ok}/{len(vectors['intervals'])} match, AEMs {aem_ok}/{len(vectors['intervals'])} match")


def validation(now: int) -> None:
    today = day_start(interval_number(now))
    request = authority_pb2.SubmitKeysRequest(submission_id="demo-1", region="VN")
    cases = [
        ("yesterday's key", dict(key_data=crypto.new_tek(), rolling_start_interval_number=today - 144)),
        ("today's key, still in use", dict(key_data=crypto.new_tek(), rolling_start_interval_number=today)),
        ("a 15-byte key", dict(key_data=b"\x01" * 15, rolling_start_interval_number=today - 288)),
        ("a key from the future", dict(key_data=crypto.new_tek(), rolling_start_interval_number=today + 200)),
        ("a key 20 days old", dict(key_data=crypto.new_tek(), rolling_start_interval_number=today - 20 * 144)),
        ("rolling period 200", dict(key_data=crypto.new_tek(), rolling_start_interval_number=today - 432,
                                    rolling_period=200)),
    ]
    for _, fields in cases:
        request.keys.append(keys_pb2.DiagnosisKey(report_type=ReportType.CONFIRMED_TEST, **fields))
    verdict = check_keys(request.keys, now=now, retention_days=DEFAULT_RETENTION_DAYS)
    reasons = {index: violation for index, violation in verdict.rejected}
    print("3. A health authority submits 6 keys; the server's validation says:")
    for index, (label, _) in enumerate(cases):
        if index in reasons:
            print(f"   {label:28} rejected: {reasons[index].field} {reasons[index].description}")
        else:
            key = dict(verdict.accepted)[index]
            embargo = key.publish_after() > now
            note = f"accepted, embargoed until {iso(key.publish_after())}" if embargo else "accepted"
            print(f"   {label:28} {note}")


def main() -> None:
    now = int(time.time())
    phone_day(now)
    gaen_vectors()
    validation(now)


if __name__ == "__main__":
    main()
