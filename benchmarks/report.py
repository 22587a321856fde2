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

# The targets of the performance issue: CPU per request against raw aiohttp.
CPU_TARGETS = (
    # (call, keys, concurrency, goal)
    ("list", 3, 50, 1.05),
    ("list", 100, 50, 1.25),
    ("list", 1_000, 50, 1.25),
    ("send", 3, 50, 1.02),
)
TARGET_IMPORT_RATIO = 1.10
TARGET_GROWTH_MB = 5.0
START = "<!-- bench:start (written by `nox -s bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"
CLIENT_COLORS = {
    "notify-async": "#2b6cb0",
    "raw aiohttp": "#718096",
    "naive wrapper": "#dd6b20",
    "naive, no tenacity": "#f6ad55",
    "httpx": "#38a169",
}


def _num(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def row(results: dict[str, Any], call: str, keys: int, concurrency: int, client: str) -> Any:
    """One client's row of one overhead scenario."""
    for scenario in results["overhead"]["scenarios"]:
        if (scenario["call"], scenario["keys"], scenario["concurrency"]) == (
            call,
            keys,
            concurrency,
        ):
            for line in scenario["clients"]:
                if line["client"] == client:
                    return line
    raise KeyError(f"no {call}/{keys}/{concurrency}/{client} row in the results")


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers the README quotes, from the results."""
    ratios = {
        f"{call}_{keys}_{concurrency}": row(results, call, keys, concurrency, "notify-async")[
            "cpu_ratio_to_raw"
        ]
        for call, keys, concurrency, _ in CPU_TARGETS
    }
    return {
        **ratios,
        "naive_list_3_50": row(results, "list", 3, 50, "naive wrapper")["cpu_ratio_to_raw"],
        "import_ratio": results["import_time"]["ratio"],
    }


README_START = "<!-- perf:start (written by `nox -s bench`) -->"
README_END = "<!-- perf:end -->"


def readme_bullet(results: dict[str, Any]) -> str:
    """The README's performance sentence; tests/test_performance_claims.py re-reads it."""
    h = headline(results)
    return (
        "- [Performance](docs/performance.md): CPU per request against raw aiohttp with "
        "`json.loads`, median of interleaved rounds at a concurrency of 50: listing 3 keys "
        f"costs {h['list_3_50']:.2f}×, 100 keys {h['list_100_50']:.2f}×, 1,000 keys "
        f"{h['list_1000_50']:.2f}×; sending costs {h['send_3_50']:.2f}×. A hand-written "
        f"aiohttp + tenacity + cattrs wrapper costs {h['naive_list_3_50']:.2f}× for the "
        f"3-key list. `import notify_async` takes {h['import_ratio']:.2f}× the time of "
        "`import aiohttp`. `nox -s bench` measures it."
    )


def write_readme(path: Path, results: dict[str, Any]) -> None:
    """Replace the performance bullet between the README's markers."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    generated = f"{README_START}\n{readme_bullet(results)}\n{README_END}"
    path.write_text(pattern.sub(lambda _: generated, text), encoding="utf-8")


def _label(call: str, keys: int) -> str:
    if call == "send":
        return "`emails.send`"
    return f"`api_keys.list`, {keys:,} key{'s' if keys != 1 else ''}"


def _spread(line: dict[str, Any]) -> str:
    return (
        f"{line['cpu_ratio_to_raw']:.2f}× "
        f"(rounds {line['cpu_ratio_min']:.2f}–{line['cpu_ratio_max']:.2f})"
    )


def targets_table(results: dict[str, Any]) -> str:
    """Every target of the performance issue, with what was measured."""
    lines = ["| Target | Goal | Measured | |", "| --- | --- | --- | --- |"]
    counted = {
        (r["call"], r["keys"]): r
        for r in results.get("instructions", {}).get("rows", [])
        if r["client"] == "notify-async"
    }
    for call, keys, concurrency, goal in CPU_TARGETS:
        line = row(results, call, keys, concurrency, "notify-async")
        extra = ""
        if (call, keys) in counted:
            extra = f"; instructions {counted[call, keys]['ratio_to_raw']:.3f}×"
        lines.append(
            f"| CPU per request, {_label(call, keys)}, concurrency {concurrency}, "
            f"vs raw aiohttp | ≤ {goal:.2f}× | {_spread(line)}{extra} "
            f"| {_met(line['cpu_ratio_to_raw'] <= goal)} |"
        )
    wide = row(results, "list", 3, 1_000, "notify-async")
    usual = row(results, "list", 3, 50, "notify-async")
    lines.append(
        "| CPU ratio to raw aiohttp, `api_keys.list` (3 keys) at concurrency 1,000 "
        "(more callers than the 100-connection pool) | no worse than at 50 "
        f"({usual['cpu_ratio_to_raw']:.2f}×) | {_spread(wide)} "
        f"| {_met(wide['cpu_ratio_to_raw'] <= usual['cpu_ratio_to_raw'])} |"
    )
    imports = results["import_time"]
    lines.append(
        f"| `import notify_async` vs `import aiohttp` (`-X importtime`, with `.pyc`) "
        f"| ≤ {TARGET_IMPORT_RATIO:.2f}× | {imports['ratio']:.2f}× "
        f"(in CPU: {imports['cpu_ratio']:.2f}×) "
        f"| {_met(imports['ratio'] <= TARGET_IMPORT_RATIO)} |"
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
    overlapping = results.get("overlapping_storm") or []
    if overlapping:
        failed = [run["failed_requests"] for run in overlapping]
        loads = [run["provider_loads"] for run in overlapping]
        lines.append(
            f"| Overlapping rotations: 3 during 2,000 calls ({len(overlapping)} runs) "
            f"| 0 failures, ≤ 4 loads | failures {', '.join(map(str, failed))}; "
            f"loads {', '.join(map(str, loads))} "
            f"| {_met(set(failed) == {0} and max(loads) <= 4)} |"
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
    return "\n".join(lines)


def overhead_table(results: dict[str, Any]) -> str:
    """CPU per request, ratio to raw aiohttp and requests per second, per scenario."""
    lines = [
        "| Call | Keys | Concurrency | Client | CPU per request | × raw aiohttp (rounds) "
        "| Requests/s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for scenario in results["overhead"]["scenarios"]:
        call = "`api_keys.list`" if scenario["call"] == "list" else "`emails.send`"
        keys = f"{scenario['keys']:,}" if scenario["call"] == "list" else ""
        for line in scenario["clients"]:
            ratio = f"{line['cpu_ratio_to_raw']:.2f}×"
            if line["client"] != "raw aiohttp":
                ratio += f" ({line['cpu_ratio_min']:.2f}–{line['cpu_ratio_max']:.2f})"
            name = f"**{line['client']}**" if line["client"] == "notify-async" else line["client"]
            lines.append(
                f"| {call} | {keys} | {scenario['concurrency']:,} | {name} "
                f"| {_num(line['cpu_us_per_request'])} µs | {ratio} "
                f"| {_num(line['requests_per_second'])} |"
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


def overlapping_table(results: dict[str, Any]) -> str:
    """One row per overlapping-rotations run."""
    lines = [
        "| Run | Requests | Rotations | Failed (types) | Provider loads | 401s absorbed "
        "| p50 / p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines.extend(
        f"| {run['run']} | {run['requests']:,} | {run['rotations']} "
        f"| {run['failed_requests']} ({', '.join(run['failure_types']) or 'none'}) "
        f"| {run['provider_loads']} | {run['absorbed_401s']:,} "
        f"| {_num(run['p50_ms'], 1)} / {_num(run['p99_ms'], 1)} ms |"
        for run in results.get("overlapping_storm") or []
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
        f"{results['overhead']['requests_per_round']:,} requests per client and round "
        "(a quarter of that for 100 keys, a twentieth for 1,000 keys), the same for every "
        "client, httpx included (measured in two scenarios only: it costs ten to twenty "
        "times more). Within a round the clients take turns in slices of a quarter of their "
        "requests. CPU is the client process's `time.process_time()`; the ratio is the "
        "median of the per-round ratios to raw aiohttp (`json.loads(await r.read())`), "
        "with the lowest and highest round in brackets.",
        overhead_table(results),
    ]
    if chart:
        parts.append(f"![CPU per request by size of the answer]({chart})")
    parts += [
        "### Client overhead in instructions",
        "CPU time on a shared machine is noisy; the instructions the client process executes "
        "for the same work are not. Each client makes a small and then a large number of "
        f"requests at concurrency {instructions.CONCURRENCY} under "
        "`valgrind --tool=callgrind`; the difference, per request, cancels start-up and "
        "warm-up out. Repeated runs agree within about 1% for 3 keys and the send; the "
        "1,000-key runs, 12 requests apart, vary by up to 6% from one run to the next.",
        instructions.markdown(results.get("instructions", {"skipped": "not run"})),
    ]
    parts += [
        "### Rotation storm",
        storm_table(results),
    ]
    if results.get("overlapping_storm"):
        parts += [
            "### Overlapping rotations",
            "The operator rotates three times while 2,000 requests (half lists, half sends) "
            "run on one `FileKeyProvider` client: after 100, 150 and 200 have completed.",
            overlapping_table(results),
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
    """CPU per request against the size of the answer (concurrency 50), one line per client."""
    sweep = [
        scenario
        for scenario in results["overhead"]["scenarios"]
        if scenario["call"] == "list" and scenario["concurrency"] == 50
    ]
    sweep.sort(key=lambda scenario: scenario["keys"])
    names = [line["client"] for line in sweep[0]["clients"] if line["client"] != "httpx"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4), dpi=100)
    sizes = [scenario["keys"] for scenario in sweep]
    for name in names:
        lines = [next(x for x in s["clients"] if x["client"] == name) for s in sweep]
        color = CLIENT_COLORS.get(name)
        left.plot(sizes, [x["cpu_us_per_request"] for x in lines], "o-", label=name, color=color)
        right.plot(sizes, [x["cpu_ratio_to_raw"] for x in lines], "o-", label=name, color=color)
    for call, keys, concurrency, goal in CPU_TARGETS:
        if call == "list" and concurrency == 50:
            right.plot([keys], [goal], "_", color="#c53030", markersize=18, markeredgewidth=2)
    right.plot([], [], "_", color="#c53030", label="target", markersize=12)
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axes.set_xlabel("keys in the answer of api_keys.list")
        axes.grid(alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("client CPU per request (µs, log scale)")
    right.set_ylabel("× raw aiohttp (json.loads)")
    right.legend(fontsize=8)
    figure.suptitle(
        "api_keys.list at concurrency 50: CPU per request by size of the answer "
        "(lower is better)\n"
        f"{results['machine']['cores']} cores, Python {results['machine']['python']}, "
        f"aiohttp {results['machine']['aiohttp']}; median of "
        f"{results['overhead']['rounds']} rounds",
        fontsize=10,
    )
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

- **Client overhead.** The clients make the same calls: `NotifyClient`; **raw aiohttp**,
  the floor (the same GET/POST on one session, `json.loads(await r.read())`, no models,
  no retries); a **naive wrapper** such as a team writes by hand (aiohttp, a tenacity
  `AsyncRetrying` built per call, `raise_for_status()`, cattrs structuring into attrs
  models), and the same wrapper **without tenacity**; and `httpx.AsyncClient` for
  context. Each keeps one long-lived session and connection pool and is warmed up first.
  Rounds alternate between the clients (in a rotating order) in one run, so that the noise
  of a shared machine hits them alike; the tables give medians and the spread of rounds.
  `api_keys.list` answers with 1, 3, 100 or 1,000 keys, each with its own prefix, one of
  them the client's own; concurrency goes from 1 to 1,000 (beyond the pool of 100
  connections). `emails.send` posts a small JSON body.
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
  fresh interpreters, alternating, median, with bytecode writing on (the `.pyc` files are
  written by an untimed first import, as an installed package has them).
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
