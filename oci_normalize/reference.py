"""Image references: ``HOST[:PORT]/REPO[:TAG][@DIGEST]`` with Docker Hub's short forms."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from typing import Final

from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidDigestError, InvalidReferenceError
from oci_normalize.limits import parse_count
from oci_normalize.text import printable

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
#: Names of Docker Hub's registry: all mean :data:`DOCKER_HUB`.
HUB_ALIASES: Final = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
DEFAULT_TAG: Final = "latest"

_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_LABEL: Final = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST: Final = re.compile(
    rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
)
MAX_NAME: Final = 255
MAX_PORT: Final = 65535
#: Longest reference text echoed back in an error message.
MAX_SHOWN_REFERENCE: Final = 200


def shown(text: str) -> str:
    """``text`` as an error message may show it: printable, capped, and without anything that
    could be ``user:password@`` (what precedes an ``@`` that has no ``/`` before it)."""
    head, at, tail = text.partition("@")
    if at and "/" not in head:
        text = "…@" + tail
    return printable(text, limit=MAX_SHOWN_REFERENCE)


def parse_repository(name: str, *, source: str = "the registry") -> str:
    """A repository name from outside (a catalog), checked as user input is; returned as is."""
    if (
        not name
        or len(name) > MAX_NAME
        or not all(_COMPONENT.fullmatch(c) for c in name.split("/"))
    ):
        raise InvalidReferenceError(
            f"invalid repository name {shown(name)!r} from {source}: expected lower-case path "
            "components of letters, digits and separators (. _ __ -)"
        )
    return name


def parse_tag(tag: str, *, source: str = "the registry") -> str:
    """A tag from outside (a tag list), checked as user input is; returned as is."""
    if not _TAG.fullmatch(tag):
        raise InvalidReferenceError(f"invalid tag {shown(tag)!r} from {source}")
    return tag


def is_loopback_host(name: str) -> bool:
    """``localhost``, a ``*.localhost`` name or a loopback address (IPv6 with or without [])."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Reference:
    registry: str  # as written by the user after normalisation, e.g. "docker.io", "127.0.0.1:5000"
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if not text or text != text.strip():
            raise InvalidReferenceError(
                f"invalid reference {shown(text)!r}: empty or surrounded by spaces"
            )
        rest = text
        head, at, tail = text.partition("@")
        if at and "/" not in head and "/" in tail:
            raise InvalidReferenceError(
                f"invalid reference {shown(text)!r}: a reference cannot carry credentials "
                "(user:password@host); use --username with --password-stdin, or a login"
            )
        digest: Digest | None = None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except InvalidDigestError as exc:
                raise InvalidReferenceError(
                    f"invalid reference {shown(text)!r}: bad digest {shown(digest_text)!r}"
                ) from exc
        tag: str | None = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.fullmatch(tag):
                raise InvalidReferenceError(
                    f"invalid reference {shown(text)!r}: bad tag {shown(tag)!r}"
                )
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first[:1] == "["):
            registry, repository = first, remainder
            if not _HOST.fullmatch(registry) or not _port_ok(registry):
                raise InvalidReferenceError(
                    f"invalid reference {shown(text)!r}: bad registry host {shown(first)!r}"
                )
        else:
            registry, repository = DOCKER_HUB, rest
        if registry.lower() in HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in repository:
                repository = f"library/{repository}"
        if not repository or not all(_COMPONENT.fullmatch(c) for c in repository.split("/")):
            raise InvalidReferenceError(
                f"invalid reference {shown(text)!r}: repository {shown(repository)!r} must be "
                "lower-case path components of letters, digits and separators (. _ __ -)"
            )
        if len(repository) > MAX_NAME:
            raise InvalidReferenceError(
                f"invalid reference {shown(text)!r}: repository name too long"
            )
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def store_name(self) -> str:
        """The store holding it, spelled as that store's ``name`` (every location has one):
        for a registry reference, the host."""
        return self.registry

    @property
    def api_host(self) -> str:
        """The host:port that serves the /v2/ API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def hostname(self) -> str:
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.hostname)

    @property
    def ref(self) -> str:
        """What goes in /v2/REPO/manifests/<ref>: the digest when pinned, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        assert self.tag is not None
        return self.tag

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def _port_ok(host: str) -> bool:
    """A ``host:port`` has a port from 1 to :data:`MAX_PORT` (the pattern allows 5 digits)."""
    if host.endswith("]") or ":" not in host:
        return True
    port = host.rsplit(":", 1)[1]
    return 0 < int(port) <= MAX_PORT


