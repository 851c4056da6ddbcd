"""Work items on a NATS JetStream stream shared by every ``serve`` replica (``--queue nats://``).

One stream with work-queue retention holds the items on the subject ``STREAM.work``; ONE durable
pull consumer (``oci-normalize``) is bound by every replica, so JetStream hands each message to
one replica at a time and N replicas share the load. A replica holds a message as a lease: while
it holds it, a background task sends in-progress acks every third of ``ack_wait``; a replica
killed with -9 stops sending them, and after ``ack_wait`` JetStream redelivers the message to
another replica.

Deduplication uses the ``Nats-Msg-Id`` header, which JetStream drops within the stream's
duplicate window. The id is ``KEY.GENERATION``: KEY hashes (repository, ref) and GENERATION is
the revision of KEY in the ``STREAM_taken`` key-value bucket, which :meth:`NatsQueue.take` bumps
*before* the worker reads the registry. Events that arrive while an item waits collapse into
it; an event that arrives once a worker took the item gets a new id, hence a new message, so a
push made during or after a conversion is never swallowed by the window.

Two replicas never convert the same (repository, ref) at once: a lease also holds KEY in the
``STREAM_locks`` bucket (an entry expires after 2/3 of ``ack_wait`` unless its holder refreshes
it with its in-progress acks). A replica that takes a message whose KEY another one holds hands
it back with a delay of half ``ack_wait`` (this delivery counts as an attempt); by then the tag
is usually OCI-pure and costs one manifest GET. So a tag is moved once even when every replica
got the same event.

Parked items are terminated (JetStream drops them from the stream) and recorded in the
``STREAM_parked`` bucket, which :meth:`NatsQueue.parked` lists for ``serve --status``.

nats-py is asyncio; one event loop runs in a daemon thread and the synchronous
:class:`~oci_normalize.serve.queue.WorkQueue` methods submit coroutines to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidDigestError, InvalidReferenceError, OciNormalizeError
from oci_normalize.reference import parse_repository, parse_tag
from oci_normalize.serve.queue import Lease, QueueClosedError, WorkItem, status_of
from oci_normalize.text import printable

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_NATS_PORT: Final = 4222
#: URL scheme -> the scheme nats-py is given (``tls`` asks it for TLS).
NATS_SCHEMES: Final = {"nats": "nats", "tls": "tls"}
DEFAULT_ACK_WAIT: Final = 30.0  # seconds a dead replica keeps an item from the others
DEFAULT_DUPLICATE_WINDOW: Final = 120.0  # seconds JetStream remembers a Nats-Msg-Id
DEFAULT_CONSUMER: Final = "oci-normalize"
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_CALL_TIMEOUT: Final = 15.0  # one JetStream request (publish, ack, info)
#: In-progress acks sent per ``ack_wait`` while a lease is held.
HEARTBEATS_PER_ACK_WAIT: Final = 3
#: A ``take`` fetch is never shorter than this (nats-py refuses a zero expiry).
MIN_FETCH: Final = 0.05
#: The "taken" generations outlive the duplicate window by this factor, and a day at least.
GENERATION_TTL_FACTOR: Final = 30
MIN_GENERATION_TTL: Final = 86400.0
RECONNECT_WAIT: Final = 1.0
CONNECTED: Final = "connected"
MAX_ITEM_BYTES: Final = 4096  # a work item's JSON; anything longer is not ours
MAX_REASON: Final = 1000  # characters of a park reason kept
MAX_NAME: Final = 64  # stream and consumer names
MAX_SUBJECT: Final = 255
STOP_TIMEOUT: Final = 5.0
#: Shortest wait before a reference another replica converts is tried again.
MIN_BUSY_DELAY: Final = 1.0
UNLOCK_TRIES: Final = 3
#: A reference's lock lives this part of ack_wait unless refreshed (every third of it).
LOCK_TTL_FRACTION: Final = 2 / 3

_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_SUBJECT_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+|\*")
_DIGEST_PREFIX: Final = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:")


class NatsError(OciNormalizeError):
    """NATS is unreachable, refused a request, or its stream is set up for something else."""


class NatsAddressError(NatsError, ValueError):
    """A ``--queue`` or ``--events`` URL that does not parse."""


@dataclass(frozen=True)
class NatsAddress:
    """A parsed ``nats://[USER[:PASSWORD]@]HOST[:PORT]/NAME``; ``str()`` never shows secrets."""

    scheme: str
    host: str
    port: int
    name: str  # the stream (--queue) or the subject (--events)
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    params: tuple[tuple[str, str], ...] = ()  # the query's settings, checked by the caller

    @property
    def server(self) -> str:
        """The server URL handed to nats-py and shown in messages: no credentials."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.server}/{self.name}"

    def credentials(self) -> dict[str, str]:
        """nats-py ``connect`` keywords: user and password, or a lone user as a token."""
        if self.user is None:
            return {}
        if self.password is None:
            return {"token": self.user}
        return {"user": self.user, "password": self.password}


def shown_url(text: str) -> str:
    """``text`` as a message may show it: any ``userinfo@`` of the URL replaced by ``…@``, and
    the values of a query left out."""
    text, query, _ = text.partition("?")
    text += "?…" if query else ""
    scheme, sep, rest = text.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            authority = "…@" + authority.rpartition("@")[2]
        text = f"{scheme}{sep}{authority}{slash}{path}"
    elif "@" in text:
        text = "…@" + text.rpartition("@")[2]
    return printable(text, limit=200)


def _check_stream_name(name: str) -> bool:
    return len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None


def _check_subject(subject: str) -> bool:
    """A subject to publish or subscribe to: dot-separated tokens, ``*`` tokens, ``>`` last."""
    if not subject or len(subject) > MAX_SUBJECT:
        return False
    tokens = subject.split(".")
    if tokens[-1] == ">":
        tokens = tokens[:-1]
    return all(_SUBJECT_TOKEN.fullmatch(token) for token in tokens)


def parse_nats_url(
    text: str, *, option: str, subject: bool = False, params: frozenset[str] = frozenset()
) -> NatsAddress:
    """Parse ``--queue``/``--events`` as user input: one clear :class:`NatsAddressError` if bad.

    The path names a JetStream stream, or a subject when ``subject`` is true. Credentials may
    come as ``user:password@`` or ``token@``; no message ever shows them. A query may set the
    names in ``params``, each once.
    """
    what = "SUBJECT" if subject else "STREAM"
    query = "[?" + "=…&".join(sorted(params)) + "=…]" if params else ""
    usage = f"expected nats://[USER:PASSWORD@]HOST[:PORT]/{what}{query}"

    def bad(reason: str) -> NatsAddressError:
        return NatsAddressError(f"{option} {shown_url(text)!r}: {reason}; {usage}")

    if not text.isprintable() or text != text.strip():
        raise bad("spaces or control characters")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in NATS_SCHEMES:
        raise bad("the scheme must be nats:// or tls://")
    if parts.fragment or "#" in text:
        raise bad("no fragment is allowed")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise bad("a malformed query") from None
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - params)
    if unknown or len(set(names)) != len(names):
        shown = printable(", ".join(unknown) or "a setting given twice", limit=80)
        raise bad(f"unknown query setting {shown}" if unknown else shown)
    host = parts.hostname
    if not host:
        raise bad("no host")
    try:
        port = parts.port
    except ValueError:
        raise bad("bad port") from None
    if port == 0:
        raise bad("bad port")
    name = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if subject:
        if not _check_subject(name):
            raise bad(f"bad subject {printable(name, limit=80)!r}")
    elif not _check_stream_name(name):
        raise bad(f"bad stream name {printable(name, limit=80)!r} (letters, digits, _ and -)")
    shown_host = f"[{host}]" if ":" in host else host
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return NatsAddress(
        scheme=NATS_SCHEMES[scheme],
        host=shown_host,
        port=port or DEFAULT_NATS_PORT,
        name=name,
        user=user,
        password=password,
        params=tuple(pairs),
    )


def item_key(repository: str, ref: str) -> str:
    """The dedupe key of (repository, ref): a hash, valid as a KV key and a message id."""
    return hashlib.sha256(f"{repository}\n{ref}".encode()).hexdigest()


def parse_ref(ref: str, *, source: str) -> str:
    """A tag or a digest from outside, checked as user input is; returned as is."""
    if _DIGEST_PREFIX.match(ref):
        try:
            return str(Digest.parse(ref))
        except InvalidDigestError as exc:
            raise InvalidReferenceError(
                f"invalid digest {printable(ref, limit=100)!r} from {source}"
            ) from exc
    return parse_tag(ref, source=source)


def encode_item(item: WorkItem) -> bytes:
    return json.dumps(
        {"repository": item.repository, "ref": item.ref, "received": item.received},
        separators=(",", ":"),
    ).encode()


def decode_item(data: bytes, *, source: str) -> WorkItem:
    """A work item read back from NATS, checked like any outside input."""
    if len(data) > MAX_ITEM_BYTES:
        raise InvalidReferenceError(f"work item from {source} is over {MAX_ITEM_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidReferenceError(f"work item from {source} is not JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidReferenceError(f"work item from {source} is not a JSON object")
    repository, ref, received = doc.get("repository"), doc.get("ref"), doc.get("received")
    if not isinstance(repository, str) or not isinstance(ref, str):
        raise InvalidReferenceError(f"work item from {source} lacks repository or ref")
    if isinstance(received, bool) or not isinstance(received, (int, float)):
        raise InvalidReferenceError(f"work item from {source} lacks a received time")
    return WorkItem(
        repository=parse_repository(repository, source=source),
        ref=parse_ref(ref, source=source),
        received=float(received),
    )


class LoopThread:
    """One asyncio event loop in a daemon thread; :meth:`call` runs a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # Stopped: let what is left (nats-py's reader and flusher tasks) end, then close.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float, what: str) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NatsError(f"{what}: no answer within {timeout:g} s") from None
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
            detail = printable(str(exc), limit=300) or type(exc).__name__
            raise NatsError(f"{what}: {detail}") from exc

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_TIMEOUT)


