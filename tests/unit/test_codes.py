"""One-time upload codes: unguessable, forgiving to type, stored only as hashes."""

from __future__ import annotations

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


def test_the_stored_hash_does_not_reveal_the_code():
    code = codes.new_code()
    assert code.encode() not in codes.code_hash(code) and len(codes.code_hash(code)) == 32
