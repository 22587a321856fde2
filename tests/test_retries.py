"""Retries: which failures each call retries, how long it waits, and what it raises.

Everything here talks real HTTP to the local Notify server, which misbehaves on request,
and counts what the server saw and did. The policy under test (issue 4, docs/retries.md):

* ``api_keys.list`` (GET) is retried on connection errors, timeouts, 408, 429, 500, 502,
  503 and 504;
* ``emails.send``, ``emails.send_template`` and ``api_keys.regenerate`` (POST) are retried
  only when the request provably took no effect: no connection, 429, 503. A 500, 502, 504,
  a disconnect after sending or a read timeout raises ``OutcomeUnknownError`` after exactly
  one request.

Retries never really sleep here: ``instant_retries()`` records the waits instead, except in
the one test that checks the real timing of a 1 s ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp
import pytest
import tenacity
from support import closed_port_url, wait_until
from tenacity import AsyncRetrying

from notify_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    Backoff,
    CallableKeyProvider,
    InternalServerError,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
    RateLimitError,
)
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

MAX_RETRIES = 2  # the client's default
ATTEMPTS = MAX_RETRIES + 1


# -- the three calls under test, and how to see their effect on the server -----------------


class Call(NamedTuple):
    """One API call, the route the server counts it under, and its side effect."""

    name: str
    route: str
    run: Callable[[NotifyClient, LocalNotifyServer], Awaitable[object]]
    # How many times the call took effect on the server: emails accepted, keys rotated.
    effects: Callable[[LocalNotifyServer, str], int]


async def _list(client: NotifyClient, server: LocalNotifyServer) -> object:
    return await client.api_keys.list()


async def _send(client: NotifyClient, server: LocalNotifyServer) -> object:
    return await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")


async def _send_template(client: NotifyClient, server: LocalNotifyServer) -> object:
    return await client.emails.send_template(template_id="welcome", to="ada@example.com")


async def _regenerate(client: NotifyClient, server: LocalNotifyServer) -> object:
    # The second key, so that the client's own key keeps working whatever happens.
    return await client.api_keys.regenerate(server.keys[1].id)


def _no_effect(server: LocalNotifyServer, second_key: str) -> int:
    return 0


def _emails(server: LocalNotifyServer, second_key: str) -> int:
    return len(server.emails)


def _rotations(server: LocalNotifyServer, second_key: str) -> int:
    # One request per call reaches the handler at most (asserted with the counts), so a
    # changed secret means exactly one rotation.
    return int(server.keys[1].secret != second_key)


LIST = Call("list", "GET /api_keys", _list, _no_effect)
SEND = Call("send", "POST /send-email", _send, _emails)
SEND_TEMPLATE = Call("send_template", "POST /send-email-from-template", _send_template, _emails)
REGENERATE = Call("regenerate", "POST /api_keys/regenerate", _regenerate, _rotations)
POSTS = [
    pytest.param(SEND, id="send"),
    pytest.param(SEND_TEMPLATE, id="send_template"),
    pytest.param(REGENERATE, id="regenerate"),
]


@pytest.fixture
async def server(notify_server: LocalNotifyServer) -> LocalNotifyServer:
    """The local server with a second key, the target of ``regenerate``."""
    notify_server.add_key("second")
    return notify_server


@pytest.fixture
async def client(server: LocalNotifyServer) -> AsyncIterator[NotifyClient]:
    """A client with default retry settings that already knows its own key id."""
    async with NotifyClient(server.api_key, base_url=server.base_url) as client:
        # regenerate() lists once to learn the client's own key id; do it now so that
        # the counts in the tests are the call's own.
        await client.api_keys.list()
        server.reset_counters()
        yield client


# -- the policy table: statuses ------------------------------------------------------------

STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    408: APIStatusError,
    429: RateLimitError,
    500: InternalServerError,
    502: InternalServerError,
    503: InternalServerError,
    504: InternalServerError,
}


@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
async def test_list_retries_every_transient_status_then_raises_it(
    client: NotifyClient, server: LocalNotifyServer, status: int
) -> None:
    server.inject(LIST.route, *[Fault.status(status)] * ATTEMPTS)

    with instant_retries() as waits, pytest.raises(APIStatusError) as caught:
        await client.api_keys.list()

    assert type(caught.value) is STATUS_ERRORS[status]
    assert caught.value.status_code == status
    assert caught.value.attempts == ATTEMPTS
    assert server.request_counts[LIST.route] == ATTEMPTS
    assert len(waits) == MAX_RETRIES


@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
async def test_list_recovers_from_one_transient_status(
    client: NotifyClient, server: LocalNotifyServer, status: int
) -> None:
    server.inject(LIST.route, Fault.status(status))

    with instant_retries() as waits:
        keys = await client.api_keys.list()

    assert len(keys) == 2
    assert server.request_counts[LIST.route] == 2
    assert len(waits) == 1


@pytest.mark.parametrize("call", POSTS)
@pytest.mark.parametrize("status", [429, 503])
async def test_post_retries_a_refusal_then_raises_it(
    client: NotifyClient, server: LocalNotifyServer, call: Call, status: int
) -> None:
    second_key = server.keys[1].secret
    server.inject(call.route, *[Fault.status(status)] * ATTEMPTS)

    with instant_retries() as waits, pytest.raises(APIStatusError) as caught:
        await call.run(client, server)

    # A refusal proves the server did nothing: no OutcomeUnknownError.
    assert type(caught.value) is STATUS_ERRORS[status]
    assert caught.value.status_code == status
    assert caught.value.attempts == ATTEMPTS
    assert server.request_counts[call.route] == ATTEMPTS
    assert call.effects(server, second_key) == 0
    assert len(waits) == MAX_RETRIES


@pytest.mark.parametrize("call", POSTS)
@pytest.mark.parametrize("status", [429, 503])
async def test_post_recovers_from_one_refusal_and_takes_effect_once(
    client: NotifyClient, server: LocalNotifyServer, call: Call, status: int
) -> None:
    second_key = server.keys[1].secret
    server.inject(call.route, Fault.status(status, headers={"Retry-After": "0"}))

    with instant_retries() as waits:
        await call.run(client, server)

    assert server.request_counts[call.route] == 2
    assert call.effects(server, second_key) == 1
    assert waits == [0.0]


@pytest.mark.parametrize("call", POSTS)
@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_is_not_retried_after_an_ambiguous_status(
    client: NotifyClient, server: LocalNotifyServer, call: Call, status: int
) -> None:
    second_key = server.keys[1].secret
    server.inject(call.route, Fault.status(status))

    with instant_retries() as waits, pytest.raises(OutcomeUnknownError) as caught:
        await call.run(client, server)

    error = caught.value
    assert error.status_code == status
    assert "outcome unknown" in str(error)
    assert isinstance(error.__cause__, InternalServerError)
    assert error.__cause__.status_code == status
    assert error.attempts == 1
    assert server.request_counts[call.route] == 1
    # The local server answers these faults before handling the request.
    assert call.effects(server, second_key) == 0
    assert waits == []


@pytest.mark.parametrize("call", POSTS)
async def test_post_is_not_retried_after_a_408(
    client: NotifyClient, server: LocalNotifyServer, call: Call
) -> None:
    second_key = server.keys[1].secret
    server.inject(call.route, Fault.status(408))

    with instant_retries() as waits, pytest.raises(APIStatusError) as caught:
        await call.run(client, server)

    # A 408 says the server gave up reading the request: not retried (only 429 and 503
    # are), but not ambiguous either.
    assert type(caught.value) is APIStatusError
    assert caught.value.status_code == 408
    assert caught.value.attempts == 1
    assert server.request_counts[call.route] == 1
    assert call.effects(server, second_key) == 0
    assert waits == []


# -- the policy table: disconnects ---------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.drop_before, Fault.drop_after])
async def test_list_retries_a_disconnect(
    client: NotifyClient, server: LocalNotifyServer, fault: Callable[[], Fault]
) -> None:
    server.inject(LIST.route, *[fault()] * ATTEMPTS)

    with instant_retries() as waits, pytest.raises(APIConnectionError) as caught:
        await client.api_keys.list()

    assert caught.value.request_sent
    assert caught.value.attempts == ATTEMPTS
    # One request per attempt: aiohttp must not resend the GET behind the policy's back.
    assert server.request_counts[LIST.route] == ATTEMPTS
    assert len(waits) == MAX_RETRIES


async def test_list_recovers_from_a_disconnect(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(LIST.route, Fault.drop_after())

    with instant_retries():
        keys = await client.api_keys.list()

    assert len(keys) == 2
    assert server.request_counts[LIST.route] == 2


@pytest.mark.parametrize("call", POSTS)
async def test_post_is_not_retried_after_a_disconnect_before_handling(
    client: NotifyClient, server: LocalNotifyServer, call: Call
) -> None:
    second_key = server.keys[1].secret
    server.inject(call.route, Fault.drop_before())

    with instant_retries() as waits, pytest.raises(OutcomeUnknownError) as caught:
        await call.run(client, server)

    # The client cannot tell this drop from one after handling, so it must not retry.
    error = caught.value
    assert error.status_code is None
    assert "outcome unknown" in str(error)
    assert isinstance(error.__cause__, APIConnectionError)
    assert error.__cause__.request_sent
    assert error.attempts == 1
    assert server.request_counts[call.route] == 1
    assert call.effects(server, second_key) == 0
    assert waits == []


async def test_send_is_not_retried_after_a_disconnect_after_handling(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(SEND.route, Fault.drop_after())

    with instant_retries() as waits, pytest.raises(OutcomeUnknownError) as caught:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    error = caught.value
    assert "outcome unknown" in str(error)
    assert "may or may not have been sent" in str(error)
    assert "dashboard" in str(error)  # what to do about it
    assert isinstance(error.__cause__, APIConnectionError)
    assert error.__cause__.request_sent
    assert error.attempts == 1
    assert server.request_counts[SEND.route] == 1
    assert [e.to for e in server.emails] == ["ada@example.com"]  # sent once, not twice
    assert waits == []


async def test_regenerate_is_not_retried_after_a_disconnect_after_handling(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    second_key = server.keys[1].secret

    server.inject(REGENERATE.route, Fault.drop_after())

    with instant_retries() as waits, pytest.raises(OutcomeUnknownError) as caught:
        await client.api_keys.regenerate(server.keys[1].id)

    error = caught.value
    assert "outcome unknown" in str(error)
    assert "old key is already invalid" in str(error)
    assert "dashboard" in str(error)
    assert isinstance(error.__cause__, APIConnectionError)
    assert error.attempts == 1
    assert server.request_counts[REGENERATE.route] == 1
    # Rotated exactly once: the new key the server made is the one that works.
    assert server.keys[1].secret != second_key
    assert waits == []


async def test_lost_regenerate_of_own_key_recovers_on_the_next_401(
    server: LocalNotifyServer,
) -> None:
    # The provider stands for wherever the operator publishes the key from the dashboard.
    published = {"key": server.api_key}
    provider = CallableKeyProvider(lambda: published["key"])
    async with NotifyClient(
        credentials=provider, base_url=server.base_url, rotation_grace=0
    ) as client:
        own_id = server.primary_key_id
        await client.api_keys.list()  # learns its own key id
        server.inject(REGENERATE.route, Fault.drop_after())

        with instant_retries(), pytest.raises(OutcomeUnknownError):
            await client.api_keys.regenerate(own_id)

        assert server.request_counts[REGENERATE.route] == 1
        published["key"] = server.api_key  # the operator copies the new key over
        keys = await client.api_keys.list()

    assert len(keys) == 2
    assert server.auth_failures == 1  # the old key, rejected once, then reloaded
    assert client.key_loads == 2


# -- the policy table: a delay longer than the timeout -------------------------------------


async def test_list_retries_a_timeout(client: NotifyClient, server: LocalNotifyServer) -> None:
    server.inject(LIST.route, *[Fault.delay(5)] * ATTEMPTS)
    fast = client.with_options(timeout=0.3)

    started = time.monotonic()
    with instant_retries() as waits, pytest.raises(APITimeoutError) as caught:
        await fast.api_keys.list()

    assert caught.value.attempts == ATTEMPTS
    assert server.request_counts[LIST.route] == ATTEMPTS
    assert len(waits) == MAX_RETRIES
    # The timeout bounds each attempt, so the call cannot hang on a stalled server.
    assert time.monotonic() - started < 4


async def test_list_recovers_from_a_timeout(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(LIST.route, Fault.delay(5))

    with instant_retries():
        keys = await client.with_options(timeout=0.3).api_keys.list()

    assert len(keys) == 2
    assert server.request_counts[LIST.route] == 2


async def test_send_is_not_retried_after_a_timeout(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(SEND.route, Fault.delay(0.6))

    with instant_retries() as waits, pytest.raises(OutcomeUnknownError) as caught:
        await client.with_options(timeout=0.3).emails.send(
            to="ada@example.com", subject="Hi", message="Hello"
        )

    error = caught.value
    assert error.status_code is None
    assert "outcome unknown" in str(error)
    assert "timed out" in str(error)
    assert isinstance(error.__cause__, APITimeoutError)
    assert error.attempts == 1
    assert waits == []
    # The slow server still delivers the email it was given: once.
    await wait_until(lambda: len(server.emails) > 0)
    assert len(server.emails) == 1
    assert server.request_counts[SEND.route] == 1


async def test_regenerate_is_not_retried_after_a_timeout(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    second_key = server.keys[1].secret
    server.inject(REGENERATE.route, Fault.delay(0.6))

    with instant_retries() as waits, pytest.raises(OutcomeUnknownError) as caught:
        await client.with_options(timeout=0.3).api_keys.regenerate(server.keys[1].id)

    assert isinstance(caught.value.__cause__, APITimeoutError)
    assert caught.value.attempts == 1
    assert waits == []
    await wait_until(lambda: server.keys[1].secret != second_key)
    assert server.request_counts[REGENERATE.route] == 1


# -- the policy table: a closed port -------------------------------------------------------


@pytest.mark.parametrize("call", [pytest.param(LIST, id="list"), pytest.param(SEND, id="send")])
async def test_connection_refused_is_retried_for_every_call(
    server: LocalNotifyServer, call: Call
) -> None:
    async with NotifyClient(server.api_key, base_url=closed_port_url()) as client:
        with instant_retries() as waits, pytest.raises(APIConnectionError) as caught:
            await call.run(client, server)

    # Not OutcomeUnknownError: the request never left, so retrying even a POST is safe.
    # A closed port stays closed, so every attempt fails the same way.
    assert type(caught.value) is APIConnectionError
    assert not caught.value.request_sent
    assert "could not connect" in str(caught.value)
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert caught.value.attempts == ATTEMPTS
    assert len(waits) == MAX_RETRIES
    assert server.emails == []


async def test_regenerate_is_retried_when_the_server_is_gone(server: LocalNotifyServer) -> None:
    second_key = server.keys[1].secret
    # No keep-alive, so that each attempt connects afresh (and is refused) instead of
    # writing into a pooled connection the closing server just cut.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with NotifyClient(
            server.api_key, base_url=server.base_url, session=session
        ) as client:
            await client.api_keys.list()  # learns its own key id while the server is up
            await server.close()  # its port is closed now

            with instant_retries() as waits, pytest.raises(APIConnectionError) as caught:
                await client.api_keys.regenerate(server.keys[1].id)

    assert type(caught.value) is APIConnectionError
    assert not caught.value.request_sent
    assert caught.value.attempts == ATTEMPTS
    assert len(waits) == MAX_RETRIES
    assert server.request_counts[REGENERATE.route] == 0
    assert server.keys[1].secret == second_key


# -- Retry-After and backoff ---------------------------------------------------------------


@pytest.mark.parametrize("call", [pytest.param(LIST, id="list"), *POSTS])
async def test_retry_after_in_seconds_is_honoured_exactly(
    client: NotifyClient, server: LocalNotifyServer, call: Call
) -> None:
    server.inject(
        call.route,
        Fault.status(429, headers={"Retry-After": "7"}),
        Fault.status(503, headers={"Retry-After": "2"}),
    )

    with instant_retries() as waits:
        await call.run(client, server)

    assert waits == [7.0, 2.0]
    assert server.request_counts[call.route] == 3


async def test_retry_after_as_an_http_date_is_honoured(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    server.inject(SEND.route, Fault.status(503, headers={"Retry-After": when}))

    with instant_retries() as waits:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    # An HTTP date has whole seconds, and some time passes before it is read.
    assert len(waits) == 1
    assert 8 <= waits[0] <= 10
    assert len(server.emails) == 1


async def test_retry_after_in_the_past_means_retry_now(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    when = email.utils.formatdate(time.time() - 30, usegmt=True)
    server.inject(LIST.route, Fault.status(503, headers={"Retry-After": when}))

    with instant_retries() as waits:
        await client.api_keys.list()

    assert waits == [0.0]


async def test_unparsable_retry_after_falls_back_to_backoff(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(LIST.route, Fault.status(503, headers={"Retry-After": "soon"}))

    with instant_retries() as waits:
        await client.api_keys.list()

    assert len(waits) == 1
    assert 0 <= waits[0] <= Backoff().initial


@pytest.mark.parametrize("call", [pytest.param(LIST, id="list"), *POSTS])
async def test_retry_after_above_the_cap_raises_without_sleeping(
    client: NotifyClient, server: LocalNotifyServer, call: Call
) -> None:
    second_key = server.keys[1].secret
    server.inject(call.route, Fault.status(429, headers={"Retry-After": "120"}))

    with instant_retries() as waits, pytest.raises(RateLimitError) as caught:
        await call.run(client, server)

    assert caught.value.retry_after == 120
    assert "retry after 120s" in str(caught.value)
    assert caught.value.attempts == 1
    assert waits == []
    assert server.request_counts[call.route] == 1
    assert call.effects(server, second_key) == 0


async def test_retry_after_at_the_cap_is_still_honoured(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(LIST.route, Fault.status(429, headers={"Retry-After": "60"}))

    with instant_retries() as waits:
        await client.api_keys.list()

    assert waits == [60.0]


async def test_retry_after_above_the_cap_on_a_later_attempt_stops_the_retries(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(
        SEND.route,
        Fault.status(503, headers={"Retry-After": "1"}),
        Fault.status(429, headers={"Retry-After": "3600"}),
    )

    with instant_retries() as waits, pytest.raises(RateLimitError) as caught:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert caught.value.retry_after == 3600
    assert caught.value.attempts == 2
    assert waits == [1.0]
    assert server.emails == []


async def test_the_retry_after_cap_is_configurable(server: LocalNotifyServer) -> None:
    backoff = Backoff(max_retry_after=5)
    async with NotifyClient(server.api_key, base_url=server.base_url, backoff=backoff) as client:
        server.inject(LIST.route, Fault.status(429, headers={"Retry-After": "5"}))
        with instant_retries() as waits:
            await client.api_keys.list()
        assert waits == [5.0]

        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        server.inject(LIST.route, Fault.status(429, headers={"Retry-After": when}))
        with instant_retries() as waits, pytest.raises(RateLimitError) as caught:
            await client.api_keys.list()

    assert caught.value.retry_after is not None
    assert 28 <= caught.value.retry_after <= 30
    assert waits == []


async def test_backoff_without_retry_after_stays_within_full_jitter_bounds(
    server: LocalNotifyServer,
) -> None:
    retries = 6
    backoff = Backoff(initial=0.5, maximum=8)
    async with NotifyClient(
        server.api_key, base_url=server.base_url, max_retries=retries, backoff=backoff
    ) as client:
        server.inject(LIST.route, *[Fault.status(500)] * retries)
        with instant_retries() as waits:
            await client.api_keys.list()

    ceilings = [0.5, 1, 2, 4, 8, 8]
    assert len(waits) == retries
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True))


def test_backoff_jitter_spreads_over_the_whole_range() -> None:
    backoff = Backoff(initial=0.5, maximum=8)

    for retry_number, ceiling in [(1, 0.5), (3, 2.0), (5, 8.0), (9, 8.0)]:
        samples = [backoff.wait(retry_number, None) for _ in range(400)]
        assert all(0 <= s <= ceiling for s in samples)
        # Full jitter: waits land in both halves of the range, not at a fixed point.
        assert min(samples) < ceiling / 2 < max(samples)


async def test_a_one_second_retry_after_really_waits(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(SEND.route, Fault.status(503, headers={"Retry-After": "1"}))

    started = time.monotonic()
    await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
    elapsed = time.monotonic() - started

    # The one real sleep of this file: the wait is the server's, not the jitter's.
    assert 0.95 <= elapsed < 5
    assert len(server.emails) == 1
    assert server.request_counts[SEND.route] == 2


# -- max_retries and with_options ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "fault"),
    [
        pytest.param(LIST, Fault.status(503), id="list-503"),
        pytest.param(LIST, Fault.drop_after(), id="list-disconnect"),
        pytest.param(SEND, Fault.status(429, headers={"Retry-After": "0"}), id="send-429"),
        pytest.param(REGENERATE, Fault.status(503), id="regenerate-503"),
    ],
)
async def test_max_retries_zero_disables_retries(
    server: LocalNotifyServer, call: Call, fault: Fault
) -> None:
    second_key = server.keys[1].secret
    async with NotifyClient(server.api_key, base_url=server.base_url, max_retries=0) as client:
        await client.api_keys.list()
        server.reset_counters()
        server.inject(call.route, fault, fault)
        with instant_retries() as waits, pytest.raises(NotifyError) as caught:
            await call.run(client, server)

    assert caught.value.attempts == 1
    assert server.request_counts[call.route] == 1
    assert call.effects(server, second_key) == 0
    assert waits == []


async def test_max_retries_zero_on_a_closed_port_tries_once(server: LocalNotifyServer) -> None:
    async with NotifyClient(server.api_key, base_url=closed_port_url(), max_retries=0) as client:
        with instant_retries() as waits, pytest.raises(APIConnectionError) as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert caught.value.attempts == 1
    assert waits == []


async def test_with_options_overrides_retries_per_call(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(LIST.route, *[Fault.status(503)] * (1 + 5 + 3))

    with instant_retries() as waits:
        with pytest.raises(InternalServerError) as once:
            await client.with_options(max_retries=0).api_keys.list()
        with pytest.raises(InternalServerError) as five_times:
            await client.with_options(max_retries=4).api_keys.list()
        with pytest.raises(InternalServerError) as default:
            await client.api_keys.list()  # the client itself is unchanged

    assert (once.value.attempts, five_times.value.attempts, default.value.attempts) == (1, 5, 3)
    assert server.request_counts[LIST.route] == 1 + 5 + 3
    assert len(waits) == 0 + 4 + 2
    assert client.max_retries == MAX_RETRIES


async def test_with_options_overrides_the_timeout_per_call(
    client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(SEND.route, Fault.delay(0.6))
    view = client.with_options(timeout=0.2)

    with pytest.raises(OutcomeUnknownError) as caught:
        await view.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert isinstance(caught.value.__cause__, APITimeoutError)
    assert (view.timeout, client.timeout) == (0.2, 30.0)
    await wait_until(lambda: len(server.emails) == 1)


async def test_with_options_shares_the_session_and_the_credentials(
    server: LocalNotifyServer,
) -> None:
    requests: list[str] = []

    async def count(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        requests.append(params.method)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    provider = CallableKeyProvider(lambda: server.api_key)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        async with NotifyClient(
            credentials=provider, base_url=server.base_url, session=session
        ) as client:
            view = client.with_options(max_retries=5, timeout=10)
            assert view.credentials is client.credentials

            await view.api_keys.rotate()  # through the view: regenerate, then list
            await view.close()  # a view owns nothing
            # The client adopted the view's new key: no 401, no reload.
            await client.api_keys.list()

            assert requests == ["GET", "POST", "GET", "GET"]  # all on the one session
            assert server.auth_failures == 0
            assert client.key_prefix == view.key_prefix == server.api_key[:8] + "..."
            assert client.key_loads == 1
        assert not session.closed


# -- logging -------------------------------------------------------------------------------


async def test_each_retry_is_logged_at_warning_with_reason_and_delay(
    client: NotifyClient, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="notify_async")
    server.inject(
        LIST.route,
        Fault.status(503, headers={"Retry-After": "1.5"}),
        Fault.drop_after(),
    )

    with instant_retries():
        await client.api_keys.list()

    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    assert "GET /api_keys in 1.50s after HTTP 503 (attempt 1 of 3)" in retries[0].getMessage()
    assert "after a connection error (attempt 2 of 3)" in retries[1].getMessage()
    assert all(server.api_key not in r.getMessage() for r in caplog.records)


async def test_retry_logs_never_contain_the_key(
    client: NotifyClient, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = server.api_key
    # The server echoes the key in its error message, as a careless proxy might.
    server.inject(SEND.route, Fault.status(503, body={"success": False, "message": f"bad {key}"}))

    with instant_retries():
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert key not in caplog.text


async def test_no_retry_no_warning(
    client: NotifyClient, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="notify_async")
    server.inject(SEND.route, Fault.status(500))

    with pytest.raises(OutcomeUnknownError):
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- the auth replay budget is separate from the retry budget ------------------------------


@pytest.fixture
async def rotating_client(server: LocalNotifyServer) -> AsyncIterator[NotifyClient]:
    """A one-retry client whose provider always has the server's current key."""
    provider = CallableKeyProvider(lambda: server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=server.base_url, max_retries=1, rotation_grace=0
    ) as client:
        await client.api_keys.list()
        server.reset_counters()
        yield client


