"""The rotation storm: 1,000 requests in flight while another process rotates the key.

This module is the one implementation of the storm: ``fire`` starts the requests and has the
rotation happen, and ``benchmarks/redis_storm.py`` runs it with other providers.

One ``NotifyClient`` reads its key from a file (``FileKeyProvider``), as a fleet sharing
a secret mount does. Half of the requests list the keys, half send an email. Once the
first 100 have completed, a child process (``benchmarks._rotator``) rotates the key and
the file is rewritten atomically; the old key is rejected from that moment on.

A request counts as *affected* when it received a 401 and was replayed: an aiohttp trace
hook marks it through a context variable, since each request runs in its own task.

``run_overlapping`` is the overlapping-rotations case: 2,000 requests, and the operator
rotates three times while they run (after 100, 150 and 200 have completed), so that a
rotation lands while the client still recovers from the one before. Target: 0 failures
and at most 4 provider loads.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from benchmarks._server import ServerProcess
from benchmarks._stats import drive, percentile
from notify_async import FileKeyProvider, NotifyClient

REQUESTS = 1_000
ROTATE_AFTER = 100
OVERLAPPING_REQUESTS = 2_000
OVERLAPPING_ROTATE_AFTER = (100, 150, 200)


class _Outcome:
    __slots__ = ("end", "saw_401", "start")

    def __init__(self) -> None:
        self.start = 0.0
        self.end = 0.0
        self.saw_401 = False


_current: contextvars.ContextVar[_Outcome | None] = contextvars.ContextVar(
    "storm_outcome", default=None
)


async def _on_request_end(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    outcome = _current.get()
    if outcome is not None and params.response.status == 401:
        outcome.saw_401 = True


def trace_config() -> aiohttp.TraceConfig:
    """Tracing that marks a request of ``fire`` as affected when it got a 401."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    return trace


async def run(
    *, repeats: int, modes: tuple[str, ...] = ("operator", "worker")
) -> list[dict[str, Any]]:
    """Run ``repeats`` storms per rotation mode; return what each measured."""
    results = []
    with tempfile.TemporaryDirectory(prefix="notify-bench-") as folder:
        for mode in modes:
            key_file = Path(folder) / f"{mode}.key"
            async with ServerProcess(keys=3, key_file=key_file) as server:
                for number in range(1, repeats + 1):
                    result = await _storm(mode, server, key_file)
                    results.append({"run": number, **result})
    return results


async def _storm(mode: str, server: ServerProcess, key_file: Path) -> dict[str, Any]:
    assert server.control is not None
    session = aiohttp.ClientSession(trace_configs=[trace_config()])
    client = NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=server.base_url, session=session
    )
    rotator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks._rotator",
        mode,
        server.base_url,
        server.control_url,
        str(key_file),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert rotator.stdout is not None
    try:
        async with client:
            # Fill the pool and load the key before the storm: the storm measures the reload.
            await drive(client.api_keys.list, 200, 50)
            assert (await rotator.stdout.readline()).strip() == b"ready"
            await server.control.reset()
            loads_before = client.key_loads
            measured = await fire(client, tell(rotator))
            loads = client.key_loads - loads_before
        rotation = json.loads(await rotator.stdout.readline())
        state = await server.control.state(include_emails=False)
    finally:
        await session.close()
        if rotator.returncode is None:
            await rotator.wait()
    return {
        "mode": mode,
        "requests": REQUESTS,
        "provider_loads": loads,
        **measured,
        "absorbed_401s": state["auth_failures"],
        "emails_recorded": state["emails_count"],
        "rotation_ms": rotation["rotation_ms"],
    }


