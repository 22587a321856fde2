"""The client, and the one request pipeline every endpoint goes through.

Read ``NotifyClient.request`` top to bottom to follow a call:

1. **build**: the resource names the method, path, retry policy and JSON body;
2. **authenticate**: the key held in memory (loaded from the provider the first time);
3. **send**: one aiohttp request; transport failures become ``APIConnectionError``
   with ``request_sent`` saying whether the server can have seen it;
4. **classify**: 2xx, 401, or another status error;
5. **reload**: a 401 reloads the key (once for all concurrent callers) and replays once;
6. **retry**: a failure the call's policy allows enters tenacity; an ambiguous failure of
   a non-idempotent call becomes ``OutcomeUnknownError``;
7. **parse**: the JSON envelope is checked here; the resource structures its model.
"""

from __future__ import annotations

__all__ = ["NotifyClient"]

import asyncio
import copy
import ipaddress
import logging
import os
import urllib.request
import warnings
from collections.abc import Mapping
from ssl import SSLContext
from types import TracebackType
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from yarl import URL

from ._api_keys import ApiKeys
from ._credentials import (
    CredentialProvider,
    EnvKeyProvider,
    KeyChangeHook,
    KeyHolder,
    StaleKeyError,
    StaticKeyProvider,
    check_key,
    redact,
)
from ._emails import Emails
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CredentialError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    NotifyError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
)
from ._models import decode_json, describe_body
from ._retry import Backoff, RetryPolicy, parse_retry_after, retry_sleep, should_retry
from ._version import __version__

logger = logging.getLogger("notify_async")

DEFAULT_BASE_URL = "https://notify.cx/api/public/v1"

_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

# What a caller should do when a non-idempotent call may or may not have taken effect.
_OUTCOME_ADVICE = {
    "/send-email": (
        "the email may or may not have been sent. It was not retried, so that it is not sent "
        "twice; check the Notify dashboard before sending it again"
    ),
    "/send-email-from-template": (
        "the email may or may not have been sent. It was not retried, so that it is not sent "
        "twice; check the Notify dashboard before sending it again"
    ),
    "/api_keys/regenerate": (
        "the key may or may not have been regenerated. It was not retried, because a second "
        "regenerate would invalidate the first new key. If it was regenerated, the old key "
        "is already invalid and the new one is in the Notify dashboard: publish it where "
        "your credential provider loads from, and the client picks it up on its next 401"
    ),
}


