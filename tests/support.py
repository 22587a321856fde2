"""Helpers shared by several test modules (imported as ``support``; tests/ is on sys.path).

* the routes the local server counts, and ``call`` to make the client call for one;
* ``leaks``: whether a text shows more of a key than its redacted prefix;
* ``wait_until``: poll a condition the test cannot await directly;
* ``free_port`` and ``closed_port_url``: a loopback port nothing listens on;
* ``subprocess_env``, ``start_python`` and ``stop``: child processes that import this checkout.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import notify_async
from notify_async import NotifyClient
from notify_async.testing import LocalNotifyServer

LIST = "GET /api_keys"
REGENERATE = "POST /api_keys/regenerate"
SEND = "POST /send-email"
TEMPLATE = "POST /send-email-from-template"

PROJECT_ROOT = Path(notify_async.__file__).resolve().parents[1]
"""The checkout the tests import ``notify_async`` from."""


def leaks(text: str, key: str, *, shown: int = 8) -> bool:
    """Whether ``text`` shows more of ``key`` than its first ``shown`` characters."""
    window = shown + 1
    return any(key[i : i + window] in text for i in range(len(key) - window + 1))


async def call(client: NotifyClient, route: str, server: LocalNotifyServer) -> object:
    """Make the client call that goes to ``route``."""
    if route == LIST:
        return await client.api_keys.list()
    if route == REGENERATE:
        return await client.api_keys.regenerate(server.keys[-1].id)
    if route == SEND:
        return await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
    return await client.emails.send_template(template_id="welcome", to="ada@example.com")


# -- waiting for what the test cannot await ----------------------------------------------------


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 10.0
) -> None:
    """Poll ``condition()`` (sync or async) until it is true; fail after ``timeout`` seconds.

    For state that changes in another task, thread or process (a server finishing a request
    the client gave up on, a subscription coming back). The timeout only stops a hang: the
    test asserts what happened, never how long it took.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, f"still not true after {timeout:g}s: {condition!r}"
        await asyncio.sleep(0.01)


# -- ports ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on: bound, noted and released, so connects are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def closed_port_url() -> str:
    """A Notify base URL on 127.0.0.1 where every connection is refused."""
    return f"http://127.0.0.1:{free_port()}/api/public/v1"


# -- child processes -----------------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """This process's environment, with this checkout first on ``PYTHONPATH``.

    Read when called, so that a child sees the environment as the test set it up (the shell's
    key, base URL and proxies already removed by ``conftest.py``), wherever pytest started.
    """
    path = [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


async def start_python(*args: str) -> asyncio.subprocess.Process:
    """Start ``python -W error ARGS`` with pipes on stdin, stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )


async def stop(process: asyncio.subprocess.Process, *, timeout: float = 30) -> bytes:
    """End a process this test started (SIGTERM if still running); return its stderr."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    return stderr
