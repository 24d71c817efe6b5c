"""The mutual-TLS channel to the server's authority listener, and how a failed call reads in one line.

The folder is the authority's own, ``DIR/authority-NAME`` of ``matcher certs --out DIR --authority NAME``:
``ca.pem`` (the CA that issued the server's certificate) and ``NAME.pem`` and ``NAME.key`` (its client
certificate and private key). The server knows the authority from that certificate alone (its name, and the
fingerprint the server's authorities file pins); no request names it.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from matcher.certs import check_certificate, check_private_key
from matcher.cli_support import CHANNEL_OPTIONS
from matcher.errors import violations_of

CA_FILE = "ca.pem"


def authority_credentials(tls_dir: Path, authority: str) -> grpc.ChannelCredentials:
    """Channel credentials from a ``matcher certs`` folder; a missing file is a one-line error."""
    tls_dir = Path(tls_dir)
    paths = [tls_dir / CA_FILE, tls_dir / f"{authority}.key", tls_dir / f"{authority}.pem"]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{tls_dir}: no {' or '.join(missing)} (the folder DIR/authority-{authority} that "
            f"`matcher certs --out DIR --authority {authority}` writes)"
        )
    root, private_key, chain = (path.read_bytes() for path in paths)
    # grpcio would take garbage here and fail every connection later with a handshake error naming no file.
    check_certificate(root, paths[0])
    check_private_key(private_key, paths[1])
    check_certificate(chain, paths[2])
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=private_key, certificate_chain=chain)


def authority_channel(target: str, tls_dir: Path, authority: str, *, server_name: str | None = None) -> grpc.Channel:
    """A secure channel to ``target`` (HOST:PORT) that presents the authority's client certificate.

    ``server_name`` overrides the host name the server's certificate is checked against, for a server reached
    by an address its certificate does not name.
    """
    options = [*CHANNEL_OPTIONS, *([("grpc.ssl_target_name_override", server_name)] if server_name else [])]
    return grpc.secure_channel(target, authority_credentials(tls_dir, authority), options=options)


def describe_rpc_error(error: grpc.RpcError) -> str:
    """``CODE: message (field: description; ...)`` for a failed call, on one line."""
    code = error.code()
    message = " ".join((error.details() or "").split())
    text = f"{code.name}: {message}" if message else code.name
    violations = violations_of(error)
    if violations:
        text += " (" + "; ".join(f"{v.field}: {v.description}" for v in violations) + ")"
    return text
