"""Event-loop misuse fails clearly: a client belongs to the loop it was opened on.

Used from another loop (a second ``asyncio.run``, a loop in a worker thread), every entry
point raises ``NotifyError`` saying so, at once, instead of hanging or surfacing aiohttp's
"attached to a different loop". Closing, and collecting an unclosed client, are in
``test_closing.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

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
