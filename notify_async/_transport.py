"""Everything aiohttp: the session, TLS and proxy settings, one send, and its failures.

``Transport.send`` is the seam between the pipeline and the network: it takes a method,
a path, headers and a JSON body, and returns ``(status, body, headers)``, or raises
``APIConnectionError`` (``APITimeoutError``) with ``request_sent`` decided here, once.

``request_sent`` comes from which of aiohttp's timers fired. Its total timer raises a plain
``TimeoutError`` wherever it fires, even while the request waits for a free connection in
the pool or for a TCP connect that hangs, so that class alone cannot tell. Its connect timer
covers exactly that wait and raises ``ConnectionTimeoutError``; aiohttp writes the request
as soon as it has a connection, without waiting in between. ``attempt_timeout`` therefore
ends the connect timer strictly before the total one: a timeout before the request was
written is always the connect timer's. It costs nothing per request, and works the same
for a session the user gave. (A ``TraceConfig`` marking the headers as sent was measured
at a quarter more instructions per send, and cannot be added to a given session through
aiohttp's public API.) Our own session's requests beyond its pool wait in a queue of ours
instead (``_gate.py``), under the same bound, and never in aiohttp's.
"""

from __future__ import annotations

__all__ = ["Transport", "attempt_timeout", "env_proxy", "is_loopback", "tls_setting"]

import asyncio
import ipaddress
import logging
import math
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from ssl import SSLContext
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from ._errors import too_large
from ._exceptions import APIConnectionError, APITimeoutError, NotifyError
from ._gate import Gate
from ._version import __version__

logger = logging.getLogger("notify_async")

USER_AGENT = f"notify-async/{__version__}"

Response = tuple[int, bytes, CIMultiDictProxy[str]]
"""What one send returns: the status, the whole body, and the response headers."""

