"""Where each key and certificate lives: one folder per role, so that each party reads only what it needs.

`matcher certs --out DIR` writes:

    DIR/server/              what `matcher serve`, `publish` and `mirror` read (--tls-dir DIR/server)
        server.pem, server.key      the server's certificate (from the server CA) and key
        authority-ca.pem            the authority CA's certificate: the client certificates it accepts
        signing.key, signing.pub.pem   the key pair that signs batches and configurations
        codes.key                   the secret upload codes are stored under (matcher/codes.py)
        authorities.json            which authorities it accepts, their certificates' fingerprints, their rights
    DIR/phone/               what phones need (matcher-phone --tls-dir DIR/phone)
        ca.pem                      the server CA's certificate
        signing.pub.pem             the batch signing key to pin
    DIR/authority-NAME/      what authority NAME needs (matcher-ha --tls-dir DIR/authority-NAME --authority NAME)
        NAME.pem, NAME.key          its client certificate (from the authority CA) and key
        ca.pem                      the server CA's certificate
    DIR/ca/                  the two CAs, read by no command but `matcher certs`
        server-ca.pem, server-ca.key         signs the server's certificate, which phones and authorities trust
        authority-ca.pem, authority-ca.key   signs the authorities' client certificates, which the server trusts

Two CAs, because the server trusts whatever its CA signs as an authority: with one CA, the key that makes the
server's TLS certificate could also make an authority.
"""

from __future__ import annotations

from pathlib import Path

SERVER, PHONE, CA = "server", "phone", "ca"
AUTHORITY_PREFIX = "authority-"
SERVER_CA, AUTHORITY_CA = "server-ca", "authority-ca"
TRUSTED_CA = "ca.pem"  # in phone/ and authority-NAME/: the CA that issued the server's certificate
AUTHORITY_CA_FILE = f"{AUTHORITY_CA}.pem"  # in server/
AUTHORITIES_FILE = "authorities.json"
# The only private keys the server's folder may hold (codes.key is a secret, not a PEM key).
SERVER_PRIVATE = frozenset({"server.key", "signing.key"})
PEM_PRIVATE_MARKER = b"PRIVATE KEY-----"
LARGEST_KEY_FILE = 64 * 1024  # a PEM private key is a few hundred bytes; bigger files are not keys


def authority_folder(name: str) -> str:
    return AUTHORITY_PREFIX + name


def foreign_private_keys(folder: Path) -> list[str]:
    """The files in ``folder`` holding a PEM private key other than the server's own: a CA's or an authority's.
    Decided by content, not by name, so that a renamed CA key is caught too."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.name in SERVER_PRIVATE or not path.is_file() or path.stat().st_size > LARGEST_KEY_FILE:
            continue
        try:
            if PEM_PRIVATE_MARKER in path.read_bytes():
                found.append(path.name)
        except OSError:
            continue  # unreadable: not something the server could read either
    return found


def check_server_folder(folder: Path) -> None:
    """Refuses (ValueError, one line) a server folder that holds a CA's or an authority's private key: whoever
    takes the server's files must not get the power to make a server certificate or act as an authority."""
    foreign = foreign_private_keys(folder)
    if foreign:
        raise ValueError(
            f"--tls-dir {folder}: holds private keys that are not the server's ({', '.join(foreign)}): a CA's or an "
            "authority's key must not be where the server reads; point --tls-dir at the server/ folder "
            "`matcher certs --out DIR` writes (DIR/server)"
        )
