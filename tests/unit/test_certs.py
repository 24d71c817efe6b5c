"""`matcher certs`: a development PKI that the real TLS stack accepts, extended without being replaced."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store

from matcher.certs import write_dev_pki
from matcher.signing import load_signing_key


def test_the_pki_has_every_file_the_server_and_clients_read(tmp_path):
    written = write_dev_pki(tmp_path, ["ha-north"])
    for name in (
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "ha-north.pem",
        "ha-north.key",
        "signing.key",
        "signing.pub.pem",
        "authorities.json",
    ):
        assert name in written and (tmp_path / name).exists(), name
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600


def test_a_new_authority_may_not_change_the_exposure_configuration_until_granted(tmp_path):
    # The configuration is global: every phone scores with it. No authority gets that right without an operator.
    write_dev_pki(tmp_path, ["ha-north", "ha-south"])
    policies = json.loads((tmp_path / "authorities.json").read_text())["authorities"]
    assert [policy["may_set_config"] for policy in policies.values()] == [False, False]


def test_the_server_certificate_verifies_for_localhost_and_loopback_against_the_ca(tmp_path):
    write_dev_pki(tmp_path, [])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(DNSName("localhost"))
    assert verifier.verify(cert, [])[-1] == ca
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_an_authority_certificate_names_the_authority(tmp_path):
    write_dev_pki(tmp_path, ["ha-north"])
    cert = x509.load_pem_x509_certificate((tmp_path / "ha-north.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "ha-north"


def test_running_it_again_adds_authorities_and_keeps_the_ca_and_signing_key(tmp_path):
    write_dev_pki(tmp_path, ["ha-north"])
    ca, signing = (tmp_path / "ca.pem").read_bytes(), load_signing_key(tmp_path / "signing.key").key_id
    written = write_dev_pki(tmp_path, ["ha-north", "ha-south"])
    assert written == ["ha-south.pem", "ha-south.key", "authorities.json"]
    assert (tmp_path / "ca.pem").read_bytes() == ca
    assert load_signing_key(tmp_path / "signing.key").key_id == signing
    assert set(json.loads((tmp_path / "authorities.json").read_text())["authorities"]) == {"ha-north", "ha-south"}


@pytest.mark.parametrize("name", ["HA North", "../etc", "ca", "signing", "", "x" * 64])
def test_unsafe_or_reserved_authority_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="authority name"):
        write_dev_pki(tmp_path, [name])
