"""Registry.referrers and the per-registry probe memory, against the scripted fake server.

distribution 2.8 has no referrers API, so the 200 path (and Link pagination) is exercised
here with canned answers; the 404 path is also covered end to end in test_inplace.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import DeniedError, NotFoundError, RefusedError
from oci_normalize.reference import Reference
from oci_normalize.store.referrers import Referrers
from oci_normalize.store.registry import Registry
from tests.support.fake_registry import Answer, FakeRegistry, fake_registry
from tests.support.memimages import oci_index

D = Digest("sha256", "ab" * 32)
R1 = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "01" * 32, "size": 1}
R2 = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "02" * 32, "size": 2}


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as server:
        yield server


def _registry(host: str) -> Registry:
    return Registry(Reference.parse(f"{host}/app:v1"))


PATH = f"/v2/app/referrers/{D}"


def test_referrers_api_pages_are_merged(fake: FakeRegistry) -> None:
    link = {"Content-Type": mt.OCI_INDEX, "Link": f'<{PATH}?last=1>; rel="next"'}
    fake.route("GET", PATH, Answer(200, oci_index(R1), link), Answer(200, oci_index(R2)))
    data = _registry(fake.host).referrers("app", D)
    assert data is not None
    assert json.loads(data)["manifests"] == [R1, R2]
    assert [s.path for s in fake.requests("GET")] == [PATH, f"{PATH}?last=1"]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b"404 page not found\n"),  # distribution 2.8
        (405, b""),
        (400, b'{"errors":[{"code":"UNSUPPORTED"}]}'),
        (404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'),
    ],
)
def test_referrers_unsupported_is_none(fake: FakeRegistry, status: int, body: bytes) -> None:
    fake.route("GET", PATH, Answer(status, body))
    assert _registry(fake.host).referrers("app", D) is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}',
            NotFoundError,
        ),
        (b'{"errors":[{"code":"DENIED","message":"no"}]}', DeniedError),
    ],
)
def test_referrers_real_errors_raise(
    fake: FakeRegistry, body: bytes, error: type[Exception]
) -> None:
    fake.route("GET", PATH, Answer(404, body))
    with pytest.raises(error):
        _registry(fake.host).referrers("app", D)


def test_probe_is_remembered_per_registry(fake: FakeRegistry) -> None:
    cache = Referrers()
    reg = _registry(fake.host)
    other = Digest("sha256", "cd" * 32)
    assert cache.index(reg, "app", D) is None
    assert cache.index(reg, "other", other) is None  # no second probe
    assert [s.path for s in fake.requests()] == [PATH]
    assert cache.has_api(reg.name) is False


def test_supported_api_is_asked_for_every_digest(fake: FakeRegistry) -> None:
    other = Digest("sha256", "cd" * 32)
    for digest in (D, other):
        fake.route("GET", f"/v2/app/referrers/{digest}", Answer(200, oci_index(R1)))
    cache = Referrers()
    reg = _registry(fake.host)
    assert cache.index(reg, "app", D) is not None
    assert cache.index(reg, "app", other) is not None
    assert len(fake.requests()) == 2 and cache.has_api(reg.name) is True


def test_convert_with_referrers_api_pushes_copy_by_digest_and_no_fallback_tag(
    fake: FakeRegistry,
) -> None:
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": 2, "digest": "sha256:" + "d" * 64},
            "layers": [],
        }
    ).encode()
    old = Digest.of(image)
    sbom = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": {"mediaType": mt.OCI_EMPTY, "size": 2, "digest": "sha256:" + "e" * 64},
            "layers": [],
            "subject": {"mediaType": mt.DOCKER_MANIFEST, "size": len(image), "digest": str(old)},
        }
    ).encode()
    listed = {"mediaType": mt.OCI_MANIFEST, "size": len(sbom), "digest": str(Digest.of(sbom))}

    def manifest(data: bytes, media_type: str) -> Answer:
        return Answer(200, data, {"Content-Type": media_type})

    def at(digest: Digest) -> Answer:
        return Answer(200, b"", {"Docker-Content-Digest": str(digest)})

    fake.route("GET", "/v2/a/b/manifests/t", manifest(image, mt.DOCKER_MANIFEST))
    fake.route("GET", "/v2/a/b/tags/list", Answer(200, b'{"name":"a/b","tags":["t"]}'))
    fake.route("GET", f"/v2/a/b/referrers/{old}", Answer(200, oci_index(listed)))
    fake.route("GET", f"/v2/a/b/manifests/{listed['digest']}", manifest(sbom, mt.OCI_MANIFEST))
    fake.route("PUT", "/v2/a/b/manifests/*", Answer(201))
    new_image = api.plan(f"{fake.host}/a/b:t").plan.root.new_digest
    # one guard (after the copy, before the tag), then the verify
    fake.route("HEAD", "/v2/a/b/manifests/t", at(old), at(new_image))
    fake.seen.clear()

    out = api.convert(f"{fake.host}/a/b:t")
    (ref,) = out.referrers
    assert (ref.kind, ref.action, ref.artifact_type) == (
        "referrer",
        "reattached",
        "application/spdx+json",
    )
    puts = fake.requests("PUT")
    assert [p.path.rsplit("/", 1)[1] for p in puts] == [str(new_image), ref.new_name, "t"]
    copy = json.loads(puts[1].body)
    assert copy["subject"]["digest"] == str(new_image)
    assert [t.role for t in out.tags] == ["tag"]  # the API indexes it: no fallback tag


def test_signature_listed_without_artifact_type_still_refuses(fake: FakeRegistry) -> None:
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": 2, "digest": "sha256:" + "d" * 64},
            "layers": [],
        }
    ).encode()
    old = Digest.of(image)
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.cncf.notary.signature",
                "size": 2,
                "digest": "sha256:" + "e" * 64,
            },
            "layers": [],
            "subject": {"mediaType": mt.DOCKER_MANIFEST, "size": len(image), "digest": str(old)},
        }
    ).encode()
    sig_digest = Digest.of(signature)
    listed = {"mediaType": mt.OCI_MANIFEST, "size": len(signature), "digest": str(sig_digest)}
    fake.route(
        "GET", "/v2/a/b/manifests/t", Answer(200, image, {"Content-Type": mt.DOCKER_MANIFEST})
    )
    fake.route("GET", "/v2/a/b/tags/list", Answer(200, b'{"name":"a/b","tags":["t"]}'))
    fake.route("GET", f"/v2/a/b/referrers/{old}", Answer(200, oci_index(listed)))
    fake.route(
        "GET",
        f"/v2/a/b/manifests/{sig_digest}",
        Answer(200, signature, {"Content-Type": mt.OCI_MANIFEST}),
    )
    with pytest.raises(RefusedError, match=str(sig_digest)):
        api.convert(f"{fake.host}/a/b:t")
    assert fake.requests("PUT") == []
