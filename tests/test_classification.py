"""Every failure is classified by what really happened (issue 12).

* A call that timed out before a byte of its request was written (waiting for a free
  connection in the pool, or for a TCP connect that hangs) has ``request_sent=False`` and
  is retried, even a send; one that timed out after is sent, and a send's outcome is unknown.
* An ``OutcomeUnknownError`` is also the class the failure would otherwise have had.
* A send whose 2xx body is unusable leaves the outcome unknown.
* Misuse and bad settings are ``NotifyError`` or ``ValueError``, never aiohttp's errors.
* A session given with ``session=`` sends exactly as many requests as the client's own.

Each case talks to a real server on 127.0.0.1: the local Notify server, a small aiohttp app
whose slow answers wait for an event the test sets, or a listening socket that never accepts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

import aiohttp
import pytest
from aiohttp import web
from test_proxy import LoopbackProxy

from notify_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    Backoff,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
    RateLimitError,
)
from notify_async._transport import attempt_timeout
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

LIST = "GET /api_keys"
SEND = "POST /send-email"
KEY = "nk_classification_test_key_0123456789"


class Email(TypedDict):
    to: str
    subject: str
    message: str


EMAIL: Email = {"to": "ada@example.com", "subject": "Hi", "message": "Hello"}


# -- a server whose slow answers wait for the test ---------------------------------------------


class HeldServer:
    """``GET /api_keys`` waits until ``release`` is set; ``POST /send-email`` answers at once.

    ``waiting`` counts the held requests that arrived; ``emails`` the sends received.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0
        self.arrived = asyncio.Event()
        self.emails = 0
        self.target = 0
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def _held(self, request: web.Request) -> web.Response:
        self.waiting += 1
        if self.waiting >= self.target:
            self.arrived.set()
        await self.release.wait()
        return web.json_response({"success": True, "data": []})

    async def _send(self, request: web.Request) -> web.Response:
        await request.read()
        self.emails += 1
        return web.json_response({"success": True, "message": "Email sent successfully"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/public/v1/api_keys", self._held)
        app.router.add_post("/api/public/v1/send-email", self._send)
        return app

    async def setup(self) -> web.AppRunner:
        """Prepare the app, so that serving later takes only a site's start."""
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        return self.runner

    async def start(self, sock: socket.socket | None = None) -> None:
        runner = self.runner or await self.setup()
        if sock is None:
            site: web.BaseSite = web.TCPSite(runner, "127.0.0.1", 0)
        else:
            site = web.SockSite(runner, sock)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/api/public/v1"

    async def close(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def held() -> AsyncIterator[HeldServer]:
    server = HeldServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class OnRetry(logging.Handler):
    """Sets ``event`` when the client logs its first retry, and keeps the messages."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = asyncio.Event()
        self.messages: list[str] = []
        self.hooks: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "notify_event", None) == "retry":
            self.messages.append(record.getMessage())
            for hook in self.hooks:
                hook()
            self.event.set()


@pytest.fixture
def on_retry() -> Iterator[OnRetry]:
    handler = OnRetry()
    logger = logging.getLogger("notify_async")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def _fill_pool(client: NotifyClient, held: HeldServer, slots: int) -> list[asyncio.Task[Any]]:
    held.target = slots
    blockers = [asyncio.create_task(client.api_keys.list()) for _ in range(slots)]
    await asyncio.wait_for(held.arrived.wait(), 10)
    return blockers


# -- waiting for a free connection in the pool --------------------------------------------------


async def test_a_send_that_times_out_waiting_for_a_pool_slot_was_not_sent(
    held: HeldServer,
) -> None:
    # timeout <= connect_timeout (10 s by default): aiohttp's total timer fires first.
    async with NotifyClient(KEY, base_url=held.base_url, max_retries=0) as client:
        blockers = await _fill_pool(client, held, 100)  # aiohttp's default pool: 100
        with pytest.raises(APITimeoutError) as caught:
            await client.with_options(timeout=0.3).emails.send(**EMAIL)
        held.release.set()
        await asyncio.gather(*blockers)

    error = caught.value
    assert not isinstance(error, OutcomeUnknownError)
    assert error.request_sent is False
    assert error.retryable is True
    assert error.attempts == 1
    assert "before the request was sent" in str(error)
    assert held.emails == 0


async def test_a_send_that_waited_for_a_pool_slot_is_retried_and_sent_once(
    held: HeldServer, on_retry: OnRetry
) -> None:
    async with NotifyClient(KEY, base_url=held.base_url, max_retries=2) as client:
        blockers = await _fill_pool(client, held, 100)
        # The held requests finish as soon as the first attempt has failed, so the retry
        # finds a free connection.
        on_retry.hooks.append(held.release.set)
        with instant_retries():
            result = await client.with_options(timeout=2).emails.send(**EMAIL)
        await asyncio.gather(*blockers)

    assert result.success is True
    assert held.emails == 1
    assert len(on_retry.messages) == 1
    assert "a timeout before the request was sent" in on_retry.messages[0]


async def test_a_given_session_with_a_full_pool_sends_once_after_the_retry(
    held: HeldServer, on_retry: OnRetry
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        client = NotifyClient(KEY, base_url=held.base_url, session=session, max_retries=0)
        async with client:
            blockers = await _fill_pool(client, held, 1)
            with pytest.raises(APITimeoutError) as caught:
                await client.with_options(timeout=0.3).emails.send(**EMAIL)
            on_retry.hooks.append(held.release.set)
            with instant_retries():
                result = await client.with_options(max_retries=2, timeout=2).emails.send(**EMAIL)
            await asyncio.gather(*blockers)

    assert caught.value.request_sent is False
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert result.success is True
    assert held.emails == 1
    assert "a timeout before the request was sent" in on_retry.messages[0]


# -- a TCP connect that hangs -------------------------------------------------------------------


class FullBacklog:
    """A listening socket that never accepts, its queue full: a new connect hangs."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/public/v1"
        self.fillers: list[socket.socket] = []
        # The kernel queues one connection for a backlog of 0; the next connect hangs.
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            self.fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", self.port))
            except TimeoutError:
                break
        else:
            raise AssertionError("the listener's queue never filled up")

    def open(self) -> None:
        """Stop the hanging connects and empty the queue, so that the next connect completes."""
        for filler in self.fillers:
            filler.close()
        self.listener.setblocking(False)
        while True:
            try:
                accepted, _ = self.listener.accept()
            except BlockingIOError:
                break
            accepted.close()

    def close(self) -> None:
        """Close every socket."""
        for filler in self.fillers:
            filler.close()
        self.listener.close()


@pytest.fixture
def full_backlog() -> Iterator[FullBacklog]:
    backlog = FullBacklog()
    try:
        yield backlog
    finally:
        backlog.close()


async def test_a_send_whose_connect_hangs_was_not_sent(full_backlog: FullBacklog) -> None:
    # timeout <= connect_timeout: aiohttp's total timer fires first, with a plain TimeoutError.
    async with NotifyClient(
        KEY, base_url=full_backlog.base_url, max_retries=0, timeout=0.3
    ) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.emails.send(**EMAIL)

    assert not isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.request_sent is False
    assert caught.value.attempts == 1


async def test_a_send_whose_connect_hung_is_retried_and_sent_once(
    full_backlog: FullBacklog, on_retry: OnRetry
) -> None:
    server = HeldServer()
    await server.setup()
    # When the first attempt has failed, the retry's connect completes; the server then
    # serves from the same socket, well within the retry's second.
    on_retry.hooks.append(full_backlog.open)
    try:
        async with NotifyClient(
            KEY, base_url=full_backlog.base_url, max_retries=1, timeout=1
        ) as client:
            with instant_retries():
                send = asyncio.create_task(client.emails.send(**EMAIL))
            await asyncio.wait_for(on_retry.event.wait(), 10)
            await server.start(full_backlog.listener)
            result = await asyncio.wait_for(send, 10)
    finally:
        await server.close()

    assert result.success is True
    assert server.emails == 1
    assert "a timeout before the request was sent" in on_retry.messages[0]


# -- an outcome-unknown error is also its underlying class -----------------------------------


@pytest.fixture
async def server() -> AsyncIterator[LocalNotifyServer]:
    async with LocalNotifyServer() as server:
        yield server


def client_for(server: LocalNotifyServer, **options: Any) -> NotifyClient:
    options.setdefault("max_retries", 0)
    return NotifyClient(server.api_key, base_url=server.base_url, rotation_grace=0, **options)


async def test_a_500_on_a_send_is_caught_as_an_internal_server_error(
    server: LocalNotifyServer,
) -> None:
    server.inject(SEND, Fault.status(500, body={"message": "boom"}))
    async with client_for(server) as client:
        try:
            await client.emails.send(**EMAIL)
        except InternalServerError as caught:
            error: InternalServerError = caught
        else:
            pytest.fail("a 500 on a send was not an InternalServerError")

    assert isinstance(error, OutcomeUnknownError)
    assert error.status_code == 500
    assert error.server_message == "boom"
    assert error.attempts == 1
    assert isinstance(error.__cause__, InternalServerError)
    assert not isinstance(error.__cause__, OutcomeUnknownError)
    assert "outcome unknown after HTTP 500" in str(error)


async def test_a_read_timeout_on_a_send_is_caught_as_a_timeout(server: LocalNotifyServer) -> None:
    server.inject(SEND, Fault.delay(2))
    async with client_for(server, timeout=0.3) as client:
        try:
            await client.emails.send(**EMAIL)
        except APITimeoutError as caught:
            error: APITimeoutError = caught
        else:
            pytest.fail("a read timeout on a send was not an APITimeoutError")

    assert isinstance(error, OutcomeUnknownError)
    assert error.request_sent is True
    assert error.status_code is None
    assert isinstance(error.__cause__, APITimeoutError)


async def test_a_lost_reply_on_a_send_is_caught_as_a_connection_error(
    server: LocalNotifyServer,
) -> None:
    server.inject(SEND, Fault.drop_after())
    async with client_for(server) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.emails.send(**EMAIL)

    assert isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.request_sent is True
    assert len(server.emails) == 1  # the server did send it


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(
            200, body="<!doctype html><p>proxy</p>", headers={"Content-Type": "text/html"}
        ),
        Fault.status(200, body=b""),
        Fault.status(200, body={"success": True, "message": None}),
        Fault.status(200, body={"success": "yes"}),
    ],
    ids=["html", "empty", "message-null", "success-not-true"],
)
async def test_a_send_with_an_unusable_2xx_leaves_the_outcome_unknown(
    server: LocalNotifyServer, fault: Fault
) -> None:
    server.inject(SEND, fault)
    async with client_for(server) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.emails.send(**EMAIL)

    assert isinstance(caught.value, InvalidResponseError)
    assert isinstance(caught.value.__cause__, InvalidResponseError)
    assert caught.value.attempts == 1
    assert "Notify dashboard" in str(caught.value)


async def test_an_unusable_2xx_after_a_retried_503_counts_both_requests(
    server: LocalNotifyServer,
) -> None:
    # The answer is read inside the pipeline, so its failure is recorded like any other:
    # two requests went out, and the second one reached Notify.
    server.inject(
        SEND, Fault.status(503), Fault.status(200, body={"success": True, "message": None})
    )
    async with client_for(server, max_retries=2) as client:
        with instant_retries(), pytest.raises(OutcomeUnknownError) as caught:
            await client.emails.send(**EMAIL)

    assert isinstance(caught.value, InvalidResponseError)
    assert caught.value.attempts == 2
    assert server.request_counts[SEND] == 2
    assert "message" in str(caught.value)


async def test_an_unusable_2xx_on_a_list_stays_an_invalid_response(
    server: LocalNotifyServer,
) -> None:
    server.inject(LIST, Fault.status(200, body="<html></html>"))
    async with client_for(server) as client:
        with pytest.raises(InvalidResponseError) as caught:
            await client.api_keys.list()

    assert not isinstance(caught.value, OutcomeUnknownError)


# -- a 503 with a long Retry-After -------------------------------------------------------------


@pytest.mark.parametrize("route", [LIST, SEND])
async def test_a_503_with_a_long_retry_after_is_an_internal_server_error(
    server: LocalNotifyServer, route: str
) -> None:
    server.inject(route, Fault.status(503, headers={"Retry-After": "120"}))
    async with client_for(server, max_retries=2) as client:
        call = client.api_keys.list() if route == LIST else client.emails.send(**EMAIL)
        with instant_retries() as waits, pytest.raises(APIStatusError) as caught:
            await call

    # The status's own class (docs/retries.md), not RateLimitError, and not outcome unknown.
    assert type(caught.value) is InternalServerError
    assert not isinstance(caught.value, RateLimitError)
    assert caught.value.retry_after == 120
    assert caught.value.attempts == 1
    assert waits == []
    assert "retry after 120s" in str(caught.value)


# -- what support asks for ------------------------------------------------------------------


async def test_status_errors_carry_request_id_headers_and_body(server: LocalNotifyServer) -> None:
    server.inject(
        LIST,
        Fault.status(400, body={"message": "nope"}, headers={"X-Request-Id": "req-123"}),
    )
    async with client_for(server) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.api_keys.list()

    error = caught.value
    assert error.request_id == "req-123"
    assert error.headers["x-request-id"] == "req-123"
    assert error.body == b'{"message": "nope"}'
    assert "req-123" in str(error)
    assert len(repr(error)) < 400


@pytest.mark.parametrize(
    ("header", "value"),
    [("request-id", "a1"), ("x-amzn-requestid", "b2"), ("cf-ray", "c3-AMS")],
)
async def test_the_request_id_comes_from_the_usual_headers(
    server: LocalNotifyServer, header: str, value: str
) -> None:
    server.inject(LIST, Fault.status(500, headers={header: value}))
    async with client_for(server) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.api_keys.list()

    assert caught.value.request_id == value


async def test_a_404_advises_checking_base_url(server: LocalNotifyServer) -> None:
    async with NotifyClient(server.api_key, base_url=server.base_url + "/v2", max_retries=0) as c:
        with pytest.raises(NotFoundError) as caught:
            await c.api_keys.list()

    assert "check base_url (it should end in /api/public/v1" in str(caught.value)


# -- misuse: a closed session, bad backoff values ---------------------------------------------


async def test_a_given_session_closed_by_its_owner_is_a_notify_error(
    server: LocalNotifyServer,
) -> None:
    session = aiohttp.ClientSession()
    client = NotifyClient(server.api_key, base_url=server.base_url, session=session)
    async with client:
        await client.api_keys.list()
        await session.close()
        for call in (client.api_keys.list(), client.emails.send(**EMAIL)):
            with pytest.raises(NotifyError, match="session= was closed") as caught:
                await call
            assert not isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    "values",
    [
        {"maximum": math.nan},
        {"initial": -1.0},
        {"initial": math.inf},
        {"max_retry_after": math.nan},
        {"max_retry_after": -5},
        {"maximum": "8"},
        {"initial": True},
    ],
)
def test_backoff_refuses_values_that_are_not_seconds(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="finite number of seconds"):
        Backoff(**values)


