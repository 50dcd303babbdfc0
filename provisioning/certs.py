"""Client certificates (EC P-256) whose CN is the device id, and checks of what the technician hands in.

The `cryptography` library rather than the openssl CLI: private keys never pass through temporary files
or argv, errors arrive as exceptions instead of parsed stderr, and the same code runs on a technician's
Windows or macOS laptop where the openssl binary differs or is missing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device.errors import ProvisionError

DEFAULT_DAYS = 1825


@dataclass(frozen=True)
class Authority:
    """The site CA that signs device certificates (and that the broker trusts)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class Issued:
    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    name: str
    cert_pem: bytes
    key_pem: bytes


def certificate_file(path: Path, what: str) -> bytes:
    """A file's bytes once it is known to hold PEM certificates (a CA bundle may hold several)."""
    data = _read(path, what)
    _certificates(data, path, what)
    return data


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    cert = _certificates(_read(cert_path, "--ca"), cert_path, "--ca")[0]
    key = _private_key(_read(key_path, "--ca-key"), key_path, "--ca-key")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ProvisionError(f"--ca-key {key_path} is neither an EC nor an RSA key")
    if not _same_key(cert, key):
        raise ProvisionError(f"--ca-key {key_path} does not belong to the --ca certificate {cert_path}")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ProvisionError(f"--ca {cert_path} is not a CA certificate (no basicConstraints CA:TRUE)")
    return Authority(cert=cert, key=key)


def issue_client(authority: Authority, common_name: str, days: int = DEFAULT_DAYS) -> Issued:
    """A fresh P-256 key and a client certificate for it: CN = the MQTT username the broker's ACL sees."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Tolerates a device or broker clock a few minutes behind the laptop's.
        .not_valid_before(now - dt.timedelta(minutes=10))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Issued(key_pem=key_pem, cert_pem=cert.public_bytes(serialization.Encoding.PEM))


def client_identity(cert_path: Path, key_path: Path) -> ClientIdentity:
    """A client certificate and its key, checked to belong together; its CN is the broker's username."""
    cert_pem, key_pem = _read(cert_path, "--cert"), _read(key_path, "--key")
    cert = _certificates(cert_pem, cert_path, "--cert")[0]
    key = _private_key(key_pem, key_path, "--key")
    if not _same_key(cert, key):
        raise ProvisionError(f"--key {key_path} does not belong to the certificate --cert {cert_path}")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ProvisionError(f"--cert {cert_path} has no common name (CN): the broker cannot name the device")
    return ClientIdentity(name=str(names[0].value), cert_pem=cert_pem, key_pem=key_pem)


def _same_key(cert: x509.Certificate, key: object) -> bool:
    public = getattr(key, "public_key", None)
    if public is None:
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(public().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt))


def _certificates(data: bytes, path: Path, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProvisionError(f"{what} {path} holds no PEM certificate") from None


def _private_key(data: bytes, path: Path, what: str) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ProvisionError(f"{what} {path} is encrypted: a device cannot type its passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ProvisionError(f"{what} {path} holds no PEM private key") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{what} {path}: cannot read ({exc.strerror})") from None
