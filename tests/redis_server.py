"""A real redis-server for the Redis provider tests, and the worker process they drive.

``RedisServer`` runs ``redis-server`` on a free port of 127.0.0.1 with persistence off, and
can stop and restart it on the same port. ``.ci/run`` installs the binary when missing.

Run as a script, this module is one worker of a fleet::

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
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from notify_async import NotifyClient, NotifyError
from notify_async.contrib.redis import RedisKeyProvider


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, without persistence, that can restart."""

    def __init__(self, directory: Path, binary: str = "redis-server") -> None:
        self.directory = directory
        self.binary = binary
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL a client connects with."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        log = (self.directory / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while not self._answers_ping():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.directory / 'redis.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it; its data is gone."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)

    def restart(self) -> None:
        """Stop the server and start a new, empty one on the same port."""
        self.stop()
        self.start()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


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
