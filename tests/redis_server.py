"""The worker process that the Redis provider tests drive.

The redis-server they run is ``notify_async.testing.RedisServer``; ``.ci/run`` installs the
binary when missing. Run as a script, this module is one worker of a fleet::

    python tests/redis_server.py BASE_URL REDIS_URL NAME

It opens a ``NotifyClient`` whose key comes from a ``RedisKeyProvider``, prints
``{"ready": prefix}``, then answers one JSON command per stdin line with one JSON line:

* ``{"cmd": "send", "count": n, "tag": t}``: send n emails at once; ``{"failures": [...]}``
* ``{"cmd": "rotate"}``: ``client.api_keys.rotate()``; ``{"prefix": p, "error": e}``
* ``{"cmd": "await_prefix", "prefix": p, "timeout": s}``: wait (without sending anything)
  until the client holds the key with that prefix; ``{"prefix": p}`` (the one it holds)
* ``{"cmd": "close"}``: close the client; ``{"pending_tasks": [...], "loads": n,
  "log": [...]}`` (tasks left running, provider loads, notify_async log records); then exit.

It does not import pytest, so that it starts quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

from notify_async import NotifyClient, NotifyError
from notify_async.contrib.redis import RedisKeyProvider

# -- the worker process ---------------------------------------------------------------------


class _Records(logging.Handler):
    """Keeps what the notify_async logger says, for the worker's final report."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


class _FleetWorker:
    """One worker: a client whose key comes from Redis, and the commands the test sends."""

    def __init__(self, base_url: str, redis_url: str, name: str) -> None:
        self.name = name
        self.records = _Records()
        self.key_changed = asyncio.Event()
        provider = RedisKeyProvider(redis_url, reconnect_delay=0.05, max_reconnect_delay=0.5)
        self.client = NotifyClient(
            credentials=provider, base_url=base_url, on_key_change=self._on_key_change
        )

    async def _on_key_change(self, prefix: str) -> None:
        self.key_changed.set()

    async def run(self) -> None:
        logger = logging.getLogger("notify_async")
        logger.addHandler(self.records)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        stdin = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin
        )
        try:
            await self.client.__aenter__()
            _reply({"ready": self.client.key_prefix})
            while line := await stdin.readline():
                command = json.loads(line)
                if command["cmd"] == "close":
                    _reply(await self.close())
                    return
                _reply(await getattr(self, command.pop("cmd"))(**command))
        finally:
            await self.client.close()
            transport.close()

    async def send(self, tag: str, count: int) -> dict[str, Any]:
        async def one(number: int) -> str | None:
            subject = f"{self.name}/{tag}/{number}"
            try:
                await self.client.emails.send(to="fleet@example.com", subject=subject, message="hi")
            except NotifyError as exc:
                return f"{subject}: {type(exc).__name__}: {exc}"
            return None

        results = await asyncio.gather(*(one(number) for number in range(count)))
        return {"failures": [result for result in results if result is not None]}

    async def rotate(self) -> dict[str, Any]:
        try:
            await self.client.api_keys.rotate()
        except NotifyError as exc:
            return {"prefix": None, "error": f"{type(exc).__name__}: {exc}"}
        return {"prefix": self.client.key_prefix, "error": None}

    async def await_prefix(self, prefix: str, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.client.key_prefix != prefix and loop.time() < deadline:
            self.key_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.key_changed.wait(), deadline - loop.time())
        return {"prefix": self.client.key_prefix}

    async def close(self) -> dict[str, Any]:
        await self.client.close()
        pending = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return {"pending_tasks": pending, "loads": self.client.key_loads, "log": self.records.lines}


def _reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(_FleetWorker(*sys.argv[1:4]).run())