def test_backoff_accepts_zero() -> None:
    assert Backoff(initial=0, maximum=0, max_retry_after=0).wait(1, None) == 0


# -- a given session behaves as the client's own ----------------------------------------------


@pytest.mark.parametrize("given", [False, True], ids=["own", "given"])
async def test_max_retries_zero_sends_one_request_after_a_dropped_connection(
    server: LocalNotifyServer, given: bool
) -> None:
    async with aiohttp.ClientSession() as session:
        client = client_for(server, session=session if given else None)
        async with client:
            await client.api_keys.list()  # a pooled connection, which aiohttp would resend on
            server.reset_counters()
            server.inject(LIST, Fault.drop_before())
            with pytest.raises(APIConnectionError) as caught:
                await client.api_keys.list()

    assert server.request_counts[LIST] == 1
    assert caught.value.attempts == 1


async def test_a_given_session_sends_the_user_agent_and_no_raise_for_status() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("User-Agent", ""))
        return web.json_response({"success": False, "message": "bad"}, status=400)

    app = web.Application()
    app.router.add_get("/api/public/v1/api_keys", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession(raise_for_status=True) as session:
            base = f"http://{host}:{port}/api/public/v1"
            async with NotifyClient(KEY, base_url=base, session=session, max_retries=0) as c:
                with pytest.raises(APIStatusError) as caught:
                    await c.api_keys.list()
    finally:
        await runner.cleanup()

    assert caught.value.status_code == 400
    assert seen == [f"notify-async/{notify_version()}"]


def notify_version() -> str:
    from notify_async import __version__  # noqa: PLC0415

    return __version__


# -- the size of a response ---------------------------------------------------------------------


async def _huge_server(total: int, *, announce: bool) -> tuple[web.AppRunner, str]:
    chunk = b"x" * 65536

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if announce:
            response.content_length = total
        response.content_type = "application/json"
        await response.prepare(request)
        sent = 0
        try:
            while sent < total:
                await response.write(chunk)
                sent += len(chunk)
        except ConnectionError:
            pass  # the client stopped reading, as it should
        return response

    app = web.Application()
    app.router.add_get("/api/public/v1/api_keys", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/api/public/v1"


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "chunked"])
async def test_a_huge_2xx_body_is_refused_while_reading(announce: bool) -> None:
    limit = 2 * 1024 * 1024
    runner, base_url = await _huge_server(50 * 1024 * 1024, announce=announce)
    try:
        async with NotifyClient(
            KEY, base_url=base_url, max_retries=0, max_response_bytes=limit
        ) as client:
            tracemalloc.start()
            try:
                with pytest.raises(InvalidResponseError) as caught:
                    await client.api_keys.list()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    finally:
        await runner.cleanup()

    assert f"max_response_bytes={limit}" in str(caught.value)
    assert peak < 1.5 * limit, f"peak {peak} bytes for a limit of {limit}"


