"""``--events nats://HOST:PORT/SUBJECT``: push events read from a NATS subject, not webhooks.

zot's events extension publishes a CloudEvent per registry action to a NATS subject (its sink's
``channel``). Each message body (structured mode) or body plus ``ce-*`` headers (binary mode)
goes to the same ``accept`` as a ``POST /events`` body (:meth:`.app.EventsApp.accept`): parsed
by :func:`.events.parse_body`, trusting nothing but the repository and reference, queued
durably, counted and logged.

Two ways to listen, chosen at start:

* a JetStream stream captures SUBJECT: a durable pull consumer (``oci-normalize-events``) shared
  by every replica; a message is acknowledged only once ``accept`` returned, i.e. its items are
  durable in the work queue. Events published while every replica is down wait in the stream.
* no stream captures it: a plain subscription in the queue group ``oci-normalize``, so each event
  reaches one replica. NATS keeps nothing for a subscriber that is not there; the periodic
  reconcile sweep finds what was missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from oci_normalize.errors import OciNormalizeError
from oci_normalize.serve.events import MAX_BODY_BYTES, BadEventError
from oci_normalize.serve.natsqueue import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    LoopThread,
    NatsAddress,
    connect,
    parse_nats_url,
)
from oci_normalize.text import printable

log = logging.getLogger(__name__)

#: Queue group (plain subject) and durable consumer (JetStream) every replica shares.
EVENTS_GROUP: Final = "oci-normalize"
EVENTS_CONSUMER: Final = "oci-normalize-events"
FETCH_BATCH: Final = 16
FETCH_WAIT: Final = 1.0
#: Events are retried this long after ``accept`` failed (the work queue was unreachable).
RETRY_DELAY: Final = 5.0
EVENTS_ACK_WAIT: Final = 60.0
#: Deliveries of one event before JetStream gives up on it (a poison message).
EVENTS_MAX_DELIVER: Final = 20
#: Messages a plain subscription buffers before NATS counts this replica as a slow consumer.
PENDING_LIMIT: Final = 10_000
PLAIN: Final = "subject"
JETSTREAM: Final = "jetstream"

Accept = Callable[[bytes, Mapping[str, str] | None], Any]


class NatsEvents:
    """Feeds every event on ``address.name`` to ``accept`` until :meth:`close`."""

    def __init__(
        self,
        address: NatsAddress,
        accept: Accept,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self._address = address
        self._accept = accept
        self._call_timeout = call_timeout
        self._source = f"NATS events {address}"
        self._loop = LoopThread(f"nats-events-{address.port}")
        self._closing = False
        self.mode = PLAIN
        try:
            self._loop.call(
                self._open(connect_timeout),
                timeout=connect_timeout + 3 * call_timeout,
                what=self._source,
            )
        except BaseException:
            self._loop.stop()
            raise

    async def _open(self, connect_timeout: float) -> None:
        self._nc = await connect(self._address, timeout=connect_timeout, name=EVENTS_CONSUMER)
        try:
            js = self._nc.jetstream(timeout=self._call_timeout)
            try:
                stream = await js.find_stream_name_by_subject(self._address.name)
            except nats.js.errors.NotFoundError:
                stream = None
            except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
                stream = None  # a server without JetStream
            if stream is None:
                await self._nc.subscribe(
                    self._address.name,
                    queue=EVENTS_GROUP,
                    cb=self._on_plain,
                    pending_msgs_limit=PENDING_LIMIT,
                )
                return
            await js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=EVENTS_CONSUMER,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=EVENTS_ACK_WAIT,
                    max_deliver=EVENTS_MAX_DELIVER,
                    filter_subject=self._address.name,
                ),
            )
            self._pull = await js.pull_subscribe_bind(durable=EVENTS_CONSUMER, stream=stream)
            self.mode = JETSTREAM
            self._pulling = asyncio.get_running_loop().create_task(self._pull_loop())
        except BaseException:
            await self._nc.close()
            raise

    async def _on_plain(self, msg: Msg) -> None:
        await self._handle(msg)

    async def _pull_loop(self) -> None:
        while not self._closing:
            try:
                msgs = await self._pull.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
            except nats.errors.TimeoutError:
                continue
            except nats.errors.Error as exc:
                log.warning("%s: %s", self._source, printable(str(exc), limit=300))
                await asyncio.sleep(FETCH_WAIT)
                continue
            for msg in msgs:
                try:
                    done = await self._handle(msg)
                    await (msg.ack() if done else msg.nak(delay=RETRY_DELAY))
                except nats.errors.Error as exc:
                    log.warning("%s: %s", self._source, printable(str(exc), limit=300))

    async def _handle(self, msg: Msg) -> bool:
        """Hand one message to ``accept``; False when it should come again (queue trouble)."""
        if len(msg.data) > MAX_BODY_BYTES:
            log.warning("%s: ignored an event over %d bytes", self._source, MAX_BODY_BYTES)
            return True
        headers = {str(k).lower(): str(v) for k, v in (msg.headers or {}).items()}
        loop = asyncio.get_running_loop()
        try:
            # accept() blocks until the items are durable: off this loop, on a worker thread.
            await loop.run_in_executor(None, self._accept, msg.data, headers)
        except BadEventError as exc:
            log.warning("%s: ignored a malformed event: %s", self._source, exc)
            return True
        except OciNormalizeError as exc:
            log.warning("%s: could not queue an event: %s", self._source, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - one bad event never stops the listener
            log.error("%s: %s: %s", self._source, type(exc).__name__, printable(str(exc)))
            return False
        return True

    def close(self) -> None:
        """Stop listening; an event being accepted finishes first (JetStream: it is acked)."""
        if self._closing:
            return
        self._closing = True
        try:
            self._loop.call(self._shutdown(), timeout=self._call_timeout, what=self._source)
        except OciNormalizeError as exc:
            log.warning("%s", exc)
        finally:
            self._loop.stop()

    async def _shutdown(self) -> None:
        pulling = getattr(self, "_pulling", None)
        if pulling is None:
            await self._nc.drain()  # a plain subscription: hand over what it buffered
            return
        await asyncio.wait([pulling], timeout=FETCH_WAIT * 2)
        await self._nc.close()  # unacked JetStream messages go to another replica


def subscribe(url: str, accept: Accept) -> NatsEvents:
    """``--events nats://[USER:PASSWORD@]HOST[:PORT]/SUBJECT``, listening once it returns."""
    return NatsEvents(parse_nats_url(url, option="--events", subject=True), accept)
