"""Instructions per request, counted by callgrind: client overhead without the noise.

CPU time on this shared 2-core machine swings by tens of percent from round to round;
the number of instructions the client process executes for the same work does not. Each
variant makes a small and then a large number of requests (``CASES``) at concurrency 50 in
a child process run under ``valgrind --tool=callgrind``; the difference divided by the
difference of the counts is its instructions per request, with interpreter start-up,
imports and warm-up cancelled out. The server runs in its own process, uncounted.

Run alone: ``python -m benchmarks.instructions`` (needs valgrind on the PATH).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from typing import Any

from benchmarks._server import ServerProcess

# The naive wrapper is compared in CPU time only: each variant costs two callgrind children,
# about 15 s each, most of it interpreter start-up under valgrind, and the whole of
# `nox -s bench` must stay under 10 minutes.
VARIANTS = ("notify-async", "raw aiohttp")
# (call, keys in the account, warm-up requests, requests of the small and the large run):
# fewer for the big answers, which cost callgrind minutes each. The warm-up is the same in
# both runs of a case, so that their difference cancels it.
CASES = (
    ("list", 3, 100, 200, 1_200),
    ("list", 100, 50, 20, 120),
    ("list", 1_000, 10, 4, 16),
    ("send", 3, 100, 200, 1_200),
)
CONCURRENCY = 50
BASELINE = "raw aiohttp"


async def run() -> dict[str, Any]:
    """Count instructions per request for each variant and call; ratios to raw aiohttp."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"skipped": "valgrind is not on the PATH (apt-get install valgrind)"}
    rows: list[dict[str, Any]] = []
    # Two children at a time, one per core: callgrind counts the instructions a child runs,
    # whatever else runs beside it, and most of a child's time is interpreter start-up.
    slots = asyncio.Semaphore(2)

    async def count(variant: str, call: str, warmup: int, requests: int, server: Any) -> int:
        async with slots:
            return await _count(valgrind, variant, call, warmup, requests, server)

    for call, keys, warmup, small_n, large_n in CASES:
        async with ServerProcess(keys=keys) as server:
            counts = {}
            for variant in VARIANTS:
                small, large = await asyncio.gather(
                    count(variant, call, warmup, small_n, server),
                    count(variant, call, warmup, large_n, server),
                )
                counts[variant] = (large - small) / (large_n - small_n)
                await server.control.reset()  # keep the server's email log small
            rows.extend(
                {
                    "call": call,
                    "keys": keys,
                    "concurrency": CONCURRENCY,
                    "client": variant,
                    "instructions_per_request": counts[variant],
                    "ratio_to_raw": counts[variant] / counts[BASELINE],
                    "requests": [small_n, large_n],
                }
                for variant in VARIANTS
            )
    return {"rows": rows}


async def _count(
    valgrind: str, variant: str, call: str, warmup: int, requests: int, server: Any
) -> int:
    process = await asyncio.create_subprocess_exec(
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        variant,
        call,
        str(warmup),
        str(requests),
        server.base_url,
        server.api_key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    collected = re.search(rb"Collected : (\d+)", stderr)
    if process.returncode != 0 or collected is None:
        raise RuntimeError(f"callgrind run failed: {stderr.decode(errors='replace')[-500:]}")
    return int(collected.group(1))


async def _child(
    variant: str, call: str, warmup: int, requests: int, base_url: str, api_key: str
) -> None:
    from benchmarks._clients import NaiveWrapper, NotifyVariant, RawAiohttp  # noqa: PLC0415
    from benchmarks._stats import drive  # noqa: PLC0415

    client: Any
    if variant == "notify-async":
        client = await NotifyVariant(base_url, api_key).open()
    elif variant == "raw aiohttp":
        client = RawAiohttp(base_url, api_key)
    else:
        client = NaiveWrapper(base_url, api_key)
    method = client.list_keys if call == "list" else client.send
    try:
        await drive(method, warmup, CONCURRENCY)
        await drive(method, requests, CONCURRENCY)
    finally:
        await client.aclose()


def markdown(results: dict[str, Any]) -> str:
    """The instruction counts as a Markdown table."""
    if "skipped" in results:
        return f"Not measured: {results['skipped']}."
    lines = [
        "| Call | Keys | Concurrency | Client | Instructions per request | × raw aiohttp |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in results["rows"]:
        name = f"**{row['client']}**" if row["client"] == "notify-async" else row["client"]
        lines.append(
            f"| `{'api_keys.list' if row['call'] == 'list' else 'emails.send'}` "
            f"| {row['keys'] if row['call'] == 'list' else ''} | {row['concurrency']} "
            f"| {name} | {row['instructions_per_request'] / 1000:,.0f} k "
            f"| {row['ratio_to_raw']:.3f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    """``--child VARIANT CALL WARMUP N URL KEY`` runs one counted child; no arguments, all."""
    if sys.argv[1:2] == ["--child"]:
        variant, call, warmup, requests, base_url, api_key = sys.argv[2:8]
        asyncio.run(_child(variant, call, int(warmup), int(requests), base_url, api_key))
        return
    print(markdown(asyncio.run(run())))


if __name__ == "__main__":
    main()
