"""PLACEHOLDER until the signing branch lands: the --sign-with runner."""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from oci_normalize.errors import HookError


@dataclass(frozen=True)
class SignRequest:
    registry: str
    repository: str
    tag: str | None
    old_digest: str
    new_digest: str

    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.repository}@{self.new_digest}"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return {
            **base,
            "OCI_NORMALIZE_IMAGE": self.ref,
            "OCI_NORMALIZE_REGISTRY": self.registry,
            "OCI_NORMALIZE_REPOSITORY": self.repository,
            "OCI_NORMALIZE_TAG": self.tag or "",
            "OCI_NORMALIZE_OLD_DIGEST": self.old_digest,
            "OCI_NORMALIZE_NEW_DIGEST": self.new_digest,
        }


@dataclass(frozen=True)
class SignHook:
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> SignHook:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise HookError(f"--sign-with: {exc}") from exc
        if not words:
            raise HookError("--sign-with: empty command")
        return cls(tuple(words))

    def argv(self, ref: str) -> list[str]:
        return [ref if w == "{ref}" else w.replace("{ref}", ref) for w in self.words]


def describe(hook: SignHook, request: SignRequest) -> str:
    return shlex.join(hook.argv(request.ref))


def run_hook(
    hook: SignHook,
    request: SignRequest,
    *,
    timeout: float,
    limiter: threading.Semaphore | None = None,
    base_env: Mapping[str, str] = os.environ,
) -> None:
    argv = hook.argv(request.ref)
    try:
        done = subprocess.run(
            argv,
            env=request.env(base_env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HookError(f"--sign-with for {request.ref}: timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise HookError(f"--sign-with for {request.ref}: {exc}") from exc
    if done.returncode != 0:
        raise HookError(f"--sign-with for {request.ref}: exit {done.returncode}")
