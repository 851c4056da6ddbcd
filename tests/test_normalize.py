"""The pure normalizer against hand-written golden fixtures (bytes in, bytes out, no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.convert.normalize import find_docker_types, normalize
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    MalformedManifestError,
    OciNormalizeError,
    UnsupportedMediaTypeError,
)
from oci_normalize.manifest import serialize
from oci_normalize.models import Node
from tests.support.oci_schema import schema_dir, validate

CASES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "normalize"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.json").is_file())


def load_case(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((CASES_DIR / name / "case.json").read_text())
    return case


def build_tree(
    files: dict[Digest, bytes], digest: Digest, media_type: str, path: str = "@"
) -> Node:
    """A Node tree from a folder of manifests named by digest, typed the way the fetcher does."""
    data = files[digest]
    body = json.loads(data)
    mtype = mt.base(body.get("mediaType") or media_type)
    children: list[Node] = []
    if mt.is_index(mtype):
        seen: set[Digest] = set()
        for i, entry in enumerate(body["manifests"]):
            child = Digest.parse(entry["digest"])
            if child in files and child not in seen:
                seen.add(child)
                children.append(build_tree(files, child, entry["mediaType"], f"{path}/{i}"))
    return Node(digest=digest, media_type=mtype, data=data, path=path, children=tuple(children))


def read_dir(folder: Path) -> dict[Digest, bytes]:
    return {Digest("sha256", p.stem): p.read_bytes() for p in folder.glob("*.json")}


def case_tree(name: str) -> Node:
    case = load_case(name)
    files = read_dir(CASES_DIR / name / "input")
    root = Digest("sha256", case["root"].removesuffix(".json"))
    return build_tree(files, root, case["root_media_type"])


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    case = load_case(name)
    tree = case_tree(name)
    if case["expect"] == "error":
        with pytest.raises(OciNormalizeError) as info:
            normalize(tree)
        assert case["error_contains"].lower() in str(info.value).lower()
        return
    plan = normalize(tree)
    expected = read_dir(CASES_DIR / name / "expected")
    expected_root = Digest.parse((CASES_DIR / name / "expected" / "root.txt").read_text().strip())
    got = {n.new_digest: n.new_data for n in plan.nodes}
    assert got == expected
    assert plan.root.new_digest == expected_root
    assert bool(plan.changed) == (case["expect"] == "converted")
    assert (plan.artifact is not None) == (case["expect"] == "artifact")
    for wanted in case.get("warnings_contain", []):
        assert any(wanted in w for w in plan.warnings), (wanted, plan.warnings)
    # Config and layer descriptors are never touched: same digests and sizes, same order.
    for node in plan.nodes:
        assert _blob_ids(node.old_data) == _blob_ids(node.new_data)


def _blob_ids(data: bytes) -> list[tuple[str, int]]:
    body = json.loads(data)
    descs = ([body["config"]] if "config" in body else []) + body.get("layers", [])
    return [(d["digest"], d["size"]) for d in descs]


@pytest.mark.parametrize(
    "name", [c for c in CASES if load_case(c)["expect"] not in ("error", "artifact")]
)
def test_output_is_oci_pure_valid_and_idempotent(name: str) -> None:
    plan = normalize(case_tree(name))
    files = {n.new_digest: n.new_data for n in plan.nodes}
    root = plan.root
    again_tree = build_tree(files, root.new_digest, root.new_media_type)
    assert find_docker_types(again_tree) == []
    again = normalize(again_tree)
    assert again.changed == ()
    assert again.root.new_data == root.new_data
    if schema_dir() is None:
        pytest.skip("OCI schemas not found") if not _ci() else pytest.fail("OCI schemas missing")
    for node in plan.nodes:
        validate(json.loads(node.new_data), node.new_media_type)


def _ci() -> bool:
    import os

    return os.environ.get("CI", "").lower() == "true"


def test_findings_name_every_docker_type_in_the_kaniko_case() -> None:
    findings = find_docker_types(case_tree("kaniko-trillian"))
    assert [(f.where, f.media_type, f.oci_media_type) for f in findings] == [
        ("layers[11]", mt.DOCKER_LAYER_GZIP, mt.OCI_LAYER_GZIP)
    ]


def test_findings_report_schema1_without_raising() -> None:
    findings = find_docker_types(case_tree("schema1-signed"))
    assert len(findings) == 1
    assert findings[0].media_type == mt.DOCKER_SCHEMA1_SIGNED
    assert findings[0].oci_media_type is None


def test_child_digest_propagates_to_parent_descriptor() -> None:
    plan = normalize(case_tree("nested-index"))
    by_old = {n.old_digest: n for n in plan.nodes}
    for node in plan.nodes:
        body = json.loads(node.new_data)
        for entry in body.get("manifests", []):
            child = next(n for n in plan.nodes if str(n.new_digest) == entry["digest"])
            assert entry["size"] == len(child.new_data)
            assert entry["mediaType"] == child.new_media_type
            assert child.old_digest in by_old
    assert plan.root.changed and len(plan.changed) >= 3  # the change climbs every level


LAYER = {"mediaType": mt.DOCKER_LAYER_GZIP, "size": 3, "digest": "sha256:" + "c" * 64}
CONFIG = {"mediaType": mt.DOCKER_CONFIG, "size": 2, "digest": "sha256:" + "d" * 64}


def _node(body: Any, media_type: str = mt.DOCKER_MANIFEST) -> Node:
    data = body if isinstance(body, bytes) else serialize(body)
    return Node(digest=Digest.of(data), media_type=media_type, data=data)


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (b"{not json", MalformedManifestError, "not valid JSON"),
        (b"[1, 2]", MalformedManifestError, "not an object"),
        (b'{"schemaVersion":2,"schemaVersion":2}', MalformedManifestError, "duplicate key"),
        ({"schemaVersion": 2, "layers": []}, MalformedManifestError, "config"),
        (
            {"schemaVersion": 2, "config": CONFIG, "layers": [{"size": 1}]},
            MalformedManifestError,
            "lacks mediaType",
        ),
        (
            {"schemaVersion": 2, "config": {**CONFIG, "digest": "sha256:zz"}, "layers": []},
            MalformedManifestError,
            "invalid digest",
        ),
        (
            {"schemaVersion": 2, "config": {**CONFIG, "size": -1}, "layers": []},
            MalformedManifestError,
            "size",
        ),
        (
            {"schemaVersion": 2, "config": {**CONFIG, "size": True}, "layers": []},
            MalformedManifestError,
            "size",
        ),
        (
            {
                "schemaVersion": 2,
                "config": CONFIG,
                "layers": [
                    {**LAYER, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.bzip2"}
                ],
            },
            UnsupportedMediaTypeError,
            "no OCI equivalent",
        ),
        (
            {"schemaVersion": 2, "mediaType": 7, "config": CONFIG, "layers": []},
            MalformedManifestError,
            "mediaType is not a string",
        ),
    ],
)
def test_bad_manifests_get_one_clear_error(body: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error) as info:
        normalize(_node(body))
    assert text in str(info.value)


def test_unknown_root_type_is_refused_but_unknown_children_pass_through() -> None:
    odd = _node({"whatever": 1}, media_type="application/vnd.example.thing+json")
    with pytest.raises(UnsupportedMediaTypeError, match="not an image manifest or index"):
        normalize(odd)
    entry = {
        "mediaType": "application/vnd.example.thing+json",
        "size": len(odd.data),
        "digest": str(odd.digest),
    }
    index = _node(
        {"schemaVersion": 2, "mediaType": mt.DOCKER_LIST, "manifests": [entry]}, mt.DOCKER_LIST
    )
    plan = normalize(index)
    out = json.loads(plan.root.new_data)
    assert out["manifests"] == [entry] and out["mediaType"] == mt.OCI_INDEX
    assert any("application/vnd.example.thing+json" in w for w in plan.warnings)


def test_docker_content_type_without_body_media_type_is_converted() -> None:
    body = {"schemaVersion": 2, "config": CONFIG, "layers": [LAYER]}
    plan = normalize(_node(body, media_type=mt.DOCKER_MANIFEST))
    out = json.loads(plan.root.new_data)
    assert list(out)[:2] == ["schemaVersion", "mediaType"]
    assert out["mediaType"] == mt.OCI_MANIFEST
    assert out["config"]["mediaType"] == mt.OCI_CONFIG
