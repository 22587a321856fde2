"""Everything aiohttp: the session, TLS and proxy settings, one send, and its failures.

``Transport.send`` is the seam between the pipeline and the network: it takes a method,
a path, headers and a JSON body, and returns ``(status, body, headers)``, or raises
``APIConnectionError`` (``APITimeoutError``) with ``request_sent`` decided here, once.
"""

from __future__ import annotations

__all__ = ["Transport", "env_proxy", "is_loopback", "tls_setting"]

import asyncio
import ipaddress
import logging
import urllib.request
from collections.abc import Mapping
from ssl import SSLContext

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ._exceptions import APIConnectionError, APITimeoutError, NotifyError
from ._version import __version__

logger = logging.getLogger("notify_async")

USER_AGENT = f"notify-async/{__version__}"

Response = tuple[int, bytes, CIMultiDictProxy[str]]
"""What one send returns: the status, the whole body, and the response headers."""


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
    closed by ``close()``.
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
        self._urls: dict[str, URL] = {}

    def bind(self) -> aiohttp.ClientSession:
        """Return the session for the running loop, creating it on first use.

        Raises ``NotifyError`` when the client was closed or is used from another loop.
        """
        loop = asyncio.get_running_loop()
        if self.closed:
            raise NotifyError("this NotifyClient is closed; create a new one")
        if self.loop is None:
            self.loop = loop
        elif self.loop is not loop:
            raise NotifyError(
                "this NotifyClient was opened on another event loop; create one client per "
                "event loop (for example inside the coroutine you pass to asyncio.run)"
            )
        if self.session is None:
            self.session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                # HTTPS_PROXY / NO_PROXY are honoured, as users of other HTTP clients expect,
                # but read once here: aiohttp's trust_env looks them up in a worker thread on
                # every request, which costs more CPU than the rest of our client together.
                proxy=env_proxy(self.base_url),
            )
            # aiohttp silently resends a GET once when the connection drops, which would
            # double max_retries for GETs (max_retries=0 included) and make `attempts`
            # undercount: our retry policy alone decides. aiohttp has no public switch for
            # it; its own test client sets this private flag too, and the guard keeps a
            # future aiohttp without it working.
            if hasattr(self.session, "_retry_connection"):
                self.session._retry_connection = False  # noqa: SLF001
        return self.session

    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        json: Mapping[str, object] | None,
        timeout: aiohttp.ClientTimeout,
    ) -> Response:
        """Send one request and read the whole answer; map every transport failure."""
        # The common case costs one identity check; bind() handles first use and misuse.
        session = self.session
        if session is None or self.loop is not asyncio.get_running_loop() or self.closed:
            session = self.bind()
        url = self._urls.get(path) or self._url(path)
        try:
            async with session.request(
                method,
                url,
                json=json,
                headers=headers,
                timeout=timeout,
                # A redirect would carry x-api-key to wherever it points.
                allow_redirects=False,
                ssl=self.ssl,
            ) as response:
                return response.status, await response.read(), response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            failure = connection_error(exc, method, path)
        # Raised outside the except block, so that only the safe cause is chained.
        raise failure

    async def close(self) -> None:
        """Close the session if it was made here. Safe to call twice."""
        self.closed = True
        if self.owns_session and self.session is not None:
            await self.session.close()

    def _url(self, path: str) -> URL:
        url = URL(self.base_url + path)
        self._urls[path] = url
        return url


def connection_error(exc: BaseException, method: str, path: str) -> APIConnectionError:
    """Map an aiohttp failure to ``APIConnectionError``, deciding ``request_sent``."""
    # Could the server have seen the request? Only a failure to connect proves it did not.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error: APIConnectionError = APITimeoutError(
            f"{method} {path}: timed out connecting to the Notify API", request_sent=False
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
