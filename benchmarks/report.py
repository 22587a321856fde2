"""Turn the results into Markdown tables, docs/performance.md and the chart."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write the PNG only

import matplotlib.pyplot as plt

from benchmarks import instructions, redis_storm

TARGET_CPU_RATIO = 1.10
TARGET_IMPORT_RATIO = 1.3
TARGET_GROWTH_MB = 5.0
START = "<!-- bench:start (written by `nox -s bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"
CLIENT_COLORS = {
    "notify-async": "#2b6cb0",
    "raw aiohttp": "#718096",
    "naive wrapper": "#dd6b20",
    "httpx": "#38a169",
}


def _num(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The list / concurrency 50 row of NotifyClient: the number the README quotes."""
    for scenario in results["overhead"]["scenarios"]:
        if scenario["call"] == "list" and scenario["concurrency"] == 50:
            for row in scenario["clients"]:
                if row["client"] == "notify-async":
                    return dict(row)
    raise KeyError("no list/50 scenario in the results")


def targets_table(results: dict[str, Any]) -> str:
    """The four targets of the issue, each with what was measured."""
    main = headline(results)
    naive = next(
        row
        for scenario in results["overhead"]["scenarios"]
        if scenario["call"] == "list" and scenario["concurrency"] == 50
        for row in scenario["clients"]
        if row["client"] == "naive wrapper"
    )
    lines = [
        "| Target | Goal | Measured | |",
        "| --- | --- | --- | --- |",
        f"| CPU per request, `api_keys.list` at concurrency 50, vs raw aiohttp "
        f"| ≤ {TARGET_CPU_RATIO:.2f}× | {main['cpu_ratio_to_raw']:.2f}× "
        f"(naive wrapper: {naive['cpu_ratio_to_raw']:.2f}×) "
        f"| {_met(main['cpu_ratio_to_raw'] <= TARGET_CPU_RATIO)} |",
    ]
    counted = results.get("instructions", {})
    lines.extend(
        f"| Instructions per request (callgrind), `api_keys.list` at concurrency 50, "
        f"vs raw aiohttp | ≤ {TARGET_CPU_RATIO:.2f}× | {row['ratio_to_raw']:.3f}× "
        f"| {_met(row['ratio_to_raw'] <= TARGET_CPU_RATIO)} |"
        for row in counted.get("rows", [])
        if row["call"] == "list" and row["client"] == "notify-async"
    )
    for mode in dict.fromkeys(storm["mode"] for storm in results["storm"]):
        runs = [storm for storm in results["storm"] if storm["mode"] == mode]
        loads = [storm["provider_loads"] for storm in runs]
        failed = sum(storm["failed_requests"] for storm in runs)
        ok = set(loads) == {1} and failed == 0
        lines.append(
            f"| Rotation storm, rotated by {_storm_actor(mode)} ({len(runs)} runs) "
            f"| 1 load, 0 failures | loads {', '.join(map(str, loads))}; "
            f"{failed} failure(s) | {_met(ok)} |"
        )
    redis_rows = results.get("redis_storm") or []
    for shape in redis_storm.SHAPES:
        runs = [r for r in redis_rows if r["provider"] == "redis" and r["shape"] == shape]
        if not runs:
            continue
        absorbed = [r["absorbed_401s"] for r in runs]
        files = [
            r["absorbed_401s"]
            for r in redis_rows
            if r["provider"] == "file" and r["shape"] == shape
        ]
        lines.append(
            f"| Redis push, rotation {shape} ({len(runs)} runs): 401s absorbed "
            f"| 0 | {', '.join(map(str, absorbed))} (file provider: "
            f"{', '.join(map(str, files))}) | {_met(set(absorbed) == {0})} |"
        )
    memory = results["memory"]
    lines.append(
        f"| RSS growth from 1,000 to {memory['requests']:,} requests "
        f"| < {TARGET_GROWTH_MB:g} MB | {memory['growth_mb']:+.2f} MB "
        f"| {_met(memory['growth_mb'] < TARGET_GROWTH_MB)} |"
    )
    imports = results["import_time"]
    lines.append(
        f"| Import time vs `import aiohttp` (`-X importtime`) | ≤ {TARGET_IMPORT_RATIO:g}× "
        f"| {imports['ratio']:.2f}× (in CPU: {imports['cpu_ratio']:.2f}×) "
        f"| {_met(imports['ratio'] <= TARGET_IMPORT_RATIO)} |"
    )
    return "\n".join(lines)


