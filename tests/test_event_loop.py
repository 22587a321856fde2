"""Event-loop misuse fails clearly: a client belongs to the loop it was opened on.

Used from another loop (a second ``asyncio.run``, a loop in a worker thread), every entry
point raises ``NotifyError`` saying so, at once, instead of hanging or surfacing aiohttp's
"attached to a different loop". An open client that is garbage-collected warns with a
``ResourceWarning`` that names ``close()``; closing twice is fine.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import aiohttp
import pytest

from notify_async import NotifyClient, NotifyError
from notify_async.testing import LocalNotifyServer

Operation = Callable[[NotifyClient], Coroutine[Any, Any, object]]


async def _list(client: NotifyClient) -> object:
    return await client.api_keys.list()


async def _send(client: NotifyClient) -> object:
    return await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")


async def _send_template(client: NotifyClient) -> object:
    return await client.emails.send_template(template_id="welcome", to="ada@example.com")


async def _regenerate(client: NotifyClient) -> object:
    return await client.api_keys.regenerate("some-key-id")


async def _rotate(client: NotifyClient) -> object:
    return await client.api_keys.rotate()


async def _enter(client: NotifyClient) -> object:
    return await client.__aenter__()


async def _close(client: NotifyClient) -> object:
    await client.close()
    return None


OPERATIONS: dict[str, Operation] = {
    "list": _list,
    "send": _send,
    "send_template": _send_template,
    "regenerate": _regenerate,
    "rotate": _rotate,
    "async with": _enter,
    "close": _close,
}


@pytest.fixture
def threaded_server() -> Iterator[LocalNotifyServer]:
    """A Notify server on its own loop in a thread, for tests that run loops of their own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="notify-server", daemon=True)
    thread.start()
    server = LocalNotifyServer()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        yield server
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# -- another loop ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_entry_point_used_on_a_second_loop_raises_a_clear_error(
    operation: str, threaded_server: LocalNotifyServer
) -> None:
    opened_on = asyncio.new_event_loop()
    client = NotifyClient(threaded_server.api_key, base_url=threaded_server.base_url)
    try:
        opened_on.run_until_complete(client.__aenter__())
        opened_on.run_until_complete(client.api_keys.list())

        async def use_on_another_loop() -> object:
            # Bounded, so that a hang fails the test instead of stalling the suite.
            return await asyncio.wait_for(OPERATIONS[operation](client), timeout=5)

        with pytest.raises(NotifyError, match="opened on another event loop") as caught:
            asyncio.run(use_on_another_loop())

        assert "create one client per event loop" in str(caught.value)
        # Nothing reached the server from the other loop, and the client still works
        # (and is still open) on its own loop.
        assert sum(threaded_server.request_counts.values()) == 1
        assert len(opened_on.run_until_complete(client.api_keys.list())) == 1
    finally:
        opened_on.run_until_complete(client.close())
        opened_on.close()


async def test_a_client_used_from_a_loop_in_a_worker_thread_raises_a_clear_error(
    notify_server: LocalNotifyServer,
) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        await client.api_keys.list()

        with pytest.raises(NotifyError, match="opened on another event loop"):
            await asyncio.to_thread(asyncio.run, client.api_keys.list())

        # The misuse changed nothing for the loop the client belongs to.
        assert len(await client.api_keys.list()) == 1
    assert notify_server.request_counts["GET /api_keys"] == 2


def test_a_client_made_outside_any_loop_belongs_to_the_first_loop_that_uses_it(
    threaded_server: LocalNotifyServer,
) -> None:
    # Constructing needs no loop (module level, a settings object); first use binds it.
    client = NotifyClient(threaded_server.api_key, base_url=threaded_server.base_url)

    async def use_and_close() -> int:
        async with client:
            return len(await client.api_keys.list())

    assert asyncio.run(use_and_close()) == 1
    # Closed, so a second loop is told that, not about loops.
    with pytest.raises(NotifyError, match="closed"):
        asyncio.run(_list(client))


# -- garbage collection ----------------------------------------------------------------------------


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
    made = _warnings_on_collection(lambda: NotifyClient("nk_never-used-key-0123456789"))
    assert made == []


async def test_a_closed_client_is_collected_silently(notify_server: LocalNotifyServer) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    async with client:
        await client.api_keys.list()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert caught == []


async def test_a_client_on_a_session_you_own_neither_closes_it_nor_warns(
    notify_server: LocalNotifyServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        client = NotifyClient(
            notify_server.api_key, base_url=notify_server.base_url, session=session
        )
        await client.api_keys.list()
        await client.close()
        assert not session.closed  # yours to close
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del client
            gc.collect()
        assert caught == []
        # It is still usable by the rest of your code.
        async with session.get(notify_server.control_url + "/state") as response:
            assert response.status == 200


# -- closing ---------------------------------------------------------------------------------------


async def test_closing_twice_is_fine(notify_server: LocalNotifyServer) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    async with client:
        await client.api_keys.list()
    await client.close()
    await client.close()


async def test_closing_a_client_that_was_never_used_is_fine() -> None:
    client = NotifyClient("nk_never-used-key-0123456789")
    await client.close()
    await client.close()


async def test_a_closed_client_says_so_when_used_again(notify_server: LocalNotifyServer) -> None:
    client = NotifyClient(notify_server.api_key, base_url=notify_server.base_url)
    async with client:
        pass

    with pytest.raises(NotifyError, match="closed; create a new one"):
        await client.api_keys.list()
    with pytest.raises(NotifyError, match="closed; create a new one"):
        await client.__aenter__()
    assert notify_server.request_counts["GET /api_keys"] == 0


async def test_closing_a_view_closes_nothing(notify_server: LocalNotifyServer) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        view = client.with_options(max_retries=0)
        await view.close()
        await view.close()
        assert len(await client.api_keys.list()) == 1
        assert len(await view.api_keys.list()) == 1
