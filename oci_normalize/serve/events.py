"""POST bodies to work items: pure parsing, nothing contacted.

Three shapes are recognised, by their content rather than their Content-Type:

* a distribution notification envelope ``{"events": [...]}`` (``…events.v1+json`` /
  ``…events.v2+json``): an event is used when its ``action`` is ``push`` and its
  ``target.mediaType`` is a manifest type; ``target.repository`` and ``target.tag`` (or
  ``target.digest``) are all that is read;
* a Harbor webhook ``{"type": "PUSH_ARTIFACT", "event_data": {"repository": {"repo_full_name":
  …}, "resources": [{"tag": …, "digest": …}]}}``;
* a CloudEvent whose ``type`` is ``image.updated`` or ends in ``.image.updated`` (zot), in
  structured mode (``specversion`` in the body, or a batch: a JSON array of such) or binary mode
  (``ce-specversion`` and ``ce-type`` headers, the body is ``data``); ``data.name`` is the
  repository, ``data.reference`` the tag or digest.

Everything else in an event (``target.url``, ``request.host``, ``source.addr``, Harbor's
``resource_url``, a CloudEvent's ``source``) is ignored: the repository and reference are parsed
like user input against the configured registry, and only that registry is ever contacted.
Each event that is not queued gets a reason, for the log and the ignored-events counter.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.errors import OciNormalizeError
from oci_normalize.reference import Reference
from oci_normalize.serve.queue import WorkItem

#: Largest POST body accepted (bytes); a distribution envelope of a few hundred events fits.
MAX_BODY_BYTES: Final = 1024 * 1024
#: Most events one body may carry.
MAX_EVENTS_PER_BODY: Final = 10_000

DISTRIBUTION: Final = "distribution"
HARBOR: Final = "harbor"
CLOUDEVENTS: Final = "cloudevents"

# Reasons an event is acknowledged and left alone (label values of the ignored counter).
NOT_PUSH: Final = "not-push"  # delete, pull, mount, another webhook or CloudEvent type
BLOB: Final = "blob"  # a layer or config upload
ARTIFACT: Final = "artifact"  # a manifest type that is not an image, or a cosign tag
OTHER_REPOSITORY: Final = "other-repository"  # outside --repo, or serve's own --to prefix
OTHER_TAG: Final = "other-tag"  # outside --tag
UNTAGGED: Final = "untagged"  # pushed by digest only, where a tag is needed
BACKUP: Final = "backup"  # a tag --backup-tag names: serve's own copy of an original
INVALID: Final = "invalid"  # no usable repository/reference, or one the parser refuses
IGNORE_REASONS: Final = (
    NOT_PUSH,
    BLOB,
    ARTIFACT,
    OTHER_REPOSITORY,
    OTHER_TAG,
    UNTAGGED,
    BACKUP,
    INVALID,
)

_CE_SUFFIX: Final = "image.updated"
_HARBOR_PUSH: Final = "PUSH_ARTIFACT"
_COSIGN_TAG: Final = re.compile(r"sha256-[0-9a-f]{64}\.(sig|att|sbom)")
_SHOWN: Final = 200  # characters of an outside string kept for the log line


class BadEventError(OciNormalizeError):
    """A body that is not JSON, or JSON in none of the accepted shapes (HTTP 400)."""


@dataclass(frozen=True, kw_only=True)
class Scope:
    """What ``serve`` acts on: one registry, repository and tag globs (empty: all)."""

    registry: str  # HOST[:PORT], as Reference.parse normalises it
    repos: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    require_tag: bool = True  # in place and --to move tags: a push by digest alone is ignored
    exclude_prefix: str = ""  # --to into the same registry: never follow our own copies
    backup_tags: re.Pattern[str] | None = None  # see backup_pattern

    def excludes(self, repository: str) -> bool:
        """Under serve's own ``--to`` prefix (in the source registry)."""
        prefix = self.exclude_prefix
        return bool(prefix) and (repository == prefix or repository.startswith(prefix + "/"))

    def is_backup(self, tag: str | None) -> bool:
        return (
            tag is not None
            and self.backup_tags is not None
            and bool(self.backup_tags.fullmatch(tag))
        )


