"""ECDSA P-256 signatures over what the service publishes: batch headers, exposure configurations and the static
mirror's index.

Signature input: ``domain || payload``, where ``payload`` is the exact serialised bytes that travel on the wire
(a BatchHeader or an ExposureConfig) and ``domain`` is a fixed, NUL-terminated label that keeps a signature
over one kind of object from being valid for another. The signature is ECDSA with SHA-256 on P-256, DER
encoded, the algorithm GAEN export files use (OID 1.2.840.10045.4.3.2).

A key's id is the first 8 bytes, in hex, of the SHA-256 of its public key in DER SubjectPublicKeyInfo form, so
an id can never name two keys; the version ("v1", "v2", ...) is the operator's label for rotation. Phones pin
one or more public keys and pick the one whose id the signed object names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .private_files import write_private

SIGNATURE_ALGORITHM_OID = "1.2.840.10045.4.3.2"
DOMAIN_BATCH_HEADER = b"exposure.v1.BatchHeader\x00"
DOMAIN_EXPOSURE_CONFIG = b"exposure.v1.ExposureConfig\x00"
DOMAIN_MIRROR_INDEX = b"exposure.v1.MirrorIndex\x00"
DEFAULT_KEY_VERSION = "v1"


class SignatureError(Exception):
    """A signature that does not verify, or names a key that is not trusted."""


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:8].hex()


@dataclass(frozen=True)
class SigningKey:
    """The private key the server signs with, and the id and version it signs under."""

    private_key: ec.EllipticCurvePrivateKey
    version: str = DEFAULT_KEY_VERSION

    @property
    def key_id(self) -> str:
        return key_id_of(self.private_key.public_key())

    def sign(self, domain: bytes, payload: bytes) -> bytes:
        return self.private_key.sign(domain + payload, ec.ECDSA(hashes.SHA256()))

    def verifying_key(self) -> VerifyingKey:
        return VerifyingKey(self.private_key.public_key(), self.version)


@dataclass(frozen=True)
class VerifyingKey:
    """A pinned public key."""

    public_key: ec.EllipticCurvePublicKey
    version: str = DEFAULT_KEY_VERSION

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def verify(self, domain: bytes, payload: bytes, signature: bytes) -> None:
        try:
            self.public_key.verify(signature, domain + payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureError(f"the signature does not verify with key {self.key_id}") from None


class TrustedKeys:
    """The public keys a phone (or ``matcher inspect``) accepts signatures from, by key id."""

    def __init__(self, keys: list[VerifyingKey]) -> None:
        self._by_id = {key.key_id: key for key in keys}

    def verify(self, domain: bytes, payload: bytes, signature: bytes, key_id: str) -> VerifyingKey:
        """Verifies ``signature`` with the pinned key named ``key_id``; returns that key."""
        key = self._by_id.get(key_id)
        if key is None:
            raise SignatureError(f"signed with key {key_id!r}, which is not one of the pinned keys")
        key.verify(domain, payload, signature)
        return key

    def __len__(self) -> int:
        return len(self._by_id)


def generate_signing_key(version: str = DEFAULT_KEY_VERSION) -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), version)


def write_signing_key(key: SigningKey, private_path: Path, public_path: Path) -> None:
    """PEM files: the private key readable by its owner only, the public key for phones to pin."""
    private_pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(private_path, private_pem)
    public_path.write_bytes(public_pem(key.private_key.public_key()))


def public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_signing_key(path: Path, version: str = DEFAULT_KEY_VERSION) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # cryptography's messages name no file
        raise ValueError(f"{path}: not an unencrypted ECDSA P-256 private key in PEM form") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: the signing key must be an ECDSA P-256 private key")
    return SigningKey(key, version)


def load_verifying_key(path: Path, version: str = DEFAULT_KEY_VERSION) -> VerifyingKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{path}: not an ECDSA P-256 public key in PEM form") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: a pinned key must be an ECDSA P-256 public key")
    return VerifyingKey(key, version)
