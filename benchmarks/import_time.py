"""``python -X importtime -c "import notify_async"`` against ``import aiohttp``.

Each run is a fresh interpreter; the two imports alternate, and the cumulative time of the
top-level module (from the importtime report on stderr) is taken, median of the runs.
notify_async imports aiohttp, so the ratio is at least 1.

importtime measures wall time, which a busy shared machine inflates at random. As a
cross-check the same runs are also timed in CPU (the child's user + system time, less
that of ``python -c pass``), which waiting for a core does not inflate.

Bytecode writing is on (``PYTHONDONTWRITEBYTECODE`` removed from the children's
environment), and one untimed import of each module first writes the ``.pyc`` files: an
installed package imports from them, and without them every import would compile the
package's sources again.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from typing import Any

from benchmarks._stats import median

MODULES = ("notify_async", "aiohttp")
_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _import(module: str | None) -> tuple[int, float]:
    """Return the importtime cumulative µs of ``module`` and the process's CPU seconds."""
    code = "pass" if module is None else f"import {module}"
    before = _child_cpu_s()
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=_ENV,
    )
    cpu = _child_cpu_s() - before
    if module is None:
        return 0, cpu
    for line in run.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"; the top-level module
        # is the line whose name has no indentation.
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == f" {module}":
            return int(parts[1]), cpu
    raise RuntimeError(f"no importtime line for {module!r}")


def run(*, repeats: int) -> dict[str, Any]:
    """Time both imports ``repeats`` times each, alternating; report the medians."""
    wall: dict[str, list[int]] = {module: [] for module in MODULES}
    cpu: dict[str, list[float]] = {module: [] for module in MODULES}
    empty: list[float] = []
    for module in MODULES:
        _import(module)  # writes the .pyc files the timed runs read
    for _ in range(repeats):
        empty.append(_import(None)[1])
        for module in MODULES:
            micros, seconds = _import(module)
            wall[module].append(micros)
            cpu[module].append(seconds)
    notify_ms = median(wall["notify_async"]) / 1e3
    aiohttp_ms = median(wall["aiohttp"]) / 1e3
    startup = median(empty)
    notify_cpu_ms = (median(cpu["notify_async"]) - startup) * 1e3
    aiohttp_cpu_ms = (median(cpu["aiohttp"]) - startup) * 1e3
    return {
        "repeats": repeats,
        "notify_async_ms": notify_ms,
        "aiohttp_ms": aiohttp_ms,
        "ratio": notify_ms / aiohttp_ms,
        "notify_async_cpu_ms": notify_cpu_ms,
        "aiohttp_cpu_ms": aiohttp_cpu_ms,
        "cpu_ratio": notify_cpu_ms / aiohttp_cpu_ms,
        "interpreter_startup_cpu_ms": startup * 1e3,
        "importtime_us": wall,
        "process_cpu_s": cpu,
    }