def backup_pattern(template: str) -> re.Pattern[str]:
    """The tags a ``--backup-tag`` template can produce (``{tag}-docker``: ``(.+)-docker``).

    In place, serve's backup push comes back as an event: converting the backup would undo it
    (and back it up in turn), so such tags are left alone, by events and sweeps alike.
    """
    parts: list[str] = []
    seen = False
    for text, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(text))
        if name is not None:
            parts.append("(?P=t)" if seen else "(?P<t>.+)")
            seen = True
    return re.compile("".join(parts))


@dataclass(frozen=True)
class Event:
    """One event as logged: what it named, and what became of it."""

    format: str
    action: str
    repository: str
    ref: str
    item: WorkItem | None = None
    ignored: str | None = None  # one of IGNORE_REASONS when item is None


@dataclass
class Parsed:
    format: str
    events: list[Event] = field(default_factory=list)

    @property
    def items(self) -> list[WorkItem]:
        return [e.item for e in self.events if e.item is not None]


def parse_body(
    body: bytes, *, scope: Scope, received: float, headers: Mapping[str, str] | None = None
) -> Parsed:
    """The events in ``body``; raises :class:`BadEventError` for malformed input.

    ``headers`` (lower-case names) matter only for a binary-mode CloudEvent.
    """
    doc = _load(body)
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if (
        isinstance(doc, list)
        and doc
        and all(isinstance(e, dict) and "specversion" in e for e in doc)
    ):
        return _cloudevent_batch(_events_list(doc, "the batch"), scope, received)
    if not isinstance(doc, dict):
        raise BadEventError("the body is not a JSON object")
    if "events" in doc:
        return _distribution(doc["events"], scope, received)
    if "type" in doc and "event_data" in doc:
        return _harbor(doc, scope, received)
    if "specversion" in doc:
        return _cloudevent(str(doc.get("type", "")), doc.get("data"), scope, received)
    if "ce-specversion" in hdrs:
        return _cloudevent(hdrs.get("ce-type", ""), doc, scope, received)
    raise BadEventError(
        "not a distribution envelope, Harbor webhook or CloudEvent (see docs/serve.md)"
    )


def _load(body: bytes) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise BadEventError(f"duplicate key {_shown(key)!r}")
            out[key] = value
        return out

    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates)
    except UnicodeDecodeError as exc:
        raise BadEventError(f"the body is not UTF-8 (byte {exc.start})") from exc
    except RecursionError as exc:
        raise BadEventError("the body nests too deeply") from exc
    except ValueError as exc:  # json.JSONDecodeError
        raise BadEventError(f"the body is not JSON: {exc}") from exc


def _events_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadEventError(f"{what} is not a list")
    if len(value) > MAX_EVENTS_PER_BODY:
        raise BadEventError(f"{what}: more than {MAX_EVENTS_PER_BODY} events")
    return value


def _distribution(events: Any, scope: Scope, received: float) -> Parsed:
    out = Parsed(DISTRIBUTION)
    for raw in _events_list(events, "events"):
        if not isinstance(raw, dict):
            out.events.append(Event(DISTRIBUTION, "", "", "", ignored=INVALID))
            continue
        action = _str(raw.get("action"))
        target = raw.get("target")
        target = target if isinstance(target, dict) else {}
        repository = _str(target.get("repository"))
        tag, digest = _str(target.get("tag")), _str(target.get("digest"))
        media_type = mt.base(_str(target.get("mediaType")))
        ref = tag or digest
        event = Event(DISTRIBUTION, action, _shown(repository), _shown(ref))
        if action != "push":
            out.events.append(_ignored(event, NOT_PUSH))
        elif not mt.is_manifest(media_type):
            reason = ARTIFACT if _looks_like_manifest(media_type) else BLOB
            out.events.append(_ignored(event, reason))
        else:
            out.events.append(_decide(event, repository, tag, digest, scope, received))
    return out


def _looks_like_manifest(media_type: str) -> bool:
    return "manifest" in media_type or media_type.endswith("index.v1+json")


