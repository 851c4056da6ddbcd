"""Seed signed images with a real signer that is not oci_normalize: ``cosign_openssl.py``.

Every signature made here is a genuine ECDSA P-256 signature over cosign's simple-signing payload
(by ``tests/support/cosign_openssl.py``, through ``openssl``), so "does the old signature still
verify" and "does the new digest carry a signature naming it" are answered by openssl, not by the
tool under test. OCI 1.1 signature referrers (a sigstore bundle, a notation envelope) and an
unsigned SBOM referrer are added through the referrers fallback tag, as ORAS, cosign and notation
do on a registry without the referrers API (distribution 2.8).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import seed, seed_referrers

SIGNER = Path(__file__).with_name("cosign_openssl.py")
SIGNER_TIMEOUT = 60.0
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
NOTATION_ENVELOPE = "application/jose+json"
SPDX = seed_referrers.SPDX
SIGNATURE_ANNOTATION = seed_referrers.COSIGN_SIG_ANNOTATION


def signer_argv(*args: str) -> list[str]:
    return [sys.executable, str(SIGNER), *args]


@dataclass(frozen=True)
class Signer:
    """One key pair and the commands that sign and verify with it."""

    key: Path
    pub: Path

    @classmethod
    def create(cls, directory: Path) -> Signer:
        run = subprocess.run(
            signer_argv("keygen", str(directory)),
            capture_output=True,
            text=True,
            timeout=SIGNER_TIMEOUT,
        )
        if run.returncode != 0:
            raise RuntimeError(f"keygen failed: {run.stderr}")
        return cls(directory / "key.pem", directory / "pub.pem")

    def hook(self, *, log: Path | None = None) -> str:
        """The ``--sign-with`` text that signs ``{ref}`` (and logs the call to ``log``)."""
        args = signer_argv("sign", "--key", str(self.key))
        if log is not None:
            args += ["--log", str(log)]
        return shlex.join(args) + " {ref}"

    def sign(self, host: str, repo: str, digest: str) -> None:
        run = subprocess.run(
            signer_argv("sign", "--key", str(self.key), f"{host}/{repo}@{digest}"),
            capture_output=True,
            text=True,
            timeout=SIGNER_TIMEOUT,
        )
        if run.returncode != 0:
            raise RuntimeError(f"signing {host}/{repo}@{digest} failed: {run.stderr}")

    def verify(self, host: str, repo: str, digest: str, *, identity: str | None = None) -> str:
        """'' when a signature naming ``digest`` verifies under this key; else the reason."""
        extra = ["--identity", identity] if identity else []
        run = subprocess.run(
            signer_argv("verify", "--pub", str(self.pub), *extra, f"{host}/{repo}@{digest}"),
            capture_output=True,
            text=True,
            timeout=SIGNER_TIMEOUT,
        )
        return "" if run.returncode == 0 else (run.stderr.strip() or f"exit {run.returncode}")


def log_hook(log: Path) -> str:
    """A ``--sign-with`` text that only records its argv and environment to ``log``."""
    return shlex.join(signer_argv("log", str(log))) + " {ref}"


def logged_calls(log: Path) -> list[dict[str, Any]]:
    """The JSON lines ``sign --log`` / ``log`` wrote, oldest first ([] when never called)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@dataclass
class Seeded:
    """What a seeding helper pushed: digests by role, and the referrers it attached."""

    host: str
    repo: str
    tag: str
    digest: str
    media_type: str
    body: bytes
    children: dict[str, str] = field(default_factory=dict)  # arch -> digest
    referrers: dict[str, str] = field(default_factory=dict)  # kind -> referrer manifest digest

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _docker_image(host: str, repo: str, tag: str | None, key: str, arch: str = "amd64") -> bytes:
    return seed_referrers.push_docker_image(f"http://{host}", repo, tag, seed_text=key, arch=arch)


def docker_image(host: str, repo: str, tag: str, *, key: str) -> Seeded:
    """An unsigned Docker v2s2 image under ``tag`` (attach referrers to it)."""
    body = _docker_image(host, repo, tag, key)
    return Seeded(host, repo, tag, seed.sha256_digest(body), seed.DOCKER_MANIFEST, body)


def signed_docker_image(host: str, repo: str, tag: str, signer: Signer, *, key: str) -> Seeded:
    """A Docker v2s2 image under ``tag``, cosign-signed (``sha256-<hex>.sig``) by ``signer``."""
    image = docker_image(host, repo, tag, key=key)
    signer.sign(host, repo, image.digest)
    return image


