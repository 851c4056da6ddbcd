"""The ``--sign-with 'COMMAND ARGS…'`` hook: the owner's signer, run once per re-signed manifest.

A conversion changes a manifest's digest, so a signature over the old digest no longer covers the
new one. The hook lets the owner sign the new digest with their own tool (cosign, notation, a
script) after the new manifests are pushed by digest and before any tag moves. This module only
runs the command; *when* it runs (children before parents, before the tag) is the writer's job.

How the command is called:

- The text is split like a POSIX shell splits words (:func:`shlex.split`: quotes and backslashes
  work), but **no shell ever runs it**: no ``$VAR``, ``$(…)``, globs, pipes or ``;``.
- An argument that is exactly ``{ref}`` becomes, as one whole argument, ``HOST/REPOSITORY@NEW``
  (``127.0.0.1:5000/team/app@sha256:…``). ``{ref}`` inside a longer argument
  (``--image={ref}``) is replaced in place; the result stays that one argument, never re-split.
  A command without ``{ref}`` still gets the reference through the environment.
- The environment is ours plus ``OCI_NORMALIZE_IMAGE`` (the same reference),
  ``OCI_NORMALIZE_REGISTRY`` (``HOST[:PORT]``), ``OCI_NORMALIZE_REPOSITORY``,
  ``OCI_NORMALIZE_TAG`` (empty for a manifest reached by digest, e.g. an index's child),
  ``OCI_NORMALIZE_OLD_DIGEST`` and ``OCI_NORMALIZE_NEW_DIGEST``.
- stdin is closed; the command gets its own process group, and the whole group is killed when it
  runs past the timeout. Its stdout is dropped (it would mix with ``--json``); of its stderr,
  the last :data:`STDERR_TAIL_BYTES` are kept and shown.

What is shown of a hook (its stderr, its argv in a dry run, the error) has every secret masked:
the value of each environment variable whose name says it is one (:data:`SECRET_NAME_PARTS`,
every ``COSIGN_*``), and every credential this process remembered for a registry.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Final

from oci_normalize.digest import Digest
from oci_normalize.errors import HookError
from oci_normalize.http.secrets import MASK, MIN_SECRET_CHARS, redact
from oci_normalize.text import ELLIPSIS, printable

__all__ = [
    "DEFAULT_SIGN_TIMEOUT_S",
    "HookRun",
    "SignHook",
    "SignRequest",
    "describe",
    "run_hook",
]

#: ``--sign-timeout`` default, seconds: a signer that talks to a KMS or a transparency log is slow.
DEFAULT_SIGN_TIMEOUT_S: Final = 120.0
#: The placeholder replaced by ``HOST/REPOSITORY@sha256:NEW``.
REF_PLACEHOLDER: Final = "{ref}"
#: How much of a hook's stderr (and stdout) is kept: the last bytes, where the reason usually is.
STDERR_TAIL_BYTES: Final = 4096
#: How much of that tail reaches the one-line error message.
STDERR_SHOWN_CHARS: Final = 1500
#: After the hook exits, how long its pipes may stay open (a stray background child holds them)
#: before the rest of its process group is killed.
PIPE_DRAIN_S: Final = 2.0
#: Environment variable names containing one of these (upper-cased) hold secrets.
SECRET_NAME_PARTS: Final = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASS", "CREDENTIAL", "AUTH")
#: Every variable with this prefix is cosign's, and may be a key or its password.
SECRET_PREFIXES: Final = ("COSIGN_",)
#: What separates the lines of a hook's stderr in a one-line message.
LINE_JOIN: Final = " | "
_READ_CHUNK: Final = 65536


@dataclass(frozen=True)
class SignHook:
    """A parsed ``--sign-with`` command: its words, ``{ref}`` not yet replaced."""

    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> SignHook:
        """Split ``text`` like a shell would (quotes, backslashes), without running one."""
        if "\x00" in text:
            raise HookError("--sign-with: the command contains a NUL character")
        try:
            words = tuple(shlex.split(text))
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise HookError(
                f"--sign-with: cannot split {printable(text)!r} into arguments: {exc}"
            ) from None
        if not words:
            raise HookError("--sign-with: the command is empty")
        return cls(words)

    def argv(self, ref: str) -> list[str]:
        """The command's argv for ``ref``: ``{ref}`` replaced, each word staying one argument."""
        return [
            ref if word == REF_PLACEHOLDER else word.replace(REF_PLACEHOLDER, ref)
            for word in self.words
        ]


