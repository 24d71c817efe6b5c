"""Padding of uploads and their answers to fixed sizes, so that their length on the wire tells nothing.

TLS hides what a phone sends, not how much: an upload's length would tell how many keys it carries, and a decoy
(docs/privacy.md, "Decoy shares") would stand out if it were shorter than a share. So every SubmitWithCode request
and answer carries a ``padding`` field of zero bytes that brings it to a size in steps: at least ``floor`` bytes,
then whole ``step``s more for a message too large for it. Phones pad requests, the server pads answers; both use
the sizes here and nothing else.

The padding field is at least MIN_PADDING bytes long, so its length prefix is always two bytes (a varint of 128 to
16,383): that way every size in reach is hit exactly, where a one-byte prefix would leave a gap at 130.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from exposure.v1 import sharing_pb2

MIN_PADDING = 128
_PREFIX = 3  # the field's tag (its number is under 16: one byte) and a two-byte length


@dataclass(frozen=True)
class Sizes:
    floor: int
    step: int

    def target(self, unpadded: int) -> int:
        """The padded size of a message whose other fields take ``unpadded`` bytes."""
        needed = unpadded + _PREFIX + MIN_PADDING
        if needed <= self.floor:
            return self.floor
        return self.floor + -(-(needed - self.floor) // self.step) * self.step


# A share of up to MAX_KEYS_PER_SUBMISSION keys with every field a phone may set (contact intervals included: at most
# 55 bytes a key) and a code as typed fits 2048 bytes: every share a phone makes, and every decoy, is 2048 bytes
# (tests/unit/test_padding.py checks it).
REQUEST = Sizes(floor=2048, step=1024)
# An answer is a few bytes unless keys were refused, each with a reason; a phone's own keys are not, in practice.
RESPONSE = Sizes(floor=512, step=512)


# The messages that carry a padding field.
Padded = TypeVar("Padded", sharing_pb2.SubmitWithCodeRequest, sharing_pb2.SubmitWithCodeResponse)


def padded(message: Padded, sizes: Sizes) -> Padded:
    """``message`` with its ``padding`` field set so that it serialises to exactly ``sizes.target`` of the rest;
    returned for convenience (it is changed in place)."""
    message.ClearField("padding")
    unpadded = message.ByteSize()
    target = sizes.target(unpadded)
    while True:
        room = target - unpadded - 1  # after the field's one-byte tag: its length prefix and its bytes
        for prefix in (2, 3):  # a length of 128..16,383 takes two bytes, up to 2,097,151 three
            length = room - prefix
            if (1 << 7 * (prefix - 1)) <= length < (1 << 7 * prefix):
                message.padding = bytes(length)
                return message
        target += sizes.step  # 16,386 bytes of room cannot be filled exactly: the next size can
