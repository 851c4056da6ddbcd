"""Hostile docker-archive tarballs: links out, loops, devices, ``..`` names, truncation.

Every tarball is built in the test. The CLI runs as a child under a deadline and a memory
ceiling with its own TMPDIR; each case must be one clean stderr line and exit 2, with no
destination created, no temporary files left and nothing outside the work directory touched.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize.errors import OciNormalizeError
from tests.support.hostile_local import (
    Member,
    a_layer,
    docker_members,
    one_error_line,
    run_cli,
    snapshot,
    write_tar,
)

LAYER = a_layer({"etc/hello": b"hello\n"})

Build = Callable[[Path], Path]


def _tar(members: list[Member], manifest: object | None = None) -> Build:
    def build(path: Path) -> Path:
        listed = list(members)
        if manifest is not None:
            listed.append(Member("manifest.json", json.dumps(manifest).encode()))
        return write_tar(path, listed)

    return build


def _standard(**changes: Member) -> Build:
    """The one-layer image with some members replaced by name (``config``, ``layer``)."""
    members, _ = docker_members(layer=LAYER)
    by_role = {"config": 0, "layer": 1}
    for role, member in changes.items():
        members[by_role[role]] = member
    return _tar(members)


def _manifest(config: str = "cfg.json", layers: tuple[str, ...] = ("l1/layer.tar",)) -> Build:
    members, entry = docker_members(layer=LAYER)
    entry = {**entry, "Config": config, "Layers": list(layers)}
    return _tar(members[:2], [entry])


def _truncated(compress: bool) -> Build:
    def build(path: Path) -> Path:
        members, _ = docker_members(layer=LAYER + os.urandom(4096))
        members.append(members.pop(1))  # the layer last, so the cut lands in its data
        write_tar(path, members)
        data = path.read_bytes()
        if compress:
            data = gzip.compress(data)
        path.write_bytes(data[: len(data) * 3 // 4])
        return path

    return build


def _path_of(kind: str) -> Build:
    def build(path: Path) -> Path:
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "garbage":
            path.write_bytes(os.urandom(3000))
        return path

    return build


def _deep_manifest(path: Path) -> Path:
    members, _ = docker_members(layer=LAYER)
    deep = b"[" * 200_000 + b"]" * 200_000
    return write_tar(path, [*members[:2], Member("manifest.json", deep)])


CASES: list[tuple[str, Build, str]] = [
    (
        "config-symlink-absolute",
        _standard(config=Member("cfg.json", kind="symlink", link="/etc/passwd")),
        "outside the archive",
    ),  # noqa: E501
    (
        "layer-symlink-up",
        _standard(layer=Member("l1/layer.tar", kind="symlink", link="../../../etc/passwd")),
        "outside the archive",
    ),  # noqa: E501
    (
        "hardlink-absolute",
        _standard(layer=Member("l1/layer.tar", kind="hardlink", link="/etc/passwd")),
        "outside the archive",
    ),  # noqa: E501
    (
        "hardlink-missing",
        _standard(layer=Member("l1/layer.tar", kind="hardlink", link="nowhere")),
        "has no nowhere",
    ),  # noqa: E501
    (
        "symlink-to-self",
        _standard(layer=Member("l1/layer.tar", kind="symlink", link="layer.tar")),
        "links (a loop?)",
    ),  # noqa: E501
    (
        "layer-chr-device",
        _standard(layer=Member("l1/layer.tar", kind="chr")),
        "a device, not a regular file",
    ),  # noqa: E501
    (
        "config-fifo",
        _standard(config=Member("cfg.json", kind="fifo")),
        "a FIFO, not a regular file",
    ),  # noqa: E501
    (
        "layer-directory",
        _standard(layer=Member("l1/layer.tar", kind="dir")),
        "a directory, not a regular file",
    ),  # noqa: E501
    ("config-dotdot", _manifest(config="../cfg.json"), "reaches outside the archive"),
    ("config-absolute", _manifest(config="/etc/passwd"), "is not a path in the archive"),
    ("layer-dotdot-inside", _manifest(layers=("l1/../../x",)), "reaches outside the archive"),
    ("layer-empty-name", _manifest(layers=("",)), "Layers[0] is an empty string"),
    ("manifest-deeply-nested", _deep_manifest, "manifest.json is not valid JSON"),
    ("truncated-tar", _truncated(compress=False), "truncated"),
    ("truncated-gzip-tar", _truncated(compress=True), "archive"),
    ("fifo-path", _path_of("fifo"), "a FIFO, not a regular file"),
    ("directory-path", _path_of("dir"), "a directory, not a regular file"),
    ("empty-file", _path_of("empty"), "not a readable tar archive (an empty file)"),
    ("garbage", _path_of("garbage"), "not a readable tar archive"),
]


@pytest.mark.parametrize(("build", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_archive_is_one_clean_error(tmp_path: Path, build: Build, message: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tarball = build(work / "img.tar")
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    env = {"TMPDIR": str(tmp)}
    line = one_error_line(
        run_cli("convert", f"docker-archive:{tarball}", f"oci:{out}:v1", timeout=30, env=env)
    )
    assert message in line, line
    with pytest.raises(OciNormalizeError, match=re.escape(message)):  # the cheap path, too
        api.check(f"docker-archive:{tarball}")
    assert not out.exists()
    assert snapshot(tmp_path) == before  # no temp files left, nothing else touched


def test_dev_zero_fails_at_once(tmp_path: Path) -> None:
    line = one_error_line(run_cli("check", "docker-archive:/dev/zero", timeout=10))
    assert "character device, not a regular file" in line


def test_links_inside_the_archive_are_followed(tmp_path: Path) -> None:
    """``docker save`` links a layer two images share: that stays readable."""
    members, entry = docker_members(layer=LAYER, layer_name="l2/layer.tar")
    members[1] = Member("l1/layer.tar", LAYER)
    members.insert(2, Member("l2/layer.tar", kind="symlink", link="../l1/layer.tar"))
    members.insert(3, Member("l3/layer.tar", kind="hardlink", link="l2/layer.tar"))
    tarball = write_tar(tmp_path / "img.tar", members)
    result = api.convert(f"docker-archive:{tarball}", f"oci:{tmp_path / 'out'}:v1")
    assert result.status == "converted"
    via_hardlink = write_tar(
        tmp_path / "hard.tar",
        [
            *members[:-1],
            Member("manifest.json", json.dumps([{**entry, "Layers": ["l3/layer.tar"]}]).encode()),
        ],  # noqa: E501
    )
    again = api.convert(f"docker-archive:{via_hardlink}", f"oci:{tmp_path / 'out2'}:v1")
    assert again.new_digest == result.new_digest
