"""`matcher certs`: a development PKI, so that the demo and the tests run real TLS and real mutual TLS.

Writes into one folder (the ``--tls-dir`` every command reads):

    ca.pem, ca.key            the development CA (kept so that more authorities can be added later)
    server.pem, server.key    the server's certificate for localhost, 127.0.0.1 and ::1
    NAME.pem, NAME.key        one client certificate per health authority; its common name is the authority
    signing.key, signing.pub.pem   the ECDSA P-256 key pair that signs batches and configurations
    authorities.json          which authorities the server accepts and what each may do

Running it again on the same folder keeps what exists and adds the authorities that are new. Production
deployments use their own CA and an HSM-held signing key; docs/operations.md says how.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import codes
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


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = check_certificate((folder / "ca.pem").read_bytes(), folder / "ca.pem")
    key = check_private_key((folder / "ca.key").read_bytes(), folder / "ca.key")
    return cert, key


def _read_policies(path: Path) -> dict:
    try:
        policies = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: not an authorities file (JSON)") from None
    if not isinstance(policies, dict) or not isinstance(policies.get("authorities"), dict):
        raise ValueError(f'{path}: not an authorities file (an object with "authorities")')
    return policies


def default_policy(region: str) -> dict:
    """What a new authority may do: submit confirmed diagnoses for its region and issue codes. SELF_REPORT and
    changing the (global) exposure configuration are off: an operator grants them per authority, in the file."""
    return {
        "regions": [region],
        "report_types": sorted(t.name for t in PUBLISHABLE_REPORT_TYPES if t != ReportType.SELF_REPORT),
        "may_set_config": False,
        "submissions_per_minute": DEFAULT_SUBMISSIONS_PER_MINUTE,
    }


def write_dev_pki(out: Path, authorities: Sequence[str], *, region: str = "VN") -> list[str]:
    """Creates or extends the development PKI in ``out``; returns the names of the files written.

    Everything is checked before anything is written: a region or name the server would refuse writes nothing."""
    problems = check_region(region) or ([] if region else check_region("?"))
    if problems:
        raise ValueError(f"--region {problems[0].description}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    for name in authorities:
        if not AUTHORITY_NAME.fullmatch(name):
            raise ValueError(f"authority name {name!r}: use lower-case letters, digits and '-' (at most 63)")
        if name in ("ca", "server", "signing"):
            raise ValueError(f"authority name {name!r} is reserved for the PKI's own files")
    private_folder(out)  # it holds private keys
    written: list[str] = []
    if (out / "ca.pem").exists() and (out / "ca.key").exists():
        ca_cert, ca_key = _load_ca(out)
    else:
        ca_cert, ca_key = new_ca()
        write_pair(out, "ca", ca_cert, ca_key)
        written += ["ca.pem", "ca.key"]
    if not (out / "server.pem").exists():
        write_pair(out, "server", *issue(ca_cert, ca_key, "localhost", client=False))
        written += ["server.pem", "server.key"]
    for name in authorities:
        if not (out / f"{name}.pem").exists():
            write_pair(out, name, *issue(ca_cert, ca_key, name, client=True))
            written += [f"{name}.pem", f"{name}.key"]
    if not (out / codes.SECRET_FILE).exists():
        write_private(out / codes.SECRET_FILE, codes.new_secret_file_content())
        written.append(codes.SECRET_FILE)
    if not (out / "signing.key").exists():
        write_signing_key(generate_signing_key(), out / "signing.key", out / "signing.pub.pem")
        written += ["signing.key", "signing.pub.pem"]
    policies_path = out / "authorities.json"
    policies = _read_policies(policies_path) if policies_path.exists() else {"authorities": {}}
    added = [name for name in authorities if name not in policies["authorities"]]
    if added or not policies_path.exists():
        for name in added:
            policies["authorities"][name] = default_policy(region)
        policies_path.write_text(json.dumps(policies, indent=2, sort_keys=True) + "\n")
        written.append("authorities.json")
    return written
