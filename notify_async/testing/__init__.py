"""A local Notify server for tests, demos and benchmarks, and helpers to drive it.

``LocalNotifyServer`` is a real HTTP server on 127.0.0.1 that answers like the Notify API,
records what it accepted and misbehaves on request::

    from notify_async.testing import Fault, LocalNotifyServer

    async def test_send_survives_a_503() -> None:
        async with LocalNotifyServer() as server:
            server.inject("POST /send-email", Fault.status(503, headers={"Retry-After": "0"}))
            ...  # point the code under test at server.base_url with server.api_key
            assert server.request_counts["POST /send-email"] == 2
            assert [email.to for email in server.emails] == ["ada@example.com"]

With pytest, ``pytest_plugins = ["notify_async.testing.pytest_plugin"]`` provides the
``notify_server`` fixture; ``instant_retries`` makes the client's retry waits zero.
``python -m notify_async.testing`` runs the server in its own process (``ServerProcess``
starts and stops it from Python), and ``ControlClient`` drives it from another one.
``RedisServer`` runs a real ``redis-server`` for code that uses ``RedisKeyProvider``.
See ``docs/testing.md``.
"""

from notify_async._retry import instant_retries
from notify_async.testing._process import ServerProcess
from notify_async.testing._redis import RedisServer
from notify_async.testing._server import (
    ROUTES,
    AcceptedEmail,
    ControlClient,
    Fault,
    LocalNotifyServer,
    StoredKey,
)

__all__ = [
    "ROUTES",
    "AcceptedEmail",
    "ControlClient",
    "Fault",
    "LocalNotifyServer",
    "RedisServer",
    "ServerProcess",
    "StoredKey",
    "instant_retries",
]
