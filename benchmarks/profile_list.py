"""Profile ``api_keys.list`` at concurrency 50: NotifyClient against raw aiohttp.

``python -m benchmarks.profile_list [REQUESTS]`` runs each client under cProfile against a
server process, then prints the functions with the most own time, and the own time per
request grouped by package, side by side. The difference between the two columns is what
the client adds. cProfile inflates code that makes many small calls; the per-package
comparison is what to read, not the absolute numbers.

It then splits the overhead without a profiler: alternating rounds (as in the overhead
benchmark) of raw aiohttp, aiohttp called the way the client calls it, the client's
pipeline without models (``client.request``), and the full ``api_keys.list``. Each step's
difference to the one before is the cost of what that step adds.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

import aiohttp
from yarl import URL

from benchmarks._clients import NotifyVariant, RawAiohttp
from benchmarks._server import ServerProcess
from benchmarks._stats import drive, median
from notify_async import RetryPolicy

PACKAGES = (
    "notify_async",
    "aiohttp",
    "yarl",
    "multidict",
    "attr",
    "cattrs",
    "tenacity",
    "asyncio",
    "json",
    "datetime",
    "logging",
    "urllib",
)


def _package(filename: str) -> str:
    if filename.startswith("<") or filename == "~":
        return "builtins"
    parts = filename.replace("\\\\", "/").split("/")
    for package in PACKAGES:
        if package in parts or any(p.startswith(package + ".") for p in parts):
            return package
    return "other"


def _by_package(stats: pstats.Stats, requests: int) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, _, tottime, _, _) in raw.items():
        package = _package(filename)
        if package == "builtins" and "json" in name:
            package = "json"
        totals[package] += tottime / requests * 1e6
    return dict(totals)


async def _profile(requests: int) -> dict[str, pstats.Stats]:
    profiles = {}
    async with ServerProcess(keys=3) as server:
        for variant in (
            await NotifyVariant(server.base_url, server.api_key).open(),
            RawAiohttp(server.base_url, server.api_key),
        ):
            await drive(variant.list_keys, 2_000, 50)
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(variant.list_keys, requests, 50)
            profiler.disable()
            await variant.aclose()
            profiles[variant.name] = pstats.Stats(profiler, stream=io.StringIO())
    return profiles


async def _decompose(requests: int, rounds: int) -> dict[str, float]:
    async with ServerProcess(keys=3) as server:
        notify = await NotifyVariant(server.base_url, server.api_key).open()
        raw = RawAiohttp(server.base_url, server.api_key)
        # aiohttp called as the client calls it: a session default header, a timeout
        # object, allow_redirects=False, ssl=True, per-request headers, read + json.loads.
        mirror = aiohttp.ClientSession(headers={"User-Agent": "notify-async/bench"})
        url = URL(server.base_url + "/api_keys")
        timeout = aiohttp.ClientTimeout(total=30, connect=10)

        async def mirrored() -> object:
            async with mirror.request(
                "GET",
                url,
                json=None,
                headers={"x-api-key": server.api_key},
                timeout=timeout,
                allow_redirects=False,
                ssl=True,
            ) as response:
                status, body = response.status, await response.read()
            data = json.loads(body)
            if status != 200 or type(data) is not dict or data.get("success", True) is not True:
                raise RuntimeError("bad answer")
            return data

        async def pipeline() -> object:
            return await notify.client.request("GET", "/api_keys", policy=RetryPolicy.IDEMPOTENT)

        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("raw aiohttp, json.loads(read())", raw.list_keys),
            ("aiohttp called as notify-async calls it", mirrored),
            ("notify-async client.request (no models)", pipeline),
            ("notify-async api_keys.list", notify.list_keys),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in steps}
        for _, call in steps:
            await drive(call, 2_000, 50)
        for number in range(rounds):
            shift = number % len(steps)
            for name, call in steps[shift:] + steps[:shift]:
                await drive(call, 100, 50)
                gc.collect()
                cpu = time.process_time()
                await drive(call, requests, 50)
                samples[name].append((time.process_time() - cpu) / requests * 1e6)
        await mirror.close()
        await raw.aclose()
        await notify.aclose()
    return {name: median(values) for name, values in samples.items()}


def main() -> None:
    """Profile both clients and print the comparison."""
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    profiles = asyncio.run(_profile(requests))
    for name, stats in profiles.items():
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(25)
        print(f"## {name}: top functions by own time ({requests:,} requests)\n")
        print(out.getvalue())
    columns = {name: _by_package(stats, requests) for name, stats in profiles.items()}
    names = list(columns)
    print("## Own time per request by package (µs, under cProfile)\n")
    print(f"| package | {' | '.join(names)} | difference |")
    print("| --- |" + " ---: |" * (len(names) + 1))
    packages = sorted(
        {p for column in columns.values() for p in column},
        key=lambda p: -max(column.get(p, 0.0) for column in columns.values()),
    )
    for package in [*packages, "total"]:
        values = [
            sum(column.values()) if package == "total" else column.get(package, 0.0)
            for column in columns.values()
        ]
        cells = " | ".join(f"{v:.1f}" for v in values)
        print(f"| {package} | {cells} | {values[0] - values[-1]:+.1f} |")


def decompose() -> None:
    """Print the per-step split of the overhead, without a profiler."""
    rounds = 15
    steps = asyncio.run(_decompose(2_000, rounds))
    print(f"\n## CPU per request at concurrency 50, median of {rounds} rounds (no profiler)\n")
    print("| step | CPU per request | added by this step |")
    print("| --- | ---: | ---: |")
    previous = None
    for name, value in steps.items():
        added = "" if previous is None else f"{value - previous:+.1f} µs"
        print(f"| {name} | {value:.1f} µs | {added} |")
        previous = value


if __name__ == "__main__":
    main()
    decompose()
