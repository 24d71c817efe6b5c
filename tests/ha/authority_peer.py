"""A stand-in for the server's authority listener, for testing the client's network part before and apart from
the real server: real gRPC over real mutual TLS, the real validation (matcher.validation), error mapping
(matcher.errors) and signing (matcher.signing), with an in-memory record instead of storage. It can be told
to fail the next calls with a given status, which the real server cannot be made to do on demand.

Certificates come from matcher.certs.write_dev_pki (what `matcher certs` writes). Its behaviour is the contract
of proto/exposure/v1/authority.proto: the authority is the client certificate's common name; SubmitKeys is
idempotent on (authority, submission_id) and answers a repeat with replayed=true, the same id with other
content with ALREADY_EXISTS; partial success; nothing stored when no key is valid. Failures to inject are made
with matcher.errors.to_status, as the server makes them (RetryInfo included).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from exposure.v1 import authority_pb2, authority_pb2_grpc, config_pb2, distribution_pb2_grpc, keys_pb2
from matcher.errors import AlreadyExists, InvalidArgument, PermissionDenied, grpc_method
from matcher.exposure_config import check_config, default_config
from matcher.signing import DOMAIN_EXPOSURE_CONFIG, generate_signing_key
from matcher.validation import code_request_from, submission_from_request

# --- the servicer ------------------------------------------------------------------------------------------


@dataclass
class AuthorityPeer(authority_pb2_grpc.AuthorityServicer):
    now: int
    allowed: frozenset[str] = frozenset({"vn-moh"})
    default_region: str = "VN"
    failures: list[grpc.Status] = field(default_factory=list)
    calls: list[authority_pb2.SubmitKeysRequest] = field(default_factory=list)
    codes: list[authority_pb2.IssueCodeRequest] = field(default_factory=list)
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

    def SubmitKeys(self, request, context):
        self.calls.append(request)
        self._maybe_fail(context)
        return self._submit_keys(request, context)

    def IssueCode(self, request, context):
        self._maybe_fail(context)
        return self._issue_code(request, context)

    def SetExposureConfig(self, request, context):
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
        wanted = code_request_from(request, now=self.now, retention_days=14, default_ttl=3600)
        self.codes.append(request)
        return authority_pb2.IssueCodeResponse(code="K7P2QX9M", expires_at=self.now + wanted.ttl_seconds)

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
        self.signed_config = signed
        return authority_pb2.SetExposureConfigResponse(signed=signed)


class ConfigPeer(distribution_pb2_grpc.DistributionServicer):
    """The one Distribution method the authority client calls: the configuration in force (after a push, to say
    how many accepted keys will be published). Unsigned before any set-config: the client does not verify it."""

    def __init__(self, peer: AuthorityPeer) -> None:
        self.peer = peer

    def GetExposureConfig(self, request, context):
        signed = getattr(self.peer, "signed_config", None)
        return signed or config_pb2.SignedExposureConfig(config=default_config().SerializeToString())


@contextmanager
def serve(peer: AuthorityPeer, tls_dir: Path) -> Iterator[str]:
    """Runs ``peer`` on a free loopback port with mutual TLS (client certificate required); yields HOST:PORT."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    authority_pb2_grpc.add_AuthorityServicer_to_server(peer, server)
    distribution_pb2_grpc.add_DistributionServicer_to_server(ConfigPeer(peer), server)
    credentials = grpc.ssl_server_credentials(
        [((tls_dir / "server" / "server.key").read_bytes(), (tls_dir / "server" / "server.pem").read_bytes())],
        root_certificates=(tls_dir / "server" / "authority-ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
