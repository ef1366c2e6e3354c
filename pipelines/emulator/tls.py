"""A throwaway certificate authority for the emulator's HTTPS endpoint.

The artifact bucket's policy denies every request that is not over TLS, and moto
enforces bucket policies, so the emulator must speak HTTPS for the local target to
keep the same security settings as AWS. Clients trust the generated CA through
``AWS_CA_BUNDLE`` (Terraform) or ``verify=`` (boto3); the system trust store is
never touched.

The CA also signs an issuing CA for AWS's host names (``*.amazonaws.com`` only: a
name constraint every TLS client enforces), whose key the AWS-hosts proxy
(pipelines.emulator.aws_proxy) keeps to issue a certificate per host a job asks for,
so a job's own boto3, of any version, talks to ``s3.amazonaws.com`` and reaches the
emulator. The root's key is still never written: a stolen issuing key can vouch for
AWS's names to this checkout's own clients, and for nothing else.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipelines.core.errors import MlopsError
from pipelines.core.files import write_atomically

_RENEW_BEFORE = dt.timedelta(days=7)
_VALIDITY = dt.timedelta(days=365)
_HOST_VALIDITY = dt.timedelta(days=30)
# The only names the AWS-hosts issuing CA may sign (and subdomains of it).
AWS_DOMAIN = "amazonaws.com"


@dataclass(frozen=True)
class TlsFiles:
    """Where the emulator's CA certificate and server key pair live."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    # The issuing CA for *.amazonaws.com and the host certificates it made.
    hosts_ca_cert: Path
    hosts_ca_key: Path
    hosts_dir: Path

    @classmethod
    def in_dir(cls, directory: Path) -> TlsFiles:
        return cls(
            ca_cert=directory / "ca.pem",
            server_cert=directory / "server.pem",
            server_key=directory / "server-key.pem",
            hosts_ca_cert=directory / "aws-hosts-ca.pem",
            hosts_ca_key=directory / "aws-hosts-ca-key.pem",
            hosts_dir=directory / "aws-hosts",
        )

    def exist(self) -> bool:
        return all(
            p.is_file()
            for p in (
                self.ca_cert,
                self.server_cert,
                self.server_key,
                self.hosts_ca_cert,
                self.hosts_ca_key,
            )
        )


_HOSTS_CA_NAME = "mlops local emulator CA for AWS host names"
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def ensure_certificates(files: TlsFiles, *, now: dt.datetime | None = None) -> TlsFiles:
    """Create the CA and a server certificate for 127.0.0.1 unless valid ones exist."""
    now = now or dt.datetime.now(dt.UTC)
    if files.exist() and _still_valid(files.server_cert, now):
        return files

    files.ca_cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops local emulator CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        # One level below: the AWS-hosts issuing CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    hosts_key = ec.generate_private_key(ec.SECP256R1())
    hosts_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _HOSTS_CA_NAME)]))
        .issuer_name(ca_name)
        .public_key(hosts_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        # Clients refuse any name it signs outside amazonaws.com.
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(AWS_DOMAIN)], excluded_subtrees=None
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(hosts_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    # Every file is created 0600 (the key never exists with a wider mode, not even for a
    # moment); the certificates are public, but only this user's clients read them.
    write_atomically(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    write_atomically(files.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    write_atomically(files.server_key, _private_pem(server_key))
    write_atomically(files.hosts_ca_cert, hosts_cert.public_bytes(serialization.Encoding.PEM))
    write_atomically(files.hosts_ca_key, _private_pem(hosts_key))
    # Host certificates of the previous issuing CA no longer verify.
    shutil.rmtree(files.hosts_dir, ignore_errors=True)
    # The CA key is never written: nothing else may be signed with it.
    return files


def host_certificate(files: TlsFiles, host: str, *, now: dt.datetime | None = None) -> Path:
    """A PEM file with a key and certificate for ``host`` (under amazonaws.com), then the
    issuing CA's certificate: what a TLS server for that host loads. Made once per host and
    issuing CA, kept 0600 in the private TLS folder, remade when close to expiry."""
    if not host.endswith(f".{AWS_DOMAIN}") or "/" in host:
        raise ValueError(f"{host!r} is not a host name under {AWS_DOMAIN}")
    now = now or dt.datetime.now(dt.UTC)
    if not (files.hosts_ca_cert.is_file() and files.hosts_ca_key.is_file()):
        raise MlopsError(
            f"The emulator's TLS folder {files.ca_cert.parent} has no issuing CA for AWS's "
            "host names (the emulator was started by an older version): restart it with "
            "`invoke emulator-down` and `invoke emulator-up` (its data is kept)."
        )
    issuer_pem = files.hosts_ca_cert.read_bytes()
    issuer = x509.load_pem_x509_certificate(issuer_pem)
    path = files.hosts_dir / f"{host}.pem"
    if _host_file_valid(path, issuer, now):
        return path
    issuer_key = serialization.load_pem_private_key(files.hosts_ca_key.read_bytes(), None)
    if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        raise MlopsError(f"{files.hosts_ca_key} does not hold the issuing CA's EC key.")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + _HOST_VALIDITY, issuer.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    files.hosts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(
        path, _private_pem(key) + cert.public_bytes(serialization.Encoding.PEM) + issuer_pem
    )
    return path


def _host_file_valid(path: Path, issuer: x509.Certificate, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(issuer)
    except (FileNotFoundError, ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - _RENEW_BEFORE > now


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _still_valid(cert_path: Path, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - _RENEW_BEFORE > now
