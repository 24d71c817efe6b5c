"""The gRPC servicers: thin. Find out who calls, validate, call the store, build the reply.

Status codes are not decided here: servicers raise matcher.errors exceptions (validation and the store raise
most of them) and the @grpc_method decorator maps them. Logs carry counts, authority names and sequence numbers,
never key bytes, identifiers or client addresses.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc

from exposure.v1 import (
    authority_pb2,
    authority_pb2_grpc,
    config_pb2,
    distribution_pb2,
    keys_pb2,
    sharing_pb2,
    sharing_pb2_grpc,
)

from . import codes
from .authz import Authorities
from .clock import Clock
from .config import Config
from .distribution import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, BatchCache, preserialised
from .errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Violation,
    grpc_method,
)
from .exposure_config import config_in_force, sign_config, validate_config
from .metrics import REGISTRY
from .model import DiagnosisKey, ReportType, Submission
from .padding import RESPONSE, padded
from .ratelimit import TokenBuckets
from .share_timing import ShareTiming
from .signing import SigningKey
from .store import CodeRecord, Store
from .time_limits import TimeLimits
from .validation import (
    Diagnosis,
    KeyVerdict,
    check_keys,
    code_of_upload,
    code_request_from,
    page_size_of,
    require_some_accepted,
    submission_digest,
    submission_from_request,
    venue_warning_from_request,
)

log = logging.getLogger(__name__)

# The reply of a key upload: authority_pb2.SubmitKeysResponse or sharing_pb2.SubmitWithCodeResponse.
Reply = TypeVar("Reply", authority_pb2.SubmitKeysResponse, sharing_pb2.SubmitWithCodeResponse)

# The submitter of record for uploads with a code: the code, not the phone, is what is known about them.
CODE_UPLOADS = "code-upload"


@dataclass(frozen=True)
class Services:
    """What the servicers share."""

    store: Store
    authorities: Authorities
    signing_key: SigningKey
    code_secret: bytes  # what upload codes are stored under (codes.code_hash)
    clock: Clock
    config: Config


def _rejections(verdict: KeyVerdict) -> list[keys_pb2.KeyRejection]:
    return [keys_pb2.KeyRejection(index=i, field=v.field, reason=v.description) for i, v in verdict.rejected]


def _embargoed(keys: tuple[DiagnosisKey, ...], now: int) -> int:
    return sum(1 for key in keys if key.publish_after() > now)


@dataclass(frozen=True)
class StoredUpload(Generic[Reply]):
    """What storing an upload of keys answers: the reply, and whether it is the stored reply of an earlier upload
    (nothing new was stored, nothing is counted); else how many keys were new and how many were rejected."""

    reply: Reply
    replayed: bool
    new: int = 0
    rejected: int = 0


def store_upload(
    s: Services,
    submission: Submission,
    verdict: KeyVerdict,
    reply_type: type[Reply],
    now: int,
    code_hash: bytes | None = None,
) -> StoredUpload[Reply]:
    """The tail both key uploads share (SubmitKeys and SubmitWithCode): the reply is stored with the keys, in the
    same write, so that a retried upload gets the first reply again (exactly-once step 0, de-duplicate, in
    matcher/publisher.py); the keys are counted once, when they are new."""
    reply = reply_type(
        accepted=len(submission.keys), rejected=_rejections(verdict), embargoed=_embargoed(submission.keys, now)
    )
    result = s.store.submit(
        submission,
        response=reply.SerializeToString(),
        now=now,
        retention_seconds=s.config.retention_seconds,
        code_hash=code_hash,
    )
    if result.replayed is not None:
        return StoredUpload(reply_type.FromString(result.replayed), replayed=True)
    rejected = len({index for index, _ in verdict.rejected})
    REGISTRY.inc("matcher_keys_accepted_total", len(submission.keys))
    REGISTRY.inc("matcher_keys_rejected_total", rejected)
    REGISTRY.inc("matcher_keys_stored_total", result.stored)
    return StoredUpload(reply, replayed=False, new=result.stored, rejected=rejected)


class AuthorityServicer(authority_pb2_grpc.AuthorityServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @grpc_method
    def SubmitKeys(
        self, request: authority_pb2.SubmitKeysRequest, context: grpc.ServicerContext
    ) -> authority_pb2.SubmitKeysResponse:
        policy = self.s.authorities.of(context)
        policy.require_region(request.region)
        policy.require_report_types(key.report_type for key in request.keys)
        self.s.authorities.take(policy)
        now = self.s.clock()
        submission, verdict = submission_from_request(
            request,
            authority=policy.name,
            default_region=policy.default_region,
            now=now,
            retention_days=self.s.config.retention_days,
            contact_intervals=policy.contact_intervals_only,
        )
        stored = store_upload(self.s, submission, verdict, authority_pb2.SubmitKeysResponse, now)
        if stored.replayed:
            stored.reply.replayed = True
            log.info("submission replayed: authority=%s", policy.name)
            return stored.reply
        log.info(
            "submission stored: authority=%s region=%s keys=%d new=%d rejected=%d embargoed=%d",
            policy.name,
            submission.region,
            len(submission.keys),
            stored.new,
            stored.rejected,
            stored.reply.embargoed,
        )
        return stored.reply

    @grpc_method
    def IssueCode(
        self, request: authority_pb2.IssueCodeRequest, context: grpc.ServicerContext
    ) -> authority_pb2.IssueCodeResponse:
        policy = self.s.authorities.of(context)
        region = policy.require_region(request.region)
        policy.require_report_types([request.report_type])
        now = self.s.clock()
        wanted = code_request_from(
            request, now=now, retention_days=self.s.config.retention_days, default_ttl=self.s.config.code_ttl
        )
        self.s.authorities.take(policy)
        diagnosis = wanted.diagnosis
        if diagnosis.report_type == ReportType.RECURSIVE:
            self.s.authorities.take_contact_code(policy)
        record = CodeRecord(
            authority=policy.name,
            region=region,
            report_type=int(diagnosis.report_type),
            symptom_onset=diagnosis.symptom_onset.isoformat() if diagnosis.symptom_onset else "",
            expires_at=now + wanted.ttl_seconds,
            exposure_date=diagnosis.exposure_date.isoformat() if diagnosis.exposure_date else "",
        )
        for _ in range(5):  # a collision of 59-bit codes is astronomically rare; retrying costs nothing
            code = codes.new_code()
            if self.s.store.put_code(codes.code_hash(code, self.s.code_secret), record, now=now):
                break
        else:
            raise FailedPrecondition("could not allocate a unique code; try again")
        REGISTRY.inc("matcher_codes_issued_total")
        log.info("code issued: authority=%s region=%s ttl=%ds", policy.name, region, wanted.ttl_seconds)
        return authority_pb2.IssueCodeResponse(code=codes.display(code), expires_at=record.expires_at)

    @grpc_method
    def SetExposureConfig(
        self, request: authority_pb2.SetExposureConfigRequest, context: grpc.ServicerContext
    ) -> authority_pb2.SetExposureConfigResponse:
        policy = self.s.authorities.of(context)
        if not policy.may_set_config:
            raise PermissionDenied(f"authority {policy.name!r} may not change the exposure configuration")
        if not request.HasField("config"):
            raise InvalidArgument("a configuration is required", [Violation("config", "is required")])
        validate_config(request.config)
        config = config_pb2.ExposureConfig()
        config.CopyFrom(request.config)
        while True:  # compare and set: each stored version is one more than the one it replaced, never shared
            current = self.s.store.get_exposure_config()
            config.version = config_in_force(current).version + 1
            config.issued_at = self.s.clock()
            signed = sign_config(config, self.s.signing_key)
            if self.s.store.put_exposure_config(signed.SerializeToString(), replacing=current):
                break
        log.info("exposure configuration %d set by authority=%s", config.version, policy.name)
        return authority_pb2.SetExposureConfigResponse(signed=signed)

    @grpc_method
    def SubmitVenueWarning(
        self, request: authority_pb2.SubmitVenueWarningRequest, context: grpc.ServicerContext
    ) -> authority_pb2.SubmitVenueWarningResponse:
        policy = self.s.authorities.of(context)
        policy.require_region(request.region)
        self.s.authorities.take(policy)
        now = self.s.clock()
        submission = venue_warning_from_request(
            request,
            authority=policy.name,
            default_region=policy.default_region,
            now=now,
            retention_days=self.s.config.retention_days,
        )
        response = authority_pb2.SubmitVenueWarningResponse(hours=len(submission.venue_hours))
        result = self.s.store.submit(
            submission,
            response=response.SerializeToString(),
            now=now,
            retention_seconds=self.s.config.retention_seconds,
        )
        if result.replayed is not None:
            replay = authority_pb2.SubmitVenueWarningResponse.FromString(result.replayed)
            replay.replayed = True
            return replay
        REGISTRY.inc("matcher_venue_hours_warned_total", result.stored)
        # Audited like a submission, and like one without what it is about: no venue, no hours.
        log.info(
            "venue warning stored: authority=%s region=%s hours=%d new=%d",
            policy.name,
            submission.region,
            len(submission.venue_hours),
            result.stored,
        )
        return response


class SharingServicer(sharing_pb2_grpc.SharingServicer):
    def __init__(self, services: Services) -> None:
        self.s = services
        # Uploads a connection may make, by grpc's peer string (the phone's address and port: one connection). The
        # address is personal data and the service keeps none (docs/privacy.md): it is a key of this process's memory
        # only, forgotten once its bucket is full again (a minute idle), bounded in number, never logged or stored.
        self._uploads = TokenBuckets()
        self._timing = ShareTiming()

    def _take_upload(self, context: grpc.ServicerContext) -> None:
        per_minute = self.s.config.uploads_per_minute
        wait = self._uploads.take(context.peer(), per_minute, 60.0, time.monotonic())
        if wait is not None:
            raise ResourceExhausted(
                f"too many uploads on this connection: at most {per_minute} a minute; retry in {wait:.1f} s",
                retry_after=wait,
            )

    def _replay_or_refuse(
        self, identity: dict[str, str], digest: bytes, now: int
    ) -> sharing_pb2.SubmitWithCodeResponse:
        """The code is unknown, used or expired. If this very upload was already stored with it, answer as the
        first time; otherwise refuse. A read only: a made-up code costs the store no write."""
        try:
            replayed = self.s.store.replay_of(
                identity["authority"],
                identity["submission_id"],
                digest,
                now=now,
                retention_seconds=self.s.config.retention_seconds,
            )
        except AlreadyExists:
            replayed = None
        if replayed is None:
            raise PermissionDenied(codes.REFUSED)
        return sharing_pb2.SubmitWithCodeResponse.FromString(replayed)

    @grpc_method
    def SubmitWithCode(
        self, request: sharing_pb2.SubmitWithCodeRequest, context: grpc.ServicerContext
    ) -> sharing_pb2.SubmitWithCodeResponse:
        self._take_upload(context)
        began = time.perf_counter()
        if request.decoy:
            answer = self._decoy(request)
            self._timing.as_long_as_a_share(began)
        else:
            answer = self._share(request, context)
            self._timing.shared(began)
        return padded(answer, RESPONSE)  # one size for a share's answer and a decoy's (docs/privacy.md)

    def _decoy(self, request: sharing_pb2.SubmitWithCodeRequest) -> sharing_pb2.SubmitWithCodeResponse:
        """A decoy share (docs/privacy.md, "Decoy shares"): refused as a share would be for a malformed code or keys,
        otherwise answered as an accepted share after the same reads (the code looked up, the keys validated) and
        in a share's time (matcher/share_timing.py); nothing is written. The answer does not depend on the (made-up) code, so a
        decoy can neither use nor probe a real one. No log line of its own: the call's line is a share's."""
        code = code_of_upload(request)
        now = self.s.clock()
        self.s.store.get_code(codes.code_hash(code, self.s.code_secret), now=now)  # the read a share makes first
        verdict = check_keys(
            request.keys,
            now=now,
            retention_days=self.s.config.retention_days,
            diagnosis=Diagnosis(ReportType.CONFIRMED_TEST, None),
        )
        require_some_accepted(verdict)
        REGISTRY.inc("matcher_decoy_shares_total")
        return sharing_pb2.SubmitWithCodeResponse(
            accepted=len(verdict.keys), rejected=_rejections(verdict), embargoed=_embargoed(verdict.keys, now)
        )

    def _share(
        self, request: sharing_pb2.SubmitWithCodeRequest, context: grpc.ServicerContext
    ) -> sharing_pb2.SubmitWithCodeResponse:
        code = code_of_upload(request)
        now = self.s.clock()
        code_hash = codes.code_hash(code, self.s.code_secret)
        # Uploads are identified by their code, so that a phone retrying after a lost answer gets the first answer
        # again instead of "code already used". Their content digest leaves out the region: the code fixes it.
        identity = {"authority": CODE_UPLOADS, "submission_id": "code:" + code_hash.hex()[:32]}
        digest = submission_digest("", request.keys)
        record = self.s.store.get_code(code_hash, now=now)
        if record is None:
            return self._replay_or_refuse(identity, digest, now)
        issuer = self.s.authorities.named(record.authority)
        if not self.s.authorities.may_still_issue(record.authority, record.region, record.report_type):
            # Refused like an unknown code, so that codes cannot be probed; the code stays unused.
            log.warning("upload refused: the code's authority=%s may no longer issue it", record.authority)
            raise PermissionDenied(codes.REFUSED)
        onset = dt.date.fromisoformat(record.symptom_onset) if record.symptom_onset else None
        exposure = dt.date.fromisoformat(record.exposure_date) if record.exposure_date else None
        verdict = check_keys(
            request.keys,
            now=now,
            retention_days=self.s.config.retention_days,
            diagnosis=Diagnosis(ReportType(record.report_type), onset, exposure),
            contact_intervals=issuer is not None and issuer.contact_intervals_only,
        )
        require_some_accepted(verdict)
        submission = Submission(
            authority=identity["authority"],
            submission_id=identity["submission_id"],
            region=record.region,
            keys=verdict.keys,
            digest=digest,
        )
        try:
            stored = store_upload(
                self.s, submission, verdict, sharing_pb2.SubmitWithCodeResponse, now, code_hash=code_hash
            )
        except AlreadyExists:
            # Another upload with other keys used the code between get_code and now: the code is used.
            raise PermissionDenied(codes.REFUSED) from None
        if not stored.replayed:
            log.info(
                "upload with code stored: authority=%s keys=%d new=%d rejected=%d",
                record.authority,
                len(submission.keys),
                stored.new,
                stored.rejected,
            )
        return stored.reply


class DistributionServicer:
    """ListBatches and DownloadBatch answer with bytes serialised once (matcher/distribution.py): register it
    with add_distribution_servicer, whose serializers pass those bytes through. (Not a subclass of the generated
    DistributionServicer, whose methods answer messages: it implements each of the service's methods itself.)"""

    def __init__(self, services: Services, cache: BatchCache) -> None:
        self.s = services
        self.cache = cache
        self.download_limits = TimeLimits(services.config.download_seconds)

    @grpc_method
    def ListBatches(self, request: distribution_pb2.ListBatchesRequest, context: grpc.ServicerContext) -> bytes:
        return self.cache.listing(request.after_sequence, page_size_of(request.page_size))

    @grpc_method
    def DownloadBatch(
        self, request: distribution_pb2.DownloadBatchRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        size = self.cache.body_size(request.sequence)
        if request.offset > size:
            raise OutOfRange(f"offset {request.offset} is past the end of batch {request.sequence} ({size} bytes)")
        chunk = min(max(request.chunk_size or MAX_CHUNK_BYTES, MIN_CHUNK_BYTES), MAX_CHUNK_BYTES)
        # A reader that stops reading blocks this worker in a send; cancelling the call is what frees it.
        with self.download_limits.limit(context.cancel):
            for serialised, data_bytes in self.cache.chunks(request.sequence, size, request.offset, chunk):
                if not context.is_active():
                    return
                REGISTRY.inc("matcher_bytes_served_total", data_bytes)
                yield serialised

    @grpc_method
    def GetExposureConfig(
        self, request: distribution_pb2.GetExposureConfigRequest, context: grpc.ServicerContext
    ) -> config_pb2.SignedExposureConfig:
        stored = self.s.store.get_exposure_config()
        if stored is None:
            raise FailedPrecondition("the server has no exposure configuration yet; try again shortly")
        return config_pb2.SignedExposureConfig.FromString(stored)


def add_distribution_servicer(servicer: DistributionServicer, server: grpc.Server) -> None:
    """distribution_pb2_grpc.add_DistributionServicer_to_server, except that ListBatches and DownloadBatch pass
    the bytes the servicer returns through unchanged (they are serialised messages already)."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "ListBatches": grpc.unary_unary_rpc_method_handler(
            servicer.ListBatches,
            request_deserializer=distribution_pb2.ListBatchesRequest.FromString,
            response_serializer=preserialised(distribution_pb2.ListBatchesResponse.SerializeToString),
        ),
        "DownloadBatch": grpc.unary_stream_rpc_method_handler(
            servicer.DownloadBatch,
            request_deserializer=distribution_pb2.DownloadBatchRequest.FromString,
            response_serializer=preserialised(distribution_pb2.BatchChunk.SerializeToString),
        ),
        "GetExposureConfig": grpc.unary_unary_rpc_method_handler(
            servicer.GetExposureConfig,
            request_deserializer=distribution_pb2.GetExposureConfigRequest.FromString,
            response_serializer=config_pb2.SignedExposureConfig.SerializeToString,
        ),
    }
    name = distribution_pb2.DESCRIPTOR.services_by_name["Distribution"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)
