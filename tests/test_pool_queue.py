"""More calls in flight than the pool has connections: they wait in the client's queue.

The client's own session lets at most as many requests into aiohttp as its pool has
connections (100); the others wait in order, bounded by the connect timeout, and one that
times out there was not sent (``tests/test_classification.py``). These tests hold the
server's answers with events, so that the pool is provably full while the queue is used,
and check that every queued call is answered, that a cancelled one gives no slot away,
and that time spent queued counts against the attempt's timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from notify_async import APITimeoutError, NotifyClient, NotifyError, OutcomeUnknownError
from notify_async._gate import Gate

KEY = "nk_pool_queue_test_key_0123456789"
POOL = 100  # aiohttp's default pool, which the client's own session keeps


class PoolServer:
    """``GET /api_keys`` waits for ``release``; ``POST /send-email`` never answers.

    ``inside`` counts the GETs being answered now, ``most_inside`` the most at once;
    ``full`` is set when ``target`` GETs are inside. With ``release_after`` set, the
    server releases them itself that many seconds after ``full``.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.full = asyncio.Event()
        self.target = POOL
        self.release_after: float | None = None
        self.inside = 0
        self.most_inside = 0
        self.lists = 0
        self.sends = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def _list(self, request: web.Request) -> web.Response:
        self.lists += 1
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        if self.inside >= self.target and not self.full.is_set():
            self.full.set()
            if self.release_after is not None:
                asyncio.get_running_loop().call_later(self.release_after, self.release.set)
        try:
            await self.release.wait()
        finally:
            self.inside -= 1
        return web.json_response({"success": True, "data": []})

    async def _send(self, request: web.Request) -> web.Response:
        self.sends += 1
        await asyncio.Event().wait()  # until the client gives up
        raise AssertionError("unreachable")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/public/v1/api_keys", self._list)
        app.router.add_post("/api/public/v1/send-email", self._send)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/api/public/v1"

    def refill(self) -> None:
        """Hold the next ``target`` GETs again."""
        self.release = asyncio.Event()
        self.full = asyncio.Event()

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[PoolServer]:
    pool_server = PoolServer()
    await pool_server.start()
    try:
        yield pool_server
    finally:
        await pool_server.close()


async def test_calls_beyond_the_pool_wait_their_turn_and_are_all_answered(
    server: PoolServer,
) -> None:
    async with NotifyClient(KEY, base_url=server.base_url, max_retries=0) as client:
        calls = [asyncio.create_task(client.api_keys.list()) for _ in range(3 * POOL)]
        await asyncio.wait_for(server.full.wait(), 10)
        server.release.set()
        results = await asyncio.wait_for(asyncio.gather(*calls), 30)

    assert results == [[]] * (3 * POOL)
    assert server.lists == 3 * POOL
    assert server.most_inside == POOL  # the pool was full, and never more came in


async def test_a_call_cancelled_in_the_queue_gives_no_connection_away(
    server: PoolServer,
) -> None:
    async with NotifyClient(KEY, base_url=server.base_url, max_retries=0) as client:
        blockers = [asyncio.create_task(client.api_keys.list()) for _ in range(POOL)]
        await asyncio.wait_for(server.full.wait(), 10)
        queued = [asyncio.create_task(client.api_keys.list()) for _ in range(20)]
        for _ in range(5):
            await asyncio.sleep(0)  # let them reach the queue
        for task in queued[::2]:
            task.cancel()
        server.release.set()
        await asyncio.wait_for(asyncio.gather(*blockers), 10)
        outcomes = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 10)

        # All 100 connections can still be held at once: none was lost to a cancelled call.
        server.refill()
        again = [asyncio.create_task(client.api_keys.list()) for _ in range(POOL)]
        await asyncio.wait_for(server.full.wait(), 10)
        server.release.set()
        await asyncio.wait_for(asyncio.gather(*again), 10)

    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes[::2])
    assert outcomes[1::2] == [[]] * 10
    assert server.lists == POOL + 10 + POOL


async def test_time_spent_in_the_queue_counts_against_the_attempt_timeout(
    server: PoolServer,
) -> None:
    # The pool is released 1.5 s after it filled; the send then waits for an answer that
    # never comes. Its 2 s timeout runs from the start of the attempt, queue included:
    # it fails about 2 s after it began, not 2 s after it left the queue (3.5 s).
    server.release_after = 1.5
    async with NotifyClient(KEY, base_url=server.base_url, max_retries=0) as client:
        blockers = [asyncio.create_task(client.api_keys.list()) for _ in range(POOL)]
        await asyncio.wait_for(server.full.wait(), 10)
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.with_options(timeout=2).emails.send(
                to="ada@example.com", subject="Hi", message="Hello"
            )
        elapsed = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*blockers), 10)

    assert isinstance(caught.value, APITimeoutError)
    assert caught.value.request_sent is True
    assert server.sends == 1
    assert elapsed < 3.0  # generous: the bound this test checks is 2 s against 3.5 s


