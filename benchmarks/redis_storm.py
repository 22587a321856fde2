"""The rotation storm with a Redis-backed key: ``RedisKeyProvider`` next to ``FileKeyProvider``.

``python -m benchmarks.redis_storm [--repeats N] [--json PATH]`` prints a Markdown table.
Each run has one ``NotifyClient`` (the worker under test) and a second process, another
worker of the fleet, that calls ``api_keys.rotate()`` with the same kind of provider: it
stores the new key in the shared file, or in Redis, which announces it. Two shapes:

* ``in flight``: the storm of ``benchmarks/storm.py`` (its ``fire``). 1,000 requests start
  at once and the other worker rotates once 100 have completed. Requests that already
  hold the old key (most of them: they wait for one of the pool's 100 connections) get a
  401 whatever the provider; the Redis push only spares those that start after it lands.
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
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import storm
from benchmarks._server import ServerProcess
from benchmarks._stats import drive, median
from notify_async import CredentialProvider, FileKeyProvider, NotifyClient
from notify_async.contrib.redis import RedisKeyProvider
from notify_async.testing import RedisServer

SHAPES = ("in flight", "after")


def _provider(kind: str, key_file: str, redis_url: str) -> CredentialProvider:
    if kind == "redis":
        return RedisKeyProvider(redis_url)
    return FileKeyProvider(key_file)


async def run(*, repeats: int) -> list[dict[str, Any]]:
    """Run ``repeats`` storms per provider and shape, alternating; return one row per run."""
    kinds = ["file", "redis"] if shutil.which("redis-server") else ["file"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="notify-redis-bench-") as folder:
        redis = RedisServer(Path(folder)) if "redis" in kinds else None
        if redis is not None:
            redis.start()
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
    session = aiohttp.ClientSession(trace_configs=[storm.trace_config()])
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
                await storm.tell(rotator)()
                rotation = json.loads(await rotator.stdout.readline())
                measured = await storm.fire(client, None)
            else:
                measured = await storm.fire(client, storm.tell(rotator))
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
        "requests": storm.REQUESTS,
        "absorbed_401s": state["auth_failures"],
        "provider_loads": loads,
        **measured,
        "switch_ms": (switched_at[-1] - rotation["adopted_at"]) * 1e3 if switched_at else None,
        "emails_recorded": state["emails_count"],
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
