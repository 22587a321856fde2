"""RSS of one long-lived client after 1,000 requests and after 100,000.

The calls alternate in chunks of 1,000: a chunk of lists, then a chunk of sends (the
server's email log is cleared after each send chunk). ``gc.collect()`` runs before each
reading, so what remains is what the client holds on to. The run stops early, and says
so, if it would not fit its time budget.

It runs in a process of its own (``python -m benchmarks.memory TARGET BUDGET`` prints one
JSON line), so that the RSS is that of a process holding one client, and not of the
benchmark runner with matplotlib and httpx loaded.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
import time
from typing import Any

from benchmarks._server import ServerProcess
from benchmarks._stats import drive
from notify_async import NotifyClient

CHUNK = 1_000
CONCURRENCY = 50


def _rss_mb() -> float:
    """The resident set size now (Linux), else the peak so far (which also shows growth)."""
    gc.collect()
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in KiB on Linux and in bytes on macOS.
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


async def run(*, target: int, budget_s: float) -> dict[str, Any]:
    """Make up to ``target`` requests on one client; report RSS along the way."""
    async with ServerProcess(keys=3) as server:
        assert server.control is not None
        async with NotifyClient(api_key=server.api_key, base_url=server.base_url) as client:
            rss_open = _rss_mb()
            started = time.perf_counter()
            made = 0
            samples: list[dict[str, float]] = []
            rss_1k = 0.0
            while made < target:
                if made and time.perf_counter() - started > budget_s:
                    break
                if (made // CHUNK) % 2 == 0:
                    await drive(client.api_keys.list, CHUNK, CONCURRENCY)
                else:
                    await drive(_send(client), CHUNK, CONCURRENCY)
                    await server.control.reset()
                made += CHUNK
                if made == CHUNK or made % (target // 10 or CHUNK) == 0 or made >= target:
                    rss = _rss_mb()
                    if made == CHUNK:
                        rss_1k = rss
                    samples.append({"requests": made, "rss_mb": rss})
            elapsed = time.perf_counter() - started
            rss_end = _rss_mb()
    return {
        "target_requests": target,
        "requests": made,
        "cut_short": made < target,
        "budget_s": budget_s,
        "seconds": elapsed,
        "rss_before_requests_mb": rss_open,
        "rss_after_1k_mb": rss_1k,
        "rss_after_all_mb": rss_end,
        "growth_mb": rss_end - rss_1k,
        "samples": samples,
    }


def _send(client: NotifyClient) -> Any:
    async def send() -> object:
        return await client.emails.send(to="ada@example.com", subject="Memory", message="Hi")

    return send


async def in_child(*, target: int, budget_s: float) -> dict[str, Any]:
    """Run ``run`` in a fresh interpreter and return its results."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.memory",
        str(target),
        str(budget_s),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the memory benchmark failed with exit status {child.returncode}")
    results: dict[str, Any] = json.loads(out)
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(target=int(sys.argv[1]), budget_s=float(sys.argv[2])))))
