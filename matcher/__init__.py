"""Exposure-notification matching service: GAEN-compatible keys published as signed batches of compressed Bloom filters."""

import os

__version__ = "0.1.0"

# grpcio's C core logs on its own (``E... add_port.cc``, ``I... Handshake failed``) beside the project's one-line
# errors and logs, which already say what went wrong in words a person can act on. It reads this variable when
# grpc is first imported, and every module that imports grpc imports this package first. An operator who wants
# the library's own lines back sets GRPC_VERBOSITY=ERROR (or INFO, DEBUG).
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
