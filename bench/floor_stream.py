#!/usr/bin/env python3
"""The big-copy floor: one image registry → registry, each blob streamed once, in Python.

    .venv/bin/python bench/floor_stream.py SRC_HOST DEST_HOST REPOSITORY TAG [--workers 8]

``bench/bigcopy.py`` runs this as a child process next to ``oci-normalize convert SRC DEST``
and ``skopeo copy``. It reads the (Docker v2s2) manifest once, then for every blob at once,
each on its own thread and connections: one GET at the source, one POST and one streamed PUT
(its length known) at the destination, every byte hashed on the way as any copier that checks
what it forwards must. The OCI manifest goes last. It imports nothing beyond the standard
library, retries nothing and reads nothing else: what separates it from a real tool is start-up
and bookkeeping, so it shows how close to skopeo a Python copier can get on this machine.
It is a measurement aid, never a test and never a way to copy anything.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1024 * 1024
TIMEOUT = 120


def copy_blob(src: str, dest: str, repo: str, desc: dict[str, Any]) -> None:
    source = http.client.HTTPConnection(src, timeout=TIMEOUT)
    target = http.client.HTTPConnection(dest, timeout=TIMEOUT)
    source.request("GET", f"/v2/{repo}/blobs/{desc['digest']}")
    body = source.getresponse()
    target.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
    started = target.getresponse()
    started.read()
    loc = urlsplit(started.getheader("Location") or "")
    hasher = hashlib.sha256()
    buf = memoryview(bytearray(max(1, min(CHUNK, desc["size"]))))

    def chunks() -> Iterator[memoryview]:
        while n := body.readinto(buf):
            hasher.update(buf[:n])
            yield buf[:n]

    headers = {"Content-Length": str(desc["size"]), "Content-Type": "application/octet-stream"}
    target.request("PUT", f"{loc.path}?{loc.query}&digest={desc['digest']}", chunks(), headers)
    done = target.getresponse()
    done.read()
    if done.status != 201 or "sha256:" + hasher.hexdigest() != desc["digest"]:
        raise SystemExit(f"floor: {desc['digest']}: HTTP {done.status} or a digest mismatch")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("dest")
    parser.add_argument("repository")
    parser.add_argument("tag")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    conn = http.client.HTTPConnection(args.src, timeout=TIMEOUT)
    conn.request("GET", f"/v2/{args.repository}/manifests/{args.tag}", headers={
        "Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"
    })  # fmt: skip
    doc = json.loads(conn.getresponse().read())
    blobs = [doc["config"], *doc["layers"]]
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda d: copy_blob(args.src, args.dest, args.repository, d), blobs))
    doc["mediaType"] = OCI_MANIFEST
    doc["config"]["mediaType"] = OCI_CONFIG
    for layer in doc["layers"]:
        layer["mediaType"] = OCI_LAYER_GZIP
    out = http.client.HTTPConnection(args.dest, timeout=TIMEOUT)
    body = json.dumps(doc, separators=(",", ":")).encode()
    out.request("PUT", f"/v2/{args.repository}/manifests/{args.tag}", body, {
        "Content-Type": OCI_MANIFEST
    })  # fmt: skip
    if out.getresponse().status != 201:
        raise SystemExit("floor: the manifest PUT was refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
