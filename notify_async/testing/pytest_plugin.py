"""The ``notify_server`` pytest fixture: a started ``LocalNotifyServer`` per test.

Enable it in a ``conftest.py`` (it needs pytest-asyncio)::

    pytest_plugins = ["notify_async.testing.pytest_plugin"]

and use it in async tests::

    async def test_send(notify_server: LocalNotifyServer) -> None:
        ...  # talk to notify_server.base_url with notify_server.api_key
        assert len(notify_server.emails) == 1
"""

from __future__ import annotations

__all__ = ["notify_server"]

from collections.abc import AsyncIterator

import pytest_asyncio

from notify_async.testing._server import LocalNotifyServer


@pytest_asyncio.fixture
async def notify_server() -> AsyncIterator[LocalNotifyServer]:
    """Yield a started ``LocalNotifyServer`` with one key on an ephemeral port; close it after."""
    async with LocalNotifyServer() as server:
        yield server
