"""GAEN cryptography against Google's published test vectors (spec v1.2), and its own invariants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matcher import crypto
from tests.conftest import DATA

VECTORS = json.loads((DATA / "gaen_test_vectors_v1.2.json").read_text())
TEK = bytes.fromhex(VECTORS["tek"])
START = VECTORS["rolling_start_interval_number"]


def test_rpik_matches_the_published_vector():
    assert crypto.rpik(TEK).hex() == VECTORS["rpik"]


def test_aemk_matches_the_published_vector():
    assert crypto.aemk(TEK).hex() == VECTORS["aemk"]


def test_all_144_rpis_match_the_published_vectors():
    rpis = crypto.rpis(TEK, START, VECTORS["rolling_period"])
    assert len(VECTORS["intervals"]) == 144
    for vector in VECTORS["intervals"]:
        assert vector["en_interval_number"] == START + vector["i"]
        assert rpis[vector["i"]].tobytes().hex() == vector["rpi"], vector["i"]


def test_all_144_aems_match_the_published_vectors():
    aemk = crypto.aemk(TEK)
    metadata = bytes.fromhex(VECTORS["ble_metadata"])
    for vector in VECTORS["intervals"]:
        rpi = bytes.fromhex(vector["rpi"])
        assert crypto.encrypt_metadata(aemk, rpi, metadata).hex() == vector["aem"], vector["i"]


def test_decrypting_an_aem_gives_back_the_metadata_and_its_tx_power():
    aemk = crypto.aemk(TEK)
    vector = VECTORS["intervals"][17]
    metadata = crypto.decrypt_metadata(aemk, bytes.fromhex(vector["rpi"]), bytes.fromhex(vector["aem"]))
    assert metadata.hex() == VECTORS["ble_metadata"]
    assert crypto.tx_power_of(metadata).tolist() == [8]


def test_the_keystream_for_many_rpis_equals_one_aem_at_a_time():
    aemk = crypto.aemk(TEK)
    rpis = crypto.rpis(TEK, START, 144)
    metadata = bytes.fromhex(VECTORS["ble_metadata"])
    stream = crypto.metadata_keystream(aemk, rpis)[:, :4]
    together = np.bitwise_xor(stream, np.frombuffer(metadata, dtype=np.uint8))
    one_by_one = [crypto.encrypt_metadata(aemk, rpi.tobytes(), metadata) for rpi in rpis]
    assert [row.tobytes() for row in together] == one_by_one


def test_a_short_rolling_period_gives_the_prefix_of_the_day():
    assert np.array_equal(crypto.rpis(TEK, START, 7), crypto.rpis(TEK, START, 144)[:7])


def test_an_unaligned_start_gives_the_same_identifier_for_the_same_interval():
    assert crypto.rpis(TEK, START + 50, 3)[1].tobytes() == crypto.rpis(TEK, START, 144)[51].tobytes()
    assert crypto.rpi_at(TEK, START + 51) == crypto.rpis(TEK, START, 144)[51].tobytes()


def test_padded_data_has_the_gaen_layout():
    block = crypto.padded_data(np.array([0x01020304]))[0].tobytes()
    assert block == b"EN-RPI" + bytes(6) + bytes([4, 3, 2, 1])


def test_new_teks_are_16_random_bytes():
    keys = {crypto.new_tek() for _ in range(100)}
    assert len(keys) == 100 and all(len(k) == 16 for k in keys)


@pytest.mark.parametrize("length", [0, 15, 17, 32])
def test_a_key_of_the_wrong_length_is_refused(length):
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.rpik(bytes(length))


def test_ble_metadata_layout_round_trips_tx_power():
    assert crypto.ble_metadata(8) == bytes.fromhex(VECTORS["ble_metadata"])
    assert crypto.tx_power_of(crypto.ble_metadata(-20)).tolist() == [-20]