def _harbor(doc: dict[str, Any], scope: Scope, received: float) -> Parsed:
    out = Parsed(HARBOR)
    kind = _str(doc.get("type"))
    data = doc.get("event_data")
    if not isinstance(data, dict):
        raise BadEventError("event_data is not an object")
    repo_doc = data.get("repository")
    repository = _str(repo_doc.get("repo_full_name")) if isinstance(repo_doc, dict) else ""
    for raw in _events_list(data.get("resources", []), "event_data.resources"):
        res = raw if isinstance(raw, dict) else {}
        tag, digest = _str(res.get("tag")), _str(res.get("digest"))
        event = Event(HARBOR, kind, _shown(repository), _shown(tag or digest))
        if kind != _HARBOR_PUSH:
            out.events.append(_ignored(event, NOT_PUSH))
        else:
            out.events.append(_decide(event, repository, tag, digest, scope, received))
    if not out.events:  # a webhook without resources still counts as one event
        out.events.append(
            _ignored(
                Event(HARBOR, kind, _shown(repository), ""),
                NOT_PUSH if kind != _HARBOR_PUSH else INVALID,
            )
        )
    return out


def _cloudevent(kind: str, data: Any, scope: Scope, received: float) -> Parsed:
    out = Parsed(CLOUDEVENTS)
    data = data if isinstance(data, dict) else {}
    repository = _str(data.get("name"))
    reference = _str(data.get("reference"))
    digest = _str(data.get("digest"))
    tag = "" if reference.startswith("sha256:") else reference
    digest = reference if reference.startswith("sha256:") else digest
    event = Event(CLOUDEVENTS, kind, _shown(repository), _shown(tag or digest))
    media_type = mt.base(_str(data.get("mediaType")))
    if not (kind == _CE_SUFFIX or kind.endswith("." + _CE_SUFFIX)):
        out.events.append(_ignored(event, NOT_PUSH))
    elif media_type and not mt.is_manifest(media_type):
        out.events.append(_ignored(event, ARTIFACT))
    else:
        out.events.append(_decide(event, repository, tag, digest, scope, received))
    return out


def _cloudevent_batch(docs: list[Any], scope: Scope, received: float) -> Parsed:
    """``application/cloudevents-batch+json``: a JSON array of structured CloudEvents."""
    out = Parsed(CLOUDEVENTS)
    for doc in docs:
        one = _cloudevent(_str(doc.get("type")), doc.get("data"), scope, received)
        out.events.extend(one.events)
    return out


def _decide(
    event: Event, repository: str, tag: str, digest: str, scope: Scope, received: float
) -> Event:
    """The work item for a push of ``repository`` at ``tag`` (or ``digest``), or why not."""
    if not repository or not (tag or digest):
        return _ignored(event, INVALID)
    try:
        if tag:
            ref = Reference.parse(f"{scope.registry}/{repository}:{tag}")
        else:
            ref = Reference.parse(f"{scope.registry}/{repository}@{digest}")
    except OciNormalizeError:
        return _ignored(event, INVALID)
    if ref.registry != scope.registry or ref.repository != repository:
        return _ignored(event, INVALID)  # e.g. a first component that reads as a host
    if scope.excludes(ref.repository):
        return _ignored(event, OTHER_REPOSITORY)
    if scope.repos and not any(fnmatchcase(ref.repository, g) for g in scope.repos):
        return _ignored(event, OTHER_REPOSITORY)
    if ref.tag is None:
        if scope.require_tag or scope.tags:
            return _ignored(event, UNTAGGED)
    else:
        if _COSIGN_TAG.fullmatch(ref.tag):
            return _ignored(event, ARTIFACT)
        if scope.is_backup(ref.tag):
            return _ignored(event, BACKUP)
        if scope.tags and not any(fnmatchcase(ref.tag, g) for g in scope.tags):
            return _ignored(event, OTHER_TAG)
    return Event(
        event.format,
        event.action,
        ref.repository,
        ref.ref,
        item=WorkItem(ref.repository, ref.ref, received),
    )


def _ignored(event: Event, reason: str) -> Event:
    return Event(event.format, event.action, event.repository, event.ref, ignored=reason)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _shown(text: str) -> str:
    """Outside text kept for a log line: bounded (the logger strips control characters)."""
    return text[:_SHOWN]
