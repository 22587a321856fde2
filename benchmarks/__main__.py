"""``python -m benchmarks``: run every benchmark, print the tables, write the results.

Writes ``benchmarks/results/latest.json``, ``docs/performance.md`` (the block between its
markers), ``docs/performance.png`` and the performance line of ``README.md`` (between its
markers). ``--quick`` runs a smaller version for trying
changes out; it writes ``benchmarks/results/quick.json`` only and leaves the docs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

import notify_async
from benchmarks import (
    failure_path,
    import_time,
    instructions,
    memory,
    overhead,
    redis_storm,
    report,
    storm,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
CHART = ROOT / "docs" / "performance.png"
README = ROOT / "README.md"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run; docs untouched")
    parser.add_argument("--rounds", type=int, help="overhead rounds (default 11, quick 2)")
    parser.add_argument(
        "--requests", type=int, help="requests per client and round (default 400, quick 200)"
    )
    parser.add_argument(
        "--memory-requests", type=int, help="requests of the memory run (default 100,000)"
    )
    parser.add_argument(
        "--memory-budget", type=float, default=120.0, help="seconds the memory run may take"
    )
    return parser.parse_args(argv)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "httpx": httpx.__version__,
        "notify_async": notify_async.__version__,
        "date": datetime.date.today().isoformat(),
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    rounds = args.rounds or (2 if quick else 11)
    requests = args.requests or (200 if quick else 400)
    memory_target = args.memory_requests or (10_000 if quick else 100_000)
    command = "nox -s bench" + (" -- --quick" if quick else "")
    timings: dict[str, float] = {}
    results: dict[str, Any] = {
        "machine": _machine(),
        "config": {
            "command": command,
            "quick": quick,
            "rounds": rounds,
            "requests_per_round": requests,
            "memory_requests": memory_target,
        },
    }
    sections: list[tuple[str, Any]] = [
        ("import_time", lambda: asyncio.to_thread(import_time.run, repeats=5 if quick else 15)),
        (
            "overhead",
            lambda: overhead.run(rounds=rounds, requests=requests, warmup=200 if quick else 400),
        ),
        ("instructions", instructions.run),
        ("storm", lambda: storm.run(repeats=2 if quick else 3)),
        ("overlapping_storm", lambda: storm.run_overlapping(repeats=1 if quick else 3)),
        ("redis_storm", lambda: redis_storm.run(repeats=2 if quick else 5)),
        ("memory", lambda: memory.in_child(target=memory_target, budget_s=args.memory_budget)),
        ("failure_path", lambda: failure_path.run(repeats=50 if quick else 200)),
    ]
    for name, section in sections:
        started = time.perf_counter()
        print(f"running {name}...", file=sys.stderr, flush=True)
        results[name] = await section()
        timings[name] = time.perf_counter() - started
        print(f"  {name} took {timings[name]:.0f} s", file=sys.stderr, flush=True)
    results["section_seconds"] = timings
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write their results; return the exit status."""
    args = _args(argv)
    started = time.perf_counter()
    results = asyncio.run(_run(args))
    results["seconds"] = time.perf_counter() - started
    results = json.loads(json.dumps(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("quick.json" if args.quick else "latest.json")).write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    if args.quick:
        print(report.markdown(results, chart=None))
        return 0
    report.chart(results, CHART)
    block = report.markdown(results, chart=CHART.name)
    report.write_doc(DOC, block)
    report.write_readme(README, results)
    print(block)
    print(
        f"wrote {DOC.relative_to(ROOT)}, {CHART.relative_to(ROOT)}, README.md and "
        f"{(RESULTS / 'latest.json').relative_to(ROOT)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
