"""Every private key the project writes is a new owner-only file in an owner-only folder, whatever was there."""

from __future__ import annotations

import os
import stat

import pytest

from clients.ha.venue import create
from matcher.certs import write_dev_pki
from matcher.private_files import write_private
from matcher.signing import generate_signing_key, write_signing_key
from matcher.venues import VenueError


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_private_file_is_owner_only_even_under_a_permissive_umask(tmp_path):
    previous = os.umask(0)
    try:
        write_private(tmp_path / "secret.key", b"secret")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "secret.key") == 0o600 and (tmp_path / "secret.key").read_bytes() == b"secret"


def test_an_existing_world_readable_file_is_refused_not_reused(tmp_path):
    planted = tmp_path / "signing.key"
    planted.write_bytes(b"planted")
    planted.chmod(0o644)
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_signing_key(generate_signing_key(), planted, tmp_path / "signing.pub.pem")
    assert planted.read_bytes() == b"planted" and mode(planted) == 0o644


def test_a_symbolic_link_at_the_path_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "secret.key").symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        write_private(tmp_path / "secret.key", b"secret")
    assert not elsewhere.exists()


def test_matcher_certs_makes_its_folder_owner_only_and_every_key_in_it(tmp_path):
    out = tmp_path / "tls"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    previous = os.umask(0)
    try:
        write_dev_pki(out, ["ha-north"])
    finally:
        os.umask(previous)
    assert mode(out) == 0o700
    assert {folder: mode(out / folder) for folder in ("server", "ca", "authority-ha-north")} == dict.fromkeys(
        ("server", "ca", "authority-ha-north"), 0o700
    )
    assert {path.name: mode(path) for path in out.glob("*/*.key")} == dict.fromkeys(
        ("server-ca.key", "authority-ca.key", "server.key", "ha-north.key", "signing.key", "codes.key"), 0o600
    )


def test_a_venue_trace_file_is_owner_only_in_an_owner_only_folder(tmp_path):
    create("Phở 24", tmp_path / "venue")
    assert mode(tmp_path / "venue") == 0o700 and mode(tmp_path / "venue" / "trace.json") == 0o600
    with pytest.raises(VenueError, match="never overwritten"):
        create("again", tmp_path / "venue")
