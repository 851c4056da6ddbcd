"""The Python API in process on in-memory registries: ``check`` names every Docker type and
every signature with what a conversion would do to it; ``plan`` writes nothing; ``convert``
reports what it did (the planner's paths are in test_planner/test_orchestration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize.errors import OciNormalizeError
from oci_normalize.options import ConvertOptions
from oci_normalize.store.client import Client
from tests.support import memimages as mi
from tests.support.memstore import MemoryStore, mounted

REG = "reg.test:5000"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(REG)


@pytest.fixture
def client(store: MemoryStore) -> Client:
    return mounted(store)


def test_check_names_docker_types_and_signatures_a_conversion_would_invalidate(
    client: Client, store: MemoryStore
) -> None:
    lst = mi.docker_list(store, "app", "v1")
    mi.cosign_signature(store, "app", lst.digest)
    result = api.check(f"{REG}/app:v1", client=client)
    assert not result.oci and result.manifests == 3
    assert {f.media_type for f in result.findings} >= {
        "application/vnd.docker.distribution.manifest.list.v2+json"
    }
    [sig] = [r for r in result.referrers if r.signed]
    assert (sig.subject, sig.action) == (str(lst.digest), "refused")
    assert store.writes() == []


def test_check_says_a_signature_on_an_unchanged_manifest_would_travel(
    client: Client, store: MemoryStore
) -> None:
    image = mi.oci_image(store, "app", "v1")
    mi.cosign_signature(store, "app", image.digest)
    result = api.check(f"{REG}/app:v1", client=client)
    assert result.oci and [(r.signed, r.action) for r in result.referrers] == [
        (True, "would-carry")
    ]


def test_plan_reads_and_writes_nothing(client: Client, store: MemoryStore) -> None:
    mi.kaniko_image(store, "app", "v1")
    planned = api.plan(f"{REG}/app:v1", client=client)
    assert planned.plan.changed and store.writes() == []


def test_a_dry_run_shows_the_sign_command_and_runs_nothing(
    client: Client, store: MemoryStore, tmp_path: Path
) -> None:
    image = mi.docker_image(store, "app", "v1")
    mi.cosign_signature(store, "app", image.digest)
    marker = tmp_path / "ran"
    options = ConvertOptions(sign_with=f"touch {marker} {{ref}}")
    result = api.convert(f"{REG}/app:v1", dry_run=True, client=client, options=options)
    assert result.status == "would-convert" and store.writes() == []
    [run] = result.signing
    assert not run.ran and run.command == f"touch {marker} {REG}/app@{result.new_digest}"
    assert not marker.exists()


def test_convert_into_a_layout_writes_the_whole_image_there(
    client: Client, store: MemoryStore, tmp_path: Path
) -> None:
    mi.docker_list(store, "app", "v1")
    result = api.convert(f"{REG}/app:v1", f"oci:{tmp_path / 'out'}", client=client)
    assert result.status == "converted" and result.tags[-1].tag == "latest"
    assert (tmp_path / "out" / "index.json").is_file()
    assert api.check(f"oci:{tmp_path / 'out'}", client=client).oci


def test_a_backup_tag_elsewhere_than_in_place_is_refused(
    client: Client, store: MemoryStore
) -> None:
    mi.docker_image(store, "app", "v1")
    with pytest.raises(OciNormalizeError, match="in-place conversion only"):
        api.convert(
            f"{REG}/app:v1",
            f"{REG}/app:v2",
            client=client,
            options=ConvertOptions(backup_tag="{tag}-docker"),
        )
    assert store.writes() == []