class _Tally:
    """What one call has spent: requests sent, and whether its auth replay is used up."""

    __slots__ = ("auth_replayed", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.auth_replayed = False


class _Shared:
    """What a client and its ``with_options`` views share: session, key, caches."""

    def __init__(
        self,
        *,
        base_url: str,
        keys: KeyHolder,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.base_url = base_url
        self.keys = keys
        self.session = session
        self.owns_session = session is None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.urls: dict[str, URL] = {}
        # (key, id) of the key this client uses, found by matching listed prefixes.
        self.own_key: tuple[str, str] | None = None
        self.ssl: SSLContext | bool = True


class NotifyClient:
    """An asyncio client for the Notify email API.

    ::

        async with NotifyClient() as client:            # key from NOTIFY_API_KEY
            keys = await client.api_keys.list()
            await client.emails.send(to="a@example.com", subject="Hi", message="Hello")

    Args:
        api_key: the key itself. Mutually exclusive with ``credentials``; with neither,
            the key comes from the ``NOTIFY_API_KEY`` environment variable.
        credentials: a ``CredentialProvider`` to load (and reload) the key from.
        base_url: the API root; ``NOTIFY_BASE_URL`` overrides the default
            ``https://notify.cx/api/public/v1``. Plain ``http://`` is accepted only for
            loopback hosts, because the key would travel in clear text.
        max_retries: retries after the first attempt, under each call's safe policy
            (0 disables them).
        timeout: seconds one attempt may take in total.
        connect_timeout: seconds to wait for a connection (a slot in the pool included).
        session: an ``aiohttp.ClientSession`` to use. The client never closes a session
            it was given; it creates and closes its own otherwise.
        rotation_grace: after a 401, how long to keep polling a provider that still
            returns the rejected key, while another worker publishes a rotation (0: none).
        on_key_change: an async hook told the redacted prefix of each new key.
        ssl: an ``ssl.SSLContext`` to verify the server with, e.g. one that trusts a
            private CA (``ssl.create_default_context(cafile=...)``). Certificates are
            always verified; by default against the system's trust store.
        insecure_skip_tls_verify: turn certificate verification off. Only for a local
            test server with a self-signed certificate; it logs a warning, because anyone
            between you and the server could then read your API key.
        backoff: the retry waits; see ``Backoff``.
    """

    api_keys: ApiKeys
    """List and regenerate API keys: ``GET /api_keys``, ``POST /api_keys/regenerate``."""
    emails: Emails
    """Send email: ``POST /send-email`` and ``POST /send-email-from-template``."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        credentials: CredentialProvider | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        rotation_grace: float = 3.0,
        on_key_change: KeyChangeHook | None = None,
        backoff: Backoff | None = None,
        ssl: SSLContext | None = None,
        insecure_skip_tls_verify: bool = False,
    ) -> None:
        provider, first_key = _choose_provider(api_key, credentials)
        if rotation_grace < 0:
            raise ValueError("rotation_grace must be >= 0 seconds (0 disables the grace window)")
        keys = KeyHolder(provider, rotation_grace=rotation_grace, on_key_change=on_key_change)
        keys.current = first_key
        self._shared = _Shared(
            base_url=_check_base_url(
                base_url or os.environ.get("NOTIFY_BASE_URL") or DEFAULT_BASE_URL
            ),
            keys=keys,
            session=session,
        )
        self._is_view = False
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
        # aiohttp's True means "verify with the default context".
        self._shared.ssl = False if insecure_skip_tls_verify else (ssl or True)
        self._configure(max_retries, timeout, connect_timeout, backoff or Backoff())

    def _configure(
        self, max_retries: int, timeout: float, connect_timeout: float, backoff: Backoff
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be an int >= 0 (0 disables retries)")
        if not timeout > 0 or not connect_timeout > 0:
            raise ValueError("timeout and connect_timeout must be > 0 seconds")
        self.max_retries = max_retries
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(connect_timeout, timeout))
        self.api_keys = ApiKeys(self)
        self.emails = Emails(self)

    def with_options(
        self,
        *,
        max_retries: int | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        backoff: Backoff | None = None,
    ) -> NotifyClient:
        """Return a view of this client with other retry or timeout settings.

        The view shares the session, the key and its reloads with this client; closing the
        view closes nothing. ``client.with_options(max_retries=0).emails.send(...)``.
        """
        view = copy.copy(self)
        view._is_view = True
        view._configure(
            self.max_retries if max_retries is None else max_retries,
            self.timeout if timeout is None else timeout,
            self.connect_timeout if connect_timeout is None else connect_timeout,
            self.backoff if backoff is None else backoff,
        )
        return view

    @property
    def base_url(self) -> str:
        """The API root every path is appended to."""
        return self._shared.base_url

    @property
    def credentials(self) -> CredentialProvider:
        """The provider the key is loaded from."""
        return self._shared.keys.provider

    @property
    def key_prefix(self) -> str | None:
        """The redacted prefix of the key in use (``None`` before it is first loaded)."""
        key = self._shared.keys.current
        return None if key is None else redact(key)

    @property
    def key_loads(self) -> int:
        """How many times the provider's ``load()`` has been called by this client."""
        return self._shared.keys.loads

    def __repr__(self) -> str:
        key = self.key_prefix or f"<from {self._shared.keys.provider!r}>"
        return f"NotifyClient(base_url={self.base_url!r}, key={key!r})"

    async def __aenter__(self) -> NotifyClient:
        # Load first: __aexit__ does not run when __aenter__ raises, so a session opened
        # before a failing load would leak.
        await self._shared.keys.get()  # fail fast on a missing key, before any traffic
        self._session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it. Safe to call twice; views close nothing."""
        shared = self._shared
        if self._is_view or shared.closed:
            return
        if shared.loop is not None and shared.loop is not asyncio.get_running_loop():
            # aiohttp would fail half-way with "attached to a different loop" and leave a task.
            raise NotifyError(
                "this NotifyClient was opened on another event loop and can only be closed "
                "there; create one client per event loop (for example inside the coroutine "
                "you pass to asyncio.run)"
            )
        shared.closed = True
        await shared.keys.stop_watching()
        if shared.owns_session and shared.session is not None:
            await shared.session.close()

    def __del__(self) -> None:
        shared = getattr(self, "_shared", None)
        if (
            shared is not None
            and not self._is_view
            and shared.owns_session
            and shared.session is not None
            and not shared.closed
        ):
            warnings.warn(
                "NotifyClient was not closed; use `async with NotifyClient()` "
                "or `await client.close()`",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    # -- the request pipeline -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """Send one API call through the pipeline and return its checked JSON envelope.

        Resources call this; it is public so that an endpoint this library does not wrap
        yet can still be reached with the same auth, reload and retry behaviour.
        """
        tally = _Tally()
        try:
            return await self._attempt(method, path, json, tally)
        except NotifyError as error:
            failure = error
        if self.max_retries and should_retry(policy, self.backoff, failure):
            try:
                return await self._retry(method, path, policy, json, tally, failure)
            except NotifyError as error:
                failure = error
        raise self._final_error(failure, method, path, policy, tally)

    async def _attempt(
        self, method: str, path: str, json: Mapping[str, object] | None, tally: _Tally
    ) -> dict[str, Any]:
        keys = self._shared.keys
        key = keys.current or await keys.get()
        status, raw, headers = await self._send(method, path, json, key, tally)
        if status == 401 and not tally.auth_replayed:
            # A 401 is a rejection, so replaying is safe even for a POST.
            tally.auth_replayed = True
            try:
                key = await keys.recover(key)
            except StaleKeyError:
                raise self._status_error(method, path, status, raw, headers, stale=True) from None
            status, raw, headers = await self._send(method, path, json, key, tally)
        if not 200 <= status < 300:
            raise self._status_error(method, path, status, raw, headers, stale=False)
        try:
            body = decode_json(raw)
        except InvalidResponseError:
            body = None  # described by _invalid_response, from the body with the key masked
        if type(body) is not dict or body.get("success", True) is not True:
            raise self._invalid_response(method, path, raw)
        return body

    async def _send(
        self,
        method: str,
        path: str,
        json: Mapping[str, object] | None,
        key: str,
        tally: _Tally,
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        shared = self._shared
        # The common case costs one identity check; _session() handles first use and misuse.
        session = shared.session
        if session is None or shared.loop is not asyncio.get_running_loop() or shared.closed:
            session = self._session()
        url = shared.urls.get(path) or self._url(path)
        tally.sent += 1
        try:
            async with session.request(
                method,
                url,
                json=json,
                headers={"x-api-key": key},
                timeout=self._timeout,
                # A redirect would carry x-api-key to wherever it points.
                allow_redirects=False,
                ssl=shared.ssl,
            ) as response:
                return response.status, await response.read(), response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            failure = _connection_error(exc, method, path)
        # Raised outside the except block, so that only the safe cause is chained.
        raise failure

    async def _retry(
        self,
        method: str,
        path: str,
        policy: RetryPolicy,
        json: Mapping[str, object] | None,
        tally: _Tally,
        first_failure: NotifyError,
    ) -> dict[str, Any]:
        backoff = self.backoff

        def retry_on(error: BaseException) -> bool:
            return should_retry(policy, backoff, error)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return backoff.wait(state.attempt_number, error)

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "Retrying %s %s in %.2fs after %s (attempt %d of %d)",
                method,
                path,
                delay,
                _reason(error),
                state.attempt_number,
                self.max_retries + 1,
                extra={
                    "notify_event": "retry",
                    "attempt": state.attempt_number,
                    "max_attempts": self.max_retries + 1,
                    "delay": delay,
                },
            )

        # Fresh per call: tenacity keeps per-call state in it.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(retry_on),
            sleep=retry_sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        # Attempt 1 already happened outside tenacity; replaying its failure lets tenacity
        # apply the same wait and stop rules to it as to every later attempt.
        pending: NotifyError | None = first_failure
        async for attempt in retrying:
            with attempt:
                if pending is not None:
                    failure, pending = pending, None
                    raise failure
                return await self._attempt(method, path, json, tally)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    # -- building errors ------------------------------------------------------------------

    def _status_error(
        self,
        method: str,
        path: str,
        status: int,
        raw: bytes,
        headers: CIMultiDictProxy[str],
        *,
        stale: bool,
    ) -> APIStatusError:
        server_message = self._redact(_server_message(self._mask_key(raw)))
        error_class = _STATUS_ERRORS.get(status) or (
            InternalServerError if status >= 500 else APIStatusError
        )
        retry_after = parse_retry_after(headers.get("Retry-After"))
        advice = _status_advice(status, retry_after, headers)
        if status == 401:
            provider = self._shared.keys.provider
            if stale:
                grace = self._shared.keys.rotation_grace
                advice = (
                    f"the key was rejected and {provider!r} still returned the same key after "
                    f"{grace:g}s; publish the current key where it loads from, or check "
                    "that the key was not revoked"
                )
            else:
                advice = (
                    f"the key was rejected, and so was the key {provider!r} gave on reload; "
                    "check that the provider has the current key"
                )
        message = f"{method} {path} failed with HTTP {status}: {server_message}"
        if advice:
            # Advice may quote a header (a redirect's Location), which may quote the key.
            message += f" ({self._redact(advice)})"
        return error_class(
            message,
            status_code=status,
            server_message=server_message,
            method=method,
            path=path,
            retry_after=retry_after,
        )

    def _final_error(
        self, error: NotifyError, method: str, path: str, policy: RetryPolicy, tally: _Tally
    ) -> NotifyError:
        error.attempts = tally.sent
        if policy is not RetryPolicy.UNSENT_ONLY or not _outcome_open(error):
            return error
        status = error.status_code if isinstance(error, APIStatusError) else None
        # The underlying message starts with "METHOD /path: " too; say that only once.
        what = (
            f"HTTP {status}"
            if status is not None
            else error.message.removeprefix(f"{method} {path}: ")
        )
        advice = _OUTCOME_ADVICE.get(path, "the call may or may not have taken effect")
        unknown = OutcomeUnknownError(
            f"{method} {path}: outcome unknown after {what}: {advice}",
            method=method,
            path=path,
            status_code=status,
        )
        unknown.attempts = tally.sent
        unknown.__cause__ = error
        return unknown

    def _redact(self, text: str) -> str:
        # Old keys too: a request sent before a rotation may come back quoting its key.
        for key in self._shared.keys.known_keys():
            if key in text:
                text = text.replace(key, redact(key))
        return text

    def _mask_key(self, raw: bytes) -> bytes:
        # Mask before any snippet is cut: a snippet that ends mid-key escapes _redact.
        for key in self._shared.keys.known_keys():
            raw = raw.replace(key.encode(), redact(key).encode())
        return raw

    def _invalid_response(self, method: str, path: str, raw: bytes) -> InvalidResponseError:
        raw = self._mask_key(raw)
        try:
            body = decode_json(raw)
        except InvalidResponseError as exc:
            message = exc.message
        else:
            message = _describe_bad_envelope(method, path, body)
        if not message.startswith(f"{method} {path}: "):
            message = f"{method} {path}: {message}"
        return InvalidResponseError(self._redact(message))

    # -- session, loop and URLs -----------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        shared = self._shared
        loop = asyncio.get_running_loop()
        if shared.closed:
            raise NotifyError("this NotifyClient is closed; create a new one")
        if shared.loop is None:
            shared.loop = loop
            shared.keys.start_watching()
        elif shared.loop is not loop:
            raise NotifyError(
                "this NotifyClient was opened on another event loop; create one client per "
                "event loop (for example inside the coroutine you pass to asyncio.run)"
            )
        if shared.session is None:
            shared.session = aiohttp.ClientSession(
                headers={"User-Agent": f"notify-async/{__version__}"},
                # HTTPS_PROXY / NO_PROXY are honoured, as users of other HTTP clients expect,
                # but read once here: aiohttp's trust_env looks them up in a worker thread on
                # every request, which costs more CPU than the rest of our client together.
                proxy=_env_proxy(shared.base_url),
            )
            # aiohttp silently resends a GET once when the connection drops, which would
            # double max_retries for GETs (max_retries=0 included) and make `attempts`
            # undercount: our retry policy alone decides. aiohttp's own test client sets
            # this private flag too; the guard keeps a future aiohttp without it working.
            if hasattr(shared.session, "_retry_connection"):
                shared.session._retry_connection = False
        return shared.session

    def _url(self, path: str) -> URL:
        url = URL(self._shared.base_url + path)
        self._shared.urls[path] = url
        return url

    # -- own key (used by api_keys) -------------------------------------------------------

    async def _current_key(self) -> str:
        keys = self._shared.keys
        return keys.current or await keys.get()


def _choose_provider(
    api_key: str | None, credentials: CredentialProvider | None
) -> tuple[CredentialProvider, str | None]:
    if api_key is not None and credentials is not None:
        raise ValueError("pass either api_key or credentials to NotifyClient, not both")
    if credentials is not None:
        if not callable(getattr(credentials, "load", None)):
            raise ValueError(
                "credentials must be a CredentialProvider: an object with async def load()"
            )
        return credentials, None
    if api_key is not None:
        try:
            key = check_key(api_key, source="api_key")
        except CredentialError as exc:
            problem = exc.message
        else:
            return StaticKeyProvider(key), key
        raise ValueError(problem)
    env = EnvKeyProvider()
    return env, env.load_now()


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _check_base_url(base_url: str) -> str:
    url = URL(base_url.rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an absolute https:// URL such as {DEFAULT_BASE_URL!r}, "
            f"got {base_url!r}"
        )
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValueError(
            f"base_url {base_url!r} is plain http:// to a remote host, which would send your "
            "API key in clear text; use https:// (http:// is allowed only for localhost)"
        )
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    return str(url)


def _env_proxy(base_url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``base_url``, unless ``NO_PROXY``."""
    url = URL(base_url)
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.host or ""):
        return None
    return proxy


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _connection_error(exc: BaseException, method: str, path: str) -> APIConnectionError:
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


def _outcome_open(error: NotifyError) -> bool:
    if isinstance(error, APIConnectionError):
        return error.request_sent
    if isinstance(error, APIStatusError):
        # 503 and 429 are refusals; every other 5xx may have come after the work was done.
        return error.status_code >= 500 and error.status_code != 503
    return False


def _reason(error: BaseException | None) -> str:
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, APITimeoutError):
        return "a timeout"
    if isinstance(error, APIConnectionError):
        return "a connection error"
    return type(error).__name__


