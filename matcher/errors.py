"""One exception hierarchy for everything a caller can get wrong, and its one mapping to gRPC statuses.

Each class names its gRPC status code. Servicers raise these (or let validation raise them); the
:func:`grpc_method` decorator turns them into a ``google.rpc.Status`` with ``BadRequest`` field violations.
Anything else is a bug: it becomes INTERNAL with a generic message and a logged traceback, so a client's
mistake can never surface as UNKNOWN or INTERNAL.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .metrics import REGISTRY

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem with one field of a request, as google.rpc.BadRequest.FieldViolation has it."""

    field: str
    description: str


class MatcherError(Exception):
    """A request the service refuses, with the status code and message the caller receives."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    # What the operator's log gets besides the code (e.g. which file or host a StoreError is about); never sent.
    detail: str | None = None

    def __init__(self, message: str, violations: Sequence[Violation] = (), *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(violations)
        # Seconds after which a retry may succeed; sent as google.rpc.RetryInfo.
        self.retry_after = retry_after


class InvalidArgument(MatcherError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(MatcherError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(MatcherError):
    code = grpc.StatusCode.PERMISSION_DENIED


class AlreadyExists(MatcherError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(MatcherError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NotFound(MatcherError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(MatcherError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(MatcherError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(MatcherError):
    """The service cannot answer now (storage down); the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


# A status travels as trailing metadata (grpc-message, percent-encoded; grpc-status-details-bin, base64), and
# grpcio clients refuse trailers over 16 KiB (and may refuse anything over their 8 KiB soft limit) with
# RESOURCE_EXHAUSTED: the caller would lose the real code. Messages and descriptions may echo a request's text, and
# a request can break many rules, so a status is bounded here, whatever the request: the worst case (every
# character non-ASCII, percent-encoded to 12 bytes) stays under the soft limit.
MAX_MESSAGE_CHARS = 200
MAX_FIELD_CHARS = 100
MAX_DESCRIPTION_CHARS = 200
MAX_VIOLATION_BYTES = 3000  # the packed BadRequest, before base64


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _bounded_violations(violations: Sequence[Violation]) -> tuple[error_details_pb2.BadRequest, int]:
    """As many violations as fit MAX_VIOLATION_BYTES, in order, each clipped; and how many were left out."""
    bad_request = error_details_pb2.BadRequest()
    for listed, violation in enumerate(violations):
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=_clipped(violation.field, MAX_FIELD_CHARS),
            description=_clipped(violation.description, MAX_DESCRIPTION_CHARS),
        )
        if bad_request.ByteSize() + entry.ByteSize() + 4 > MAX_VIOLATION_BYTES:
            return bad_request, len(violations) - listed
        bad_request.field_violations.append(entry)
    return bad_request, 0


def to_status(error: MatcherError) -> grpc.Status:
    """The gRPC status for an error: field violations packed as google.rpc.BadRequest, a retry delay as
    google.rpc.RetryInfo. Bounded in size (see MAX_VIOLATION_BYTES): violations that do not fit are counted in
    the message."""
    details = []
    message = _clipped(error.message, MAX_MESSAGE_CHARS)
    if error.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(error.retry_after * 1e9))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    if error.violations:
        bad_request, left_out = _bounded_violations(error.violations)
        if left_out:
            message += f" ({left_out} more problems not listed)"
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    status = status_pb2.Status(code=error.code.value[0], message=message, details=details)
    return rpc_status.to_status(status)


_INTERNAL_STATUS = rpc_status.to_status(
    status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; it has been logged")
)


def violations_of(rpc_error: grpc.RpcError) -> list[Violation]:
    """The BadRequest field violations of a failed call (client side)."""
    if not isinstance(rpc_error, grpc.Call):
        return []  # not a call's error (a channel's, say): it carries no status details
    status = rpc_status.from_call(rpc_error)
    found: list[Violation] = []
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend(Violation(v.field, v.description) for v in bad_request.field_violations)
    return found


_Servicer = TypeVar("_Servicer")
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Result = TypeVar("_Result")


@overload
def grpc_method(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], Iterator[_Response]],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], Iterator[_Response]]: ...


@overload
def grpc_method(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], _Result],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], _Result]: ...


def grpc_method(
    method: Callable[[Any, Any, grpc.ServicerContext], Any],
) -> Callable[[Any, Any, grpc.ServicerContext], Any]:
    """Wraps a servicer method (unary or server-streaming): maps its exceptions to gRPC statuses, and logs and
    counts the call by method and status code. This is the one place both happen; the log line carries no
    request content and no peer address. The wrapper has the method's signature (the overloads keep it)."""
    name = method.__name__

    def finish(context: grpc.ServicerContext, began: float, exc: BaseException | None) -> None:
        # ServicerContext.code() is grpcio's (since 1.38); types-grpcio's ServicerContext leaves it out.
        if exc is not None and not isinstance(exc, MatcherError) and context.code() not in (None, grpc.StatusCode.OK):  # type: ignore[attr-defined]
            raise exc  # grpcio's own abort: the context already holds the status it chose
        if exc is None:
            code = grpc.StatusCode.OK
        elif isinstance(exc, MatcherError):
            code = exc.code
            if exc.detail:
                log.warning("%s: %s", name, exc.detail)
        else:
            code = grpc.StatusCode.INTERNAL
            log.error("unexpected error in %s", name, exc_info=exc)
        REGISTRY.inc("matcher_rpc_total", method=name, code=code.name)
        # Answered calls at DEBUG: a line for each of millions of phones' syncs would cost more than the sync
        # itself (docs/benchmarks.md) and tell an operator nothing the metrics do not; failed calls at INFO.
        log.log(
            logging.DEBUG if exc is None else logging.INFO,
            "%s %s %.1f ms",
            name,
            code.name,
            (time.perf_counter() - began) * 1000,
        )
        if exc is not None:
            context.abort_with_status(to_status(exc) if isinstance(exc, MatcherError) else _INTERNAL_STATUS)

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            began = time.perf_counter()
            try:
                yield from method(self, request, context)
            except Exception as exc:
                finish(context, began, exc)
            else:
                finish(context, began, None)

        return streaming

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        began = time.perf_counter()
        try:
            response = method(self, request, context)
        except Exception as exc:
            finish(context, began, exc)
        finish(context, began, None)
        return response

    return unary