async def test_a_call_that_resumes_past_its_deadline_is_not_sent(server: PoolServer) -> None:
    # The slot is handed over before the deadline, but the loop is busy until after it: the
    # call must fail as not sent, not go on with a timeout of zero (which aiohttp reads as
    # no timeout at all, so the send below would never end).
    async with NotifyClient(KEY, base_url=server.base_url, max_retries=0) as client:
        gate = _gate_of(client)  # the client is bound by `async with`
        for _ in range(POOL):
            assert gate.try_enter()

        async def holder() -> None:
            await asyncio.sleep(0.3)
            gate.leave()  # to the queued send
            time.sleep(0.4)  # noqa: ASYNC251  # a busy loop: past the 0.45 s connect deadline

        holding = asyncio.create_task(holder())
        with pytest.raises(APITimeoutError) as caught:
            await asyncio.wait_for(
                client.with_options(timeout=0.5).emails.send(
                    to="ada@example.com", subject="Hi", message="Hello"
                ),
                10,
            )
        await holding

    assert caught.value.request_sent is False
    assert "before the request was sent" in str(caught.value)
    assert server.sends == 0


async def test_calls_queued_when_the_client_closes_say_so(server: PoolServer) -> None:
    client = NotifyClient(KEY, base_url=server.base_url, max_retries=0)
    calls = [asyncio.create_task(client.api_keys.list()) for _ in range(POOL + 10)]
    await asyncio.wait_for(server.full.wait(), 10)
    await client.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)

    assert all(isinstance(outcome, NotifyError) for outcome in outcomes)
    messages = [str(outcome) for outcome in outcomes]
    assert not any("session=" in message for message in messages)  # no session was given
    assert sum("was closed while the call waited" in message for message in messages) == 10


def _gate_of(client: NotifyClient) -> Gate:
    gate = client._transport._gate  # the queue under test
    assert gate is not None
    return gate


# -- the queue itself ------------------------------------------------------------------------


async def test_the_queue_serves_callers_in_the_order_they_came() -> None:
    loop = asyncio.get_running_loop()
    gate = Gate(1, loop)
    assert gate.try_enter()
    served: list[int] = []

    async def caller(number: int) -> None:
        await gate.wait(loop.time() + 10)
        served.append(number)
        gate.leave()

    callers = [asyncio.create_task(caller(number)) for number in range(5)]
    await asyncio.sleep(0)
    assert not gate.try_enter()  # queued callers come first, even with no slot in use
    gate.leave()
    await asyncio.wait_for(asyncio.gather(*callers), 5)

    assert served == [0, 1, 2, 3, 4]
    assert gate.free == 1


async def test_a_slot_handed_to_a_caller_cancelled_meanwhile_goes_to_the_next() -> None:
    loop = asyncio.get_running_loop()
    gate = Gate(1, loop)
    assert gate.try_enter()
    first = asyncio.create_task(gate.wait(loop.time() + 10))
    second = asyncio.create_task(gate.wait(loop.time() + 10))
    await asyncio.sleep(0)
    gate.leave()  # the slot is now the first caller's, who has not run yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 5)  # handed on
    gate.leave()

    assert gate.free == 1


async def test_a_caller_past_its_deadline_fails_and_the_others_keep_waiting() -> None:
    loop = asyncio.get_running_loop()
    gate = Gate(1, loop)
    assert gate.try_enter()
    patient = asyncio.create_task(gate.wait(loop.time() + 30))
    await asyncio.sleep(0)
    # A later caller with a nearer deadline (a call with a shorter timeout) fails first.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gate.wait(loop.time() + 0.05), 10)
    assert not patient.done()
    gate.leave()
    await asyncio.wait_for(patient, 5)
    gate.leave()

    assert gate.free == 1


async def test_a_queue_timeout_names_the_pool_and_was_not_sent(server: PoolServer) -> None:
    async with NotifyClient(KEY, base_url=server.base_url, max_retries=0) as client:
        blockers = [asyncio.create_task(client.api_keys.list()) for _ in range(POOL)]
        await asyncio.wait_for(server.full.wait(), 10)
        with pytest.raises(APITimeoutError) as caught:
            await client.with_options(timeout=0.3).api_keys.list()
        server.release.set()
        await asyncio.wait_for(asyncio.gather(*blockers), 10)

    assert caught.value.request_sent is False
    assert "before the request was sent" in str(caught.value)
    assert f"client's {POOL} connections" in str(caught.value)
    assert server.lists == POOL