async def connect(address: NatsAddress, *, timeout: float, name: str) -> Client:
    """A connection that, once made, reconnects forever and logs one line per trouble (no
    traceback); the first one fails after about ``timeout`` with the reason it could not."""
    trouble: list[str] = []  # until connected, the reason goes into the one error instead
    made: list[Client] = []

    async def on_error(exc: Exception) -> None:
        detail = printable(str(exc), limit=300) or type(exc).__name__
        if trouble and trouble[0] == CONNECTED:
            log.warning("NATS %s: %s", address.server, detail)
        else:
            trouble.append(detail)

    async def on_disconnect() -> None:
        if not (made and (made[0].is_closed or made[0].is_draining)):  # not our own close
            log.warning("NATS %s: disconnected, reconnecting", address.server)

    try:
        client = await asyncio.wait_for(
            nats.connect(
                servers=[address.server],
                name=name,
                connect_timeout=timeout,
                reconnect_time_wait=RECONNECT_WAIT,
                max_reconnect_attempts=-1,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                **address.credentials(),
            ),
            timeout + RECONNECT_WAIT,
        )
        trouble[:] = [CONNECTED]
        made.append(client)
        return client
    except asyncio.TimeoutError:
        why = trouble[-1] if trouble else "no answer"
        raise NatsError(f"cannot connect to NATS at {address.server}: {why}") from None


