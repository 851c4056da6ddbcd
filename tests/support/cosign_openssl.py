#!/usr/bin/env python3
"""A cosign-format signer and verifier built on the ``openssl`` CLI, independent of oci_normalize.

The tests use it as the ``--sign-with`` hook, and then as the judge: it must not share a line of
code with the tool it grades, so it imports only the standard library and ``requests``.

    cosign_openssl.py keygen DIR
        DIR/key.pem (ECDSA P-256, ``openssl ecparam -genkey -name prime256v1``) and DIR/pub.pem.
    cosign_openssl.py sign --key KEY.pem [--log FILE] [HOST/REPO@sha256:HEX]
        Signs the digest the way cosign does: the simple-signing payload naming HOST/REPO and the
        digest, signed with ``openssl dgst -sha256 -sign`` (DER, base64 in the layer annotation
        ``dev.cosignproject.cosign/signature``), pushed as a layer of the OCI manifest tagged
        ``sha256-<hex>.sig`` in the same repository (appended to its layers if that tag exists).
        The reference defaults to $OCI_NORMALIZE_IMAGE. With ``--log``, one JSON line (time,
        argv, the OCI_NORMALIZE_* environment) is appended to FILE first.
    cosign_openssl.py log FILE [ARGS…]
        Only that JSON line: a hook that records how it was called and signs nothing.
    cosign_openssl.py verify --pub PUB.pem [--identity HOST/REPO] HOST/REPO@sha256:HEX
        Exit 0 when ``sha256-<hex>.sig`` exists, every layer's payload blob matches its
        descriptor and names exactly that digest (and, with --identity, that docker-reference),
        and at least one layer's signature verifies under PUB.pem; else exit 1 with the reason.

Plain HTTP, no credentials: the registries under test listen on loopback.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
HTTP_TIMEOUT = 30.0
REF_RE = re.compile(r"^(?P<host>[^/]+)/(?P<repo>[^@]+)@(?P<digest>sha256:[0-9a-f]{64})$")


class Failure(Exception):
    """A reason to exit 1."""


# --- references and registry I/O ----------------------------------------------------------------


def split_ref(ref: str) -> tuple[str, str, str]:
    match = REF_RE.match(ref)
    if match is None:
        raise Failure(f"not HOST/REPO@sha256:HEX: {ref!r}")
    return match["host"], match["repo"], match["digest"]


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _base(host: str, repo: str) -> str:
    return f"http://{host}/v2/{repo}"


def get_manifest(host: str, repo: str, ref: str) -> bytes | None:
    resp = requests.get(
        f"{_base(host, repo)}/manifests/{ref}",
        headers={"Accept": OCI_MANIFEST},
        timeout=HTTP_TIMEOUT,
    )
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise Failure(f"GET manifest {repo}:{ref}: HTTP {resp.status_code}")
    return resp.content


def get_blob(host: str, repo: str, digest: str) -> bytes:
    resp = requests.get(f"{_base(host, repo)}/blobs/{digest}", timeout=HTTP_TIMEOUT)
    if resp.status_code != 200:
        raise Failure(f"GET blob {repo}@{digest}: HTTP {resp.status_code}")
    if sha256(resp.content) != digest:
        raise Failure(f"blob {repo}@{digest} does not hash to its digest")
    return resp.content


def put_blob(host: str, repo: str, data: bytes) -> None:
    digest = sha256(data)
    head = requests.head(f"{_base(host, repo)}/blobs/{digest}", timeout=HTTP_TIMEOUT)
    if head.status_code == 200:
        return
    start = requests.post(f"{_base(host, repo)}/blobs/uploads/", timeout=HTTP_TIMEOUT)
    if start.status_code != 202:
        raise Failure(f"POST upload {repo}: HTTP {start.status_code}")
    location = urljoin(f"http://{host}/", start.headers["Location"])
    done = requests.put(
        location,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=HTTP_TIMEOUT,
    )
    if done.status_code != 201:
        raise Failure(f"PUT blob {repo}@{digest}: HTTP {done.status_code}")


def put_manifest(host: str, repo: str, ref: str, body: bytes) -> None:
    resp = requests.put(
        f"{_base(host, repo)}/manifests/{ref}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=HTTP_TIMEOUT,
    )
    if resp.status_code != 201:
        raise Failure(f"PUT manifest {repo}:{ref}: HTTP {resp.status_code} {resp.text[:300]}")


# --- payload, signing ---------------------------------------------------------------------------


def payload(host: str, repo: str, digest: str) -> bytes:
    """cosign's simple-signing payload, compact, keys in cosign's order."""
    doc = {
        "critical": {
            "identity": {"docker-reference": f"{host}/{repo}"},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, stdin=subprocess.DEVNULL)


def sign_bytes(key: Path, data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "payload", Path(tmp) / "sig.der"
        src.write_bytes(data)
        proc = openssl("dgst", "-sha256", "-sign", str(key), "-out", str(out), str(src))
        if proc.returncode != 0:
            raise Failure(f"openssl dgst -sign: {proc.stderr.decode(errors='replace').strip()}")
        return out.read_bytes()


def verify_bytes(pub: Path, data: bytes, signature: bytes) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src, sig = Path(tmp) / "payload", Path(tmp) / "sig.der"
        src.write_bytes(data)
        sig.write_bytes(signature)
        proc = openssl("dgst", "-sha256", "-verify", str(pub), "-signature", str(sig), str(src))
        return proc.returncode == 0


def sig_config(layers: list[dict[str, Any]]) -> bytes:
    """The near-empty image config cosign writes: one diff_id per signature layer."""
    doc = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "config": {},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(key: Path, ref: str) -> str:
    """Push a signature of ``ref``'s digest; the .sig tag written."""
    host, repo, digest = split_ref(ref)
    body = payload(host, repo, digest)
    signature = base64.b64encode(sign_bytes(key, body)).decode()
    put_blob(host, repo, body)
    layer = {
        "mediaType": SIMPLESIGNING,
        "size": len(body),
        "digest": sha256(body),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }
    tag = sig_tag(digest)
    existing = get_manifest(host, repo, tag)
    layers: list[dict[str, Any]] = json.loads(existing)["layers"] if existing else []
    if layer not in layers:
        layers.append(layer)
    config = sig_config(layers)
    put_blob(host, repo, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256(config)},
        "layers": layers,
    }
    put_manifest(host, repo, tag, json.dumps(manifest, separators=(",", ":")).encode())
    return tag


