"""One-time upload codes: unguessable, forgiving to type, stored only as hashes."""

from __future__ import annotations

import hashlib

import pytest

from matcher import codes


def test_codes_are_twelve_characters_without_look_alikes():
    issued = {codes.new_code() for _ in range(1000)}
    assert len(issued) == 1000
    assert all(len(c) == 12 and not set(c) & set("01OIL") for c in issued)


def test_a_code_is_recognised_however_it_is_typed():
    code = codes.new_code()
    typed = codes.display(code).lower()
    assert "-" in typed and codes.normalise(typed) == code and codes.normalise(f" {code} ") == code


def test_things_that_cannot_be_codes_are_recognised_as_such():
    assert codes.normalise("ABC") is None
    assert codes.normalise("0000-0000-0000") is None  # 0 is not in the alphabet
    assert codes.normalise("") is None


def test_the_stored_hash_does_not_reveal_the_code_and_cannot_be_searched_without_the_secret():
    code, secret, other = codes.new_code(), bytes(range(32)), bytes(32)
    stored = codes.code_hash(code, secret)
    assert code.encode() not in stored and len(stored) == 32
    assert stored == codes.code_hash(code, secret) != codes.code_hash(code, other)
    # An unkeyed hash, which anyone with the database could compute for every code, is not what is stored.
    assert stored != hashlib.sha256(b"exposure.v1.code\x00" + code.encode()).digest()


def test_the_code_secret_file_is_refused_in_one_line_naming_it_when_missing_or_malformed(tmp_path):
    with pytest.raises(ValueError, match=r"codes.key is missing"):
        codes.load_secret(tmp_path / "codes.key")
    (tmp_path / "codes.key").write_text("not hex\n")
    with pytest.raises(ValueError, match="must be 32 bytes written as hex"):
        codes.load_secret(tmp_path / "codes.key")
    (tmp_path / "codes.key").write_bytes(codes.new_secret_file_content())
    assert len(codes.load_secret(tmp_path / "codes.key")) == codes.SECRET_BYTES