# ---- locations that are not registries ---------------------------------------------------------

OCI_PREFIX: Final = "oci:"
ARCHIVE_PREFIX: Final = "docker-archive:"
DOCKER_PREFIX: Final = "docker://"


@dataclass(frozen=True)
class LayoutRef:
    """``oci:PATH[:TAG]``: an image in an OCI image layout directory.

    The tag is whatever follows the LAST colon, when that is a valid tag (letters, digits,
    ``_ . -``, no ``/``) and something precedes it; otherwise the whole text is the path. So
    ``oci:/a/b:v1`` is ``/a/b`` tagged ``v1``, ``oci:/a:b/c`` is the path ``/a:b/c``; a trailing
    colon ends a path that contains one: ``oci:/a/my:dir:`` is ``/a/my:dir`` without a tag.
    Without a tag the layout must hold exactly one image (or, as a destination, ``latest``).
    """

    path: str  # absolute
    tag: str | None = None
    digest: Digest | None = None  # never set by parsing; kept for the Reference interface
    shown: str = field(default="", compare=False)  # the path as the user wrote it, for messages

    @classmethod
    def parse(cls, text: str) -> LayoutRef:
        if not text.startswith(OCI_PREFIX):
            raise InvalidReferenceError(
                f"invalid layout reference {printable(text)!r}: expected oci:PATH[:TAG]"
            )
        body = text[len(OCI_PREFIX) :]
        path, tag = body, None
        head, colon, tail = body.rpartition(":")
        if colon and (tail == "" or _TAG.fullmatch(tail)):
            path, tag = head, tail or None
        if not path:
            raise InvalidReferenceError(f"invalid layout reference {printable(text)!r}: empty path")
        if "\0" in path:
            raise InvalidReferenceError(
                f"invalid layout reference {printable(text)!r}: NUL in path"
            )
        return cls(path=os.path.abspath(path), tag=tag, shown=path)

    @property
    def store_name(self) -> str:
        """The store holding it, keyed by the layout's absolute path."""
        return f"{OCI_PREFIX}{self.path}"

    @property
    def repository(self) -> str:
        return ""  # a layout has no repositories

    @property
    def ref(self) -> str:
        """What the layout store resolves: the tag, or "" for the layout's only image."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or ""

    def with_tag(self, tag: str) -> LayoutRef:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        return f"{OCI_PREFIX}{self.shown or self.path}" + (f":{self.tag}" if self.tag else "")


@dataclass(frozen=True)
class ArchiveRef:
    """``docker-archive:PATH[:REF]``: a ``docker save`` tarball, read-only.

    As in skopeo, the path ends at the FIRST colon (paths with colons are not supported) and
    REF is a ``NAME:TAG`` from the archive's ``RepoTags`` or ``@N``, the N-th image in its
    ``manifest.json``. Without REF the archive must hold exactly one image.
    """

    path: str  # absolute
    image: str | None = None
    tag: str | None = None  # the Reference interface: an archive has no tag to move
    digest: Digest | None = None
    shown: str = field(default="", compare=False)  # the path as the user wrote it

    @classmethod
    def parse(cls, text: str) -> ArchiveRef:
        if not text.startswith(ARCHIVE_PREFIX):
            raise InvalidReferenceError(f"invalid archive reference {printable(text)!r}")
        path, _, image = text[len(ARCHIVE_PREFIX) :].partition(":")
        if not path or "\0" in path:
            raise InvalidReferenceError(
                f"invalid archive reference {printable(text)!r}: empty path"
            )
        if image.startswith("@") and parse_count(image[1:]) is None:
            raise InvalidReferenceError(
                f"invalid archive reference {printable(text)!r}: @N needs a number"
            )
        if image and not image.startswith("@"):
            Reference.parse(image)  # refuse what docker would never have saved
        return cls(path=os.path.abspath(path), image=image or None, shown=path)

    @property
    def store_name(self) -> str:
        return f"{ARCHIVE_PREFIX}{self.path}"

    @property
    def repository(self) -> str:
        return ""

    @property
    def ref(self) -> str:
        return ""

    def __str__(self) -> str:
        shown = f"{ARCHIVE_PREFIX}{self.shown or self.path}"
        return shown + (f":{self.image}" if self.image else "")


OCI_ARCHIVE_PREFIX: Final = "oci-archive:"


@dataclass(frozen=True)
class OciArchiveRef:
    """``oci-archive:PATH[:REF]``: a tarred OCI image layout (``podman save --format oci-archive``).

    As skopeo reads it, the path ends at the FIRST colon; REF is the image's
    ``org.opencontainers.image.ref.name`` in ``index.json``, whatever its spelling (podman writes
    ``localhost/app:v1``, skopeo and buildkit a bare tag). Without REF the archive must hold
    exactly one image (or, as a destination, gets ``latest``).
    """

    path: str  # absolute
    tag: str | None = None
    digest: Digest | None = None  # never set by parsing; kept for the Reference interface
    shown: str = field(default="", compare=False)  # the path as the user wrote it

    @classmethod
    def parse(cls, text: str) -> OciArchiveRef:
        if not text.startswith(OCI_ARCHIVE_PREFIX):
            raise InvalidReferenceError(f"invalid oci-archive reference {text!r}")
        path, _, tag = text[len(OCI_ARCHIVE_PREFIX) :].partition(":")
        if not path or "\0" in path:
            raise InvalidReferenceError(f"invalid oci-archive reference {text!r}: empty path")
        if any(ord(c) < 0x20 or c == "\x7f" for c in tag):
            raise InvalidReferenceError(
                f"invalid oci-archive reference {text!r}: control character"
            )
        return cls(path=os.path.abspath(path), tag=tag or None, shown=path)

    @property
    def store_name(self) -> str:
        return f"{OCI_ARCHIVE_PREFIX}{self.path}"

    @property
    def repository(self) -> str:
        return ""

    @property
    def ref(self) -> str:
        if self.digest is not None:
            return str(self.digest)
        return self.tag or ""

    def with_tag(self, tag: str) -> OciArchiveRef:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        shown = f"{OCI_ARCHIVE_PREFIX}{self.shown or self.path}"
        return shown + (f":{self.tag}" if self.tag else "")


Location = Reference | LayoutRef | ArchiveRef | OciArchiveRef


def parse_location(text: str) -> Location:
    """The one entry point for every place a REF is accepted.

    ``oci:PATH[:TAG]`` is a layout, ``oci-archive:PATH[:REF]`` a tarred one,
    ``docker-archive:PATH[:REF]`` a ``docker save`` tarball, anything else
    (optionally prefixed ``docker://``, which also reaches a registry host literally named
    ``oci``) a registry reference such as ``localhost:5000/app:1``.
    """
    if text.startswith(OCI_PREFIX):
        return LayoutRef.parse(text)
    if text.startswith(ARCHIVE_PREFIX):
        return ArchiveRef.parse(text)
    if text.startswith(OCI_ARCHIVE_PREFIX):
        return OciArchiveRef.parse(text)
    if text.startswith(DOCKER_PREFIX):
        return Reference.parse(text[len(DOCKER_PREFIX) :])
    return Reference.parse(text)


def same_repository(a: Location, b: Location) -> bool:
    """True when both name the same repository of the same store (any tag)."""
    return type(a) is type(b) and a.store_name == b.store_name and a.repository == b.repository


def place(loc: Location) -> str:
    """How a message names where images live: ``HOST/REPO``, or a local place as the user wrote
    it (``oci:./dir:v1``), never an internal spelling."""
    return f"{loc.registry}/{loc.repository}" if isinstance(loc, Reference) else str(loc)


def located(loc: Location, digest: Digest | str) -> str:
    """How a message names one manifest or blob there: ``PLACE@DIGEST`` (see :func:`place`)."""
    return f"{place(loc)}@{digest}"