@dataclass(frozen=True, kw_only=True)
class NatsQueueOptions:
    ack_wait: float = DEFAULT_ACK_WAIT
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    consumer: str = DEFAULT_CONSUMER
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    call_timeout: float = DEFAULT_CALL_TIMEOUT

    def __post_init__(self) -> None:
        if not self.ack_wait > 0 or not self.duplicate_window > 0:
            raise NatsAddressError("--queue: ack_wait and duplicate_window must be positive")
        if not _check_stream_name(self.consumer):
            raise NatsAddressError(
                f"--queue: bad consumer name {printable(self.consumer, limit=80)!r} "
                "(letters, digits, _ and -)"
            )


ACK_WAIT_PARAM: Final = "ack_wait"
DUPLICATE_WINDOW_PARAM: Final = "duplicate_window"
CONSUMER_PARAM: Final = "consumer"
QUEUE_PARAMS: Final = frozenset({ACK_WAIT_PARAM, DUPLICATE_WINDOW_PARAM, CONSUMER_PARAM})
MIN_ACK_WAIT: Final = 1.0
MAX_SETTING_S: Final = 86400.0
_DURATION: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(text: str, *, name: str, least: float) -> float:
    match = _DURATION.fullmatch(text)
    value = float(match[1]) * _UNIT_S[match[2]] if match else -1.0
    if not least <= value <= MAX_SETTING_S:
        raise NatsAddressError(
            f"--queue: {name}={printable(text, limit=40)!r} is not a duration from {least:g} s "
            f"to {MAX_SETTING_S:g} s (e.g. 30s, 2m)"
        )
    return value


