"""Signatures over published objects: domain separation, pinned keys, tampering."""

from __future__ import annotations

import pytest

from matcher.signing import (
    DOMAIN_BATCH_HEADER,
    DOMAIN_EXPOSURE_CONFIG,
    SignatureError,
    TrustedKeys,
    generate_signing_key,
    load_signing_key,
    load_verifying_key,
    write_signing_key,
)


def test_a_signature_verifies_with_the_pinned_key():
    key = generate_signing_key()
    signature = key.sign(DOMAIN_BATCH_HEADER, b"payload")
    assert TrustedKeys([key.verifying_key()]).verify(DOMAIN_BATCH_HEADER, b"payload", signature, key.key_id)


def test_a_signature_for_one_kind_of_object_is_refused_for_another():
    key = generate_signing_key()
    signature = key.sign(DOMAIN_BATCH_HEADER, b"payload")
    with pytest.raises(SignatureError):
        key.verifying_key().verify(DOMAIN_EXPOSURE_CONFIG, b"payload", signature)


@pytest.mark.parametrize("bit", [0, 7, 8 * 3 + 1, 8 * 6 + 7])
def test_one_flipped_bit_in_the_payload_is_refused(bit):
    key = generate_signing_key()
    payload = bytearray(b"payload")
    signature = key.sign(DOMAIN_BATCH_HEADER, bytes(payload))
    payload[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        key.verifying_key().verify(DOMAIN_BATCH_HEADER, bytes(payload), signature)


def test_a_key_that_is_not_pinned_is_refused_even_with_a_valid_signature():
    pinned, other = generate_signing_key(), generate_signing_key()
    signature = other.sign(DOMAIN_BATCH_HEADER, b"payload")
    with pytest.raises(SignatureError, match="not one of the pinned keys"):
        TrustedKeys([pinned.verifying_key()]).verify(DOMAIN_BATCH_HEADER, b"payload", signature, other.key_id)


def test_key_ids_are_fingerprints_and_survive_a_round_trip_through_pem(tmp_path):
    key = generate_signing_key()
    write_signing_key(key, tmp_path / "signing.key", tmp_path / "signing.pub.pem")
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    assert load_signing_key(tmp_path / "signing.key").key_id == key.key_id
    assert load_verifying_key(tmp_path / "signing.pub.pem").key_id == key.key_id
    assert len(key.key_id) == 16 and key.key_id != generate_signing_key().key_id
