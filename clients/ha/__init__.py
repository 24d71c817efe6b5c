"""The health authority's client: read diagnosis keys from JSON, CSV or GAEN export files, check them with the
server's own rules, and push them over mutual TLS in idempotent submissions (``matcher-ha``).

Modules, each with one job:

- :mod:`.source_keys`: a key as read from a file, with where it came from.
- :mod:`.key_files`: JSON and CSV key files.
- :mod:`.gaen_export`: GAEN ``export.bin`` / ``export.sig`` files (read, verify, write).
- :mod:`.local_check`: the server's validation rules, run locally (``--dry-run``).
- :mod:`.submissions`: chunks of at most 30 keys with content-derived submission ids.
- :mod:`.retry`: which failures are retried, and how long to wait.
- :mod:`.push`: sending the submissions (what the simulator calls).
- :mod:`.channel`: the mutual-TLS channel from a ``matcher certs`` folder.
- :mod:`.cli`: the command line, wiring only.
"""
