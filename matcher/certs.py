"""`matcher certs`: a development PKI, so that the demo and the tests run real TLS and real mutual TLS.

It writes one folder per role (matcher/layout.py has the list): the server's, the phones', one per authority,
and the two CAs'. Running it again on the same folder keeps what exists and adds the authorities that are new,
each pinned by its certificate's SHA-256 fingerprint in the server's authorities file. Production deployments
use their own CAs and an HSM-held signing key; docs/operations.md says how.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import codes, layout
from .authz import PINS, fingerprint
from .model import PUBLISHABLE_REPORT_TYPES, ReportType
from .private_files import private_folder, write_private
from .signing import generate_signing_key, write_signing_key
from .validation import check_region

AUTHORITY_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DEFAULT_SUBMISSIONS_PER_MINUTE = 600
CERT_DAYS = 365


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(
    name: str = "exposure-matcher development CA", *, not_before: dt.datetime | None = None, days: int = CERT_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    client: bool,
    not_before: dt.datetime | None = None,
    days: int = CERT_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate: a client one (an authority) or a server one for localhost, 127.0.0.1 and ::1."""
    key = new_key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if not client:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def write_pair(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(folder / f"{stem}.key", key)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def check_certificate(pem: bytes, path: Path) -> x509.Certificate:
    """A PEM certificate read from ``path``, or ValueError naming the file (cryptography's own message names none)."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ValueError(f"{path}: not a certificate in PEM form") from None


def check_private_key(pem: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
    """A PEM ECDSA private key read from ``path``, or ValueError naming the file."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{path}: not an unencrypted private key in PEM form") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an ECDSA private key")
    return key


def _load_ca(folder: Path, stem: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = check_certificate((folder / f"{stem}.pem").read_bytes(), folder / f"{stem}.pem")
    key = check_private_key((folder / f"{stem}.key").read_bytes(), folder / f"{stem}.key")
    return cert, key


def _ca(folder: Path, stem: str, name: str, written: list[str]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA ``stem`` in ``folder``, made if missing."""
    if (folder / f"{stem}.pem").exists() and (folder / f"{stem}.key").exists():
        return _load_ca(folder, stem)
    cert, key = new_ca(name)
    write_pair(folder, stem, cert, key)
    written += [f"{folder.name}/{stem}.pem", f"{folder.name}/{stem}.key"]
    return cert, key


def _copy_public(source: Path, target: Path, written: list[str]) -> None:
    """A public file (a certificate, a public key) copied where another party reads it, if not there yet."""
    if not target.exists():
        target.write_bytes(source.read_bytes())
        written.append(f"{target.parent.name}/{target.name}")


def _read_policies(path: Path) -> dict[str, Any]:
    try:
        policies = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: not an authorities file (JSON)") from None
    if not isinstance(policies, dict) or not isinstance(policies.get("authorities"), dict):
        raise ValueError(f'{path}: not an authorities file (an object with "authorities")')
    return policies


def default_policy(region: str) -> dict[str, Any]:
    """What a new authority may do: submit confirmed diagnoses for its region and issue codes. SELF_REPORT and
    changing the (global) exposure configuration are off: an operator grants them per authority, in the file."""
    return {
        "regions": [region],
        "report_types": sorted(t.name for t in PUBLISHABLE_REPORT_TYPES if t != ReportType.SELF_REPORT),
        "may_set_config": False,
        "submissions_per_minute": DEFAULT_SUBMISSIONS_PER_MINUTE,
    }


def write_dev_pki(out: Path, authorities: Sequence[str], *, region: str = "VN") -> tuple[list[str], dict[str, str]]:
    """Creates or extends the development PKI in ``out``: the files written (relative to ``out``), and the SHA-256
    fingerprint of each named authority's certificate (what the authorities file pins).

    Everything is checked before anything is written: a region or name the server would refuse writes nothing."""
    problems = check_region(region) or ([] if region else check_region("?"))
    if problems:
        raise ValueError(f"--region {problems[0].description}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    if (out / "ca.key").exists() or (out / "server.key").exists():
        raise ValueError(
            f"--out {out}: holds the old single-folder layout (CA key beside the server's): "
            "make a new folder with `matcher certs --out NEW`"
        )
    for name in authorities:
        if not AUTHORITY_NAME.fullmatch(name):
            raise ValueError(f"authority name {name!r}: use lower-case letters, digits and '-' (at most 63)")
    private_folder(out)  # it holds private keys
    ca, server, phone = out / layout.CA, out / layout.SERVER, out / layout.PHONE
    for folder in (ca, server):
        private_folder(folder)
    phone.mkdir(exist_ok=True)  # public material only
    written: list[str] = []
    server_ca = _ca(ca, layout.SERVER_CA, "exposure-matcher development server CA", written)
    authority_ca = _ca(ca, layout.AUTHORITY_CA, "exposure-matcher development authority CA", written)
    if not (server / "server.pem").exists():
        write_pair(server, "server", *issue(*server_ca, "localhost", client=False))
        written += ["server/server.pem", "server/server.key"]
    _copy_public(ca / layout.AUTHORITY_CA_FILE, server / layout.AUTHORITY_CA_FILE, written)
    if not (server / codes.SECRET_FILE).exists():
        write_private(server / codes.SECRET_FILE, codes.new_secret_file_content())
        written.append(f"server/{codes.SECRET_FILE}")
    if not (server / "signing.key").exists():
        write_signing_key(generate_signing_key(), server / "signing.key", server / "signing.pub.pem")
        written += ["server/signing.key", "server/signing.pub.pem"]
    _copy_public(ca / f"{layout.SERVER_CA}.pem", phone / layout.TRUSTED_CA, written)
    _copy_public(server / "signing.pub.pem", phone / "signing.pub.pem", written)
    fingerprints = {}
    for name in authorities:
        folder = out / layout.authority_folder(name)
        private_folder(folder)
        if not (folder / f"{name}.pem").exists():
            write_pair(folder, name, *issue(*authority_ca, name, client=True))
            written += [f"{folder.name}/{name}.pem", f"{folder.name}/{name}.key"]
        _copy_public(ca / f"{layout.SERVER_CA}.pem", folder / layout.TRUSTED_CA, written)
        pem = (folder / f"{name}.pem").read_bytes()
        fingerprints[name] = fingerprint(check_certificate(pem, folder / f"{name}.pem"))
    policies_path = server / layout.AUTHORITIES_FILE
    policies = _read_policies(policies_path) if policies_path.exists() else {"authorities": {}}
    added = [name for name in authorities if name not in policies["authorities"]]
    if added or not policies_path.exists():
        for name in added:
            policies["authorities"][name] = {**default_policy(region), PINS: [fingerprints[name]]}
        policies_path.write_text(json.dumps(policies, indent=2, sort_keys=True) + "\n")
        written.append(f"server/{layout.AUTHORITIES_FILE}")
    return written, fingerprints