async def test_the_response_limit_is_a_per_call_option(server: LocalNotifyServer) -> None:
    async with client_for(server) as client:
        assert client.max_response_bytes == 4 * 1024 * 1024
        assert await client.api_keys.list()
        with pytest.raises(InvalidResponseError, match="max_response_bytes=10"):
            await client.with_options(max_response_bytes=10).api_keys.list()
        server.inject(SEND, Fault.status(200, body={"success": True, "message": "x" * 50}))
        with pytest.raises(OutcomeUnknownError, match="max_response_bytes=40"):
            await client.with_options(max_response_bytes=40).emails.send(**EMAIL)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "big"])
def test_the_response_limit_must_be_a_positive_int(value: Any) -> None:
    with pytest.raises(ValueError, match="max_response_bytes"):
        NotifyClient(KEY, max_response_bytes=value)


async def test_an_error_status_with_a_huge_body_keeps_its_class(server: LocalNotifyServer) -> None:
    server.inject(LIST, Fault.status(500, body="e" * 5000, headers={"Content-Type": "text/plain"}))
    async with client_for(server, max_response_bytes=1000) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.api_keys.list()

    assert caught.value.body == b"e" * 1000  # read up to the limit, kept (under 64 KiB)
    assert "HTTP 500" in str(caught.value)