def _server_message(raw: bytes) -> str:
    """The server's explanation of an error: JSON ``message`` or ``error``, or a snippet."""
    try:
        body = decode_json(raw)
    except InvalidResponseError:
        return describe_body(raw)
    if isinstance(body, dict):
        for field in ("message", "error", "detail"):
            value = body.get(field)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
    return describe_body(raw)


def _status_advice(
    status: int, retry_after: float | None, headers: CIMultiDictProxy[str]
) -> str | None:
    if status == 429:
        if retry_after is None:
            return "rate limited; slow down and retry later"
        return f"rate limited; retry after {retry_after:g}s"
    if status == 403:
        return "the key may not do this; several keys per account need the Pro plan"
    if 300 <= status < 400:
        return (
            f"unexpected redirect to {headers.get('Location', '?')!r}; check base_url "
            "(redirects are not followed, so that the key does not travel elsewhere)"
        )
    if status >= 500:
        return "Notify or a proxy in front of it failed"
    return None


def _describe_bad_envelope(method: str, path: str, body: object) -> str:
    if isinstance(body, dict):
        detail = body.get("message") or body.get("error")
        suffix = f": {str(detail)[:200]}" if detail else ""
        return (
            f"{method} {path}: the server answered 2xx with success={body.get('success')!r}{suffix}"
        )
    return (
        f"{method} {path}: expected a JSON object, got "
        f"{'null' if body is None else type(body).__name__}"
    )
