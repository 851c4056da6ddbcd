"""Odd but real shapes, pure: octet-stream configs, ``"layers": null``, artifacts (issue 10)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.convert.normalize import artifact_reason, find_docker_types, normalize
from oci_normalize.digest import Digest
from oci_normalize.manifest import serialize
from oci_normalize.models import Node
from tests.support.oci_schema import validate

CFG = "sha256:" + "c" * 64
LAYER = "sha256:" + "1" * 64


def manifest(
    media_type: str | None,
    config_type: str,
    layers: list[str] | None,
    **extra: Any,
) -> bytes:
    body: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        body["mediaType"] = media_type
    body.update(extra)
    body["config"] = {"mediaType": config_type, "digest": CFG, "size": 10}
    body["layers"] = (
        None if layers is None else [{"mediaType": t, "digest": LAYER, "size": 20} for t in layers]
    )
    return json.dumps(body, indent=3).encode()


def node(data: bytes, media_type: str) -> Node:
    return Node(digest=Digest.of(data), media_type=media_type, data=data)


def test_octet_stream_config_of_a_v2s2_image_is_a_finding_and_converts() -> None:
    data = manifest(mt.DOCKER_MANIFEST, mt.OCTET_STREAM, [mt.DOCKER_LAYER_GZIP])
    root = node(data, mt.DOCKER_MANIFEST)
    assert artifact_reason(root) is None
    found = {(f.where, f.media_type, f.oci_media_type) for f in find_docker_types(root)}
    assert ("config", mt.OCTET_STREAM, mt.OCI_CONFIG) in found
    plan = normalize(root)
    body = json.loads(plan.root.new_data)
    assert body["config"] == {"mediaType": mt.OCI_CONFIG, "digest": CFG, "size": 10}
    validate(body, mt.OCI_MANIFEST)
    again = node(plan.root.new_data, mt.OCI_MANIFEST)
    assert find_docker_types(again) == [] and not normalize(again).changed


def test_octet_stream_config_of_an_oci_manifest_is_an_artifact() -> None:
    data = manifest(mt.OCI_MANIFEST, mt.OCTET_STREAM, [mt.OCI_LAYER_GZIP])
    root = node(data, mt.OCI_MANIFEST)
    assert artifact_reason(root) is not None
    plan = normalize(root)
    assert plan.artifact is not None and not plan.changed
    assert find_docker_types(root) == []


def test_null_layers_read_as_empty_and_oci_bytes_stay() -> None:
    data = manifest(mt.OCI_MANIFEST, mt.OCI_CONFIG, None)
    root = node(data, mt.OCI_MANIFEST)
    assert find_docker_types(root) == []
    plan = normalize(root)
    assert not plan.changed and plan.root.new_data == data


def test_null_layers_become_an_empty_list_when_the_manifest_changes() -> None:
    data = manifest(mt.DOCKER_MANIFEST, mt.DOCKER_CONFIG, None)
    plan = normalize(node(data, mt.DOCKER_MANIFEST))
    body = json.loads(plan.root.new_data)
    assert body["layers"] == [] and list(body) == ["schemaVersion", "mediaType", "config", "layers"]
    assert body["mediaType"] == mt.OCI_MANIFEST and body["config"]["mediaType"] == mt.OCI_CONFIG


ARTIFACTS = [
    ("helm", mt.OCI_MANIFEST, "application/vnd.cncf.helm.config.v1+json", [], "Helm chart"),
    (
        "cosign-signature",
        mt.OCI_MANIFEST,
        mt.OCI_CONFIG,
        ["application/vnd.dev.cosign.simplesigning.v1+json"],
        "cosign signature",
    ),
    (
        "cosign-docker-signature",
        mt.DOCKER_MANIFEST,
        mt.DOCKER_CONFIG,
        ["application/vnd.dev.cosign.simplesigning.v1+json"],
        "cosign signature",
    ),
    (
        "attestation",
        mt.OCI_MANIFEST,
        mt.OCI_CONFIG,
        ["application/vnd.dsse.envelope.v1+json"],
        "attestation",
    ),
    ("sbom", mt.OCI_MANIFEST, mt.OCI_EMPTY, ["application/spdx+json"], "empty config"),
    ("wasm", mt.OCI_MANIFEST, "application/vnd.wasm.config.v1+json", ["application/wasm"], "WASM"),
    (
        "singularity",
        mt.OCI_MANIFEST,
        "application/vnd.sylabs.sif.config.v1+json",
        ["application/vnd.sylabs.sif.layer.v1.sif"],
        "Singularity",
    ),
    ("plugin", mt.DOCKER_MANIFEST, mt.DOCKER_PLUGIN_CONFIG, [mt.DOCKER_LAYER_GZIP], "plugin"),
    ("unknown-config", mt.OCI_MANIFEST, "application/vnd.example.thing", [], "example.thing"),
]


@pytest.mark.parametrize(
    ("media_type", "config", "layers", "named"),
    [a[1:] for a in ARTIFACTS],
    ids=[a[0] for a in ARTIFACTS],
)
def test_artifacts_are_reported_and_left_alone(
    media_type: str, config: str, layers: list[str], named: str
) -> None:
    data = manifest(media_type, config, layers)
    root = node(data, media_type)
    reason = artifact_reason(root)
    assert reason is not None and named in reason
    plan = normalize(root)
    assert plan.artifact == reason and not plan.changed and plan.root.new_data == data
    assert find_docker_types(root) == []


def test_artifact_type_makes_an_artifact_even_with_an_image_config() -> None:
    data = manifest(
        mt.OCI_MANIFEST, mt.OCI_CONFIG, [mt.OCI_LAYER_GZIP], artifactType="application/x.thing"
    )
    assert "x.thing" in str(artifact_reason(node(data, mt.OCI_MANIFEST)))


def test_an_index_over_images_and_attestations_converts_the_images_only() -> None:
    image = manifest(mt.DOCKER_MANIFEST, mt.DOCKER_CONFIG, [mt.DOCKER_LAYER_GZIP])
    att = manifest(mt.OCI_MANIFEST, mt.OCI_CONFIG, ["application/vnd.in-toto+json"])
    children = (node(image, mt.DOCKER_MANIFEST), node(att, mt.OCI_MANIFEST))
    index = serialize(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {"mediaType": c.media_type, "digest": str(c.digest), "size": len(c.data)}
                for c in children
            ],
        }
    )
    root = Node(Digest.of(index), mt.OCI_INDEX, index, children=children)
    assert artifact_reason(root) is None
    plan = normalize(root)
    changed = {n.old_digest for n in plan.changed}
    assert changed == {children[0].digest, root.digest}
    found = [(f.manifest, f.where) for f in find_docker_types(root)]
    assert (root.digest, "manifests[0]") in found and (root.digest, "manifests[1]") not in found
    assert {m for m, _ in found} == {children[0].digest, root.digest}


# ---- schema1 rebuilds: what containers/image writes -------------------------------------------


def test_schema1_history_leaves_out_an_empty_command() -> None:
    from oci_normalize.convert import schema1

    base = {"created": "2016-05-01T10:00:00.500Z", "container_config": {"Cmd": [""]}}
    assert schema1.history_entry(base) == {"created": "2016-05-01T10:00:00.5Z"}
    assert schema1.history_entry({"container_config": {"Cmd": None}, "comment": ""}) == {}


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("2016-05-01T10:00:00.000000000Z", "2016-05-01T10:00:00Z"),
        ("2016-05-01T10:00:00.120Z", "2016-05-01T10:00:00.12Z"),
        ("2016-05-01T10:00:00+00:00", "2016-05-01T10:00:00Z"),
        ("2016-05-01T12:00:00.1+02:00", "2016-05-01T12:00:00.1+02:00"),
        ("yesterday", "yesterday"),
    ],
)
def test_schema1_times_are_written_as_go_writes_them(given: str, written: str) -> None:
    from oci_normalize.convert import schema1

    assert schema1.go_time(given) == written


def test_schema1_config_has_no_nulls_and_validates() -> None:
    from oci_normalize.convert import schema1
    from tests.support import peers

    warnings: list[str] = []
    compat = {
        "id": "a" * 64,
        "os": "linux",
        "config": {"Env": None, "Cmd": None, "Hostname": "x", "Labels": {}, "User": 5},
        "container_config": {"Cmd": [""]},
        "docker_version": "1.11.1",
    }
    config = schema1.oci_config(compat, "amd64", "here", warnings)
    assert config == {"architecture": "amd64", "os": "linux", "config": {}}
    assert warnings == ["here: config.User is not a JSON str; left out"]
    config["rootfs"] = {"type": "layers", "diff_ids": []}
    peers.schema_validator("config-schema.json").validate(config)