@dataclass(frozen=True)
class SignRequest:
    """One manifest to re-sign: where it lives and its digest before and after conversion."""

    registry: str  # HOST[:PORT], as the signer should name it
    repository: str  # the path without the host
    tag: str | None  # None for a manifest reached by digest (an index's child)
    old_digest: Digest
    new_digest: Digest

    @property
    def ref(self) -> str:
        """``HOST/REPOSITORY@sha256:NEW``: what ``{ref}`` becomes."""
        return f"{self.registry}/{self.repository}@{self.new_digest}"

    @property
    def manifest(self) -> str:
        """The manifest as a person knows it: by its tag, else by its old digest."""
        where = f":{self.tag}" if self.tag else f"@{self.old_digest}"
        return f"{self.registry}/{self.repository}{where}"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus the ``OCI_NORMALIZE_*`` variables describing this manifest."""
        return {
            **base,
            "OCI_NORMALIZE_IMAGE": self.ref,
            "OCI_NORMALIZE_REGISTRY": self.registry,
            "OCI_NORMALIZE_REPOSITORY": self.repository,
            "OCI_NORMALIZE_TAG": self.tag or "",
            "OCI_NORMALIZE_OLD_DIGEST": str(self.old_digest),
            "OCI_NORMALIZE_NEW_DIGEST": str(self.new_digest),
        }


@dataclass(frozen=True)
class HookRun:
    """A hook that exited 0: what ran, how long it took, the (masked) tail of what it said."""

    argv: tuple[str, ...]  # as run; shown only through :func:`describe`'s masking
    seconds: float
    stderr_tail: str  # masked, control characters replaced, lines joined by LINE_JOIN


def describe(
    hook: SignHook, request: SignRequest, *, base_env: Mapping[str, str] = os.environ
) -> str:
    """The exact command a run would start, shell-quoted for display, secrets masked."""
    return _Masker(request.env(base_env), public=request.ref).mask(
        shlex.join(hook.argv(request.ref))
    )


def run_hook(
    hook: SignHook,
    request: SignRequest,
    *,
    timeout: float,
    limiter: threading.Semaphore | None = None,
    base_env: Mapping[str, str] = os.environ,
) -> HookRun:
    """Run ``hook`` for ``request``; :class:`HookError` unless it exits 0 within ``timeout`` s.

    ``limiter`` bounds how many hooks run at once (batch); the timeout starts when this one
    starts, not while it waits for its turn.
    """
    argv = hook.argv(request.ref)
    env = request.env(base_env)
    masker = _Masker(env, public=request.ref)
    if limiter is not None:
        limiter.acquire()
    try:
        return _run(argv, env, masker, request, timeout)
    finally:
        if limiter is not None:
            limiter.release()


def _run(
    argv: list[str], env: dict[str, str], masker: _Masker, request: SignRequest, timeout: float
) -> HookRun:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # it would mix with our own (--json) output
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills all of it
            close_fds=True,
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HookError(
            _message(request, masker, f"could not start {argv[0]!r}: {reason}", "")
        ) from None
    assert proc.stderr is not None
    err = _Tail(proc.stderr)
    timed_out = False
    try:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        # A background child may still hold the pipes: give it a moment, then end the group.
        if not err.join(PIPE_DRAIN_S):
            _kill_group(proc.pid)
            err.join(PIPE_DRAIN_S)
    finally:
        if proc.returncode is None:  # interrupted (Ctrl-C) while waiting: leave nothing running
            _kill_group(proc.pid)
            proc.wait()
    stderr_tail = masker.shown(err.text())
    if timed_out:
        status = f"timed out after {timeout:g}s"
    elif proc.returncode < 0:
        status = f"killed by signal {_signal_name(-proc.returncode)}"
    elif proc.returncode > 0:
        status = f"exit status {proc.returncode}"
    else:
        return HookRun(
            argv=tuple(argv),
            seconds=time.monotonic() - started,
            stderr_tail=stderr_tail,
        )
    raise HookError(_message(request, masker, status, stderr_tail))


def _message(request: SignRequest, masker: _Masker, status: str, stderr_tail: str) -> str:
    text = f"sign hook for {request.manifest} (new digest {request.new_digest}) failed: {status}"
    if stderr_tail:
        text += f"; stderr: {_tail(stderr_tail, STDERR_SHOWN_CHARS)}"
    return masker.mask(text)


def _tail(text: str, limit: int = STDERR_TAIL_BYTES) -> str:
    """The last ``limit`` characters of ``text``, an ellipsis first where it was cut."""
    return text if len(text) <= limit else ELLIPSIS + text[-(limit - 1) :]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class _Tail:
    """Reads a pipe to its end on a thread, keeping only the last :data:`STDERR_TAIL_BYTES`."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._pipe.fileno(), _READ_CHUNK):
                with self._lock:
                    self._buf += chunk
                    if len(self._buf) > STDERR_TAIL_BYTES:
                        del self._buf[: len(self._buf) - STDERR_TAIL_BYTES]
        except (OSError, ValueError):
            pass  # the pipe was closed under us: keep what was read
        finally:
            self._pipe.close()

    def join(self, timeout: float) -> bool:
        """True once the pipe reached its end."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def text(self) -> str:
        with self._lock:
            return bytes(self._buf).decode("utf-8", errors="replace")


class _Masker:
    """Replaces the secrets of one hook's environment (and the client's own) with ``***``.

    A value found inside ``public`` (the reference being signed) is no secret: masking it would
    only hide the name of the image (``COSIGN_REPOSITORY=registry.example/team``)."""

    def __init__(self, env: Mapping[str, str], *, public: str) -> None:
        found = {
            value
            for name, value in env.items()
            if _is_secret_name(name) and len(value) >= MIN_SECRET_CHARS and value not in public
        }
        self._secrets = sorted(found, key=len, reverse=True)  # longest first

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact(text)

    def shown(self, raw: str) -> str:
        """A hook's output as one printable, masked line."""
        lines = [line.strip() for line in raw.splitlines()]
        return _tail(
            printable(self.mask(LINE_JOIN.join(x for x in lines if x)), limit=len(raw) + 1)
        )


def _is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(SECRET_PREFIXES) or any(part in upper for part in SECRET_NAME_PARTS)
