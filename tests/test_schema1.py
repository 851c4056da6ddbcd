"""Schema1 → OCI: the pure builder on golden manifests, then real schema1 images judged by skopeo
and umoci."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.cli import app as cli
from oci_normalize.convert import schema1
from oci_normalize.convert.normalize import normalize, schema1_layer_blobs
from oci_normalize.digest import Digest
from oci_normalize.errors import ContentError, MalformedManifestError, UnsupportedMediaTypeError
from oci_normalize.manifest import jws_payload
from oci_normalize.models import LayerFacts, Node
from tests.support import peers, seed
from tests.support.hostile_local import one_error_line, run_cli
from tests.support.registry import RunningRegistry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "schema1"
L1 = Digest.parse("sha256:" + "1" * 64)
L2 = Digest.parse("sha256:" + "2" * 64)
D1 = Digest.parse("sha256:" + "a1" * 32)
D2 = Digest.parse("sha256:" + "b2" * 32)
FACTS = {L1: LayerFacts(D1, 100, mt.OCI_LAYER_GZIP), L2: LayerFacts(D2, 200, mt.OCI_LAYER_GZIP)}


def _unsigned() -> bytes:
    return (FIXTURES / "unsigned.json").read_bytes()


def _node(data: bytes, media_type: str = mt.DOCKER_SCHEMA1) -> Node:
    return Node(digest=Digest.of(jws_payload(data)), media_type=media_type, data=data)


# ---- pure ------------------------------------------------------------------------------------


def test_golden_unsigned_builds_skopeo_shaped_config() -> None:
    built = schema1.convert(_unsigned(), FACTS, "fixture")
    manifest = json.loads(built.manifest)
    config = json.loads(built.config.data)
    # fsLayers reversed, throwaway entries and the duplicate id dropped.
    assert [(lay["digest"], lay["size"]) for lay in manifest["layers"]] == [
        (str(L1), 100),
        (str(L2), 200),
    ]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [str(D1), str(D2)]}
    assert config["history"] == [
        {"created": "2020-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
        {
            "created": "2020-01-02T00:00:00Z",
            "created_by": "/bin/sh -c #(nop)  ENV A=1",
            "empty_layer": True,
        },
        {
            "created": "2020-01-03T00:00:00Z",
            "created_by": "/bin/sh -c cp app /app",
            "comment": "copy",
        },
        {
            "created": "2020-01-04T00:00:00Z",
            "created_by": '/bin/sh -c #(nop)  CMD ["/app"]',
            "author": "someone",
            "empty_layer": True,
        },
    ]
    # The newest v1Compatibility is the config, minus the v1 bookkeeping.
    assert (config["architecture"], config["os"], config["config"]) == (
        "arm64",
        "linux",
        {"Cmd": ["/app"], "Env": ["A=1"]},
    )
    assert not {"id", "parent", "parent_id", "layer_id", "throwaway", "Size"} & set(config)
    assert manifest["config"] == {
        "mediaType": mt.OCI_CONFIG,
        "digest": str(built.config.digest),
        "size": len(built.config.data),
    }
    assert built.config.digest == Digest.of(built.config.data)
    peers.schema_validator("config-schema.json").validate(config)
    peers.schema_validator("image-manifest-schema.json").validate(manifest)
    assert built.warnings == ()


def test_layer_blobs_are_the_kept_ones_oldest_first() -> None:
    assert schema1_layer_blobs(_node(_unsigned())) == [L1, L2]


def test_normalize_needs_the_layer_facts() -> None:
    node = _node(_unsigned())
    with pytest.raises(UnsupportedMediaTypeError, match="diff_id"):
        normalize(node)
    with pytest.raises(UnsupportedMediaTypeError, match="no known diff_id"):
        normalize(node, schema1_layers={L1: FACTS[L1]})
    plan = normalize(node, schema1_layers=FACTS)
    assert plan.root.new_media_type == mt.OCI_MANIFEST
    assert [b.digest for b in plan.new_blobs] == [plan.root.blobs[0].digest]
    # Its output is plain OCI: normalizing that again changes nothing.
    again = normalize(Node(plan.root.new_digest, mt.OCI_MANIFEST, plan.root.new_data))
    assert not again.changed


def test_signed_manifest_digest_covers_the_jws_payload() -> None:
    data = (FIXTURES / "signed.json").read_bytes()
    want = "sha256:09050bd24a30d82dff48022d38b428fb5616838fa9e185de16926e457e882755"
    assert str(Digest.of(jws_payload(data))) == want
    assert Digest.of(data) != Digest.parse(want)
    assert jws_payload(_unsigned()) == _unsigned()


def _mutated(**changes: object) -> bytes:
    body = json.loads(_unsigned())
    for key, value in changes.items():
        body[key] = value
    return json.dumps(body).encode()


def _with_compat(index: int, **fields: object) -> bytes:
    body = json.loads(_unsigned())
    compat = json.loads(body["history"][index]["v1Compatibility"])
    compat.update(fields)
    body["history"][index]["v1Compatibility"] = json.dumps(compat)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_mutated(fsLayers=[]), "needs 'fsLayers'"),
        (_mutated(history=json.loads(_unsigned())["history"][:2]), "lists 5 fsLayers but 2"),
        (_with_compat(4, parent="e" * 64), "base layer"),
        (_with_compat(0, id="not-hex"), "no valid v1 'id'"),
        (_with_compat(0, parent="e" * 64), "names parent"),
        (_mutated(fsLayers=[{"blobSum": "sha256:../../x"}] * 5), "malformed"),
    ],
)
def test_bad_schema1_manifests_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(MalformedManifestError, match=message):
        schema1.convert(data, FACTS, "bad")


def test_throwaway_with_a_real_layer_warns() -> None:
    body = json.loads(_unsigned())
    body["fsLayers"][0]["blobSum"] = str(L2)
    built = schema1.convert(json.dumps(body).encode(), FACTS, "w")
    assert any("not the empty layer" in w for w in built.warnings)


# ---- a schema1 image in a layout: streaming, and a truncated gzip layer -------------------------


def _schema1_layout(tmp: Path, layer: bytes) -> Path:
    """A layout whose tag ``v1`` is an unsigned schema1 manifest over one layer blob."""
    layout = tmp / "s1layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    blob = "sha256:" + hashlib.sha256(layer).hexdigest()
    compat = {
        "id": "f" * 64,
        "created": "2021-01-01T00:00:00Z",
        "os": "linux",
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/true"]},
    }
    manifest = json.dumps(
        {
            "schemaVersion": 1,
            "name": "x",
            "tag": "v1",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": blob}],
            "history": [{"v1Compatibility": json.dumps(compat)}],
        }
    ).encode()
    for data in (layer, manifest):
        (layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    entry = {
        "mediaType": mt.DOCKER_SCHEMA1,
        "size": len(manifest),
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "annotations": {peers.REF_NAME: "v1"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return layout


def test_schema1_in_a_layout_converts_to_a_layout(tmp_path: Path) -> None:
    tar = peers.layer_tar({"hello.txt": b"hi\n"})
    layout = _schema1_layout(tmp_path, gzip.compress(tar))
    result = api.convert(f"oci:{layout}:v1", f"oci:{tmp_path / 'out'}:v1")
    assert result.status == "converted"
    _, config = peers.read_layout(tmp_path / "out", "v1")
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar).hexdigest()]


def test_truncated_gzip_layer_is_one_clear_error_and_nothing_written(tmp_path: Path) -> None:
    layout = _schema1_layout(tmp_path, gzip.compress(peers.layer_tar({"a": b"x" * 5000}))[:-20])
    index_before = (layout / "index.json").read_bytes()
    with pytest.raises(ContentError, match="truncated gzip"):
        api.convert(f"oci:{layout}:v1", f"oci:{tmp_path / 'out'}:v1")
    with pytest.raises(ContentError, match="truncated gzip"):
        api.convert(f"oci:{layout}:v1")
    assert not (tmp_path / "out").exists()
    assert (layout / "index.json").read_bytes() == index_before
    assert len(list((layout / "blobs" / "sha256").iterdir())) == 2


# ---- real schema1 images: skopeo and umoci judge ------------------------------------------------


@pytest.mark.registry
def test_schema1_convert_matches_skopeo(schema1_registry: RunningRegistry, tmp_path: Path) -> None:
    host = schema1_registry.host
    source = peers.layout_with_history(tmp_path)
    seed.push_docker_v2s1(source, f"{host}/s1/app:v1")
    body, ctype, _ = seed.get_manifest(schema1_registry.url, "s1/app", "v1")
    assert ctype == mt.DOCKER_SCHEMA1_SIGNED and json.loads(body)["schemaVersion"] == 1

    # skopeo's own schema1 → OCI conversion of the same image is the reference.
    theirs = tmp_path / "theirs"
    peers.skopeo_copy(f"docker://{host}/s1/app:v1", f"oci:{theirs}:v1", "--format", "oci")
    # Ours, into a registry and into a layout.
    result = api.convert(f"{host}/s1/app:v1", f"{host}/s1/oci:v1")
    assert result.status == "converted" and result.pushed_blobs == 1  # only the new config
    ours = tmp_path / "ours"
    api.convert(f"{host}/s1/app:v1", f"oci:{ours}:v1")
    peers.skopeo_copy(f"docker://{host}/s1/oci:v1", f"oci:{tmp_path / 'viareg'}:v1")

    their_manifest, their_config = peers.read_layout(theirs, "v1")
    for layout in (ours, tmp_path / "viareg"):
        manifest, config = peers.read_layout(layout, "v1")
        assert [x["digest"] for x in manifest["layers"]] == [
            x["digest"] for x in their_manifest["layers"]
        ]
        assert config["rootfs"] == their_config["rootfs"]
        assert config["history"] == their_config["history"]
        assert config == their_config  # the whole config, as containers/image builds it
        peers.schema_validator("config-schema.json").validate(config)
    assert sum(1 for h in their_config["history"] if h.get("empty_layer")) == 2
    assert len(their_config["rootfs"]["diff_ids"]) == 2

    theirs_tree = peers.unpacked_tree(theirs, "v1", tmp_path / "b-theirs")
    assert peers.unpacked_tree(ours, "v1", tmp_path / "b-ours") == theirs_tree
    assert theirs_tree["app/start"] == ("link", "run.sh")


@pytest.mark.registry
def test_schema1_in_place_and_check(schema1_registry: RunningRegistry, tmp_path: Path) -> None:
    host = schema1_registry.host
    layout = seed.build_layout(Path(tempfile.mkdtemp(dir=tmp_path)), layers=2, seed="s1-inplace")
    old = seed.push_docker_v2s1(layout, f"{host}/s1/inplace:v1")
    runner = CliRunner()
    checked = runner.invoke(cli.app, ["check", "--json", f"{host}/s1/inplace:v1"])
    assert checked.exit_code == 1, checked.output
    (found,) = json.loads(checked.output)["results"]
    assert found["digest"] == old
    assert found["findings"][0]["media_type"] == mt.DOCKER_SCHEMA1_SIGNED

    done = runner.invoke(cli.app, ["convert", f"{host}/s1/inplace:v1"])
    assert done.exit_code == 0, done.output
    body, ctype, digest = seed.get_manifest(schema1_registry.url, "s1/inplace", "v1")
    assert (ctype, json.loads(body)["config"]["mediaType"]) == (mt.OCI_MANIFEST, mt.OCI_CONFIG)
    # The new config blob was uploaded in place, and skopeo can read the image whole.
    peers.skopeo_copy(f"docker://{host}/s1/inplace:v1", f"oci:{tmp_path / 'check'}:v1")
    assert runner.invoke(cli.app, ["check", f"{host}/s1/inplace:v1"]).exit_code == 0
    assert digest != old


@pytest.mark.registry
def test_signed_schema1_backup_goes_back_signed(
    schema1_registry: RunningRegistry, tmp_path: Path
) -> None:
    """Only the verified JWS payload is converted, yet the backup tag gets the signed original
    back (the registry refuses schema1 without signatures) under the same digest."""
    host = schema1_registry.host
    layout = seed.build_layout(Path(tempfile.mkdtemp(dir=tmp_path)), layers=1, seed="s1-backup")
    old = seed.push_docker_v2s1(layout, f"{host}/s1/backup:v1")
    done = CliRunner().invoke(
        cli.app, ["convert", "--backup-tag", "{tag}-docker", f"{host}/s1/backup:v1"]
    )
    assert done.exit_code == 0, done.output
    body, _, digest = seed.get_manifest(schema1_registry.url, "s1/backup", "v1-docker")
    assert digest == old and b'"signatures"' in body
    _, ctype, _ = seed.get_manifest(schema1_registry.url, "s1/backup", "v1")
    assert ctype == mt.OCI_MANIFEST


@pytest.mark.registry
def test_signed_schema1_rollback_puts_the_signed_original_back(
    schema1_registry: RunningRegistry, tmp_path: Path
) -> None:
    """The journal keeps the signed body as served (its digest covers the payload), so rollback
    can put it back: the registry takes schema1 only with its signatures."""
    host = schema1_registry.host
    layout = seed.build_layout(Path(tempfile.mkdtemp(dir=tmp_path)), layers=1, seed="s1-rollback")
    old = seed.push_docker_v2s1(layout, f"{host}/s1rb/app:v1")
    journal = tmp_path / "journal.jsonl"
    runner = CliRunner()
    done = runner.invoke(cli.app, ["batch", host, "--repo", "s1rb/*", "--journal", str(journal)])
    assert done.exit_code == 0, done.output
    _, ctype, _ = seed.get_manifest(schema1_registry.url, "s1rb/app", "v1")
    assert ctype == mt.OCI_MANIFEST
    undone = runner.invoke(cli.app, ["rollback", str(journal), "--json"])
    assert undone.exit_code == 0, undone.output
    body, ctype, digest = seed.get_manifest(schema1_registry.url, "s1rb/app", "v1")
    assert (digest, ctype) == (old, mt.DOCKER_SCHEMA1_SIGNED)
    assert b'"signatures"' in body


@pytest.mark.registry
def test_a_journalled_signed_body_with_a_member_slipped_in_is_refused(
    schema1_registry: RunningRegistry, tmp_path: Path
) -> None:
    """The journal keeps a signed schema1 original whole, and rollback would push it whole: a
    forged line whose signed body carries more than its payload and signatures (here a member
    slipped in before ``signatures``; the payload, and so the digest, still match) is refused
    and nothing is pushed."""
    host = schema1_registry.host
    layout = seed.build_layout(Path(tempfile.mkdtemp(dir=tmp_path)), layers=1, seed="s1-forged")
    seed.push_docker_v2s1(layout, f"{host}/s1forged/app:v1")
    journal = tmp_path / "journal.jsonl"
    done = run_cli("batch", host, "--repo", "s1forged/*", "--journal", str(journal))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    [line] = [x for x in lines if x["status"] == "converted"]
    signed = base64.b64decode(line["old_manifest"])
    assert b'"signatures"' in signed
    head, sep, tail = signed.rpartition(b'"signatures"')
    forged = head + b'"extra": "pushed by a forger",\n   ' + sep + tail
    json.loads(forged)  # still one valid JSON object
    journal.write_text(
        json.dumps({**line, "old_manifest": base64.b64encode(forged).decode()}) + "\n"
    )
    mark = schema1_registry.log_mark()
    proc = run_cli("rollback", str(journal))
    message = one_error_line(proc, code=3)
    assert "s1forged/app:v1" in message and "signature block" in message, message
    _, ctype, _ = seed.get_manifest(schema1_registry.url, "s1forged/app", "v1")
    assert ctype == mt.OCI_MANIFEST
    writes = [e for e in schema1_registry.access_log_lines(since=mark) if e.method == "PUT"]
    assert writes == []