def overhead_table(results: dict[str, Any]) -> str:
    """CPU per request, ratio to raw aiohttp and requests per second, per scenario."""
    lines = [
        "| Call | Concurrency | Client | CPU per request | × raw aiohttp (range) | Requests/s |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for scenario in results["overhead"]["scenarios"]:
        call = "`api_keys.list`" if scenario["call"] == "list" else "`emails.send`"
        for row in scenario["clients"]:
            ratio = f"{row['cpu_ratio_to_raw']:.2f}×"
            if row["client"] != "raw aiohttp":
                ratio += f" ({row['cpu_ratio_min']:.2f}–{row['cpu_ratio_max']:.2f})"
            name = f"**{row['client']}**" if row["client"] == "notify-async" else row["client"]
            lines.append(
                f"| {call} | {scenario['concurrency']} | {name} "
                f"| {_num(row['cpu_us_per_request'])} µs | {ratio} "
                f"| {_num(row['requests_per_second'])} |"
            )
    return "\n".join(lines)


def _storm_actor(mode: str) -> str:
    return "the operator" if mode == "operator" else "another worker"


def storm_table(results: dict[str, Any]) -> str:
    """One row per rotation storm."""
    lines = [
        "| Rotated by | Run | Requests (in flight at rotation) | Provider loads | Failed "
        "| Affected (got a 401) | Affected p50 / p99 | Others p50 / p99 | 401s absorbed "
        "| Emails recorded / sends that succeeded |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines.extend(
        f"| {_storm_actor(storm['mode'])} | {storm['run']} "
        f"| {storm['requests']:,} ({storm['in_flight_at_rotation']:,}) "
        f"| {storm['provider_loads']} | {storm['failed_requests']} "
        f"| {storm['affected_requests']} "
        f"| {_num(storm['affected_p50_ms'], 1)} / {_num(storm['affected_p99_ms'], 1)} ms "
        f"| {_num(storm['unaffected_p50_ms'], 1)} / {_num(storm['unaffected_p99_ms'], 1)} ms "
        f"| {storm['absorbed_401s']} "
        f"| {storm['emails_recorded']} / {storm['sends_succeeded']} |"
        for storm in results["storm"]
    )
    return "\n".join(lines)


def memory_table(results: dict[str, Any]) -> str:
    """RSS after the first 1,000 requests and after all of them."""
    memory = results["memory"]
    note = ""
    if memory["cut_short"]:
        note = (
            f"\n\nThe run stopped at {memory['requests']:,} of {memory['target_requests']:,} "
            f"requests: its time budget of {memory['budget_s']:g} s ran out."
        )
    return (
        "| Requests on one client | RSS before the first request | RSS after 1,000 "
        "| RSS after all | Growth after 1,000 | Took |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {memory['requests']:,} | {memory['rss_before_requests_mb']:.1f} MB "
        f"| {memory['rss_after_1k_mb']:.1f} MB "
        f"| {memory['rss_after_all_mb']:.1f} MB | {memory['growth_mb']:+.2f} MB "
        f"| {memory['seconds']:.0f} s |" + note
    )


def import_table(results: dict[str, Any]) -> str:
    """Median import times: importtime's wall clock, and CPU as a cross-check."""
    imports = results["import_time"]
    return (
        f"| Import | `-X importtime` cumulative, median of {imports['repeats']} | Ratio "
        "| CPU, less interpreter start-up | Ratio |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
        f"| `import aiohttp` | {imports['aiohttp_ms']:.1f} ms | 1.00× "
        f"| {imports['aiohttp_cpu_ms']:.1f} ms | 1.00× |\n"
        f"| `import notify_async` | {imports['notify_async_ms']:.1f} ms "
        f"| {imports['ratio']:.2f}× | {imports['notify_async_cpu_ms']:.1f} ms "
        f"| {imports['cpu_ratio']:.2f}× |"
    )


def failure_table(results: dict[str, Any]) -> str:
    """Plain success against a 503 (Retry-After: 0) followed by success."""
    lines = [
        "| Call | Success: wall p50 / p99, CPU | 503 then success: wall p50 / p99, CPU "
        "| Extra wall time |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in results["failure_path"]:
        ok, failed = row["ok"], row["503_then_ok"]
        lines.append(
            f"| `{'api_keys.list' if row['call'] == 'list' else 'emails.send'}` "
            f"| {_num(ok['wall_p50_us'])} / {_num(ok['wall_p99_us'])} µs, "
            f"{_num(ok['cpu_us'])} µs "
            f"| {_num(failed['wall_p50_us'])} / {_num(failed['wall_p99_us'])} µs, "
            f"{_num(failed['cpu_us'])} µs | {_num(row['extra_wall_us'])} µs |"
        )
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    """Where it ran, in one line."""
    return (
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']:.0f} GB, "
        f"{machine['platform']}; Python {machine['python']}, aiohttp {machine['aiohttp']}, "
        f"httpx {machine['httpx']}, notify-async {machine['notify_async']}; "
        f"{machine['date']}"
    )


def markdown(results: dict[str, Any], chart: str | None) -> str:
    """Everything, as the Markdown block printed to stdout and put in the docs."""
    config = results["config"]
    parts = [
        f"Machine: {machine_line(results['machine'])}.",
        f"Command: `{config['command']}` ({results['seconds']:.0f} s in all).",
        "### Targets",
        targets_table(results),
        "### Client overhead",
        f"Median of {results['overhead']['rounds']} alternating rounds; "
        f"{results['overhead']['requests_per_round']['1']:,} requests per round at "
        f"concurrency 1 and {results['overhead']['requests_per_round']['50']:,} at 50. "
        "httpx, there for context, makes an eighth as many. Within a round the clients take "
        "turns in slices of a quarter of their requests. "
        "CPU is the client process's `time.process_time()`; the ratio is the median of the "
        "per-round ratios to raw aiohttp, with the lowest and highest round in brackets.",
        overhead_table(results),
    ]
    if chart:
        parts.append(f"![CPU per request for the four clients]({chart})")
    parts += [
        "### Client overhead in instructions",
        "CPU time on a shared machine is noisy; the instructions the client process executes "
        "for the same work are not. Each client makes "
        f"{instructions.SMALL:,} and then {instructions.LARGE:,} requests at concurrency "
        f"{instructions.CONCURRENCY} under `valgrind --tool=callgrind`; the difference, per "
        "request, cancels start-up and warm-up out. Repeated runs agree within about 1%.",
        instructions.markdown(results.get("instructions", {"skipped": "not run"})),
    ]
    parts += [
        "### Rotation storm",
        storm_table(results),
    ]
    if results.get("redis_storm"):
        parts += [
            "### Rotation storm: Redis push against file reload",
            "One worker process rotates the key; the measured client holds either a "
            "`FileKeyProvider` or a `RedisKeyProvider` (whose `watch()` pushes the new key). "
            "*In flight*: 1,000 requests already queued when the key dies. *Idle*: the rotation "
            "lands while the client is idle, then 1,000 requests start.",
            redis_storm.markdown(results["redis_storm"]),
        ]
    parts += [
        "### Memory",
        memory_table(results),
        "### Import time",
        import_table(results),
        "### Failure path",
        failure_table(results),
    ]
    return "\n\n".join(parts) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    """Grouped bars of CPU per request, one group per scenario, one bar per client."""
    scenarios = results["overhead"]["scenarios"]
    names = [row["client"] for row in scenarios[0]["clients"]]
    width = 0.8 / len(names)
    figure, axes = plt.subplots(figsize=(9, 4.8), dpi=100)
    for index, name in enumerate(names):
        rows = [next(r for r in s["clients"] if r["client"] == name) for s in scenarios]
        values = [row["cpu_us_per_request"] for row in rows]
        positions = [x + (index - (len(names) - 1) / 2) * width for x in range(len(scenarios))]
        bars = axes.bar(positions, values, width, label=name, color=CLIENT_COLORS.get(name))
        labels = [
            f"{row['cpu_us_per_request']:.0f}\n{row['cpu_ratio_to_raw']:.2f}×" for row in rows
        ]
        axes.bar_label(bars, labels=labels, fontsize=7, padding=2)
    axes.set_xticks(
        range(len(scenarios)),
        [f"{s['call']}\nconcurrency {s['concurrency']}" for s in scenarios],
    )
    # httpx costs an order of magnitude more; a log axis keeps the other three readable.
    axes.set_yscale("log")
    axes.set_ylabel("client CPU per request (µs, log scale)")
    axes.set_title(
        "Client CPU per request, µs and × raw aiohttp (lower is better)\n"
        f"{results['machine']['cores']} cores, Python {results['machine']['python']}, "
        f"aiohttp {results['machine']['aiohttp']}",
        fontsize=10,
    )
    axes.legend(ncols=4, loc="upper left", fontsize=8)
    # Room above the tallest bar for its two-line label (margins() misbehaves on a log axis).
    tallest = max(r["cpu_us_per_request"] for s in scenarios for r in s["clients"])
    axes.set_ylim(top=tallest * 3)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


DOC_INTRO = """# Performance

What notify-async costs on top of aiohttp, how it behaves when a key is rotated under
load, whether it holds on to memory, and what it adds to import time.

Every number below comes from `nox -s bench` (`python -m benchmarks` in an environment
with `pip install -e . --group bench`). The local Notify server always runs in its own
process on 127.0.0.1 (`python -m notify_async.testing`), so the CPU time measured in the
benchmark process is the client's alone. The benchmarks assert nothing and are not part
of the test suite or CI.

## How it measures

- **Client overhead.** Four clients make the same calls: `NotifyClient`; **raw aiohttp**,
  the floor (the same GET/POST on one session, `json()`, no models, no retries); a
  **naive wrapper** such as a team writes by hand (aiohttp, a tenacity `AsyncRetrying`
  built per call, `raise_for_status()`, cattrs structuring into attrs models); and
  `httpx.AsyncClient` for context. Each keeps one long-lived session and connection pool
  and is warmed up first. Rounds alternate between the clients (in a rotating order) in
  one run, so that the noise of a shared machine hits them alike; the tables give medians.
  `api_keys.list` answers with 3 keys; `emails.send` posts a small JSON body.
- **Rotation storm.** One client reads its key from a file (`FileKeyProvider`). 1,000
  requests (half lists, half sends) are started; after the first 100 complete, another
  process rotates the key and the key file is replaced atomically. Either the operator
  rotates (`POST /_control/rotate`: the server regenerates the key and rewrites the file in
  one step) or another worker does (`NotifyClient.api_keys.rotate()`: regenerate, then
  store in the file, so the old key is dead for a moment before the file has the new
  one). *Affected* requests are those that got a 401 and were replayed.
- **Memory.** RSS of one client after 1,000 requests and after 100,000 (alternating
  chunks of 1,000 lists and 1,000 sends, concurrency 50, `gc.collect()` before reading).
- **Import time.** `python -X importtime -c "import notify_async"` against `import aiohttp`,
  fresh interpreters, alternating, median.
- **Failure path.** One call at a time: a 503 with `Retry-After: 0` followed by a
  successful retry, against a plain success.

The machine these numbers come from is shared and noisy: read the ranges, not only the
medians, and compare ratios measured in one run rather than numbers from two runs.
`python -m benchmarks.profile_list` profiles `api_keys.list` at concurrency 50 against
raw aiohttp and splits the difference step by step; start there before optimising.

## Results

"""


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block of the doc, keeping everything written around it."""
    generated = f"{START}\n\n{block}\n{END}"
    if path.exists() and START in (text := path.read_text(encoding="utf-8")) and END in text:
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
        path.write_text(pattern.sub(lambda _: generated, text), encoding="utf-8")
        return
    path.write_text(DOC_INTRO + generated + "\n", encoding="utf-8")
