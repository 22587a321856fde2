"""The client, and the one request pipeline every endpoint goes through.

Read ``NotifyClient.request`` top to bottom to follow a call:

1. **key**: the key held in memory (``KeyHolder``; loaded from the provider the first time);
2. **send**: one request through the ``Transport``; a transport failure becomes
   ``APIConnectionError`` with ``request_sent`` saying whether the server can have seen it;
3. **recover and replay**: a 401 marks the key rejected; the call replays with a newer
   key as soon as the ``KeyHolder`` has one (see ``KeyHolder.recover``);
4. **classify**: 2xx, or an error built by ``_errors``; whether the failure may be retried
   under the call's policy is decided here, once, and carried on the error;
5. **read**: a resource's ``Reader`` reads its model straight from the 2xx bytes (or the
   long way, which explains a refusal); without one, the checked JSON envelope is returned;
6. **retry or raise**: a retryable failure enters tenacity (built only then, so a call that
   succeeds pays nothing for it); an ambiguous failure of a non-idempotent call becomes
   ``OutcomeUnknownError``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_BASE_URL", "NotifyClient"]

import asyncio
import logging
import os
import time
import warnings
from collections.abc import Awaitable, Mapping
from ssl import SSLContext
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._api_keys import ApiKeys
from ._credentials import (
    CredentialProvider,
    EnvKeyProvider,
    KeyChangeHook,
    StaticKeyProvider,
    check_key,
    redact,
)
from ._emails import Emails
from ._errors import (
    REQUEST_ID_HEADERS,
    invalid_response,
    outcome_open,
    outcome_unknown,
    reason,
    request_id,
    status_error,
)
from ._exceptions import APIStatusError, CredentialError, NotifyError
from ._keys import MAX_KEY_REPLAYS, KeyHolder, StaleKeyError
from ._models import Reader
from ._retry import Backoff, RetryPolicy, retry_sleep, should_retry
from ._transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Response,
    Transport,
    attempt_timeout,
    is_loopback,
    tls_setting,
)

if TYPE_CHECKING:
    from tenacity import RetryCallState

logger = logging.getLogger("notify_async")

DEFAULT_BASE_URL = "https://notify.cx/api/public/v1"

T = TypeVar("T")


class _Call:
    """One API call as the pipeline carries it: what to send, and what it has spent."""

    __slots__ = (
        "headers",
        "json",
        "method",
        "outcome_advice",
        "path",
        "policy",
        "reader",
        "replay_on_401",
        "sent",
        "timeout",
        "timeouts",
    )

    def __init__(
        self,
        method: str,
        path: str,
        policy: RetryPolicy,
        json: Mapping[str, object] | None,
        outcome_advice: str | None,
        headers: Mapping[str, str],
        timeout: float,
        timeouts: aiohttp.ClientTimeout,
        replay_on_401: bool,
        reader: Reader[Any] | None,
    ) -> None:
        self.method = method
        self.path = path
        self.policy = policy
        self.json = json
        self.outcome_advice = outcome_advice
        self.headers = headers
        self.timeout = timeout
        self.timeouts = timeouts
        self.replay_on_401 = replay_on_401
        self.reader = reader
        self.sent = 0


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
            A call that times out before its request was written (no free slot, a
            connect that hangs) was not sent, so it is retried, even a send.
        session: an ``aiohttp.ClientSession`` to use. The client never closes a session
            it was given; it creates and closes its own otherwise. See the docs
            (Retries and errors, "A session you pass") for what a given session keeps.
        rotation_grace: after a 401, how long to keep polling a provider that offers only
            rejected keys, while another worker publishes a rotation (0: look once).
        on_key_change: an async hook told the redacted prefix of each new key. It runs in
            the background after the key is in use and stored, limited to 10 s; requests
            never wait for it, and its failures are logged.
        load_timeout: seconds one ``load()`` of the provider may take; a load that overruns
            it fails with ``CredentialError``, for every request waiting on it.
        ssl: an ``ssl.SSLContext`` to verify the server with, e.g. one that trusts a
            private CA (``ssl.create_default_context(cafile=...)``). Certificates are
            always verified; by default against the system's trust store.
        insecure_skip_tls_verify: turn certificate verification off. Only for a local
            test server with a self-signed certificate; it logs a warning, because anyone
            between you and the server could then read your API key.
        backoff: the retry waits; see ``Backoff``.
        default_headers: headers sent with every call (tracing ids, say); every endpoint
            method also takes ``extra_headers=`` and ``timeout=`` for one call.
            ``x-api-key`` and ``User-Agent`` are refused: the client sets them.
        max_response_bytes: the most of a response body the client reads (4 MiB by
            default). A 2xx body larger than this raises ``InvalidResponseError`` naming
            the limit, checked while reading, so memory stays about this size; an error
            status's body is cut to it.
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
        load_timeout: float = 5.0,
        backoff: Backoff | None = None,
        ssl: SSLContext | None = None,
        insecure_skip_tls_verify: bool = False,
        default_headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        provider, first_key = _choose_provider(api_key, credentials)
        if not rotation_grace >= 0:
            raise ValueError("rotation_grace must be >= 0 seconds (0 disables the grace window)")
        if not load_timeout > 0:
            raise ValueError("load_timeout must be > 0 seconds")
        base_url = _check_base_url(
            base_url or os.environ.get("NOTIFY_BASE_URL") or DEFAULT_BASE_URL
        )
        self._keys = KeyHolder(
            provider,
            rotation_grace=rotation_grace,
            on_key_change=on_key_change,
            load_timeout=load_timeout,
        )
        if first_key is not None:
            self._keys.adopt(first_key)
        self._transport = Transport(
            base_url, session=session, ssl=tls_setting(ssl, insecure_skip_tls_verify)
        )
        self._is_view = False
        self._default_headers = check_headers(default_headers or {}, "default_headers")
        self._configure(
            max_retries, timeout, connect_timeout, backoff or Backoff(), max_response_bytes
        )

    def _configure(
        self,
        max_retries: int,
        timeout: float,
        connect_timeout: float,
        backoff: Backoff,
        max_response_bytes: int,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be an int >= 0 (0 disables retries)")
        if not timeout > 0 or not connect_timeout > 0:
            raise ValueError("timeout and connect_timeout must be > 0 seconds")
        if not isinstance(backoff, Backoff):
            raise ValueError("backoff must be a notify_async.Backoff, e.g. Backoff(initial=1.0)")
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ValueError("max_response_bytes must be an int >= 1 (bytes)")
        self._max_response_bytes = max_response_bytes
        self._max_retries = max_retries
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._client_timeout = attempt_timeout(timeout, connect_timeout)
        self.api_keys = ApiKeys(self, self._keys)
        self.emails = Emails(self)

    def with_options(
        self,
        *,
        max_retries: int | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        backoff: Backoff | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_response_bytes: int | None = None,
    ) -> NotifyClient:
        """Return a view of this client with other retry, timeout or header settings.

        The view shares the session, the key and its reloads with this client; closing the
        view closes nothing. ``client.with_options(max_retries=0).emails.send(...)``.
        """
        view = object.__new__(NotifyClient)
        view._keys = self._keys
        view._transport = self._transport
        view._is_view = True
        view._default_headers = (
            self._default_headers
            if default_headers is None
            else check_headers(default_headers, "default_headers")
        )
        view._configure(
            self._max_retries if max_retries is None else max_retries,
            self._timeout if timeout is None else timeout,
            self._connect_timeout if connect_timeout is None else connect_timeout,
            self._backoff if backoff is None else backoff,
            self._max_response_bytes if max_response_bytes is None else max_response_bytes,
        )
        return view

    # -- options (read-only: with_options makes a view with others) -----------------------

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt, under each call's safe policy."""
        return self._max_retries

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take in total."""
        return self._timeout

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for a connection."""
        return self._connect_timeout

    @property
    def backoff(self) -> Backoff:
        """The retry waits."""
        return self._backoff

    @property
    def max_response_bytes(self) -> int:
        """The most of a response body the client reads."""
        return self._max_response_bytes

    @property
    def base_url(self) -> str:
        """The API root every path is appended to."""
        return self._transport.base_url

    @property
    def credentials(self) -> CredentialProvider:
        """The provider the key is loaded from."""
        return self._keys.provider

    @property
    def key_prefix(self) -> str | None:
        """The redacted prefix of the key in use (``None`` before it is first loaded)."""
        key = self._keys.current
        return None if key is None else redact(key)

    @property
    def key_loads(self) -> int:
        """How many times the provider's ``load()`` has been called by this client."""
        return self._keys.loads

    def __repr__(self) -> str:
        key = self.key_prefix or f"<from {self._keys.provider!r}>"
        return f"NotifyClient(base_url={self.base_url!r}, key={key!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> NotifyClient:
        # Load first: __aexit__ does not run when __aenter__ raises, so a session opened
        # before a failing load would leak.
        await self._keys.get()  # fail fast on a missing key, before any traffic
        self._bind()
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
        transport = self._transport
        if self._is_view or transport.closed:
            return
        if transport.loop is not None and transport.loop is not asyncio.get_running_loop():
            # aiohttp would fail half-way with "attached to a different loop" and leave a task.
            raise NotifyError(
                "this NotifyClient was opened on another event loop and can only be closed "
                "there; create one client per event loop (for example inside the coroutine "
                "you pass to asyncio.run)"
            )
        await self._keys.close()
        await transport.close()

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if (
            transport is not None
            and not self._is_view
            and transport.owns_session
            and transport.session is not None
            and not transport.closed
        ):
            warnings.warn(
                "NotifyClient was not closed; use `async with NotifyClient()` "
                "or `await client.close()`",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    def _bind(self) -> None:
        first_use = self._transport.loop is None
        self._transport.bind()
        if first_use:
            self._keys.start_watching()

    # -- the request pipeline -------------------------------------------------------------

    @overload
    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
        outcome_advice: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        replay_on_401: bool = True,
        reader: None = None,
    ) -> dict[str, Any]: ...

    @overload
    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
        outcome_advice: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        replay_on_401: bool = True,
        reader: Reader[T],
    ) -> T: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
        outcome_advice: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        replay_on_401: bool = True,
        reader: Reader[T] | None = None,
    ) -> Any:  # the overloads above say which, for callers
        """Send one API call through the pipeline; return its checked JSON envelope.

        Resources call this with a ``reader``, and get their model instead. It is public
        so that an endpoint this library does not wrap yet can still be reached with the
        same auth, reload and retry behaviour.

        Args:
            method: the HTTP method.
            path: the path under ``base_url``, e.g. ``"/api_keys"``.
            policy: how safe the call is to send twice (see ``RetryPolicy``).
            json: the JSON body, if any.
            outcome_advice: what to tell the caller when a non-idempotent call may or may
                not have taken effect (``OutcomeUnknownError``).
            timeout: seconds each attempt of this call may take, instead of the client's.
            extra_headers: headers for this call, on top of the client's
                ``default_headers``; ``x-api-key`` and ``User-Agent`` are refused. A
                ``Content-Type`` given here is sent instead of the JSON body's own.
            replay_on_401: replay a rejected call with a newer key (the default). A
                regenerate of the client's own key turns it off: there a 401 means another
                holder rotated first, and replaying would rotate that holder's new key.
            reader: how the library's own endpoints read their model from the answer
                (``_models.Reader``); the call then returns the model instead of the
                envelope, and an answer that does not hold one fails the call with
                ``InvalidResponseError``.
        """
        headers = self._default_headers
        if extra_headers:
            headers = {**headers, **check_headers(extra_headers, "extra_headers")}
        if timeout is None:
            timeout, timeouts = self._timeout, self._client_timeout
        else:
            timeouts = attempt_timeout(check_timeout(timeout), self._connect_timeout)
        call = _Call(
            method,
            path,
            policy,
            json,
            outcome_advice,
            headers,
            timeout,
            timeouts,
            replay_on_401,
            reader,
        )
        if reader is not None and not reader.prepared:
            reader.prepare()  # before anything is sent: a broken install fails the call here
        keys = self._keys
        try:
            # The first attempt, outside tenacity: a call that succeeds pays nothing for
            # retries. Its common end, a 2xx that the call's reader reads, is met in this
            # frame, which awaits the transport's own coroutine: every frame between here
            # and aiohttp would cost on each resume of the call.
            key = keys.current or await keys.get()
            status, raw, answer = await self._send(call, key)
            if reader is not None and 200 <= status < 300:
                model = reader.fast(raw)
                if model is not None:
                    return model
            return await self._answered(call, key, status, raw, answer, read=reader is not None)
        except NotifyError as error:
            failure = self._classified(call, error)
        if failure.retryable and self._max_retries:
            try:
                return await self._retry(call, failure)
            except NotifyError as error:
                failure = error
        raise self._final_error(call, failure)

    async def _attempt(self, call: _Call) -> Any:
        """An attempt after the first one (under tenacity), its failure classified."""
        try:
            return await self._authenticated_attempt(call)
        except NotifyError as error:
            self._classified(call, error)
            raise

    def _classified(self, call: _Call, error: NotifyError) -> NotifyError:
        # Classified once, here; tenacity and request() only read the verdict.
        error.retryable = should_retry(call.policy, self._backoff, error)
        return error

    async def _authenticated_attempt(self, call: _Call) -> Any:
        keys = self._keys
        key = keys.current or await keys.get()
        status, raw, headers = await self._send(call, key)
        return await self._answered(call, key, status, raw, headers)

    async def _answered(
        self,
        call: _Call,
        key: str,
        status: int,
        raw: bytes,
        headers: CIMultiDictProxy[str],
        *,
        read: bool = False,
    ) -> Any:
        """An attempt from its first answer on: 401 replays, the status, then the read.

        ``read``: the reader's fast way has already declined this answer (``request``
        tries it first), so that it is not decoded twice.
        """
        keys = self._keys
        if status == 401 and call.replay_on_401:
            # A 401 is a rejection, so replaying is safe even for a POST. Each replay uses
            # a newer key than the last; rotations may overlap while the call is in flight.
            deadline = time.monotonic() + keys.rotation_grace + call.timeout
            for _ in range(MAX_KEY_REPLAYS):
                try:
                    key = await keys.recover(key, deadline=deadline)
                except StaleKeyError:
                    raise self._auth_error(call, raw, headers, stale=True) from None
                status, raw, headers = await self._send(call, key)
                read = False  # a new answer
                if status != 401:
                    break
            else:
                raise self._auth_error(call, raw, headers, stale=False)
        if not 200 <= status < 300:
            raise status_error(call.method, call.path, status, raw, headers, redactor=keys)
        reader = call.reader
        if reader is not None and not read:
            # The library's own endpoints: the model read straight from the bytes. Anything
            # it refuses takes the long way below, which says what is wrong.
            model = reader.fast(raw)
            if model is not None:
                return model
        try:
            body = orjson.loads(raw)  # not decode_json: its message is not needed here
        except orjson.JSONDecodeError:
            body = None  # described by invalid_response, from the body with the key masked
        if type(body) is not dict or body.get("success", True) is not True:
            raise invalid_response(call.method, call.path, raw, redactor=keys, headers=headers)
        return body if reader is None else reader.parse(body)

    def _send(self, call: _Call, key: str) -> Awaitable[Response]:
        """Send one request with ``key``: the transport's own coroutine, not a wrapper's.

        Not a coroutine itself, so that the common case adds no frame to the call; with
        DEBUG logging on, the request is timed and logged by ``_logged_send``.
        """
        transport = self._transport
        if transport.loop is None:
            self._bind()
        call.sent += 1
        headers = {**call.headers, "x-api-key": key} if call.headers else {"x-api-key": key}
        sending = transport.send(
            call.method,
            call.path,
            headers=headers,
            json=call.json,
            timeout=call.timeouts,
            max_bytes=self._max_response_bytes,
        )
        if not logger.isEnabledFor(logging.DEBUG):  # the common case: one cached check
            return sending
        return self._logged_send(call, key, sending)

    async def _logged_send(self, call: _Call, key: str, sending: Awaitable[Response]) -> Response:
        started = time.perf_counter()
        try:
            response = await sending
        except NotifyError as error:
            self._log_attempt(call, key, started, None, None, reason(error))
            raise
        self._log_attempt(call, key, started, response[0], response[2], None)
        return response

    def _log_attempt(
        self,
        call: _Call,
        key: str,
        started: float,
        status: int | None,
        headers: Mapping[str, str] | None,
        failure: str | None,
    ) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        answer_id = None
        if headers is not None:
            # Masked before request_id() cuts it: a server may echo anything there.
            redact_value = self._keys.redact
            answer_id = request_id(
                CIMultiDict(
                    (name, redact_value(value))
                    for name, value in headers.items()
                    if name.lower() in REQUEST_ID_HEADERS
                )
            )
        logger.debug(
            "%s %s -> %s in %.1f ms (attempt %d, key %s generation %d%s)",
            call.method,
            call.path,
            status if failure is None else failure,
            elapsed_ms,
            call.sent,
            redact(key),
            self._keys.generation,
            f", request id {answer_id}" if answer_id else "",
            extra={
                "notify_event": "attempt",
                "method": call.method,
                "path": call.path,
                "status": status,
                "elapsed_ms": elapsed_ms,
                "attempt": call.sent,
                "key_prefix": redact(key),
                "generation": self._keys.generation,
                "request_id": answer_id,
            },
        )

    async def _retry(self, call: _Call, first_failure: NotifyError) -> Any:
        backoff = self._backoff
        max_attempts = self._max_retries + 1

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return backoff.wait(state.attempt_number, error)

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "Retrying %s %s in %.2fs after %s (attempt %d of %d)",
                call.method,
                call.path,
                delay,
                reason(error),
                state.attempt_number,
                max_attempts,
                extra={
                    "notify_event": "retry",
                    "attempt": state.attempt_number,
                    "max_attempts": max_attempts,
                    "delay": delay,
                },
            )

        # Imported here, on the first failure that is retried: tenacity is a tenth of what
        # `import notify_async` adds to `import aiohttp`, and a call that succeeds never
        # needs it.
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt  # noqa: PLC0415

        # Fresh per call: tenacity keeps per-call state in it.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max_attempts),
            wait=wait,
            retry=retry_if_exception(_is_retryable),
            sleep=retry_sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        # Attempt 1 already happened outside tenacity (so that success costs nothing);
        # handing its failure to tenacity as attempt 1 makes one loop wait and stop by the
        # same rules for every attempt.
        pending: NotifyError | None = first_failure
        async for attempt in retrying:
            with attempt:
                if pending is not None:
                    failure, pending = pending, None
                    raise failure
                return await self._attempt(call)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    # -- building errors ------------------------------------------------------------------

    def _auth_error(
        self, call: _Call, raw: bytes, headers: Mapping[str, str], *, stale: bool
    ) -> APIStatusError:
        provider = self._keys.provider
        if stale:
            grace = self._keys.rotation_grace
            advice = (
                f"the key was rejected and {provider!r} offered only rejected keys for "
                f"{grace:g}s (rotation_grace); publish the current key where it loads "
                "from, or check that the key was not revoked"
            )
        else:
            advice = (
                f"the key was rejected, and so were the {MAX_KEY_REPLAYS} newer keys "
                f"{provider!r} gave on reload; check that the provider has the current key"
            )
        return status_error(
            call.method, call.path, 401, raw, headers, redactor=self._keys, advice=advice
        )

    def _final_error(self, call: _Call, error: NotifyError) -> NotifyError:
        error.attempts = call.sent
        if call.policy is not RetryPolicy.UNSENT_ONLY or not outcome_open(error):
            return error
        return outcome_unknown(error, call.method, call.path, advice=call.outcome_advice)


