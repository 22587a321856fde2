"""The rotation storm with a Redis-backed key: ``RedisKeyProvider`` next to ``FileKeyProvider``.

``python -m benchmarks.redis_storm [--repeats N] [--json PATH]`` prints a Markdown table.
Each run has one ``NotifyClient`` (the worker under test) and a second process, another
worker of the fleet, that calls ``api_keys.rotate()`` with the same kind of provider: it
stores the new key in the shared file, or in Redis, which announces it. Two shapes:

* ``in flight``: the storm of ``benchmarks/storm.py``. 1,000 requests start at once and the
  other worker rotates once 100 have completed. Requests that already hold the old key
  (most of them: they wait for one of the pool's 100 connections) get a 401 whatever the
  provider; the Redis push only spares those that start after it lands.
* ``after``: the other worker rotates while this one is idle, then 1,000 requests start at
  once. With a file, every one of them carries the old key and is rejected once; with
  Redis the new key was pushed before the first request, and the target is **0** 401s.

"401s absorbed" is what the local Notify server (its own process) counted: rejected
requests that the client replayed. "Switch" is the time from the rotator adopting the new
key to this client adopting it (``time.monotonic`` is shared by processes on Linux).
The Redis variant needs ``redis-server`` on the PATH and is skipped without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from benchmarks._server import ServerProcess
from benchmarks._stats import drive, median, percentile
from notify_async import CredentialProvider, FileKeyProvider, NotifyClient
from notify_async.contrib.redis import RedisKeyProvider

REQUESTS = 1_000
ROTATE_AFTER = 100
SHAPES = ("in flight", "after")

_saw_401: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "redis_storm_saw_401", default=None
)


class RedisProcess:
    """``redis-server`` on a free port of 127.0.0.1, without persistence."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._ready():
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


def _provider(kind: str, key_file: str, redis_url: str) -> CredentialProvider:
    if kind == "redis":
        return RedisKeyProvider(redis_url)
    return FileKeyProvider(key_file)


async def run(*, repeats: int) -> list[dict[str, Any]]:
    """Run ``repeats`` storms per provider and shape, alternating; return one row per run."""
    kinds = ["file", "redis"] if shutil.which("redis-server") else ["file"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="notify-redis-bench-") as folder:
        redis = RedisProcess(Path(folder)) if "redis" in kinds else None
        try:
            async with contextlib.AsyncExitStack() as stack:
                # A server per provider: each rotation must reach only that provider's store.
                servers: dict[str, tuple[ServerProcess, str]] = {}
                for kind in kinds:
                    path = Path(folder) / f"{kind}.key"
                    server = await stack.enter_async_context(ServerProcess(keys=3, key_file=path))
                    servers[kind] = (server, str(path))
                redis_url = redis.url if redis is not None else ""
                if redis is not None:
                    await RedisKeyProvider(redis_url).store(servers["redis"][0].api_key)
                for number in range(1, repeats + 1):
                    for shape in SHAPES:
                        for kind, (server, key_file) in servers.items():
                            print(f"  {kind}, {shape}, run {number}", file=sys.stderr, flush=True)
                            result = await _storm(kind, shape, server, key_file, redis_url)
                            rows.append({"run": number, **result})
        finally:
            if redis is not None:
                redis.stop()
    return rows


async def _storm(
    kind: str, shape: str, server: ServerProcess, key_file: str, redis_url: str
) -> dict[str, Any]:
    assert server.control is not None
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    session = aiohttp.ClientSession(trace_configs=[trace])
    switched_at: list[float] = []

    async def on_key_change(prefix: str) -> None:
        switched_at.append(time.monotonic())

    client = NotifyClient(
        credentials=_provider(kind, key_file, redis_url),
        base_url=server.base_url,
        session=session,
        on_key_change=on_key_change,
    )
    rotator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.redis_storm",
        "--rotator",
        kind,
        server.base_url,
        key_file,
        redis_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert rotator.stdin is not None
    assert rotator.stdout is not None
    try:
        async with client:
            await drive(client.api_keys.list, 200, 50)  # the pool is full, the key loaded
            assert (await rotator.stdout.readline()).strip() == b"ready"
            await server.control.reset()
            loads_before = client.key_loads
            if shape == "after":
                rotator.stdin.write(b"go\n")
                await rotator.stdin.drain()
                rotation = json.loads(await rotator.stdout.readline())
                measured = await _fire(client, None)
            else:
                measured = await _fire(client, rotator.stdin)
                rotation = json.loads(await rotator.stdout.readline())
            loads = client.key_loads - loads_before
        state = await server.control.state(include_emails=False)
    except BaseException:
        # The rotator may still be waiting for its "go": it must not outlive a failed run.
        if rotator.returncode is None:
            rotator.kill()
        raise
    finally:
        await session.close()
        await rotator.wait()
    return {
        "provider": kind,
        "shape": shape,
        "requests": REQUESTS,
        "absorbed_401s": state["auth_failures"],
        "provider_loads": loads,
        **measured,
        "switch_ms": (switched_at[-1] - rotation["adopted_at"]) * 1e3 if switched_at else None,
        "emails_recorded": state["emails_count"],
    }