_JSON = "application/json"

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""The default cap on a response body (``NotifyClient(max_response_bytes=...)``)."""


def tls_setting(ssl: SSLContext | None, insecure_skip_tls_verify: bool) -> SSLContext | bool:
    """Turn the client's TLS options into aiohttp's ``ssl=`` value, refusing mixed signals."""
    if ssl is not None and not isinstance(ssl, SSLContext):
        # aiohttp's idiom ssl=False must not pass unnoticed: here it would mean "verify".
        raise ValueError(
            f"ssl must be an ssl.SSLContext (or None for the default), got {ssl!r}; to "
            "trust a private CA pass ssl=ssl.create_default_context(cafile=...); to turn "
            "verification off for a local test server, insecure_skip_tls_verify=True"
        )
    if insecure_skip_tls_verify:
        if ssl is not None:
            raise ValueError("pass either ssl or insecure_skip_tls_verify=True, not both")
        logger.warning(
            "TLS certificate verification is OFF (insecure_skip_tls_verify=True): anyone "
            "on the network path can read your API key. Use ssl=<SSLContext> to trust a "
            "private CA instead."
        )
        return False
    # aiohttp's True means "verify with the default context".
    return ssl or True


class Transport:
    """One aiohttp session bound to one event loop, and the one way requests are sent.

    A session the user gave is used as it is and never closed here; one made here is
    closed by ``close()``. Both send the same requests: with our User-Agent and the proxy
    from the environment, no redirects, and without aiohttp's silent resend of a GET after
    a dropped connection, so that ``max_retries`` alone decides how many requests a call
    sends. Our own session is built that way once; a given one cannot be changed, so
    each of its requests carries the same settings instead.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None,
        ssl: SSLContext | bool,
    ) -> None:
        self.base_url = base_url
        self.ssl = ssl
        self.session = session
        self.owns_session = session is None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.proxy: str | None = None
        # What each request adds: nothing for our own session, which has it built in.
        self._user_agent: dict[str, str] = {} if session is None else {"User-Agent": USER_AGENT}
        self._middlewares: tuple[_Middleware, ...] = () if session is None else (_no_resend,)
        self._urls: dict[str, URL] = {}
        # What each request passes to aiohttp besides allow_redirects=False: set by bind(),
        # which every first send runs, and empty for our own session without a proxy.
        self._options: dict[str, Any] = {}
        # Our own session's requests queue here rather than in its pool (see _gate.py). A
        # given session may carry other code's requests too, so it keeps aiohttp's queue.
        self._gate: Gate | None = None

    def bind(self) -> aiohttp.ClientSession:
        """Return the session for the running loop, creating it on first use.

        Raises ``NotifyError`` when the client was closed or is used from another loop.
        """
        loop = asyncio.get_running_loop()
        if self.closed:
            raise NotifyError("this NotifyClient is closed; create a new one")
        if self.loop is None:
            self.loop = loop
            # HTTPS_PROXY / NO_PROXY are honoured, as users of other HTTP clients expect,
            # but read once here: aiohttp's trust_env looks them up in a worker thread on
            # every request, which costs more CPU than the rest of our client together.
            self.proxy = env_proxy(self.base_url)
        elif self.loop is not loop:
            raise NotifyError(
                "this NotifyClient was opened on another event loop; create one client per "
                "event loop (for example inside the coroutine you pass to asyncio.run)"
            )
        if self.session is None:
            self.session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
            # aiohttp has no public switch for its resend (a given session gets a middleware
            # instead, which costs more per request); its own test client sets this private
            # flag too, and the guard keeps a future aiohttp without it working.
            if hasattr(self.session, "_retry_connection"):
                self.session._retry_connection = False  # noqa: SLF001
            else:
                self._middlewares = (_no_resend,)
            self._gate = _gate_for(self.session.connector, loop)
        self._options = self._request_options()
        return self.session

    def _request_options(self) -> dict[str, Any]:
        # Only what differs from aiohttp's defaults (and, for our own session, from the
        # session's): each keyword passes through two aiohttp calls on every request.
        options: dict[str, Any] = {}
        if not self.owns_session:
            # A given session's own raise_for_status would turn a status into a ClientError.
            options["raise_for_status"] = False
        if self._middlewares:
            options["middlewares"] = self._middlewares
        if self.proxy is not None:
            options["proxy"] = self.proxy
        if self.ssl is not True:
            options["ssl"] = self.ssl
        return options

    # One function on purpose, however many branches: every frame between the caller and
    # aiohttp costs on each resume of the request.
    async def send(  # noqa: PLR0912
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        json: Mapping[str, object] | None,
        timeout: aiohttp.ClientTimeout,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Response:
        """Send one request and read its answer (at most ``max_bytes`` of it); map failures."""
        # The common case costs one identity check; bind() handles first use and misuse.
        session = self.session
        if session is None or self.loop is not asyncio.get_running_loop() or self.closed:
            session = self.bind()
        url = self._urls.get(path)
        if url is None:  # not `or`: a URL's truth is a Python-level __bool__
            url = self._url(path)
        if self._user_agent:
            headers = {**headers, **self._user_agent}
        # Written before the queue, so that a body JSON cannot hold fails at once.
        body = None if json is None else _json_body(json)
        gate = self._gate
        if gate is not None and not gate.try_enter():
            timeout = await self._wait_for_connection(gate, timeout, method, path)
        # The content type travels with the payload: a header of ours would go through two
        # of aiohttp's header merges on every request. Made after the queue, so that calls
        # waiting there hold only their bytes.
        payload = None if body is None else aiohttp.BytesPayload(body, content_type=_JSON)
        try:
            # Redirects are not followed: they would carry x-api-key to wherever they point.
            # A call with **options costs about 4,000 instructions more than one without
            # (callgrind), so the common case, no options, has a call of its own.
            options = self._options
            if options:
                request = session.request(
                    method,
                    url,
                    data=payload,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    **options,
                )
            else:
                request = session.request(
                    method,
                    url,
                    data=payload,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                )
            async with request as response:
                status = response.status
                length = response.content_length
                if length is not None and length <= max_bytes:
                    return status, await response.read(), response.headers
                ok = 200 <= status < 300
                body, whole = await _read_at_most(response, max_bytes, stop_early=ok)
                if ok and not whole:
                    raise too_large(method, path, max_bytes, length)
                # An error status keeps its class, with the start of its body.
                return status, body, response.headers
        except _NotResent as exc:
            failure: NotifyError = connection_error(exc.cause, method, path)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            failure = connection_error(exc, method, path)
        except RuntimeError:
            if not session.closed:
                raise
            failure = NotifyError(
                f"{method} {path}: this NotifyClient was closed while the call was in flight; "
                "close the client only after its calls end"
                if self.owns_session
                else "the aiohttp session passed as session= was closed; keep it open while "
                "the NotifyClient uses it (close it after the client), or let the client "
                "create its own by passing no session"
            )
        finally:
            # Before a failure is raised too: the next request in the queue goes on.
            if gate is not None:
                gate.leave()
        # Raised outside the except block, so that only the safe cause is chained.
        raise failure

    async def _wait_for_connection(
        self, gate: Gate, timeout: aiohttp.ClientTimeout, method: str, path: str
    ) -> aiohttp.ClientTimeout:
        """Wait in the gate's queue; return the attempt's timeouts, less the time waited.

        The wait is bounded by the connect timeout, as aiohttp's own queue is, and a
        request that never left the queue was not sent.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        connect = timeout.connect if timeout.connect is not None else timeout.total
        try:
            await gate.wait(math.inf if connect is None else started + connect)
        except TimeoutError:
            raise _queue_timeout(method, path, gate.limit) from None
        waited = loop.time() - started
        if connect is not None and connect - waited <= 0:
            # The slot came, but the task resumed past its deadline (a busy loop): aiohttp
            # would read a timeout of 0 as none at all.
            gate.leave()
            raise _queue_timeout(method, path, gate.limit)
        if self.closed:
            gate.leave()
            raise NotifyError(
                f"{method} {path}: this NotifyClient was closed while the call waited for a "
                "connection, so it was not sent; close the client only after its calls end"
            )
        return aiohttp.ClientTimeout(
            total=None if timeout.total is None else timeout.total - waited,
            connect=None if connect is None else connect - waited,
            sock_read=timeout.sock_read,
            sock_connect=timeout.sock_connect,
            ceil_threshold=timeout.ceil_threshold,
        )

    async def close(self) -> None:
        """Close the session if it was made here. Safe to call twice."""
        self.closed = True
        if self.owns_session and self.session is not None:
            await self.session.close()

    def _url(self, path: str) -> URL:
        url = URL(self.base_url + path)
        self._urls[path] = url
        return url


def _queue_timeout(method: str, path: str, limit: int) -> APITimeoutError:
    return APITimeoutError(
        f"{method} {path}: timed out before the request was sent (waiting for a free "
        f"connection: more calls were in flight than the client's {limit} connections); "
        "make fewer calls at once, or raise timeout/connect_timeout",
        request_sent=False,
    )


def _gate_for(
    connector: aiohttp.BaseConnector | None, loop: asyncio.AbstractEventLoop
) -> Gate | None:
    # Every request of our own session goes to one host, so the smaller limit applies.
    if connector is None:
        return None
    limits = [limit for limit in (connector.limit, connector.limit_per_host) if limit > 0]
    return Gate(min(limits), loop) if limits else None


def attempt_timeout(timeout: float, connect_timeout: float) -> aiohttp.ClientTimeout:
    """The timeouts of one attempt: ``timeout`` in total, and the connect timer first.

    The connect timer (a free slot in the pool, DNS, TCP, TLS, a proxy tunnel) ends at
    ``connect_timeout``, and always a little before the total timer, so that a timeout
    before the request was written is aiohttp's ``ConnectionTimeoutError``, never the total
    timer's plain ``TimeoutError``. The margin is a tenth of ``timeout``, at most 50 ms:
    enough for the event loop to run the two timers in separate turns.
    """
    margin = min(0.05, timeout / 10)
    return aiohttp.ClientTimeout(
        total=timeout,
        connect=min(connect_timeout, timeout - margin),
        # aiohttp rounds timeouts of 5 s and more up to a whole second, which could end both
        # timers in the same second; exact deadlines keep their order.
        ceil_threshold=math.inf,
    )


def _json_body(value: Mapping[str, object]) -> bytes:
    # Request bodies as orjson writes them, passed to aiohttp as bytes: about a tenth of
    # json.dumps' cost, and 6,000 instructions per send fewer than aiohttp's json= with
    # orjson behind it (callgrind). Keys that are not strings are written as json.dumps
    # writes them, for request()'s callers.
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        problem = str(exc)
    raise ValueError(f"json must be a JSON object of JSON values: {problem}")


class _NotResent(Exception):
    """Carries a dropped connection past aiohttp, which would resend a GET on its own."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


_Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
_Middleware = Callable[[aiohttp.ClientRequest, _Handler], Awaitable[aiohttp.ClientResponse]]


async def _no_resend(request: aiohttp.ClientRequest, handler: _Handler) -> aiohttp.ClientResponse:
    # aiohttp resends a GET once after these; our retry policy alone decides (max_retries=0
    # must mean one request), and a middleware is the public way to stop it for a session
    # we may not change.
    try:
        return await handler(request)
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise _NotResent(exc) from None


async def _read_at_most(
    response: aiohttp.ClientResponse, limit: int, *, stop_early: bool
) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of the body; also say whether that was all of it.

    Checked while reading, so that memory stays about ``limit`` however much comes. With
    ``stop_early`` (a 2xx, which then fails), a body announced as longer is not read at
    all, and one that turns out longer is dropped.
    """
    announced = response.content_length
    if stop_early and announced is not None and announced > limit:
        response.close()
        return b"", False
    body = bytearray()
    async for chunk in response.content.iter_any():
        if len(body) + len(chunk) > limit:
            response.close()
            if stop_early:
                return b"", False  # not even a copy: the caller raises
            body += chunk[: limit - len(body)]
            return bytes(body), False
        body += chunk
    return bytes(body), True


def connection_error(exc: BaseException, method: str, path: str) -> APIConnectionError:
    """Map an aiohttp failure to ``APIConnectionError``, deciding ``request_sent``."""
    # Could the server have seen the request? Only a failure to connect proves it did not.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp's connect timer (see attempt_timeout): waiting for a free connection in
        # the pool, or for a connect that hangs.
        error: APIConnectionError = APITimeoutError(
            f"{method} {path}: timed out before the request was sent (waiting for a "
            "connection to the Notify API); check base_url and your network, or raise "
            "timeout/connect_timeout",
            request_sent=False,
        )
    elif isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        error = APITimeoutError(
            f"{method} {path}: timed out waiting for the response", request_sent=True
        )
    elif isinstance(exc, aiohttp.ClientProxyConnectionError):
        error = APIConnectionError(
            f"{method} {path}: could not connect to the proxy ({_describe(exc)}); check "
            "HTTPS_PROXY/HTTP_PROXY, or add the API host to NO_PROXY",
            request_sent=False,
        )
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = APIConnectionError(
            f"{method} {path}: could not connect to the Notify API ({_describe(exc)}); "
            "check base_url and your network",
            request_sent=False,
        )
    else:
        error = APIConnectionError(
            f"{method} {path}: the connection failed after the request was sent ({_describe(exc)})",
            request_sent=True,
        )
    # A certificate that failed verification fails the same way next time.
    error.transient = not isinstance(exc, aiohttp.ClientSSLError)
    # aiohttp's response errors carry request_info, headers and so the key included.
    if not isinstance(exc, aiohttp.ClientResponseError):
        error.__cause__ = exc
    return error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (
            f"the server's TLS certificate could not be verified: {exc.certificate_error}; "
            "if it is signed by a private CA, pass ssl=ssl.create_default_context(cafile=...)"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.strerror or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def env_proxy(base_url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``base_url``, unless ``NO_PROXY``."""
    url = URL(base_url)
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.host or ""):
        return None
    return proxy


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (where plain ``http://`` is acceptable)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
