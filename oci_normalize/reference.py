"""Image references: ``HOST[:PORT]/REPO[:TAG][@DIGEST]`` with Docker Hub's short forms."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Final

from .digest import Digest
from .errors import InvalidDigestError, ReferenceError_

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

    def same_repository(self, other: Reference) -> bool:
        return self.registry == other.registry and self.repository == other.repository

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out
