"""Helpers shared by several test modules (imported as ``support``; tests/ is on sys.path).

* the routes the local server counts, and ``call`` to make the client call for one;
* ``leaks``: whether a text shows more of a key than its redacted prefix;
* ``error_texts``: everything an error shows, its whole chain included;
* ``CountingProvider``: a writable provider in memory that counts loads and stores;
* ``wait_until``: poll a condition the test cannot await directly;
* ``free_port`` and ``closed_port_url``: a loopback port nothing listens on;
* ``subprocess_env`` and ``start_python``: child processes that import this checkout;
* ``Worker``, ``running`` and ``everyone``: such children driven with one JSON command per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

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


# -- everything an error shows -------------------------------------------------------------------


def _public_attributes(obj: object) -> Iterator[tuple[str, object]]:
    names = set(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        names.update(getattr(cls, "__slots__", ()))
    names.update(name for name in dir(obj) if not name.startswith("_"))
    for name in sorted(names):
        if name in ("args", "with_traceback", "add_note") or name.startswith("__"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: S112 - a property that cannot be read shows nothing
            continue
        if not callable(value) or isinstance(value, BaseException):
            yield name, value


def error_texts(error: BaseException, seen: set[int] | None = None) -> Iterator[tuple[str, str]]:
    """Everything an error shows: str, repr, args, notes, attributes, and its whole chain.

    Text attributes are also given as text (a ``bytes`` body decoded), and mappings (the
    headers) as their items, so that a check reads them the way a person would.
    """
    seen = set() if seen is None else seen
    if id(error) in seen:
        return
    seen.add(id(error))
    name = type(error).__name__
    yield f"str({name})", str(error)
    yield f"repr({name})", repr(error)
    yield f"{name}.args", repr(error.args)
    for note in getattr(error, "__notes__", ()):
        yield f"{name} note", str(note)
    for attribute, value in _public_attributes(error):
        yield f"{name}.{attribute}", repr(value)
        if isinstance(value, bytes):
            yield f"{name}.{attribute} as text", value.decode("utf-8", "replace")
        elif isinstance(value, str):
            yield f"{name}.{attribute} as text", value
        elif isinstance(value, Mapping):
            yield f"{name}.{attribute} items", " ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, BaseException):
            yield from error_texts(value, seen)
    for link, linked in (("__cause__", error.__cause__), ("__context__", error.__context__)):
        if linked is not None:
            yield f"{name}.{link}", repr(linked)
            yield from error_texts(linked, seen)


# -- providers whose key the test controls ------------------------------------------------------


class CountingProvider:
    """A writable provider whose key the test controls; it counts loads and records stores."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.loads = 0
        self.stored: list[str] = []

    async def load(self) -> str:
        self.loads += 1
        return self.key

    async def store(self, key: str) -> None:
        self.stored.append(key)
        self.key = key


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


class Worker:
    """A child process that reads one JSON command per line and answers each with one line.

    The child prints ``{"ready": ...}`` once it can take commands, and exits after answering
    ``{"cmd": "close"}``. Commands are ``{"cmd": NAME, **arguments}``.
    """

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process

    @classmethod
    async def start(cls, name: str, *args: str) -> Worker:
        """Start ``python -W error ARGS`` and wait until it says it is ready."""
        worker = cls(name, await start_python(*args))
        assert "ready" in await worker.read()
        return worker

    async def write(self, cmd: str, **args: object) -> None:
        """Send one command without waiting for its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self.process.stdin.drain()

    async def read(self) -> dict[str, Any]:
        """The next answer; fails with the child's stderr if it exited instead."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"worker {self.name} exited: {stderr.decode()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def ask(self, cmd: str, **args: object) -> dict[str, Any]:
        """Send one command and return its answer."""
        await self.write(cmd, **args)
        return await self.read()

    async def close(self) -> dict[str, Any]:
        """Ask the child to close; return its report once it exited cleanly and silently."""
        report = await self.ask("close")
        _, stderr = await asyncio.wait_for(self.process.communicate(), timeout=30)
        assert self.process.returncode == 0, stderr.decode()
        assert stderr == b"", stderr.decode()
        return report

    def kill(self) -> None:
        """Kill the child if it is still running (a failed test's clean-up)."""
        if self.process.returncode is None:
            self.process.kill()


@contextlib.asynccontextmanager
async def running(*starting: Awaitable[Worker]) -> AsyncIterator[list[Worker]]:
    """Start workers together; on the way out, kill any that were not closed."""
    workers = list(await asyncio.gather(*starting))
    try:
        yield workers
    finally:
        for worker in workers:
            worker.kill()
            if worker.process.returncode is None:
                await worker.process.wait()


async def everyone(workers: list[Worker], cmd: str, **args: object) -> list[dict[str, Any]]:
    """Send one command to every worker at once and collect the answers, in order."""
    return list(await asyncio.gather(*(worker.ask(cmd, **args) for worker in workers)))
