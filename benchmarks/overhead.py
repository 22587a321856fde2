"""Client CPU per request and requests per second, four clients, alternating rounds.

For every scenario (call x concurrency) each round runs every client, in an order that
rotates from round to round. A round starts with a short untimed burst per client (it
re-opens pooled connections that went idle), then makes each client's timed requests in
``SLICES`` slices, the clients taking turns slice by slice: a burst of load from another
program on a shared machine then hits every client of the round about alike. CPU is
``time.process_time()`` of this process: the server runs in another one. The ratio to
raw aiohttp is taken within each round, and the median of those paired ratios is
reported.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from benchmarks._clients import BenchClient, open_all
from benchmarks._server import ServerProcess
from benchmarks._stats import drive, median

CALLS = ("list", "send")
CONCURRENCIES = (1, 50)
BASELINE = "raw aiohttp"
# httpx costs 5 to 30 times more CPU per request at these concurrencies; it is there for
# context, so it makes an eighth of the requests to keep the run short.
REQUEST_SHARE = {"httpx": 8}
SLICES = 4


def _call(client: BenchClient, call: str) -> Any:
    return client.list_keys if call == "list" else client.send


async def run(*, rounds: int, requests: dict[int, int], warmup: int) -> dict[str, Any]:
    """Run the overhead comparison; return per-round samples and medians per scenario."""
    async with ServerProcess(keys=3) as server:
        assert server.control is not None
        clients = await open_all(server.base_url, server.api_key)
        try:
            # Warm every client: connections, cattrs' generated structuring code, caches.
            for client in clients:
                for call in CALLS:
                    await drive(_call(client, call), warmup, 50)
            await server.control.reset()
            scenarios = [
                await _scenario(clients, server, call, concurrency, rounds, requests[concurrency])
                for call in CALLS
                for concurrency in CONCURRENCIES
            ]
        finally:
            for client in clients:
                await client.aclose()
    return {"rounds": rounds, "requests_per_round": requests, "scenarios": scenarios}


async def _scenario(
    clients: list[BenchClient],
    server: ServerProcess,
    call: str,
    concurrency: int,
    rounds: int,
    requests: int,
) -> dict[str, Any]:
    assert server.control is not None
    samples: dict[str, list[dict[str, float]]] = {client.name: [] for client in clients}
    for number in range(rounds):
        shift = number % len(clients)
        order = clients[shift:] + clients[:shift]
        # Per client: requests, CPU seconds, wall seconds.
        spent: dict[str, list[float]] = {client.name: [0, 0.0, 0.0] for client in order}
        for client in order:
            await drive(_call(client, call), 2 * concurrency, concurrency)
        gc.collect()
        for _ in range(SLICES):
            for client in order:
                count = requests // REQUEST_SHARE.get(client.name, 1) // SLICES
                count = max(concurrency, count)
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
    results = []
    for client in clients:
        own = samples[client.name]
        ratios = [
            mine["cpu_us_per_request"] / base["cpu_us_per_request"]
            for mine, base in zip(own, baseline, strict=True)
        ]
        results.append(
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
        "concurrency": concurrency,
        "requests_per_round": requests,
        "clients": results,
    }
