"""The twin's certificate authority and the head node's server certificate (LDAPS).

On a cluster the directory's certificate comes from the organisation (AD CS, ACM) and the nodes
trust it through ``LdapTlsCaCert``; the twin is its own organisation, so it makes a CA of its own
once, keeps the CA's key on the machine only (never inside a host), and issues the head node a
certificate for its name and address. SSSD then verifies the head node exactly as it verifies a
domain controller with ``ldap_tls_reqcert = hard``.

We use the ``cryptography`` package (already in hpctool's environment: paramiko and JupyterHub
need it) rather than the image's ``openssl`` command: no chroot, no temporary config file for the
subject alternative names, and the keys never pass through a command line.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hpctool.atomic import write_atomic

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients such as browsers accept for a server certificate
RENEW_DAYS = 30  # a server certificate closer than this to its end is issued again at setup


@dataclass(frozen=True)
class TlsFiles:
    """Where the twin keeps its CA and the head node's certificate (PEM files)."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256: what GnuTLS (Debian's OpenLDAP and SSSD use it) and every TLS client speak.
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str = "hpctool twin CA") -> tuple[str, str]:
    """A new self-signed CA: (key PEM, certificate PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hpctool"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _pem_key(key), _pem_cert(cert)


def make_server_cert(ca_key_pem: str, ca_cert_pem: str, names: Sequence[str],
                     addresses: Sequence[str] = ()) -> tuple[str, str]:
    """A server certificate signed by the CA for host ``names`` (the first is its common name)
    and IP ``addresses``: (key PEM, certificate PEM)."""
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = _key()
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return _pem_key(key), _pem_cert(cert)


def server_cert_current(files: TlsFiles, names: Sequence[str], addresses: Sequence[str] = ()) -> bool:
    """The server certificate exists, was issued by the CA there, names exactly these hosts and
    addresses and is not about to expire."""
    try:
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject or not files.server_key.exists():
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = (sorted(alt.get_values_for_type(x509.DNSName)),
            sorted(str(a) for a in alt.get_values_for_type(x509.IPAddress)))
    wanted = (sorted(names), sorted(str(ipaddress.ip_address(a)) for a in addresses))
    left = cert.not_valid_after_utc - _now()
    return have == wanted and left > datetime.timedelta(days=RENEW_DAYS)


def ensure_tls(files: TlsFiles, names: Sequence[str], addresses: Sequence[str] = (),
               key_owner: tuple[int, int] | None = None) -> bool:
    """The CA (made once) and a current server certificate for ``names``/``addresses``; True when
    something was written. Keys are mode 0600; ``key_owner`` (uid, gid) owns the server's key
    (slapd reads it as its own user after dropping root)."""
    files.folder.mkdir(parents=True, exist_ok=True)
    # B103: certificates are public and every host's SSSD reads the CA's; the keys are 0600
    os.chmod(files.folder, 0o755)  # nosec B103
    wrote = False
    if not (files.ca_key.exists() and files.ca_cert.exists()):
        ca_key, ca_cert = make_ca()
        write_atomic(files.ca_key, ca_key, mode=0o600)
        write_atomic(files.ca_cert, ca_cert, mode=0o644)
        wrote = True
    if wrote or not server_cert_current(files, names, addresses):
        key, cert = make_server_cert(files.ca_key.read_text(), files.ca_cert.read_text(), names, addresses)
        write_atomic(files.server_key, key, mode=0o600)
        write_atomic(files.server_cert, cert, mode=0o644)
        wrote = True
    if key_owner is not None:
        os.chown(files.server_key, *key_owner)
    return wrote