async def test_a_503_then_a_401_after_rotation_succeeds(
    rotating_client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.inject(LIST.route, Fault.status(503, headers={"Retry-After": "0"}))
    server.rotate()  # an operator rotates; the client still holds the old key

    with instant_retries() as waits:
        await rotating_client.api_keys.list()

    # 503 (the one retry), 401 (the one replay, after a reload), 200.
    assert server.request_counts[LIST.route] == 3
    assert server.auth_failures == 1
    assert rotating_client.key_loads == 2
    assert waits == [0.0]


async def test_a_401_then_a_503_on_a_send_succeeds_and_sends_once(
    rotating_client: NotifyClient, server: LocalNotifyServer
) -> None:
    server.rotate()
    # The first request (old key) is rejected, the replay (new key) refused once.
    server.inject(SEND.route, Fault.status(401), Fault.status(503, headers={"Retry-After": "0"}))

    with instant_retries() as waits:
        await rotating_client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert server.request_counts[SEND.route] == 3
    assert len(server.emails) == 1
    assert rotating_client.key_loads == 2
    assert waits == [0.0]


# -- the success path does not build tenacity objects --------------------------------------


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[AsyncRetrying]:
    """Every ``AsyncRetrying`` the client builds, in order."""
    instances: list[AsyncRetrying] = []

    class CountingRetrying(AsyncRetrying):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            instances.append(self)

    # The client imports it from tenacity on its first retried failure.
    monkeypatch.setattr(tenacity, "AsyncRetrying", CountingRetrying)
    return instances


async def test_success_builds_no_retrying(
    client: NotifyClient, server: LocalNotifyServer, built: list[AsyncRetrying]
) -> None:
    for _ in range(3):
        await client.api_keys.list()
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert built == []


async def test_a_failure_that_is_not_retried_builds_no_retrying(
    client: NotifyClient, server: LocalNotifyServer, built: list[AsyncRetrying]
) -> None:
    server.inject(SEND.route, Fault.status(500))
    server.inject(LIST.route, Fault.status(429, headers={"Retry-After": "600"}))

    with pytest.raises(OutcomeUnknownError):
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
    with pytest.raises(RateLimitError):
        await client.api_keys.list()
    server.inject(LIST.route, Fault.status(503))
    with pytest.raises(InternalServerError):
        await client.with_options(max_retries=0).api_keys.list()

    assert built == []


async def test_a_retryable_failure_builds_one_retrying_per_call(
    client: NotifyClient, server: LocalNotifyServer, built: list[AsyncRetrying]
) -> None:
    server.inject(LIST.route, Fault.status(503), Fault.status(503))

    with instant_retries():
        await client.api_keys.list()
        assert len(built) == 1  # one for the whole call, however many retries
        server.inject(SEND.route, Fault.status(503))
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert len(built) == 2
    assert built[0] is not built[1]


async def test_concurrent_failing_calls_each_build_their_own_retrying(
    client: NotifyClient, server: LocalNotifyServer, built: list[AsyncRetrying]
) -> None:
    server.inject(LIST.route, Fault.status(503), Fault.status(503))

    with instant_retries() as waits:
        results = await asyncio.gather(client.api_keys.list(), client.api_keys.list())

    assert [len(keys) for keys in results] == [2, 2]
    assert len(built) == 2
    assert built[0] is not built[1]
    assert len(waits) == 2
    assert server.request_counts[LIST.route] == 4
