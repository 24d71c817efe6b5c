"""Signed envelopes: how the service signs what it publishes, and how a phone opens it.

A batch header, an exposure configuration and the static mirror's index each travel in an envelope of the same
shape (docs/spec.md): the exact serialised bytes of the message, the ECDSA signature over ``domain || bytes``
(matcher/signing.py), and the id and version of the signing key. Sealing serialises once; opening verifies the
bytes first, then parses them, and never re-serialises. One sealing and one opening serve all three kinds, and
every refusal is a ``Rejected``, whose message says why, for a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError

from exposure.v1 import batch_pb2, config_pb2, mirror_pb2

from .signing import (
    DOMAIN_BATCH_HEADER,
    DOMAIN_EXPOSURE_CONFIG,
    DOMAIN_MIRROR_INDEX,
    SignatureError,
    SigningKey,
    TrustedKeys,
)

# The signed message and its envelope: one of the three kinds below (each kind's fields are checked by mypy).
M = TypeVar("M", batch_pb2.BatchHeader, config_pb2.ExposureConfig, mirror_pb2.MirrorIndex)
E = TypeVar("E", batch_pb2.SignedBatchHeader, config_pb2.SignedExposureConfig, mirror_pb2.SignedMirrorIndex)


class Rejected(ValueError):
    """Something signed that must not be used: a signature that does not verify with a pinned key, signed bytes
    that are not what they claim, or content its own checks refuse. The message says why, for a person."""


@dataclass(frozen=True)
class Kind(Generic[M, E]):
    """One kind of signed message: its envelope and the envelope's payload field, its domain, and the signing key
    the message names itself, if it does (then that must be the key the envelope presents)."""

    what: str  # in messages: "batch header refused: ..."
    message: type[M]
    envelope: type[E]
    field: str
    domain: bytes
    named_key: Callable[[M], tuple[str, str]] | None  # (key id, key version) the message names


def _named_key(message: batch_pb2.BatchHeader | mirror_pb2.MirrorIndex) -> tuple[str, str]:
    return message.signing_key_id, message.signing_key_version


BATCH_HEADER = Kind(
    "batch header", batch_pb2.BatchHeader, batch_pb2.SignedBatchHeader, "header", DOMAIN_BATCH_HEADER, _named_key
)
EXPOSURE_CONFIG = Kind(
    "exposure configuration",
    config_pb2.ExposureConfig,
    config_pb2.SignedExposureConfig,
    "config",
    DOMAIN_EXPOSURE_CONFIG,
    None,
)
MIRROR_INDEX = Kind(
    "mirror index", mirror_pb2.MirrorIndex, mirror_pb2.SignedMirrorIndex, "index", DOMAIN_MIRROR_INDEX, _named_key
)


def seal(kind: Kind[M, E], message: M, key: SigningKey) -> E:
    """The envelope of ``message``: its bytes, serialised once (deterministically), and ``key``'s signature."""
    payload = message.SerializeToString(deterministic=True)
    fields: dict[str, Any] = {kind.field: payload}
    return kind.envelope(**fields, signature=key.sign(kind.domain, payload), key_id=key.key_id, key_version=key.version)


def open_envelope(kind: Kind[M, E], signed: E, trusted: TrustedKeys, *, error: type[Rejected] = Rejected) -> M:
    """The message in ``signed`` once its signature verifies with the pinned key it names: the bytes verified,
    then parsed. Raises ``error`` (a Rejected) otherwise."""
    payload: bytes = getattr(signed, kind.field)
    key_id: str = signed.key_id
    key_version: str = signed.key_version
    try:
        trusted.verify(kind.domain, payload, signed.signature, key_id)
    except SignatureError as exc:
        raise error(f"{kind.what} refused: {exc}") from None
    try:
        message = kind.message.FromString(payload)
    except DecodeError:
        name = kind.message.DESCRIPTOR.name
        article = "an" if name[0] in "AEIOU" else "a"
        raise error(f"{kind.what} refused: its signed bytes are not {article} {name}") from None
    if kind.named_key is not None:
        named = kind.named_key(message)
        if named != (key_id, key_version):
            raise error(
                f"{kind.what} refused: signed as key {named[0]}/{named[1]} but presented as {key_id}/{key_version}"
            )
    return message