async def fire(client: NotifyClient, go: Callable[[], Awaitable[object]] | None) -> dict[str, Any]:
    """Start REQUESTS at once (half list, half send); call ``go`` after ROTATE_AFTER are done.

    ``go`` tells whoever rotates to rotate now; without it, the rotation happened before.
    The client's session must trace with ``trace_config()`` for *affected* to be counted.
    """
    outcomes = [_Outcome() for _ in range(REQUESTS)]
    done = 0
    enough_done = asyncio.Event()

    async def one(index: int, outcome: _Outcome) -> None:
        nonlocal done
        _current.set(outcome)
        outcome.start = time.perf_counter()
        try:
            if index % 2:
                await client.emails.send(
                    to="ada@example.com", subject="Storm", message=f"request {index}"
                )
            else:
                await client.api_keys.list()
        finally:
            outcome.end = time.perf_counter()
            done += 1
            if done == ROTATE_AFTER:
                enough_done.set()

    started = time.perf_counter()
    tasks = [asyncio.create_task(one(i, o)) for i, o in enumerate(outcomes)]
    rotation_requested = started
    if go is not None:
        await enough_done.wait()
        rotation_requested = time.perf_counter()
        await go()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    finished = time.perf_counter()

    failures = [r for r in results if isinstance(r, BaseException)]
    affected = [(o.end - o.start) * 1e3 for o in outcomes if o.saw_401]
    others = [(o.end - o.start) * 1e3 for o in outcomes if not o.saw_401]
    return {
        "in_flight_at_rotation": sum(1 for o in outcomes if o.end >= rotation_requested),
        "failed_requests": len(failures),
        "failure_types": sorted({type(f).__name__ for f in failures}),
        "sends_succeeded": sum(
            1 for i, r in enumerate(results) if i % 2 and not isinstance(r, BaseException)
        ),
        "affected_requests": len(affected),
        "affected_p50_ms": percentile(affected, 0.50),
        "affected_p99_ms": percentile(affected, 0.99),
        "unaffected_p50_ms": percentile(others, 0.50),
        "unaffected_p99_ms": percentile(others, 0.99),
        "storm_ms": (finished - started) * 1e3,
    }


def tell(rotator: asyncio.subprocess.Process) -> Callable[[], Awaitable[None]]:
    """A ``go`` for ``fire``: one line on the rotator process's stdin."""

    async def go() -> None:
        assert rotator.stdin is not None
        rotator.stdin.write(b"go\n")
        await rotator.stdin.drain()

    return go


async def run_overlapping(*, repeats: int) -> list[dict[str, Any]]:
    """Three operator rotations during 2,000 requests; failures, loads, p99 latency."""
    results = []
    with tempfile.TemporaryDirectory(prefix="notify-bench-") as folder:
        key_file = Path(folder) / "overlapping.key"
        async with ServerProcess(keys=3, key_file=key_file) as server:
            results.extend(
                [{"run": n, **await _overlapping(server, key_file)} for n in range(1, repeats + 1)]
            )
    return results


async def _overlapping(server: ServerProcess, key_file: Path) -> dict[str, Any]:
    control = server.control
    async with NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=server.base_url
    ) as client:
        await drive(client.api_keys.list, 200, 50)  # the pool is full, the key loaded
        await control.reset()
        loads_before = client.key_loads
        done = 0
        rotations: list[asyncio.Task[object]] = []
        latencies: list[float] = []

        async def one(index: int) -> None:
            nonlocal done
            started = time.perf_counter()
            try:
                if index % 2:
                    await client.emails.send(to="ada@example.com", subject="Storm", message="hi")
                else:
                    await client.api_keys.list()
            finally:
                latencies.append((time.perf_counter() - started) * 1e3)
                done += 1
                if done in OVERLAPPING_ROTATE_AFTER:
                    # The server rotates and rewrites the key file in one step.
                    rotations.append(asyncio.ensure_future(control.rotate()))

        tasks = [asyncio.create_task(one(i)) for i in range(OVERLAPPING_REQUESTS)]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*rotations)
        loads = client.key_loads - loads_before
    state = await control.state(include_emails=False)
    failures = [r for r in outcomes if isinstance(r, BaseException)]
    return {
        "requests": OVERLAPPING_REQUESTS,
        "rotations": len(rotations),
        "failed_requests": len(failures),
        "failure_types": sorted({type(f).__name__ for f in failures}),
        "provider_loads": loads,
        "absorbed_401s": state["auth_failures"],
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
    }
