"""A registry of a few hundred references of mixed shapes, for the fleet sweep and bench/worker.py.

Per repository: Docker v2s2 images (distinct digests on shared blobs), aliases (a second tag on
the same digest), Docker manifest lists, already-OCI images, Kaniko-style mixed manifests (OCI
manifest with a Docker layer) and OCI indexes with Docker children. Like ``tests/support/seed.py``, this
never imports the package under test: the shard rule below is written out from the docs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tests.support import seed
from tests.support.bulk_seed import Seeder, docker_manifest_variant

VARIANT_KEY = "org.example.variant"
DOCKER_TAGS = 20
ALIASES = 5
LISTS = 3
OCI_TAGS = 5
KANIKO_TAGS = 5
MIXED_INDEXES = 3
REFS_PER_REPO = DOCKER_TAGS + ALIASES + LISTS + OCI_TAGS + KANIKO_TAGS + MIXED_INDEXES


@dataclass(frozen=True)
class SeededRef:
    repository: str
    tag: str
    digest: str
    kind: str  # docker | mixed | oci: what the tree was before any conversion

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"


def shard_of(repository: str, tag: str, count: int) -> int:
    """The documented ``--shard`` rule: SHA-256 of the name (host left out), first 8 bytes."""
    key = f"{repository}:{tag}@".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % count


def _with_variant(body: bytes, variant: int) -> bytes:
    doc: dict[str, Any] = json.loads(body)
    doc["annotations"] = {VARIANT_KEY: str(variant)}
    return json.dumps(doc, indent=2).encode()


def seed_fleet(url: str, *, prefix: str, repos: int) -> list[SeededRef]:
    """Seed ``repos`` repositories named ``PREFIX/app-N``; every reference, sorted by name."""
    s = Seeder(url)
    refs: list[SeededRef] = []
    try:
        for r in range(repos):
            refs += _seed_repo(s, url, f"{prefix}/app-{r}", key=f"{prefix}-{r}")
    finally:
        s.close()
    return sorted(refs, key=lambda ref: ref.name)


def _seed_repo(s: Seeder, url: str, repo: str, *, key: str) -> list[SeededRef]:
    refs: list[SeededRef] = []

    def put(tag: str, body: bytes, media_type: str, kind: str) -> None:
        refs.append(SeededRef(repo, tag, s.put_manifest(repo, tag, body, media_type), kind))

    base = s.docker_image(repo, None, key=key)
    variants = [docker_manifest_variant(base, i) for i in range(DOCKER_TAGS)]
    for i, body in enumerate(variants):
        put(f"d{i:02d}", body, seed.DOCKER_MANIFEST, "docker")
    for i in range(ALIASES):
        put(f"a{i:02d}", variants[i], seed.DOCKER_MANIFEST, "docker")
    lists = [s.docker_list(repo, f"l{i}", key=f"{key}-l{i}") for i in range(LISTS)]
    refs += [SeededRef(repo, f"l{i}", lst.digest, "docker") for i, lst in enumerate(lists)]
    oci = s.oci_image(repo, "o-base", key=f"{key}-oci")
    refs.append(SeededRef(repo, "o-base", oci.digest, "oci"))
    for i in range(1, OCI_TAGS):
        put(f"o{i:02d}", _with_variant(oci.manifest, i), seed.OCI_MANIFEST, "oci")
    kaniko = seed.get_manifest(url, repo, seed.push_mixed_kaniko(url, repo, "k-base", seed=key))[0]
    refs.append(SeededRef(repo, "k-base", seed.sha256_digest(kaniko), "mixed"))
    for i in range(1, KANIKO_TAGS):
        put(f"k{i:02d}", _with_variant(kaniko, i), seed.OCI_MANIFEST, "mixed")
    children = json.loads(lists[0].manifest)["manifests"]
    for i in range(MIXED_INDEXES):  # an OCI index over Docker children
        index = {"schemaVersion": 2, "mediaType": seed.OCI_INDEX, "manifests": children}
        index["annotations"] = {VARIANT_KEY: str(i)}
        put(f"x{i:02d}", json.dumps(index, indent=2).encode(), seed.OCI_INDEX, "mixed")
    return refs
