"""A :class:`~oci_normalize.http.transport.Transport` for tests: plain HTTP to ``host``, short
timeouts, no retries unless asked, a fake clock."""

from __future__ import annotations

import requests

from oci_normalize.http import env as httpenv
from oci_normalize.http.auth import Authenticator
from oci_normalize.http.transport import Transport
from oci_normalize.options import NO_RETRY, RetryPolicy
from tests.support.clock import FakeClock


def transport(
    host: str,
    *,
    retry: RetryPolicy = NO_RETRY,
    clock: FakeClock | None = None,
    session: requests.Session | None = None,
) -> Transport:
    if session is None:
        session = httpenv.new_session()
        session.headers["User-Agent"] = "oci-normalize/test"
    return Transport(
        registry=host,
        base_url=f"http://{host}/v2/",
        session=session,
        auth=Authenticator(session, timeout=(2, 5)),
        timeout=(2, 5),
        verify=True,
        retry=retry,
        clock=clock or FakeClock(),
    )
