"""A stand-in for the server's authority listener, for testing the client's network part before and apart from
the real server: real gRPC over real mutual TLS, the real validation (matcher.validation), error mapping
(matcher.errors) and signing (matcher.signing), with an in-memory record instead of storage. It can be told
to fail the next calls with a given status, which the real server cannot be made to do on demand.

Its behaviour is the contract of proto/exposure/v1/authority.proto: the authority is the client certificate's
common name; SubmitKeys is idempotent on (authority, submission_id) and answers a repeat with replayed=true,
the same id with other content with ALREADY_EXISTS; partial success; nothing stored when no key is valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from exposure.v1 import authority_pb2, authority_pb2_grpc, config_pb2, keys_pb2
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from matcher.errors import AlreadyExists, InvalidArgument, PermissionDenied, grpc_method
from matcher.exposure_config import check_config
from matcher.signing import DOMAIN_EXPOSURE_CONFIG, generate_signing_key
from matcher.validation import submission_from_request


# --- a development CA, as `matcher certs` makes one ---------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, issuer_key: ec.EllipticCurvePrivateKey,
    *, server: bool = False,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_dir(folder: Path, authorities: list[str]) -> Path:
    """ca.pem, server.pem/.key and NAME.pem/.key per authority, as `matcher certs` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("exposure-matcher test CA", ca_key, None, ca_key)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, server in [("server", True), *((a, False) for a in authorities)]:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate("localhost" if server else name, key, ca, ca_key, server=server)
        (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(_pem_key(key))
    return folder


# --- the servicer ------------------------------------------------------------------------------------------


def status(code: grpc.StatusCode, message: str, retry_after: float | None = None) -> grpc.Status:
    """A failure to inject, optionally with google.rpc.RetryInfo."""
    details = []
    if retry_after is not None:
        packed = any_pb2.Any()
        seconds = int(retry_after)
        delay = duration_pb2.Duration(seconds=seconds, nanos=int((retry_after - seconds) * 1e9))
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))


@dataclass
class AuthorityPeer(authority_pb2_grpc.AuthorityServicer):
    now: int
    allowed: frozenset[str] = frozenset({"vn-moh"})
    default_region: str = "VN"
    failures: list[grpc.Status] = field(default_factory=list)
    calls: list[authority_pb2.SubmitKeysRequest] = field(default_factory=list)
    answers: dict[tuple[str, str], tuple[bytes, authority_pb2.SubmitKeysResponse]] = field(default_factory=dict)
    stored: dict[bytes, keys_pb2.DiagnosisKey] = field(default_factory=dict)
    config_version: int = 0

    def _authority(self, context: grpc.ServicerContext) -> str:
        names = context.auth_context().get("x509_common_name", [])
        if not names or names[0].decode() not in self.allowed:
            raise PermissionDenied("this certificate's authority may not submit keys")
        return names[0].decode()

    def _maybe_fail(self, context: grpc.ServicerContext) -> None:
        # Outside grpc_method: context.abort raises a bare Exception, which grpc_method would turn into INTERNAL.
        if self.failures:
            context.abort_with_status(self.failures.pop(0))

    def SubmitKeys(self, request, context):  # noqa: N802 - the proto's name
        self.calls.append(request)
        self._maybe_fail(context)
        return self._submit_keys(request, context)

    def IssueCode(self, request, context):  # noqa: N802
        self._maybe_fail(context)
        return self._issue_code(request, context)

    def SetExposureConfig(self, request, context):  # noqa: N802
        self._maybe_fail(context)
        return self._set_exposure_config(request, context)

    @grpc_method
    def _submit_keys(self, request, context):
        authority = self._authority(context)
        submission, verdict = submission_from_request(
            request, authority=authority, default_region=self.default_region, now=self.now, retention_days=14
        )
        earlier = self.answers.get((authority, request.submission_id))
        if earlier is not None:
            if earlier[0] != submission.digest:
                raise AlreadyExists(f"submission {request.submission_id} was made with other content")
            replay = authority_pb2.SubmitKeysResponse()
            replay.CopyFrom(earlier[1])
            replay.replayed = True
            return replay
        response = authority_pb2.SubmitKeysResponse(
            accepted=len(submission.keys),
            embargoed=sum(key.publish_after() > self.now for key in submission.keys),
            rejected=[
                keys_pb2.KeyRejection(index=index, field=v.field, reason=v.description) for index, v in verdict.rejected
            ],
        )
        for key in submission.keys:
            self.stored[key.fingerprint()] = key
        self.answers[(authority, request.submission_id)] = (submission.digest, response)
        return response

    @grpc_method
    def _issue_code(self, request, context):
        self._authority(context)
        if request.ttl_seconds > 86400:
            raise InvalidArgument("ttl_seconds is too long")
        return authority_pb2.IssueCodeResponse(code="K7P2QX9M", expires_at=self.now + (request.ttl_seconds or 3600))

    @grpc_method
    def _set_exposure_config(self, request, context):
        self._authority(context)
        problems = check_config(request.config)
        if problems:
            raise InvalidArgument("the configuration is invalid", problems)
        self.config_version += 1
        config = config_pb2.ExposureConfig()
        config.CopyFrom(request.config)
        config.version, config.issued_at = self.config_version, self.now
        payload = config.SerializeToString()
        key = generate_signing_key()
        signed = config_pb2.SignedExposureConfig(
            config=payload, signature=key.sign(DOMAIN_EXPOSURE_CONFIG, payload), key_id=key.key_id, key_version="v1"
        )
        return authority_pb2.SetExposureConfigResponse(signed=signed)


@contextmanager
def serve(peer: AuthorityPeer, tls_dir: Path) -> Iterator[str]:
    """Runs ``peer`` on a free loopback port with mutual TLS (client certificate required); yields HOST:PORT."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    authority_pb2_grpc.add_AuthorityServicer_to_server(peer, server)
    credentials = grpc.ssl_server_credentials(
        [((tls_dir / "server.key").read_bytes(), (tls_dir / "server.pem").read_bytes())],
        root_certificates=(tls_dir / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
