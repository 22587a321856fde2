"""What a failure costs: a 503 with ``Retry-After: 0`` and then success, against success.

One ``NotifyClient``, one call at a time. Before each failing call a 503 is queued on the
route through the control API (not timed); the call then retries at once and succeeds.
Failing and plain calls alternate. Wall time and client CPU are per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._server import ServerProcess
from benchmarks._stats import median, percentile
from notify_async import NotifyClient
from notify_async.testing import Fault

_503 = Fault.status(503, headers={"Retry-After": "0"})


async def run(*, repeats: int) -> list[dict[str, Any]]:
    """Time ``repeats`` failing and ``repeats`` plain calls for list and for send."""
    # Each retry logs a warning; a handler keeps the records (and their cost) off stderr.
    logging.getLogger("notify_async").addHandler(logging.NullHandler())
    results = []
    async with ServerProcess(keys=3) as server:
        control = server.control
        assert control is not None
        async with NotifyClient(api_key=server.api_key, base_url=server.base_url) as client:

            async def send() -> object:
                return await client.emails.send(to="ada@example.com", subject="S", message="M")

            calls: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
                ("list", "GET /api_keys", client.api_keys.list),
                ("send", "POST /send-email", send),
            ]
            for name, route, call in calls:
                for _ in range(20):  # warm: connections, tenacity's first use
                    await control.inject(route, _503)
                    await call()
                timings: dict[str, list[tuple[float, float]]] = {"503_then_ok": [], "ok": []}
                for _ in range(repeats):
                    for kind, pairs in timings.items():
                        if kind == "503_then_ok":
                            await control.inject(route, _503)
                        cpu, wall = time.process_time(), time.perf_counter()
                        await call()
                        pairs.append((time.perf_counter() - wall, time.process_time() - cpu))
                state = await control.state(include_emails=False)
                await control.reset()
                results.append(_summary(name, timings, state["pending_faults"][route]))
    return results


def _summary(
    name: str, timings: dict[str, list[tuple[float, float]]], pending: int
) -> dict[str, Any]:
    summary: dict[str, Any] = {"call": name, "faults_left_unused": pending}
    for kind, pairs in timings.items():
        walls = [wall * 1e6 for wall, _ in pairs]
        summary[kind] = {
            "wall_p50_us": median(walls),
            "wall_p99_us": percentile(walls, 0.99),
            "cpu_us": median([cpu * 1e6 for _, cpu in pairs]),
        }
    summary["extra_wall_us"] = summary["503_then_ok"]["wall_p50_us"] - summary["ok"]["wall_p50_us"]
    return summary
