"""`matcher certs`: a development PKI that the real TLS stack accepts, one folder per role, extended without being
replaced."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store

from matcher.authz import fingerprint
from matcher.certs import write_dev_pki
from matcher.layout import foreign_private_keys
from matcher.signing import load_signing_key

LAYOUT = {
    "server": {
        "server.pem", "server.key", "authority-ca.pem", "signing.key", "signing.pub.pem", "codes.key",
        "authorities.json",
    },
    "phone": {"ca.pem", "signing.pub.pem"},
    "authority-ha-north": {"ha-north.pem", "ha-north.key", "ca.pem"},
    "ca": {"server-ca.pem", "server-ca.key", "authority-ca.pem", "authority-ca.key"},
}  # fmt: skip


def cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_role_gets_its_own_folder_with_what_it_reads_and_nothing_else(tmp_path):
    written, _ = write_dev_pki(tmp_path, ["ha-north"])
    assert {p.name: {f.name for f in p.iterdir()} for p in tmp_path.iterdir()} == LAYOUT
    assert sorted(written) == sorted(f"{folder}/{name}" for folder, names in LAYOUT.items() for name in names)
    assert (tmp_path / "server" / "server.key").stat().st_mode & 0o777 == 0o600


def test_the_server_folder_holds_no_private_key_but_its_own(tmp_path):
    write_dev_pki(tmp_path, ["ha-north"])
    assert foreign_private_keys(tmp_path / "server") == []
    assert foreign_private_keys(tmp_path / "ca") == ["authority-ca.key", "server-ca.key"]


def test_a_new_authority_may_not_change_the_exposure_configuration_until_granted(tmp_path):
    # The configuration is global: every phone scores with it. No authority gets that right without an operator.
    write_dev_pki(tmp_path, ["ha-north", "ha-south"])
    policies = json.loads((tmp_path / "server" / "authorities.json").read_text())["authorities"]
    assert [policy["may_set_config"] for policy in policies.values()] == [False, False]


def test_each_authority_is_pinned_by_its_certificates_fingerprint_which_is_also_returned(tmp_path):
    _, fingerprints = write_dev_pki(tmp_path, ["ha-north"])
    pinned = fingerprint(cert(tmp_path / "authority-ha-north" / "ha-north.pem"))
    assert fingerprints == {"ha-north": pinned}
    policies = json.loads((tmp_path / "server" / "authorities.json").read_text())["authorities"]
    assert policies["ha-north"]["certificate_sha256"] == [pinned]


def test_the_server_certificate_verifies_for_localhost_and_loopback_against_the_server_ca_only(tmp_path):
    write_dev_pki(tmp_path, [])
    ca = cert(tmp_path / "phone" / "ca.pem")
    server = cert(tmp_path / "server" / "server.pem")
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(DNSName("localhost"))
    assert verifier.verify(server, [])[-1] == ca
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    # Two CAs: the one the server trusts for authorities did not sign the server's certificate.
    assert cert(tmp_path / "server" / "authority-ca.pem") != ca
    assert server.issuer != cert(tmp_path / "server" / "authority-ca.pem").subject


def test_an_authority_certificate_names_the_authority_and_comes_from_the_authority_ca(tmp_path):
    write_dev_pki(tmp_path, ["ha-north"])
    ha = cert(tmp_path / "authority-ha-north" / "ha-north.pem")
    assert ha.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "ha-north"
    assert ha.issuer == cert(tmp_path / "server" / "authority-ca.pem").subject


def test_running_it_again_adds_authorities_and_keeps_the_cas_and_signing_key(tmp_path):
    write_dev_pki(tmp_path, ["ha-north"])
    ca, signing = (tmp_path / "phone" / "ca.pem").read_bytes(), load_signing_key(tmp_path / "server" / "signing.key")
    written, fingerprints = write_dev_pki(tmp_path, ["ha-north", "ha-south"])
    assert written == [
        "authority-ha-south/ha-south.pem",
        "authority-ha-south/ha-south.key",
        "authority-ha-south/ca.pem",
        "server/authorities.json",
    ]
    assert set(fingerprints) == {"ha-north", "ha-south"}
    assert (tmp_path / "phone" / "ca.pem").read_bytes() == ca
    assert load_signing_key(tmp_path / "server" / "signing.key").key_id == signing.key_id
    policies = json.loads((tmp_path / "server" / "authorities.json").read_text())["authorities"]
    assert set(policies) == {"ha-north", "ha-south"}


def test_a_folder_of_the_old_single_folder_layout_is_refused_untouched(tmp_path):
    (tmp_path / "ca.key").write_text("old")
    with pytest.raises(ValueError, match="old single-folder layout"):
        write_dev_pki(tmp_path, ["ha-north"])
    assert [p.name for p in tmp_path.iterdir()] == ["ca.key"]


@pytest.mark.parametrize("name", ["HA North", "../etc", "", "x" * 64])
def test_unsafe_authority_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="authority name"):
        write_dev_pki(tmp_path, [name])
