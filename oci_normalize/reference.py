"""Image references: ``HOST[:PORT]/REPO[:TAG][@DIGEST]`` with Docker Hub's short forms."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, replace
from typing import Final

from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidDigestError, ReferenceError_

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG: Final = "latest"

_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_LABEL: Final = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST: Final = re.compile(
    rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
)
MAX_NAME: Final = 255


@dataclass(frozen=True)
class Reference:
    registry: str  # as written by the user after normalisation, e.g. "docker.io", "127.0.0.1:5000"
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if not text or text != text.strip():
            raise ReferenceError_(f"invalid reference {text!r}: empty or surrounded by spaces")
        rest = text
        digest: Digest | None = None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except InvalidDigestError as exc:
                raise ReferenceError_(f"invalid reference {text!r}: {exc}") from exc
        tag: str | None = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.fullmatch(tag):
                raise ReferenceError_(f"invalid reference {text!r}: bad tag {tag!r}")
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first[:1] == "["):
            registry, repository = first, remainder
            if not _HOST.fullmatch(registry):
                raise ReferenceError_(f"invalid reference {text!r}: bad registry host {first!r}")
        else:
            registry, repository = DOCKER_HUB, rest
        if registry.lower() in _HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in repository:
                repository = f"library/{repository}"
        if not repository or not all(_COMPONENT.fullmatch(c) for c in repository.split("/")):
            raise ReferenceError_(
                f"invalid reference {text!r}: repository {repository!r} must be lower-case "
                "path components of letters, digits and separators (. _ __ -)"
            )
        if len(repository) > MAX_NAME:
            raise ReferenceError_(f"invalid reference {text!r}: repository name too long")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

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
        name = self.hostname
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

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

    @classmethod
    def parse(cls, text: str) -> LayoutRef:
        if not text.startswith(OCI_PREFIX):
            raise ReferenceError_(f"invalid layout reference {text!r}: expected oci:PATH[:TAG]")
        body = text[len(OCI_PREFIX) :]
        path, tag = body, None
        head, colon, tail = body.rpartition(":")
        if colon and (tail == "" or _TAG.fullmatch(tail)):
            path, tag = head, tail or None
        if not path:
            raise ReferenceError_(f"invalid layout reference {text!r}: empty path")
        if "\0" in path:
            raise ReferenceError_(f"invalid layout reference {text!r}: NUL in path")
        return cls(path=os.path.abspath(path), tag=tag)

    @property
    def registry(self) -> str:
        """A name for messages and for telling stores apart (the Reference interface)."""
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
        return self.registry + (f":{self.tag}" if self.tag else "")


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

    @classmethod
    def parse(cls, text: str) -> ArchiveRef:
        if not text.startswith(ARCHIVE_PREFIX):
            raise ReferenceError_(f"invalid archive reference {text!r}")
        path, _, image = text[len(ARCHIVE_PREFIX) :].partition(":")
        if not path or "\0" in path:
            raise ReferenceError_(f"invalid archive reference {text!r}: empty path")
        if image.startswith("@") and not image[1:].isdigit():
            raise ReferenceError_(f"invalid archive reference {text!r}: @N needs a number")
        if image and not image.startswith("@"):
            Reference.parse(image)  # refuse what docker would never have saved
        return cls(path=os.path.abspath(path), image=image or None)

    @property
    def registry(self) -> str:
        return f"{ARCHIVE_PREFIX}{self.path}"

    @property
    def repository(self) -> str:
        return ""

    @property
    def ref(self) -> str:
        return ""

    def __str__(self) -> str:
        return self.registry + (f":{self.image}" if self.image else "")


Location = Reference | LayoutRef | ArchiveRef


def parse_location(text: str) -> Location:
    """The one entry point for every place a REF is accepted.

    ``oci:PATH[:TAG]`` is a layout, ``docker-archive:PATH[:REF]`` a tarball, anything else
    (optionally prefixed ``docker://``, which also reaches a registry host literally named
    ``oci``) a registry reference such as ``localhost:5000/app:1``.
    """
    if text.startswith(OCI_PREFIX):
        return LayoutRef.parse(text)
    if text.startswith(ARCHIVE_PREFIX):
        return ArchiveRef.parse(text)
    if text.startswith(DOCKER_PREFIX):
        return Reference.parse(text[len(DOCKER_PREFIX) :])
    return Reference.parse(text)


def same_repository(a: Location, b: Location) -> bool:
    """True when both name the same repository of the same store (any tag)."""
    return type(a) is type(b) and a.registry == b.registry and a.repository == b.repository
