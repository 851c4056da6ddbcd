"""Find the credential for a registry host where users already keep theirs.

Sources, in order; the first that has an entry for the host wins:

1. ``--username`` with ``--password-stdin`` (passed in as ``username``/``password``);
2. the environment: ``OCI_NORMALIZE_USERNAME`` and ``OCI_NORMALIZE_PASSWORD``;
3. Docker's config, ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``: ``credHelpers``
   and ``credsStore`` (``docker-credential-NAME get``), then ``auths`` (``auth`` and
   ``identitytoken``); Docker Hub is the key ``https://index.docker.io/v1/``. Parsing and helper
   calls are the ``docker`` package's (``docker.auth``, no daemon involved);
4. containers' auth file, as podman and skopeo write it: ``$REGISTRY_AUTH_FILE``,
   ``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json``;
5. anonymous.

The returned :class:`~oci_normalize.http.auth.Credential` names its source and the sources tried, so
an "unauthorized" error can say where it looked; secrets never reach a message or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from oci_normalize.errors import CredentialError
from oci_normalize.http.auth import Credential
from oci_normalize.reference import DOCKER_HUB, HUB_ALIASES

ENV_USERNAME: Final = "OCI_NORMALIZE_USERNAME"
ENV_PASSWORD: Final = "OCI_NORMALIZE_PASSWORD"
DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_HUB_ALIASES: Final = frozenset({*HUB_ALIASES, DOCKER_HUB_KEY.rstrip("/")})
HELPER_PREFIX: Final = "docker-credential-"

log = logging.getLogger(__name__)


def resolve(
    registry: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credential:
    """The credential for ``registry`` (``"docker.io"`` for Docker Hub), or anonymous."""
    env = os.environ if environ is None else environ
    tried: list[str] = []

    tried.append("--username")
    if username:
        if password is None:
            raise CredentialError("--username needs the password on stdin (--password-stdin)")
        return Credential(username=username, password=password, source="--username")

    tried.append(f"${ENV_USERNAME}")
    env_user, env_password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if env_user:
        if env_password is None:
            raise CredentialError(f"{ENV_USERNAME} is set but {ENV_PASSWORD} is not")
        return Credential(username=env_user, password=env_password, source=f"${ENV_USERNAME}")

    docker_config = docker_config_path(env)
    tried.append(str(docker_config))
    if docker_config.is_file():
        found = _from_docker_config(docker_config, registry, tuple(tried))
        if found is not None:
            return found

    for path in containers_auth_paths(env):
        tried.append(str(path))
        if path.is_file():
            found = _from_auth_file(path, registry, tuple(tried))
            if found is not None:
                return found

    return Credential(source="none", tried=tuple(tried))


def lookup(
    *, username: str | None = None, password: str | None = None
) -> Callable[[str], Credential]:
    """A ``registry -> Credential`` function for :class:`~oci_normalize.store.client.Client`."""
    cache: dict[str, Credential] = {}
    lock = threading.Lock()

    def find(registry: str) -> Credential:
        with lock:
            if registry not in cache:
                cache[registry] = resolve(registry, username=username, password=password)
            return cache[registry]

    return find


def docker_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return _home(env) / ".docker" / "config.json"


def containers_auth_paths(env: Mapping[str, str]) -> list[Path]:
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    paths.append(_home(env) / ".config" / "containers" / "auth.json")
    return paths


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _is_hub(registry: str) -> bool:
    return registry.lower() in _HUB_ALIASES


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialError(f"{path}: cannot read it as JSON ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise CredentialError(f"{path}: not a JSON object")
    return data


def _usable_auths(raw: Any, path: Path) -> dict[str, Any]:
    """``auths`` without entries that would break the whole file (docker.auth decodes all)."""
    import docker.auth

    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            log.warning("%s: ignoring the auths entry %r: not an object", path, key)
            continue
        if entry.get("auth") and "identitytoken" not in entry:
            try:
                docker.auth.decode_auth(entry["auth"])
            except (ValueError, TypeError):  # binascii.Error is a ValueError
                log.warning("%s: ignoring the auths entry %r: malformed 'auth'", path, key)
                continue
        out[key] = entry
    return out


def _from_docker_config(path: Path, registry: str, tried: tuple[str, ...]) -> Credential | None:
    import docker.auth
    import docker.errors

    data = _load_json(path)
    data["auths"] = _usable_auths(data.get("auths"), path)
    key = DOCKER_HUB if _is_hub(registry) else registry
    config = docker.auth.AuthConfig.load_config(None, data)
    store = config.get_credential_store(key)
    if store and shutil.which(HELPER_PREFIX + store) is None:
        log.warning("%s: %s%s is not on PATH; using 'auths' only", path, HELPER_PREFIX, store)
        config = docker.auth.AuthConfig({"auths": config.auths})
        store = None
    try:
        found = config.resolve_authconfig(key)
    except docker.errors.DockerException:
        # The helper failed (locked keychain, no session bus …): Docker would stop here; we
        # fall back to 'auths' so a stale credsStore does not block a plain auths entry.
        log.warning("%s: %s%s failed; using 'auths' only", path, HELPER_PREFIX, store)
        store = None
        found = docker.auth.AuthConfig({"auths": config.auths}).resolve_authconfig(key)
    if not found:
        return None
    source = f"{HELPER_PREFIX}{store} (via {path})" if "ServerAddress" in found else str(path)
    identity = found.get("IdentityToken") or found.get("identitytoken")
    if identity:
        return Credential(identity_token=str(identity), source=source, tried=tried)
    user = found.get("Username") or found.get("username")
    secret = found.get("Password") if "Password" in found else found.get("password")
    if user and secret is not None:
        return Credential(username=str(user), password=str(secret), source=source, tried=tried)
    return None


def _from_auth_file(path: Path, registry: str, tried: tuple[str, ...]) -> Credential | None:
    """containers-auth.json(5): ``auths`` keyed by host (host/namespace keys are not used)."""
    import docker.auth

    auths = _usable_auths(_load_json(path).get("auths"), path)
    wanted = {DOCKER_HUB, *_HUB_ALIASES} if _is_hub(registry) else {registry.lower()}
    for key, entry in auths.items():
        host = key.lower().removeprefix("https://").removeprefix("http://").rstrip("/")
        if host not in wanted:
            continue
        if entry.get("identitytoken"):
            return Credential(
                identity_token=str(entry["identitytoken"]), source=str(path), tried=tried
            )
        if entry.get("auth"):
            user, secret = docker.auth.decode_auth(entry["auth"])
            return Credential(username=user, password=secret, source=str(path), tried=tried)
    return None