async def _on_request_end(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    marker = _saw_401.get()
    if marker is not None and params.response.status == 401:
        marker[0] = True


async def _fire(client: NotifyClient, go: asyncio.StreamWriter | None) -> dict[str, Any]:
    """Send REQUESTS at once (half list, half send); tell the rotator to go after 100."""
    done = 0
    enough_done = asyncio.Event()
    latencies: list[tuple[float, bool]] = []

    async def one(index: int) -> None:
        nonlocal done
        marker = [False]
        _saw_401.set(marker)
        started = time.perf_counter()
        try:
            if index % 2:
                await client.emails.send(to="ada@example.com", subject="Storm", message="hi")
            else:
                await client.api_keys.list()
        finally:
            latencies.append(((time.perf_counter() - started) * 1e3, marker[0]))
            done += 1
            if done == ROTATE_AFTER:
                enough_done.set()

    tasks = [asyncio.create_task(one(index)) for index in range(REQUESTS)]
    if go is not None:
        await enough_done.wait()
        go.write(b"go\n")
        await go.drain()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    affected = [ms for ms, saw_401 in latencies if saw_401]
    return {
        "failed_requests": sum(isinstance(result, BaseException) for result in results),
        "affected_requests": len(affected),
        "affected_p50_ms": percentile(affected, 0.50),
        "affected_p99_ms": percentile(affected, 0.99),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per provider and shape: medians over the runs, and the worst run."""
    lines = [
        "| Provider | Shape | Runs | 401s absorbed, median (max) | Provider loads "
        "| Failed | Affected p50 / p99 | Key switch after the rotation |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for shape in SHAPES:
        for kind in dict.fromkeys(row["provider"] for row in rows):
            runs = [row for row in rows if row["provider"] == kind and row["shape"] == shape]
            if not runs:
                continue
            absorbed = [row["absorbed_401s"] for row in runs]
            switches = [row["switch_ms"] for row in runs if row["switch_ms"] is not None]
            p50 = median([row["affected_p50_ms"] for row in runs])
            p99 = median([row["affected_p99_ms"] for row in runs])
            affected = "none" if math.isnan(p50) else f"{p50:.1f} / {p99:.1f} ms"
            name = "`RedisKeyProvider`" if kind == "redis" else "`FileKeyProvider`"
            lines.append(
                f"| {name} | {shape} | {len(runs)} "
                f"| {median(absorbed):g} ({max(absorbed)}) "
                f"| {', '.join(str(row['provider_loads']) for row in runs)} "
                f"| {sum(row['failed_requests'] for row in runs)} | {affected} "
                f"| {median(switches):.1f} ms |"
            )
    return "\n".join(lines)


async def _rotator(kind: str, base_url: str, key_file: str, redis_url: str) -> None:
    """The other worker: get ready, wait for a line on stdin, rotate, report the time."""
    adopted_at: list[float] = []

    async def on_key_change(prefix: str) -> None:
        adopted_at.append(time.monotonic())

    loop = asyncio.get_running_loop()
    provider = _provider(kind, key_file, redis_url)
    async with NotifyClient(
        credentials=provider, base_url=base_url, on_key_change=on_key_change
    ) as client:
        await client.api_keys.list()  # learn our key's id now: the rotation is regenerate+store
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        await client.api_keys.rotate()
        took = (time.perf_counter() - started) * 1e3
    print(json.dumps({"adopted_at": adopted_at[0], "rotation_ms": took}), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the Redis storm (or, with ``--rotator``, be its rotating worker)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--rotator":
        asyncio.run(_rotator(*argv[1:5]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_storm")
    parser.add_argument("--repeats", type=int, default=3, help="runs per provider and shape")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    if not shutil.which("redis-server"):
        print("redis-server is not installed: measuring the file provider only", file=sys.stderr)
    rows = asyncio.run(run(repeats=args.repeats))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
