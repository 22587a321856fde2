"""Client CPU per request and requests per second, every client, alternating rounds.

For every scenario (call, size of the answer, concurrency) each round runs every client, in
an order that rotates from round to round and is reversed every other round, so that no
client always runs right after the same one. A round starts with a short untimed burst per
client (it re-opens pooled connections that went idle), then makes each client's timed
requests in ``SLICES`` slices, the clients taking turns slice by slice: a burst of load
from another program on a shared machine then hits every client of the round about alike.
Each slice starts after an untimed ``gc.collect()``, so that no client pays for the
collection of another's garbage.
CPU is ``time.process_time()`` of this process: the server runs in another one. The ratio
to raw aiohttp is taken within each round, and the median of those paired ratios is
reported, with the lowest and highest round.

Every client makes the same number of requests in a scenario, httpx included; httpx is
measured in the two scenarios the README quotes, since it costs ten to twenty times more.
"""

from __future__ import annotations

import contextlib
import gc
import time
from typing import Any, NamedTuple

from benchmarks._clients import BenchClient, open_all
from benchmarks._server import ServerProcess
from benchmarks._stats import drive, median

BASELINE = "raw aiohttp"
SLICES = 4
SIZES = (1, 3, 100, 1_000)
CONCURRENCIES = (1, 10, 50, 200, 1_000)


class Scenario(NamedTuple):
    """One measured case: the call, the keys in the account, the concurrency."""

    call: str
    keys: int
    concurrency: int
    httpx: bool = False


# The size sweep at concurrency 50, the concurrency sweep with 3 keys, and sends.
SCENARIOS = (
    *(Scenario("list", keys, 50, httpx=keys == 3) for keys in SIZES),
    *(Scenario("list", 3, concurrency) for concurrency in CONCURRENCIES if concurrency != 50),
    Scenario("send", 3, 1),
    Scenario("send", 3, 50, httpx=True),
    Scenario("send", 3, 1_000),
)


def requests_for(scenario: Scenario, requests: int) -> int:
    """Requests per client and round: fewer for big answers, whose requests cost more."""
    if scenario.call == "list" and scenario.keys >= 1_000:
        return max(requests // 20, 50)
    if scenario.call == "list" and scenario.keys >= 100:
        return max(requests // 4, 50)
    return requests


def _call(client: BenchClient, call: str) -> Any:
    return client.list_keys if call == "list" else client.send


async def run(*, rounds: int, requests: int, warmup: int) -> dict[str, Any]:
    """Run the overhead comparison; return per-round samples and medians per scenario."""
    results = []
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[int, ServerProcess] = {}
        clients: dict[int, list[BenchClient]] = {}
        for keys in sorted({s.keys for s in SCENARIOS}):
            server = await stack.enter_async_context(ServerProcess(keys=keys))
            servers[keys] = server
            clients[keys] = await open_all(server.base_url, server.api_key)
            for client in clients[keys]:
                stack.push_async_callback(client.aclose)
        # Warm every client: connections, cattrs' generated structuring code, caches.
        for keys, group in clients.items():
            for client in group:
                await drive(client.list_keys, warmup // (10 if keys >= 100 else 1), 50)
                await drive(client.send, warmup, 50)
            await servers[keys].control.reset()
        for scenario in SCENARIOS:
            group = [c for c in clients[scenario.keys] if scenario.httpx or c.name != "httpx"]
            results.append(
                await _scenario(
                    group,
                    servers[scenario.keys],
                    scenario,
                    rounds,
                    requests_for(scenario, requests),
                )
            )
    return {"rounds": rounds, "requests_per_round": requests, "scenarios": results}


async def _scenario(
    clients: list[BenchClient],
    server: ServerProcess,
    scenario: Scenario,
    rounds: int,
    requests: int,
) -> dict[str, Any]:
    call, concurrency = scenario.call, scenario.concurrency
    samples: dict[str, list[dict[str, float]]] = {client.name: [] for client in clients}
    for number in range(rounds):
        # Rotated, and reversed every other round: a rotation alone keeps each client's
        # predecessor fixed, and the client that always ran right after httpx paid for
        # the garbage httpx left (12% more CPU for notify-async in our rounds).
        shift = number % len(clients)
        order = clients[shift:] + clients[:shift]
        if number % 2:
            order.reverse()
        # Per client: requests, CPU seconds, wall seconds.
        spent: dict[str, list[float]] = {client.name: [0, 0.0, 0.0] for client in order}
        for client in order:
            await drive(_call(client, call), min(2 * concurrency, 200), concurrency)
        gc.collect()
        for _ in range(SLICES):
            for client in order:
                count = max(concurrency, requests // SLICES)
                # Untimed: each client's slice starts with no garbage of another's to
                # collect, and pays for the collections its own allocations cause.
                gc.collect()
                cpu, wall = time.process_time(), time.perf_counter()
                await drive(_call(client, call), count, concurrency)
                tally = spent[client.name]
                tally[0] += count
                tally[1] += time.process_time() - cpu
                tally[2] += time.perf_counter() - wall
        for name, (made, cpu_s, wall_s) in spent.items():
            samples[name].append(
                {
                    "requests": int(made),
                    "cpu_us_per_request": cpu_s / made * 1e6,
                    "requests_per_second": made / wall_s,
                }
            )
        if call == "send":
            # The server keeps every accepted email; keep its memory flat between rounds.
            await server.control.reset()
    baseline = samples[BASELINE]
    rows = []
    for client in clients:
        own = samples[client.name]
        ratios = [
            mine["cpu_us_per_request"] / base["cpu_us_per_request"]
            for mine, base in zip(own, baseline, strict=True)
        ]
        rows.append(
            {
                "client": client.name,
                "cpu_us_per_request": median([s["cpu_us_per_request"] for s in own]),
                "requests_per_second": median([s["requests_per_second"] for s in own]),
                "cpu_ratio_to_raw": median(ratios),
                "cpu_ratio_min": min(ratios),
                "cpu_ratio_max": max(ratios),
                "rounds": own,
            }
        )
    return {
        "call": call,
        "keys": scenario.keys,
        "concurrency": concurrency,
        "requests_per_round": requests,
        "clients": rows,
    }
