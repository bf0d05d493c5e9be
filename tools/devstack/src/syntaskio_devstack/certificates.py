"""Certificates for a TLS stack in tests: a CA of our own, a server certificate for
127.0.0.1/localhost, and client certificates (mutual TLS), as PEM files. Valid for a day;
never for anything but tests."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def issue_certificates(
    directory: Path, clients: list[str], ca_name: str = "Syntaskio test CA"
) -> dict[str, Path]:
    """Files: `ca` (the CA's certificate), `server.crt`/`server.key`, and
    `{client}.crt`/`{client}.key` for each client."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(not_valid_before=start, not_valid_after=end)
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": directory / "ca.crt"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(name: str, usage: x509.ObjectIdentifier, alt: list[x509.GeneralName]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder(not_valid_before=start, not_valid_after=end)
            .subject_name(_name(name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        files[f"{name}.crt"] = directory / f"{name}.crt"
        files[f"{name}.crt"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        files[f"{name}.key"] = directory / f"{name}.key"
        _write_key(files[f"{name}.key"], key)

    issue(
        "server",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    for client in clients:
        issue(client, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return files