def signed_oci_image(host: str, repo: str, tag: str, signer: Signer, *, key: str) -> Seeded:
    """An OCI-pure image (its digest never changes), cosign-signed by ``signer``."""
    url = f"http://{host}"
    blob, diff_id = seed.make_layer({f"{key}.txt": f"{key}\n".encode()})
    seed.put_blob(url, repo, blob)
    config = seed.make_config([diff_id])
    seed.put_blob(url, repo, config)
    body = seed._json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": seed.OCI_MANIFEST,
            "config": seed.descriptor(seed.OCI_CONFIG, config),
            "layers": [seed.descriptor(seed.OCI_LAYER_GZIP, blob)],
        }
    )
    digest = seed.put_manifest(url, repo, tag, body, seed.OCI_MANIFEST)
    signer.sign(host, repo, digest)
    return Seeded(host, repo, tag, digest, seed.OCI_MANIFEST, body)


def signed_docker_list(
    host: str, repo: str, tag: str, signer: Signer, *, key: str, sign_list: bool = True
) -> Seeded:
    """A Docker manifest list of two v2s2 children, each child signed on its own (as
    ``cosign sign --recursive`` does) and, with ``sign_list``, the list too."""
    url = f"http://{host}"
    entries = []
    children = {}
    for arch in ("amd64", "arm64"):
        child = _docker_image(host, repo, None, f"{key}-{arch}", arch)
        children[arch] = seed.sha256_digest(child)
        platform = {"architecture": arch, "os": "linux"}
        entries.append(seed.descriptor(seed.DOCKER_MANIFEST, child, platform=platform))
    body = seed._json_bytes(
        {"schemaVersion": 2, "mediaType": seed.DOCKER_LIST, "manifests": entries}
    )
    digest = seed.put_manifest(url, repo, tag, body, seed.DOCKER_LIST)
    for child_digest in children.values():
        signer.sign(host, repo, child_digest)
    if sign_list:
        signer.sign(host, repo, digest)
    return Seeded(host, repo, tag, digest, seed.DOCKER_LIST, body, children=children)


def attach_bundle(image: Seeded) -> str:
    """A sigstore bundle referrer (signature artifactType) of the image; its digest."""
    bundle = json.dumps(
        {
            "mediaType": SIGSTORE_BUNDLE,
            "verificationMaterial": {"publicKey": {"hint": "test"}},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": image.digest.split(":")[1]},
                "signature": "bm90LXZlcmlmaWVkLWhlcmU=",
            },
        },
        separators=(",", ":"),
    ).encode()
    digest = seed_referrers.push_referrer(
        image.url,
        image.repo,
        image.body,
        image.media_type,
        artifact_type=SIGSTORE_BUNDLE,
        content=bundle,
    )
    image.referrers["bundle"] = digest
    return digest


def attach_notation(image: Seeded) -> str:
    """A notation signature referrer (``application/vnd.cncf.notary.signature``); its digest."""
    envelope = json.dumps(
        {"payload": "e30", "protected": "e30", "signature": "c2ln", "header": {}},
        separators=(",", ":"),
    ).encode()
    digest = seed_referrers.push_referrer(
        image.url,
        image.repo,
        image.body,
        image.media_type,
        artifact_type=NOTATION_SIGNATURE,
        content=envelope,
        layer_type=NOTATION_ENVELOPE,
    )
    image.referrers["notation"] = digest
    return digest


def attach_sbom(image: Seeded) -> str:
    """An unsigned SPDX SBOM referrer of the image; its digest."""
    digest = seed_referrers.push_referrer(image.url, image.repo, image.body, image.media_type)
    image.referrers["sbom"] = digest
    return digest


def fallback_referrers(host: str, repo: str, subject: str) -> dict[str, dict[str, Any]]:
    """Referrers listed in the fallback tag ``sha256-<hex>`` of ``subject``, by artifactType
    (each: the referrer manifest, parsed, with its ``digest``); {} when there is no such tag."""
    url = f"http://{host}"
    if seed.head_manifest(url, repo, seed_referrers.tag_stem(subject)) is None:
        return {}
    raw, _, _ = seed.get_manifest(url, repo, seed_referrers.tag_stem(subject))
    found: dict[str, dict[str, Any]] = {}
    for entry in json.loads(raw)["manifests"]:
        body, _, digest = seed.get_manifest(url, repo, entry["digest"])
        doc = json.loads(body)
        found[entry.get("artifactType") or doc.get("artifactType", "")] = {**doc, "digest": digest}
    return found


def sig_tag(digest: str) -> str:
    return f"{seed_referrers.tag_stem(digest)}.sig"