def queue_options(address: NatsAddress) -> NatsQueueOptions:
    """The settings in ``--queue``'s query (``ack_wait``, ``duplicate_window``, ``consumer``)."""
    given = dict(address.params)
    options = NatsQueueOptions()
    if ACK_WAIT_PARAM in given:
        ack_wait = _seconds(given[ACK_WAIT_PARAM], name=ACK_WAIT_PARAM, least=MIN_ACK_WAIT)
        options = replace(options, ack_wait=ack_wait)
    if DUPLICATE_WINDOW_PARAM in given:
        window = _seconds(given[DUPLICATE_WINDOW_PARAM], name=DUPLICATE_WINDOW_PARAM, least=1.0)
        options = replace(options, duplicate_window=window)
    if CONSUMER_PARAM in given:
        options = replace(options, consumer=given[CONSUMER_PARAM])
    return options


def open_queue(url: str) -> NatsQueue:
    """``--queue nats://[USER:PASSWORD@]HOST[:PORT]/STREAM[?ack_wait=30s&…]``, connected."""
    address = parse_nats_url(url, option="--queue", params=QUEUE_PARAMS)
    return NatsQueue(address, options=queue_options(address))


class NatsQueue:
    """The :class:`~oci_normalize.serve.queue.WorkQueue` of ``--queue nats://HOST:PORT/STREAM``."""

    def __init__(self, address: NatsAddress, *, options: NatsQueueOptions | None = None) -> None:
        self._address = address
        self._options = options or NatsQueueOptions()
        self._stream = address.name
        self._subject = f"{address.name}.work"
        self._source = f"NATS stream {address}"
        self._leases: dict[str, _Held] = {}  # by token; touched on the loop thread only
        self._closed = False
        self._loop = LoopThread(f"nats-queue-{address.name}")
        try:
            self._call(self._open(), self._options.connect_timeout + 4 * self._options.call_timeout)
        except BaseException:
            self._loop.stop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._closed:
            coro.close()
            raise QueueClosedError(f"{self._source}: the queue is closed")
        return self._loop.call(
            coro, timeout=timeout or self._options.call_timeout, what=self._source
        )

    # -- setup ------------------------------------------------------------------------------

    async def _open(self) -> None:
        opts = self._options
        self._nc = await connect(self._address, timeout=opts.connect_timeout, name=opts.consumer)
        try:
            await self._setup()
        except BaseException:
            await self._nc.close()
            raise

    async def _setup(self) -> None:
        opts = self._options
        self._js: JetStreamContext = self._nc.jetstream(timeout=opts.call_timeout)
        await self._ensure_stream()
        await self._js.add_consumer(
            self._stream,
            ConsumerConfig(
                durable_name=opts.consumer,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=opts.ack_wait,
                max_deliver=-1,  # serve parks an item itself after its own attempt limit
                filter_subject=self._subject,
            ),
        )
        self._sub = await self._js.pull_subscribe_bind(durable=opts.consumer, stream=self._stream)
        self._taken = await self._bucket(
            f"{self._stream}_taken",
            ttl=max(opts.duplicate_window * GENERATION_TTL_FACTOR, MIN_GENERATION_TTL),
        )
        self._parked = await self._bucket(f"{self._stream}_parked", ttl=None)
        # Shorter than ack_wait: a dead holder's lock is gone when JetStream redelivers.
        lock_ttl = opts.ack_wait * LOCK_TTL_FRACTION
        self._locks = await self._bucket(f"{self._stream}_locks", ttl=lock_ttl)
        # A bucket made by a replica with another ack_wait keeps its TTL: beat for both.
        info = await self._js.stream_info(f"KV_{self._stream}_locks")
        kept_ttl = info.config.max_age or lock_ttl
        self._beat = min(opts.ack_wait / HEARTBEATS_PER_ACK_WAIT, kept_ttl / 2)
        self._fetch_lock = asyncio.Lock()
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _ensure_stream(self) -> None:
        try:
            info = await self._js.stream_info(self._stream)
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            raise NatsError(
                f"{self._source}: this NATS server has no JetStream (nats-server -js)"
            ) from None
        except nats.js.errors.NotFoundError:
            # Replicas starting together may both land here: an identical add is a no-op.
            await self._js.add_stream(
                StreamConfig(
                    name=self._stream,
                    subjects=[self._subject],
                    retention=RetentionPolicy.WORK_QUEUE,
                    storage=StorageType.FILE,
                    duplicate_window=self._options.duplicate_window,
                )
            )
            return
        if info.config.retention != RetentionPolicy.WORK_QUEUE or self._subject not in (
            info.config.subjects or []
        ):
            raise NatsError(
                f"{self._source}: the stream exists but is not a work-queue stream over "
                f"{self._subject}; pick another stream name"
            )

    async def _bucket(self, bucket: str, *, ttl: float | None) -> KeyValue:
        try:
            return await self._js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            return await self._js.create_key_value(bucket=bucket, history=1, ttl=ttl)

    # -- the WorkQueue protocol -----------------------------------------------------------

    def put(self, items: Sequence[WorkItem]) -> None:
        """Returns once JetStream acknowledged every publish: the items are then durable."""
        if items:
            self._call(self._put(items), self._options.call_timeout * (1 + len(items)))

    async def _put(self, items: Sequence[WorkItem]) -> None:
        seen: set[str] = set()
        for item in items:
            key = item_key(item.repository, item.ref)
            if key in seen:
                continue
            seen.add(key)
            generation = await self._generation(key)
            await self._js.publish(
                self._subject,
                encode_item(item),
                stream=self._stream,
                headers={"Nats-Msg-Id": f"{key}.{generation}"},
            )

    async def _generation(self, key: str) -> int:
        try:
            return (await self._taken.get(key)).revision or 0
        except nats.js.errors.KeyNotFoundError:
            return 0

    def take(self, timeout: float) -> Lease | None:
        """A lease, or None after ``timeout``; also None (after a line in the log and a pause)
        while NATS is unreachable, so a worker keeps asking instead of dying."""
        started = time.monotonic()
        try:
            return self._call(self._take(timeout), timeout + self._options.call_timeout)
        except NatsError as exc:  # not QueueClosedError: that one ends the worker
            log.warning("%s", exc)
            time.sleep(max(timeout - (time.monotonic() - started), 0.0))
            return None

    async def _take(self, timeout: float) -> Lease | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._fetch_lock.acquire(), remaining)
            except asyncio.TimeoutError:
                return None
            try:
                remaining = max(deadline - loop.time(), MIN_FETCH)
                msgs = await self._sub.fetch(1, timeout=remaining)
            except nats.errors.TimeoutError:
                return None
            finally:
                self._fetch_lock.release()
            msg = msgs[0]
            try:
                item = decode_item(msg.data, source=self._source)
            except InvalidReferenceError as exc:
                log.warning("%s: dropped a message that is not a work item: %s", self._source, exc)
                await msg.term()
                continue
            key = item_key(item.repository, item.ref)
            token = secrets.token_hex(8)
            try:
                lock = await self._locks.create(key, token.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                # Another replica converts this very reference now: come back after it.
                await msg.nak(delay=max(self._options.ack_wait / 2, MIN_BUSY_DELAY))
                continue
            # Bump the generation before the worker reads the registry: an event from now on
            # gets a new message id, so a push during or after this conversion is not deduped.
            await self._taken.put(key, b"")
            self._leases[token] = _Held(msg=msg, key=key, lock=lock, token=token)
            return Lease(item=item, attempt=msg.metadata.num_delivered or 1, token=token)

    async def _done(self, lease: Lease) -> Msg:
        """The message of ``lease``, no longer held; its reference's lock is given up."""
        held = self._leases.pop(lease.token, None)
        if held is None:
            raise NatsError(f"{self._source}: lease {lease.token} is not held by this replica")
        await self._unlock(held)
        return held.msg

    async def _unlock(self, held: _Held) -> None:
        for _ in range(UNLOCK_TRIES):
            try:
                await self._locks.delete(held.key, last=held.lock)
                return
            except (
                nats.js.errors.KeyWrongLastSequenceError,
                nats.js.errors.BadRequestError,
            ) as exc:
                # nats-py reports a delete's lost race as a plain 400 "wrong last sequence"
                if not _wrong_last_sequence(exc):
                    raise
                # A heartbeat refreshed it meanwhile (ours still), or it expired and another
                # replica holds it now (theirs: leave it).
                try:
                    entry = await self._locks.get(held.key)
                except nats.js.errors.KeyNotFoundError:
                    return
                if entry.value != held.token.encode() or entry.revision is None:
                    return
                held.lock = entry.revision

    def ack(self, lease: Lease) -> None:
        self._settle(self._ack(lease))

    def _settle(self, coro: Coroutine[Any, Any, None]) -> None:
        """Ack, retry, park or release. Should NATS fail it, the item is not lost: JetStream
        redelivers it after ``ack_wait`` (this replica stopped its in-progress acks)."""
        try:
            self._call(coro)
        except NatsError as exc:  # not QueueClosedError: that one ends the worker
            log.warning("%s (the item comes again after ack_wait)", exc)

    async def _ack(self, lease: Lease) -> None:
        await (await self._done(lease)).ack_sync(timeout=self._options.call_timeout)
        key = item_key(lease.item.repository, lease.item.ref)
        try:
            await self._parked.get(key)
        except nats.js.errors.KeyNotFoundError:
            return
        await self._parked.delete(key)  # converted since it was parked: no longer parked

    def retry(self, lease: Lease, delay: float, reason: str) -> None:
        log.info("%s: retry %s:%s in %g s: %s", self._source, *_shown(lease.item), delay, reason)
        self._settle(self._nak(lease, max(delay, 0.0)))

    async def _nak(self, lease: Lease, delay: float | None) -> None:
        await (await self._done(lease)).nak(delay=delay or None)

    def park(self, lease: Lease, reason: str) -> None:
        self._settle(self._park(lease, reason))

    async def _park(self, lease: Lease, reason: str) -> None:
        item = lease.item
        record = json.dumps(
            {
                "repository": item.repository,
                "ref": item.ref,
                "received": item.received,
                "reason": printable(reason, limit=MAX_REASON),
                "parked": time.time(),
                "attempt": lease.attempt,
            },
            separators=(",", ":"),
        ).encode()
        # Recorded first: a crash between the two leaves it recorded and redelivered, not lost.
        await self._parked.put(item_key(item.repository, item.ref), record)
        msg = await self._done(lease)
        # Terminated and confirmed, as an ack is (``ack_sync``): when park returns, the item
        # has left the stream (depth, the next take). nats-py's ``term`` only publishes.
        await self._nc.request(msg.reply, Msg.Ack.Term, timeout=self._options.call_timeout)

    def release(self, lease: Lease) -> None:
        self._settle(self._nak(lease, None))

    def depth(self) -> int:
        """Messages on the stream: waiting, delayed for a retry, or held by a replica."""
        return self._call(self._depth())

    async def _depth(self) -> int:
        return (await self._js.stream_info(self._stream)).state.messages

    def parked(self) -> list[tuple[WorkItem, str]]:
        return self._call(self._parked_items())

    async def _parked_items(self) -> list[tuple[WorkItem, str]]:
        try:
            keys = await self._parked.keys()
        except nats.js.errors.NoKeysError:
            return []
        found = []
        for key in keys:
            try:
                data = (await self._parked.get(key)).value or b""
                item = decode_item(data, source=f"{self._source} (parked)")
                reason = json.loads(data).get("reason")
            except (nats.js.errors.KeyNotFoundError, InvalidReferenceError):
                continue  # un-parked meanwhile, or not a record of ours
            found.append(
                (item, printable(reason if isinstance(reason, str) else "", limit=MAX_REASON))
            )
        return sorted(found, key=lambda pair: pair[0].received)

    def close(self) -> None:
        """Disconnect. Leases still held are not given back: JetStream redelivers them after
        ``ack_wait`` (call :meth:`release` first to hand them back at once)."""
        if self._closed:
            return
        try:
            self._call(self._shutdown(), self._options.call_timeout)
        except NatsError as exc:
            log.warning("%s", exc)
        finally:
            self._closed = True
            self._loop.stop()

    async def _shutdown(self) -> None:
        self._heartbeat.cancel()
        self._leases.clear()
        await self._nc.close()

    async def _heartbeats(self) -> None:
        """Tell JetStream every held message is still being worked on (``msg.in_progress``)."""
        interval = self._beat
        while True:
            await asyncio.sleep(interval)
            for held in list(self._leases.values()):
                if held.token not in self._leases:
                    continue  # finished while an earlier one was refreshed
                try:
                    await held.msg.in_progress()
                    held.lock = await self._locks.update(
                        held.key, held.token.encode(), last=held.lock
                    )
                except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive one failure
                    log.warning("%s: in-progress ack failed: %s", self._source, exc)


@dataclass
class _Held:
    """A message this replica works on, and its revision of the reference's lock."""

    msg: Msg
    key: str
    lock: int
    token: str


def _shown(item: WorkItem) -> tuple[str, str]:
    return item.repository, item.ref


def status(url: str) -> dict[str, Any]:
    """``serve --status --queue nats://…``: the shared stream's depth and parked items, in the
    shape of :func:`oci_normalize.serve.service.status`. Takes nothing from the queue."""
    return status_of(open_queue(url))


#: JetStream's error code for "wrong last sequence" (a compare-and-set that lost a race).
WRONG_LAST_SEQUENCE: Final = 10071


def _wrong_last_sequence(exc: Exception) -> bool:
    if isinstance(exc, nats.js.errors.KeyWrongLastSequenceError):
        return True
    return getattr(exc, "err_code", None) == WRONG_LAST_SEQUENCE
