"""Small statistics and the request driver the benchmarks share."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable, Sequence


async def drive(call: Callable[[], Awaitable[object]], requests: int, concurrency: int) -> None:
    """Make ``requests`` calls from ``concurrency`` workers, each calling in a loop."""
    per_worker, extra = divmod(requests, concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    if concurrency == 1:
        await worker(requests)
        return
    await asyncio.gather(*(worker(per_worker + (i < extra)) for i in range(concurrency)))


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank), or NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]
