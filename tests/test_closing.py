"""Closing a client: what it closes, what it leaves open, and what happens afterwards.

A client creates its own ``aiohttp`` session on first use and closes it on ``close()`` (or
on leaving ``async with``); it never closes a session it was given. Closing twice is fine,
closing a ``with_options`` view closes nothing, and a closed client says so when used
again. An open client that is garbage-collected warns with a ``ResourceWarning`` naming
``close()``; a closed or never-used one is collected silently.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable

import aiohttp
import pytest

from notify_async import NotifyClient, NotifyError
from notify_async.testing import LocalNotifyServer

UNUSED_KEY = "nk_never-used-key-0123456789"
CLOSED = "closed; create a new one"


def own_session(client: NotifyClient) -> aiohttp.ClientSession | None:
    # There is no public accessor for the session; who owns it is what these tests check.
    return client._transport.session


# -- the client's own session --------------------------------------------------------------


async def test_own_session_is_closed_on_leaving_async_with(
    notify_server: LocalNotifyServer,
) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        await client.api_keys.list()
        session = own_session(client)
        assert session is not None
        assert not session.closed

    assert session.closed


async def test_own_session_is_closed_by_close_without_a_context_manager(
    notify_server: LocalNotifyServer,
) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
    session = own_session(client)
    assert session is not None

    await client.close()

    assert session.closed


async def test_closing_twice_is_fine(notify_server: LocalNotifyServer) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    async with client:
        await client.api_keys.list()

    await client.close()
    await client.close()

    session = own_session(client)
    assert session is not None
    assert session.closed


async def test_closing_a_client_that_was_never_used_is_fine() -> None:
    client = NotifyClient(UNUSED_KEY, base_url="http://127.0.0.1:1/api/public/v1")

    await client.close()
    await client.close()

    assert own_session(client) is None  # closing opened nothing either


# -- a session you give it -------------------------------------------------------------------


async def test_a_given_session_is_never_closed_and_the_client_does_not_warn(
    notify_server: LocalNotifyServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        client = NotifyClient(
            notify_server.api_key, base_url=notify_server.base_url, session=session
        )
        async with client:
            await client.api_keys.list()
        await client.close()
        assert not session.closed  # yours to close

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del client
            gc.collect()
        assert caught == []

        # ...and it still works for the rest of your code.
        async with session.get(
            notify_server.base_url + "/api_keys", headers={"x-api-key": notify_server.api_key}
        ) as response:
            assert response.status == 200
    assert notify_server.request_counts["GET /api_keys"] == 2


# -- after closing ---------------------------------------------------------------------------


@pytest.mark.parametrize("given_session", [False, True], ids=["own session", "given session"])
@pytest.mark.parametrize("used", [False, True], ids=["left unused", "used then close()"])
async def test_a_closed_client_says_so_when_used_again(
    notify_server: LocalNotifyServer, given_session: bool, used: bool
) -> None:
    async with aiohttp.ClientSession() as session:
        client = NotifyClient(
            notify_server.api_key,
            base_url=notify_server.base_url,
            session=session if given_session else None,
        )
        if used:
            await client.api_keys.list()
            await client.close()
        else:
            async with client:
                pass

        with pytest.raises(NotifyError, match=CLOSED):
            await client.api_keys.list()
        with pytest.raises(NotifyError, match=CLOSED):
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
        with pytest.raises(NotifyError, match=CLOSED):
            await client.__aenter__()
        with pytest.raises(NotifyError, match=CLOSED):
            async with client:
                pass

        assert session.closed is False
    assert notify_server.request_counts["GET /api_keys"] == (1 if used else 0)
    assert notify_server.emails == []


async def test_closing_a_view_closes_nothing(notify_server: LocalNotifyServer) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        view = client.with_options(max_retries=0, timeout=5.0)
        await view.api_keys.list()
        assert own_session(view) is own_session(client)  # one session for both

        await view.close()
        await view.close()

        assert len(await client.api_keys.list()) == 1
        assert len(await view.api_keys.list()) == 1
        session = own_session(client)
        assert session is not None
        assert not session.closed

    # Closing the client closes the view's session too: they are one.
    assert session.closed
    with pytest.raises(NotifyError, match=CLOSED):
        await view.api_keys.list()
    assert notify_server.request_counts["GET /api_keys"] == 3


# -- garbage collection ----------------------------------------------------------------------


async def test_an_open_client_that_is_garbage_collected_warns_naming_close(
    notify_server: LocalNotifyServer,
) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    await client.api_keys.list()
    del client  # the resources (api_keys, emails) refer back to it: only the collector frees it

    with warnings.catch_warnings():
        # aiohttp's session and connector warn about themselves too ("Unclosed client
        # session"); pytest.warns re-emits what it does not match, so let those pass here.
        warnings.filterwarnings("ignore", message="Unclosed", category=ResourceWarning)
        with pytest.warns(ResourceWarning, match=r"await client\.close\(\)") as caught:
            gc.collect()

    ours = [w for w in caught if "NotifyClient was not closed" in str(w.message)]
    assert len(ours) == 1
    assert "async with NotifyClient()" in str(ours[0].message)
    await asyncio.sleep(0)  # let the connections aiohttp closed on collection finish closing


def _warnings_on_collection(make: Callable[[], object]) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = make()
        del obj
        gc.collect()
    return caught


def test_a_client_that_never_opened_a_session_is_collected_silently() -> None:
    assert _warnings_on_collection(lambda: NotifyClient(UNUSED_KEY)) == []


async def test_a_closed_client_is_collected_silently(notify_server: LocalNotifyServer) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    async with client:
        await client.api_keys.list()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert caught == []
