"""A fast in-memory registry for the scale bench: N repositories x T tags of small v2s2 images.

Not a test double and never the proof of a behaviour (the real registry is): it exists because
seeding 100,000 tags into distribution takes longer than the bench itself. It speaks just the
distribution API a batch uses, over keep-alive HTTP/1.1 on loopback:

- ``GET /v2/_catalog`` and ``GET /v2/<name>/tags/list`` paginated (``n``, ``last``, capped at
  :data:`PAGE_MAX` a page, with a ``Link: <…>; rel="next"`` header as distribution sends);
- manifests: ``GET``/``HEAD`` by tag or digest, ``PUT`` (the digest echoed);
- blobs: ``HEAD``, ``GET``, mount (``POST ?mount=&from=``), and upload (``POST`` then ``PUT``);
- ``/referrers/`` answers 404, as distribution 2.8 does (no referrers API).

Run it as ``python -m bench.fakeregistry --repos R --tags T`` (``--repos 0`` for an empty
destination): it prints ``READY <port>`` once it listens, and serves until killed. Image
``r``/``t`` is a v2s2 manifest over its own tiny config blob and one layer shared by all.
``--converted`` serves each tag at the OCI twin a batch would have made of it (for the rollback
bench, :mod:`bench.rollback`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import parse_qs, quote, urlsplit

V2S2: Final = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG: Final = "application/vnd.docker.container.image.v1+json"
LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
#: Names a listing page holds at most, whatever ``n`` asks (distribution's is 1000).
PAGE_MAX: Final = 100
LAYER_BYTES: Final = b"\x1f\x8b" + bytes(range(256)) * 4  # not a real gzip: never unpacked


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """Image ``repo``:``tag`` of the fake registry: its config and Docker v2s2 manifest."""

    repo: str
    tag: str
    config: bytes
    manifest: bytes


def images(repos: int, tags: int) -> Iterator[Image]:
    """Every image of a registry of ``repos`` x ``tags``, in catalog order, one at a time."""
    layer = sha256(LAYER_BYTES)
    for r in range(repos):
        for t in range(tags):
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "config": {"Env": [f"IMAGE={r}-{t}"]},
                    "rootfs": {"type": "layers", "diff_ids": [layer]},
                },
                separators=(",", ":"),
            ).encode()
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": V2S2,
                    "config": {"mediaType": CONFIG, "size": len(config), "digest": sha256(config)},
                    "layers": [{"mediaType": LAYER, "size": len(LAYER_BYTES), "digest": layer}],
                },
                indent=3,
            ).encode()
            yield Image(f"scale/app{r:05d}", f"v{t:05d}", config, manifest)


def oci_twin(manifest: bytes) -> bytes:
    """The OCI manifest ``oci-normalize`` makes of an image's v2s2 ``manifest``: the same keys
    in the same order, compact, with OCI media types (the rollback bench journals this move; its
    proof fails for every tag should the two ever differ)."""
    doc = json.loads(manifest)
    doc["mediaType"] = OCI_MANIFEST
    doc["config"]["mediaType"] = OCI_CONFIG
    for layer in doc["layers"]:
        layer["mediaType"] = OCI_LAYER
    return json.dumps(doc, separators=(",", ":")).encode()


class Store:
    """Everything the registry holds, in dicts (the GIL makes each operation atomic).

    With ``converted``, each tag holds its image's OCI twin (:func:`oci_twin`), as if a batch
    had converted it in place, and the v2s2 original is kept by digest.
    """

    def __init__(self, repos: int, tags: int, *, converted: bool = False) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, bytearray] = {}
        self.lock = threading.Lock()
        self.blobs[sha256(LAYER_BYTES)] = LAYER_BYTES
        for image in images(repos, tags):
            self.blobs[sha256(image.config)] = image.config
            digest = sha256(image.manifest)
            self.manifests[digest] = (image.manifest, V2S2)
            if converted:
                twin = oci_twin(image.manifest)
                digest = sha256(twin)
                self.manifests[digest] = (twin, OCI_MANIFEST)
            self.tags.setdefault(image.repo, {})[image.tag] = digest
        self.sorted_repos = sorted(self.tags)


def page(names: list[str], query: dict[str, list[str]]) -> tuple[list[str], str | None]:
    """One page of sorted ``names`` after ``last``; the ``last`` of the next page, if any."""
    n = min(int(query.get("n", [str(PAGE_MAX)])[0]), PAGE_MAX)
    last = query.get("last", [""])[0]
    start = 0
    if last:
        lo, hi = 0, len(names)
        while lo < hi:  # first name > last
            mid = (lo + hi) // 2
            if names[mid] <= last:
                lo = mid + 1
            else:
                hi = mid
        start = lo
    items = names[start : start + n]
    more = start + n < len(names)
    return items, (items[-1] if more and items else None)


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            return None

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _route(self) -> None:
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            if path in ("/v2/", "/v2"):
                self._send(200, b"{}", {"Docker-Distribution-API-Version": "registry/2.0"})
            elif path == "/v2/_catalog":
                self._listing(path, store.sorted_repos, query, "repositories", {})
            elif path.endswith("/tags/list"):
                repo = path[4 : -len("/tags/list")]
                listed = store.tags.get(repo)
                if listed is None:
                    self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}')
                else:
                    self._listing(path, sorted(listed), query, "tags", {"name": repo})
            elif "/manifests/" in path:
                repo, _, ref = path[4:].rpartition("/manifests/")
                self._manifest(repo, ref)
            elif "/blobs/uploads/" in path:
                repo, _, session = path[4:].rpartition("/blobs/uploads/")
                self._upload(repo, session, query)
            elif "/blobs/" in path:
                _, _, digest = path[4:].rpartition("/blobs/")
                blob = store.blobs.get(digest)
                if blob is None:
                    self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}')
                else:
                    headers = {"Docker-Content-Digest": digest}
                    self._send(200, blob, {"Content-Type": "application/octet-stream", **headers})
            else:  # referrers and anything else: as distribution 2.8, unknown
                self._body()
                self._send(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}')

        def _listing(
            self,
            path: str,
            names: list[str],
            query: dict[str, list[str]],
            key: str,
            extra: dict[str, str],
        ) -> None:
            items, last = page(names, query)
            headers = {"Content-Type": "application/json"}
            if last is not None:
                n = min(int(query.get("n", [str(PAGE_MAX)])[0]), PAGE_MAX)
                headers["Link"] = f'<{path}?n={n}&last={quote(last)}>; rel="next"'
            self._send(200, json.dumps({**extra, key: items}).encode(), headers)

        def _manifest(self, repo: str, ref: str) -> None:
            if self.command == "PUT":
                data = self._body()
                digest = sha256(data)
                media_type = self.headers.get("Content-Type", V2S2)
                store.manifests[digest] = (data, media_type)
                if not ref.startswith("sha256:"):
                    store.tags.setdefault(repo, {})[ref] = digest
                headers = {
                    "Docker-Content-Digest": digest,
                    "Location": f"/v2/{repo}/manifests/{digest}",
                }
                self._send(201, b"", headers)
                return
            wanted = ref if ref.startswith("sha256:") else store.tags.get(repo, {}).get(ref, "")
            found = store.manifests.get(wanted)
            if found is None:
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}')
                return
            data, media_type = found
            self._send(200, data, {"Content-Type": media_type, "Docker-Content-Digest": wanted})

        def _upload(self, repo: str, session: str, query: dict[str, list[str]]) -> None:
            if self.command == "POST":
                self._body()
                mount = query.get("mount", [""])[0]
                if mount and mount in store.blobs:
                    location = f"/v2/{repo}/blobs/{mount}"
                    self._send(201, b"", {"Location": location, "Docker-Content-Digest": mount})
                    return
                name = uuid.uuid4().hex
                store.uploads[name] = bytearray()
                location = f"/v2/{repo}/blobs/uploads/{name}"
                self._send(202, b"", {"Location": location, "Range": "0-0"})
            elif self.command == "PATCH":
                store.uploads.setdefault(session, bytearray()).extend(self._body())
                self._send(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{session}"})
            elif self.command == "PUT":
                data = bytes(store.uploads.pop(session, bytearray()) + self._body())
                digest = query.get("digest", [""])[0]
                if sha256(data) != digest:
                    self._send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"no"}]}')
                    return
                store.blobs[digest] = data
                headers = {
                    "Docker-Content-Digest": digest,
                    "Location": f"/v2/{repo}/blobs/{digest}",
                }
                self._send(201, b"", headers)
            else:
                self._send(405)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _route

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, required=True)
    parser.add_argument("--tags", type=int, default=100, help="tags a repository")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--converted", action="store_true", help="tags hold OCI twins (to roll back)"
    )
    args = parser.parse_args()
    store = Store(args.repos, args.tags, converted=args.converted)
    server = _Server(("127.0.0.1", args.port), make_handler(store))
    print(f"READY {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
