"""TLS with a private CA: --ca-file trusts it, a wrong CA is a clear, unretried failure,
--insecure skips the check and says so once."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oci_normalize import api
from oci_normalize.errors import TLSFailureError
from oci_normalize.options import ClientOptions
from tests.support import seed
from tests.support.faultproxy import FaultProxy
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, cn: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


@pytest.fixture(scope="module")
def tls_registry(
    registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    """(host of an HTTPS front for the shared registry, its CA file, an unrelated CA file)."""
    base = tmp_path_factory.mktemp("tls")
    ca_path, ca_key, ca_cert = make_ca(base, "test-ca")
    other_ca, _, _ = make_ca(base, "other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = base / "server.pem", base / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    layout = seed.build_layout(base, layers=1, seed="tls")
    seed.push_docker_v2s2(layout, f"{registry.host}/tls/app:v1")
    with FaultProxy(registry.host, tls=(str(cert_file), str(key_file))) as front:
        yield front.host, ca_path, other_ca


def test_ca_file_trusts_a_private_ca(tls_registry: tuple[str, Path, Path]) -> None:
    host, ca, _ = tls_registry
    client = api.Client(options=ClientOptions(ca_file=str(ca)))
    assert api.check(f"{host}/tls/app:v1", client=client).oci is False


def test_wrong_ca_is_a_clear_tls_failure_and_not_retried(
    tls_registry: tuple[str, Path, Path],
) -> None:
    host, _, other = tls_registry
    client = api.Client(options=ClientOptions(ca_file=str(other)))
    with pytest.raises(TLSFailureError, match="certificate verify failed .*--ca-file"):
        api.check(f"{host}/tls/app:v1", client=client)
    assert client.requests == 1


def test_cli_insecure_warns_once_and_ca_file_works(tls_registry: tuple[str, Path, Path]) -> None:
    host, ca, _ = tls_registry
    ref = f"{host}/tls/app:v1"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "oci_normalize", "check", *args, ref, ref],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
        )

    insecure = run("--insecure")
    assert insecure.returncode == 1, insecure.stderr
    assert insecure.stderr.count("--insecure") == 1
    trusted = run("--ca-file", str(ca))
    assert trusted.returncode == 1 and trusted.stderr == "", trusted.stderr
