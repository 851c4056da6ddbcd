#!/usr/bin/env python3
"""The migration floor: the fewest requests a registry → registry conversion can send, in Python.

    .venv/bin/python bench/floor_copy.py SRC_HOST DEST_HOST PREFIX REFS_JSON [--workers 8]

``bench/migrate.py`` runs this as a child process next to ``batch --to`` and ``skopeo sync``.
For each reference it reads each manifest once, streams each blob once (one GET at the source,
one POST and one PUT at the destination: distribution takes no one-request upload), writes the
converted manifests children first and the tag last, over the standard library's http.client
on one kept-alive connection per thread and host. Nothing is checked, retried, journalled or
guarded: it is the least any tool could send and spend, so the registries' own work shows.
It is a measurement aid, never a test and never a way to migrate anything.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

Headers = dict[str, str]
_local = threading.local()


def call(
    host: str, method: str, path: str, body: bytes | None = None, headers: Headers | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conns: dict[str, http.client.HTTPConnection] = _local.__dict__.setdefault("conns", {})
    conn = conns.get(host)
    if conn is None:
        conn = conns[host] = http.client.HTTPConnection(host, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"floor: {method} {host}{path}: HTTP {resp.status}")
    return resp, data


def copy_image(src: str, dest: str, repo: str, to: str, doc: dict[str, Any]) -> bytes:
    for desc in [doc["config"], *doc["layers"]]:
        _, blob = call(src, "GET", f"/v2/{repo}/blobs/{desc['digest']}")
        started, _ = call(dest, "POST", f"/v2/{to}/blobs/uploads/", b"")
        loc = urlsplit(started.getheader("Location") or "")
        path = f"{loc.path}?{loc.query}&digest={desc['digest']}"
        call(dest, "PUT", path, blob, {"Content-Type": "application/octet-stream"})
    doc["mediaType"] = OCI_MANIFEST
    doc["config"]["mediaType"] = OCI_CONFIG
    for layer in doc["layers"]:
        layer["mediaType"] = OCI_LAYER_GZIP
    return json.dumps(doc, separators=(",", ":")).encode()


def put_manifest(dest: str, to: str, ref: str, body: bytes, media_type: str) -> None:
    call(dest, "PUT", f"/v2/{to}/manifests/{ref}", body, {"Content-Type": media_type})


def one(src: str, dest: str, prefix: str, repo: str, tag: str) -> None:
    to = f"{prefix}/{repo}"
    accept = {"Accept": ACCEPT}
    doc = json.loads(call(src, "GET", f"/v2/{repo}/manifests/{tag}", None, accept)[1])
    if doc.get("mediaType") != DOCKER_LIST:
        put_manifest(dest, to, tag, copy_image(src, dest, repo, to, doc), OCI_MANIFEST)
        return
    for child in doc["manifests"]:
        _, raw = call(src, "GET", f"/v2/{repo}/manifests/{child['digest']}", None, accept)
        new = copy_image(src, dest, repo, to, json.loads(raw))
        digest = "sha256:" + hashlib.sha256(new).hexdigest()
        put_manifest(dest, to, digest, new, OCI_MANIFEST)
        child.update(mediaType=OCI_MANIFEST, digest=digest, size=len(new))
    doc["mediaType"] = OCI_INDEX
    put_manifest(dest, to, tag, json.dumps(doc, separators=(",", ":")).encode(), OCI_INDEX)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("dest")
    parser.add_argument("prefix")
    parser.add_argument("refs", help="a JSON file: [[repository, tag], …]")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with open(args.refs) as fh:
        refs = json.load(fh)
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda r: one(args.src, args.dest, args.prefix, *r), refs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
