from __future__ import annotations

import pytest

from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidReferenceError
from oci_normalize.reference import Reference

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "api_host", "loopback"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", "latest", None, "registry-1.docker.io", False),
        (
            "ubuntu:22.04",
            "docker.io",
            "library/ubuntu",
            "22.04",
            None,
            "registry-1.docker.io",
            False,
        ),
        ("user/app", "docker.io", "user/app", "latest", None, "registry-1.docker.io", False),
        (
            "docker.io/nginx",
            "docker.io",
            "library/nginx",
            "latest",
            None,
            "registry-1.docker.io",
            False,
        ),
        ("index.docker.io/a/b:c", "docker.io", "a/b", "c", None, "registry-1.docker.io", False),
        ("ghcr.io/org/img:v1", "ghcr.io", "org/img", "v1", None, "ghcr.io", False),
        ("localhost/x", "localhost", "x", "latest", None, "localhost", True),
        ("localhost:5000/x/y:t", "localhost:5000", "x/y", "t", None, "localhost:5000", True),
        ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", "latest", None, "127.0.0.1:5000", True),
        ("127.3.4.5:80/a", "127.3.4.5:80", "a", "latest", None, "127.3.4.5:80", True),
        ("[::1]:5000/a:b", "[::1]:5000", "a", "b", None, "[::1]:5000", True),
        (f"reg.example/a@sha256:{HEX}", "reg.example", "a", None, HEX, "reg.example", False),
        (
            f"reg.example:443/a:t@sha256:{HEX}",
            "reg.example:443",
            "a",
            "t",
            HEX,
            "reg.example:443",
            False,
        ),
        ("gcr.io/p/a__b/c-d.e:1.0_x-Y", "gcr.io", "p/a__b/c-d.e", "1.0_x-Y", None, "gcr.io", False),
        ("10.0.0.1:5000/x", "10.0.0.1:5000", "x", "latest", None, "10.0.0.1:5000", False),
    ],
)
def test_parse_good(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    api_host: str,
    loopback: bool,
) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == (Digest("sha256", digest) if digest else None)
    assert ref.api_host == api_host
    assert ref.is_loopback is loopback
    # The printed form parses back to the same reference.
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ubuntu",
        "Ubuntu",
        "reg.example/UPPER/x",
        "reg.example/a:",
        "reg.example/a:bad tag",
        "reg.example/a:" + "t" * 129,
        "reg.example/a@sha256:short",
        "reg.example/a@md5:" + "a" * 32,
        f"reg.example/a@sha256:{'A' * 64}",
        "reg.example//a",
        "reg.example/a/",
        "reg.example/-a",
        "reg.example/a--",
        "bad_host.example:5000/a",
        "reg.example/" + "a" * 256,
    ],
)
def test_parse_bad(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert "invalid reference" in str(info.value)


def test_ref_prefers_digest_and_with_helpers() -> None:
    ref = Reference.parse(f"reg.example/a:t@sha256:{HEX}")
    assert ref.ref == f"sha256:{HEX}"
    assert ref.with_tag("new").ref == "new"
    assert ref.with_tag("new").digest is None
