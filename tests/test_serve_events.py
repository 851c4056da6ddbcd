"""Event bodies to work items: tables of accepted, ignored and malformed inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oci_normalize.serve import events as ev
from oci_normalize.serve.events import BadEventError, Scope, parse_body
from oci_normalize.serve.queue import WorkItem

REG = "registry.example:5000"
SCOPE = Scope(registry=REG)
DIGEST = "sha256:" + "ab" * 32
V2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def dist(action: str = "push", **target: Any) -> bytes:
    t = {"mediaType": V2, "repository": "team/app", "tag": "1", "digest": DIGEST, **target}
    t = {k: v for k, v in t.items() if v is not None}
    return json.dumps(
        {
            "events": [
                {
                    "id": "x",
                    "action": action,
                    "target": {**t, "url": "http://127.0.0.1:1/evil"},
                    "request": {"host": "evil.example", "method": "PUT"},
                    "source": {"addr": "evil.example:443"},
                }
            ]
        }
    ).encode()


def harbor(kind: str = "PUSH_ARTIFACT", repo: str = "library/app", **res: Any) -> bytes:
    resource = {"tag": "1", "digest": DIGEST, "resource_url": "evil.example/x:1", **res}
    return json.dumps(
        {
            "type": kind,
            "occur_at": 1,
            "operator": "admin",
            "event_data": {
                "resources": [resource],
                "repository": {"name": "app", "namespace": "library", "repo_full_name": repo},
            },
        }
    ).encode()


def cloud(kind: str = "zotregistry.image.updated", **data: Any) -> bytes:
    d = {"name": "team/app", "reference": "1", "digest": DIGEST, "mediaType": OCI, **data}
    return json.dumps(
        {"specversion": "1.0", "id": "1", "source": "http://evil.example", "type": kind, "data": d}
    ).encode()


def one(body: bytes, scope: Scope = SCOPE, headers: dict[str, str] | None = None) -> ev.Event:
    parsed = parse_body(body, scope=scope, received=100.0, headers=headers)
    assert len(parsed.events) == 1
    return parsed.events[0]


QUEUED = [
    ("distribution v2s2 tag", dist(), WorkItem("team/app", "1", 100.0)),
    ("distribution list", dist(mediaType=LIST, tag="v2"), WorkItem("team/app", "v2", 100.0)),
    ("distribution oci", dist(mediaType=OCI), WorkItem("team/app", "1", 100.0)),
    ("harbor push", harbor(), WorkItem("library/app", "1", 100.0)),
    ("zot structured", cloud(), WorkItem("team/app", "1", 100.0)),
    ("cloudevent bare type", cloud(kind="image.updated"), WorkItem("team/app", "1", 100.0)),
]


@pytest.mark.parametrize(("name", "body", "item"), QUEUED, ids=[q[0] for q in QUEUED])
def test_pushes_become_items(name: str, body: bytes, item: WorkItem) -> None:
    assert one(body).item == item


def test_a_cloudevents_batch_is_one_event_each() -> None:
    body = b"[" + cloud() + b"," + cloud(kind="zotregistry.image.deleted") + b"]"
    parsed = parse_body(body, scope=SCOPE, received=1.0)
    assert [e.ignored for e in parsed.events] == [None, ev.NOT_PUSH]
    assert parsed.items == [WorkItem("team/app", "1", 1.0)]


def test_binary_mode_cloudevent_reads_the_type_from_headers() -> None:
    data = json.dumps({"name": "team/app", "reference": "2", "mediaType": OCI}).encode()
    headers = {"ce-specversion": "1.0", "ce-type": "zotregistry.image.updated"}
    assert one(data, headers=headers).item == WorkItem("team/app", "2", 100.0)
    headers["ce-type"] = "zotregistry.image.deleted"
    assert one(data, headers=headers).ignored == ev.NOT_PUSH


IGNORED = [
    ("delete", dist("delete"), SCOPE, ev.NOT_PUSH),
    ("pull", dist("pull"), SCOPE, ev.NOT_PUSH),
    ("mount", dist("mount"), SCOPE, ev.NOT_PUSH),
    ("blob push", dist(mediaType=LAYER, tag=None), SCOPE, ev.BLOB),
    ("octet-stream", dist(mediaType="application/octet-stream", tag=None), SCOPE, ev.BLOB),
    (
        "artifact manifest",
        dist(mediaType="application/vnd.oci.artifact.manifest.v1+json"),
        SCOPE,
        ev.ARTIFACT,
    ),
    ("cosign tag", dist(mediaType=OCI, tag="sha256-" + "ab" * 32 + ".sig"), SCOPE, ev.ARTIFACT),
    ("by digest, tag needed", dist(tag=None), SCOPE, ev.UNTAGGED),
    ("dot-dot repository", dist(repository="team/../etc"), SCOPE, ev.INVALID),
    ("encoded slash", dist(repository="team%2fapp"), SCOPE, ev.INVALID),
    ("upper case", dist(repository="Team/App"), SCOPE, ev.INVALID),
    ("bad tag", dist(tag="-bad tag"), SCOPE, ev.INVALID),
    (
        "bad digest",
        dist(tag=None, digest="sha256:zz"),
        Scope(registry=REG, require_tag=False),
        ev.INVALID,
    ),
    ("no repository", dist(repository=None), SCOPE, ev.INVALID),
    ("repo glob", dist(), Scope(registry=REG, repos=("other/*",)), ev.OTHER_REPOSITORY),
    ("tag glob", dist(), Scope(registry=REG, tags=("v*",)), ev.OTHER_TAG),
    (
        "own --to prefix",
        dist(repository="mirror/team/app"),
        Scope(registry=REG, exclude_prefix="mirror"),
        ev.OTHER_REPOSITORY,
    ),
    ("harbor delete", harbor("DELETE_ARTIFACT"), SCOPE, ev.NOT_PUSH),
    ("harbor scan", harbor("SCANNING_COMPLETED"), SCOPE, ev.NOT_PUSH),
    ("harbor dot-dot", harbor(repo="library/../x"), SCOPE, ev.INVALID),
    ("zot deleted", cloud(kind="zotregistry.image.deleted"), SCOPE, ev.NOT_PUSH),
    ("zot repo created", cloud(kind="zotregistry.repository.created"), SCOPE, ev.NOT_PUSH),
    ("zot %2f", cloud(name="a%2fb"), SCOPE, ev.INVALID),
    ("zot non-manifest", cloud(mediaType=LAYER), SCOPE, ev.ARTIFACT),
]


@pytest.mark.parametrize(("name", "body", "scope", "reason"), IGNORED, ids=[i[0] for i in IGNORED])
def test_ignored_events_have_a_reason(name: str, body: bytes, scope: Scope, reason: str) -> None:
    event = one(body, scope)
    assert event.item is None
    assert event.ignored == reason


def test_check_only_accepts_a_push_by_digest() -> None:
    scope = Scope(registry=REG, require_tag=False)
    assert one(dist(tag=None), scope).item == WorkItem("team/app", DIGEST, 100.0)


def test_globs_select() -> None:
    scope = Scope(registry=REG, repos=("team/*",), tags=("1", "v*"))
    assert one(dist(), scope).item is not None


def test_a_host_like_first_component_is_a_repository_on_our_registry() -> None:
    # distribution allows dots in a repository component: it names a path on REG, never a host.
    from oci_normalize.serve.worker import reference_of

    item = one(dist(repository="evil.example/x")).item
    assert item == WorkItem("evil.example/x", "1", 100.0)
    ref = reference_of(REG, item)
    assert (ref.registry, ref.repository) == (REG, "evil.example/x")


def test_nothing_but_repository_and_reference_is_taken() -> None:
    item = one(dist()).item
    assert item is not None
    assert "evil" not in repr(item)


MALFORMED = [
    ("not json", b"{nope"),
    ("not utf-8", b'{"events": ["\xff"]}'),
    ("array", b"[]"),
    ("string", b'"events"'),
    ("unknown shape", b'{"hello": 1}'),
    ("events not a list", b'{"events": {}}'),
    ("duplicate key", b'{"events": [], "events": []}'),
    ("deep", b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("harbor data not object", b'{"type": "PUSH_ARTIFACT", "event_data": []}'),
    ("too many events", json.dumps({"events": [{}] * (ev.MAX_EVENTS_PER_BODY + 1)}).encode()),
]


@pytest.mark.parametrize(("name", "body"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_bodies_are_refused(name: str, body: bytes) -> None:
    with pytest.raises(BadEventError):
        parse_body(body, scope=SCOPE, received=0.0)


def test_an_envelope_of_many_events_keeps_their_order() -> None:
    body = json.dumps(
        {
            "events": [
                {"action": "push", "target": {"mediaType": V2, "repository": f"r{i}", "tag": "t"}}
                for i in range(5)
            ]
            + [{"action": "push"}, "junk"]
        }
    ).encode()
    parsed = parse_body(body, scope=SCOPE, received=1.0)
    assert [i.repository for i in parsed.items] == [f"r{i}" for i in range(5)]
    assert [e.ignored for e in parsed.events[5:]] == [ev.BLOB, ev.INVALID]


@pytest.mark.parametrize(
    ("template", "tag", "backup"),
    [
        ("{tag}-docker", "1-docker", True),
        ("{tag}-docker", "1", False),
        ("{tag}-docker", "-docker", False),  # {tag} is never empty
        ("docker-{tag}", "docker-v2", True),
        ("{tag}.orig.{tag}", "a.orig.a", True),
        ("{tag}.orig.{tag}", "a.orig.b", False),
        ("pre.{tag}", "preX1", False),  # the dot is literal
    ],
)
def test_backup_tags_are_recognised(template: str, tag: str, backup: bool) -> None:
    scope = Scope(registry=REG, backup_tags=ev.backup_pattern(template))
    event = one(dist(tag=tag), scope)
    assert (event.ignored == ev.BACKUP) is backup