_RESERVED_HEADERS = frozenset({"x-api-key", "user-agent"})


def check_headers(headers: Mapping[str, str], argument: str) -> dict[str, str]:
    """Return ``headers`` as a dict, refusing the ones the client owns and unsafe values."""
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(f"{argument} must map str to str, e.g. {{'X-Trace-Id': 'abc'}}")
        if name.strip().lower() in _RESERVED_HEADERS:
            raise ValueError(
                f"{argument} may not set {name!r}: the client sets it (the key comes from "
                "the credential provider, so that rotation keeps working)"
            )
        if any(c in name + value for c in "\r\n\x00") or not name.strip():
            raise ValueError(f"{argument}: the header {name!r} has an empty name or a line break")
        checked[name] = value
    return checked


def check_timeout(timeout: object) -> float:
    """Return ``timeout`` if it is a number of seconds > 0, else raise ``ValueError``."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _is_retryable(error: BaseException) -> bool:
    return getattr(error, "retryable", False)


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


def _check_base_url(base_url: str) -> str:
    url = URL(base_url.rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an absolute https:// URL such as {DEFAULT_BASE_URL!r}, "
            f"got {base_url!r}"
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise ValueError(
            f"base_url {base_url!r} is plain http:// to a remote host, which would send your "
            "API key in clear text; use https:// (http:// is allowed only for localhost)"
        )
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    return str(url)