# -- a given session and the environment's proxy ------------------------------------------------


async def test_a_given_session_uses_the_environments_proxy(
    server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LoopbackProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with aiohttp.ClientSession() as session:
            async with client_for(server, session=session) as client:
                await client.api_keys.list()

    assert proxy.relayed_requests == [f"GET {server.base_url}/api_keys"]


async def test_a_given_session_keeps_its_own_proxy_when_the_environment_names_none(
    server: LocalNotifyServer,
) -> None:
    async with LoopbackProxy() as proxy:
        async with aiohttp.ClientSession(proxy=proxy.url) as session:
            async with client_for(server, session=session) as client:
                await client.api_keys.list()

    assert proxy.relayed_requests == [f"GET {server.base_url}/api_keys"]


@pytest.mark.parametrize(
    ("timeout", "connect_timeout"), [(5, 10), (0.3, 10), (10, 10), (30, 10), (0.01, 1), (60, 59.99)]
)
def test_the_connect_timer_always_ends_before_the_total_one(
    timeout: float, connect_timeout: float
) -> None:
    timeouts = attempt_timeout(timeout, connect_timeout)

    assert timeouts.total == timeout
    assert timeouts.connect == min(connect_timeout, timeout - min(0.05, timeout / 10))
    assert timeouts.connect is not None
    assert timeouts.connect < timeout
    assert timeouts.ceil_threshold == math.inf  # no rounding that could make them coincide
