"""Paginated listings (store/listing.py): tags, catalog and the referrers API.

The fake registry serves what a real one will not (a next link elsewhere, a loop, a page that is
not a list); the real registry proves that Link pagination and ``last`` continuation return
every name once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from oci_normalize import limits
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import DeniedError, NotFoundError, RegistryError
from oci_normalize.reference import Reference
from oci_normalize.store import listing
from oci_normalize.store.registry import Registry
from tests.support.fake_registry import Answer, FakeRegistry, fake_registry
from tests.support.registry import RunningRegistry


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as server:
        yield server


def client(host: str) -> Registry:
    return Registry(Reference.parse(f"{host}/a/b:t"))


def page(key: str, names: list[str], link: str | None = None) -> Answer:
    headers = {"Link": f'<{link}>; rel="next"'} if link else {}
    return Answer(200, json.dumps({key: names}).encode(), headers)


def test_the_registry_client_is_a_requester() -> None:
    reg: listing.Requester = client("127.0.0.1:1")  # checked by mypy, and used below
    assert reg.url("a/b/tags/list") == "http://127.0.0.1:1/v2/a/b/tags/list"


def test_link_pagination_is_followed_to_the_end(fake: FakeRegistry) -> None:
    fake.route(
        "GET",
        "/v2/a/b/tags/list",
        page("tags", ["1", "2"], "/v2/a/b/tags/list?n=2&last=2"),
        page("tags", ["3", "4"], "/v2/a/b/tags/list?n=2&last=4"),
        page("tags", ["5"]),
    )
    assert client(fake.host).list_tags("a/b", page_size=2) == ["1", "2", "3", "4", "5"]
    assert [s.path for s in fake.seen] == [
        "/v2/a/b/tags/list?n=2",
        "/v2/a/b/tags/list?n=2&last=2",
        "/v2/a/b/tags/list?n=2&last=4",
    ]


def test_a_full_page_without_a_link_asks_on_with_last(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/_catalog", page("repositories", ["a", "b"]), page("repositories", ["c"]))
    assert client(fake.host).catalog(page_size=2) == ["a", "b", "c"]
    assert [s.path for s in fake.seen] == ["/v2/_catalog?n=2", "/v2/_catalog?n=2&last=b"]


def test_a_registry_that_ignores_last_answers_its_whole_listing_once(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/a/b/tags/list", page("tags", ["y", "x"]))  # always the same page
    assert client(fake.host).list_tags("a/b", page_size=2) == ["y", "x"]
    assert [s.path for s in fake.seen] == ["/v2/a/b/tags/list?n=2", "/v2/a/b/tags/list?n=2&last=x"]


def test_more_names_than_the_cap_is_refused(
    fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(limits.ENV_MAX_LISTED_NAMES, "3")
    fake.route(
        "GET",
        "/v2/_catalog",
        page("repositories", ["a", "b"], "/v2/_catalog?p=2"),
        page("repositories", ["c", "d"], "/v2/_catalog?p=3"),
        page("repositories", ["e"]),
    )
    with pytest.raises(
        RegistryError, match=f"more than 3 names .*{limits.ENV_MAX_LISTED_NAMES}"
    ) as info:
        client(fake.host).catalog(page_size=2)
    assert info.value.method == "GET" and info.value.url == f"http://{fake.host}/v2/_catalog"
    assert len(fake.seen) == 2  # stopped at the page that went over


@pytest.mark.parametrize(
    "link",
    [
        "http://{other}/v2/_catalog?p=2",  # another host
        "https://{host}/v2/_catalog?p=2",  # another scheme: another origin
        "/elsewhere/_catalog?p=2",  # the same host, outside the API
    ],
)
def test_a_next_link_off_the_registry_is_refused_and_never_followed(
    fake: FakeRegistry, link: str
) -> None:
    with fake_registry() as other:
        other.route("GET", "/v2/_catalog", page("repositories", ["evil"]))
        target = link.format(other=other.host, host=fake.host)
        fake.route("GET", "/v2/_catalog", page("repositories", ["a"], target))
        with pytest.raises(RegistryError, match="next-page link leaves it") as info:
            client(fake.host).catalog(page_size=5)
        assert other.seen == []
    assert len(fake.seen) == 1
    assert "\n" not in str(info.value)


def test_a_next_link_with_credentials_is_shown_without_them(fake: FakeRegistry) -> None:
    with fake_registry() as other:
        fake.route(
            "GET", "/v2/_catalog", page("repositories", ["a"], f"http://u:pw-x1@{other.host}/v2/x")
        )
        with pytest.raises(RegistryError, match="leaves it") as info:
            client(fake.host).catalog()
    assert "pw-x1" not in str(info.value)


@pytest.mark.parametrize(
    "pages",
    [
        [page("tags", ["1"], "/v2/a/b/tags/list?n=5")],  # next page is the first one
        [
            page("tags", ["1"], "/v2/a/b/tags/list?p=2"),
            page("tags", ["2"], "/v2/a/b/tags/list?p=3"),
            page("tags", ["3"], "/v2/a/b/tags/list?p=2"),  # back to page 2
        ],
    ],
)
def test_pagination_that_goes_round_in_a_loop_is_refused(
    fake: FakeRegistry, pages: list[Answer]
) -> None:
    fake.route("GET", "/v2/a/b/tags/list", *pages)
    with pytest.raises(RegistryError, match="goes round in a loop"):
        client(fake.host).list_tags("a/b", page_size=5)
    assert len(fake.seen) <= len(pages) + 1  # the first page's own URL is asked twice at most


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "broken JSON"),
        (b'{"tags": "v1"}', "not a list of names"),
        (b'{"tags": [1, 2]}', "not a list of names"),
    ],
)
def test_a_page_that_is_not_a_list_of_names_is_refused(
    fake: FakeRegistry, body: bytes, words: str
) -> None:
    fake.route("GET", "/v2/a/b/tags/list", Answer(200, body))
    with pytest.raises(RegistryError, match=words) as info:
        client(fake.host).list_tags("a/b")
    assert str(info.value).startswith(f"GET {fake.host}/v2/a/b/tags/list: ")


def test_a_listing_error_answer_is_typed(fake: FakeRegistry) -> None:
    fake.route(
        "GET",
        "/v2/a/b/tags/list",
        Answer(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}'),
    )
    with pytest.raises(NotFoundError, match="repository not found") as info:
        client(fake.host).list_tags("a/b")
    assert info.value.status == 404 and info.value.code == "NAME_UNKNOWN"


# ---- the referrers API --------------------------------------------------------------------------

SUBJECT = Digest.of(b"subject")
REFERRERS = f"/v2/a/b/referrers/{SUBJECT}"


def _index(*digests: str) -> bytes:
    manifests = [{"mediaType": mt.OCI_MANIFEST, "digest": d, "size": 1} for d in digests]
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
    ).encode()


@pytest.mark.parametrize(
    "answer",
    [
        Answer(404, b"404 page not found"),  # distribution 2.8
        Answer(405, b""),
        Answer(400, b'{"errors":[{"code":"UNSUPPORTED","message":"no"}]}'),
        Answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}'),
    ],
)
def test_a_registry_without_the_referrers_api_says_none(fake: FakeRegistry, answer: Answer) -> None:
    fake.route("GET", REFERRERS, answer)
    assert client(fake.host).referrers("a/b", SUBJECT) is None


def test_referrers_auth_failures_still_raise(fake: FakeRegistry) -> None:
    fake.route("GET", REFERRERS, Answer(404, b'{"errors":[{"code":"DENIED","message":"no"}]}'))
    with pytest.raises(DeniedError) as info:
        client(fake.host).referrers("a/b", SUBJECT)
    assert info.value.method == "GET" and info.value.url == f"http://{fake.host}{REFERRERS}"


def test_referrers_pages_are_merged_and_a_loop_is_refused(fake: FakeRegistry) -> None:
    one, two = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    fake.route(
        "GET",
        REFERRERS,
        Answer(200, _index(one), {"Link": f'<{REFERRERS}?p=2>; rel="next"'}),
        Answer(200, _index(two)),
    )
    merged = client(fake.host).referrers("a/b", SUBJECT)
    assert merged is not None
    assert [m["digest"] for m in json.loads(merged)["manifests"]] == [one, two]
    fake.route("GET", REFERRERS, Answer(200, _index(one), {"Link": f'<{REFERRERS}>; rel="next"'}))
    with pytest.raises(RegistryError, match="goes round in a loop"):
        client(fake.host).referrers("a/b", SUBJECT)


def test_a_malformed_referrers_index_is_refused(fake: FakeRegistry) -> None:
    fake.route("GET", REFERRERS, Answer(200, b'{"manifests": "no"}'))
    with pytest.raises(RegistryError, match="malformed index"):
        client(fake.host).referrers("a/b", SUBJECT)


# ---- the real registry --------------------------------------------------------------------------


def _seed_tags(registry: RunningRegistry, repos: tuple[str, ...], tags: list[str]) -> Registry:
    reg = Registry(Reference.parse(f"{registry.host}/{repos[0]}:v1"))
    config = b"{}"
    reg.upload_blob(repos[0], Digest.of(config), len(config), [config])
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": 2},
            "layers": [],
        }
    ).encode()
    for repo in repos:
        if not reg.mount_blob(repo, Digest.of(config), repos[0]):
            reg.upload_blob(repo, Digest.of(config), len(config), [config])
        for tag in tags:
            reg.put_manifest(repo, tag, manifest, mt.OCI_MANIFEST)
    return reg


@pytest.mark.registry
def test_a_real_registry_lists_every_tag_and_repository_once_across_pages(
    registry: RunningRegistry,
) -> None:
    tags = [f"t{i}" for i in range(7)]
    repos = ("listing/one", "listing/two", "listing/three")
    reg = _seed_tags(registry, repos, tags)
    # distribution 2.8 ignores n for tags: all of them come in one (longer) page
    assert sorted(reg.list_tags("listing/one", page_size=3)) == sorted(tags)
    listed = reg.catalog(page_size=1)  # the catalog honours n and sends Link: 1 name a page
    assert len(listed) == len(set(listed))
    assert set(repos) <= set(listed)


@pytest.mark.registry
def test_a_real_registry_with_exactly_page_size_tags_lists_them_once(
    registry: RunningRegistry,
) -> None:
    # distribution 2.8 ignores n and last on tags/list: a full page asks on with last and
    # gets the same page again, which means the first one was whole (not a loop)
    tags = [f"t{i}" for i in range(4)]
    reg = _seed_tags(registry, ("listing/exact",), tags)
    assert sorted(reg.list_tags("listing/exact", page_size=4)) == sorted(tags)