def verify(pub: Path, ref: str, identity: str | None) -> str:
    """A one-line success reason, or :class:`Failure`."""
    host, repo, digest = split_ref(ref)
    tag = sig_tag(digest)
    body = get_manifest(host, repo, tag)
    if body is None:
        raise Failure(f"no signature: {repo}:{tag} does not exist")
    layers = json.loads(body).get("layers") or []
    if not layers:
        raise Failure(f"{repo}:{tag} has no signature layers")
    good = 0
    for index, layer in enumerate(layers):
        blob = get_blob(host, repo, layer["digest"])
        critical = json.loads(blob)["critical"]
        named = critical["image"]["docker-manifest-digest"]
        if named != digest:
            raise Failure(f"layer {index} signs {named}, not {digest}")
        if critical.get("type") != SIGNATURE_TYPE:
            raise Failure(f"layer {index} payload type is {critical.get('type')!r}")
        if identity is not None and critical["identity"]["docker-reference"] != identity:
            raise Failure(
                f"layer {index} names {critical['identity']['docker-reference']}, not {identity}"
            )
        signature = layer.get("annotations", {}).get(SIGNATURE_ANNOTATION, "")
        if verify_bytes(pub, blob, base64.b64decode(signature)):
            good += 1
    if not good:
        raise Failure(f"none of the {len(layers)} signature(s) on {digest} verifies with {pub}")
    return f"{good} of {len(layers)} signature(s) on {digest} verify"


def keygen(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key, pub = directory / "key.pem", directory / "pub.pem"
    for args in (
        ("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(key)),
        ("ec", "-in", str(key), "-pubout", "-out", str(pub)),
    ):
        proc = openssl(*args)
        if proc.returncode != 0:
            raise Failure(f"openssl {args[0]}: {proc.stderr.decode(errors='replace').strip()}")


def log_call(path: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith("OCI_NORMALIZE_")}
    line = json.dumps({"time": time.time(), "pid": os.getpid(), "argv": argv, "env": env})
    with path.open("a") as out:
        out.write(line + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cosign_openssl.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p_keygen = sub.add_parser("keygen")
    p_keygen.add_argument("directory", type=Path)
    p_sign = sub.add_parser("sign")
    p_sign.add_argument("--key", type=Path, required=True)
    p_sign.add_argument("--log", type=Path)
    p_sign.add_argument("ref", nargs="?", default=os.environ.get("OCI_NORMALIZE_IMAGE"))
    p_log = sub.add_parser("log")
    p_log.add_argument("file", type=Path)
    p_log.add_argument("rest", nargs=argparse.REMAINDER)
    p_verify = sub.add_parser("verify")
    p_verify.add_argument("--pub", type=Path, required=True)
    p_verify.add_argument("--identity")
    p_verify.add_argument("ref")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            keygen(args.directory)
        elif args.command == "log":
            log_call(args.file, argv)
        elif args.command == "sign":
            if args.log is not None:
                log_call(args.log, argv)
            if not args.ref:
                raise Failure("no reference: pass HOST/REPO@sha256:HEX or set OCI_NORMALIZE_IMAGE")
            print(f"pushed {sign(args.key, args.ref)}")
        else:
            print(verify(args.pub, args.ref, args.identity))
    except (Failure, requests.RequestException, ValueError, KeyError, TypeError) as exc:
        print(f"cosign_openssl: {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
