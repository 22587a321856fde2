"""RedisKeyProvider against a real redis-server: a rotation reaches the fleet before a 401.

Every test starts its own ``redis-server`` on a free port of 127.0.0.1
(``notify_async.testing.RedisServer``), and talks HTTP to the local Notify server in this
process, which counts the 401s it serves. The fleet tests run real worker processes. The
module is skipped only when the ``redis-server`` binary is missing; ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

import notify_async.testing
from notify_async import CredentialError, NotifyClient
from notify_async._credentials import redact
from notify_async.contrib.redis import RedisKeyProvider
from notify_async.testing import LocalNotifyServer, RedisServer

if shutil.which("redis-server") is None:
    pytest.skip(
        "redis-server is not installed (apt-get install -y redis-server; .ci/run does this)",
        allow_module_level=True,
    )

REDIS_KEY = "notify:api_key"
CHANNEL = "notify:api_key:changed"
WORKER_SCRIPT = Path(__file__).with_name("redis_server.py")
# The worker processes must import this checkout, wherever pytest was started from.
PROJECT_ROOT = Path(notify_async.testing.__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server on a free port, stopped after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain Redis client, to look at what the provider wrote."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def provider_for(redis_server: RedisServer) -> RedisKeyProvider:
    """A provider that resubscribes quickly, as a test needs."""
    return RedisKeyProvider(redis_server.url, reconnect_delay=0.05, max_reconnect_delay=0.2)


async def seed(redis_server: RedisServer, key: str) -> None:
    """Publish the fleet's first key, as an operator does once."""
    await provider_for(redis_server).store(key)


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    """Poll ``condition()`` (sync or async) until true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def wait_for_subscribers(redis_server: RedisServer, expected: int) -> None:
    """Wait until exactly ``expected`` connections listen on the provider's channel."""

    async def subscribed() -> bool:
        # A fresh connection each time: the server may have just restarted.
        async with Redis.from_url(redis_server.url) as redis:
            counts = await redis.pubsub_numsub(CHANNEL)
        return int(counts[0][1]) == expected

    await wait_until(subscribed)


async def wait_for_connections(redis_server: RedisServer, expected: int) -> None:
    """Wait until Redis has exactly ``expected`` client connections besides this one."""

    async def connected() -> bool:
        async with Redis.from_url(redis_server.url) as redis:
            return len(await redis.client_list()) - 1 == expected

    await wait_until(connected)


def leftover_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running besides this test, apart from the local Notify server's own."""
    return [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")
    ]


# -- worker processes -----------------------------------------------------------------------


class Worker:
    """One worker process of the fleet (``tests/redis_server.py``), driven over stdin."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process

    @classmethod
    async def start(cls, name: str, base_url: str, redis_url: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "error",
            str(WORKER_SCRIPT),
            base_url,
            redis_url,
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=ENV,
        )
        worker = cls(name, process)
        assert "ready" in await worker.read()
        return worker

    async def write(self, cmd: str, **args: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self.process.stdin.drain()

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"worker {self.name} exited: {stderr.decode()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def ask(self, cmd: str, **args: object) -> dict[str, Any]:
        await self.write(cmd, **args)
        return await self.read()

    async def close(self) -> dict[str, Any]:
        """Close the worker's client; return its report once the process exited cleanly."""
        report = await self.ask("close")
        _, stderr = await asyncio.wait_for(self.process.communicate(), timeout=30)
        assert self.process.returncode == 0, stderr.decode()
        assert stderr == b"", stderr.decode()
        return report

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@contextlib.asynccontextmanager
async def fleet(
    names: list[str], notify_server: LocalNotifyServer, redis_server: RedisServer
) -> AsyncIterator[list[Worker]]:
    """Start worker processes together; on the way out, kill any that were not closed."""
    workers = list(
        await asyncio.gather(
            *(Worker.start(name, notify_server.base_url, redis_server.url) for name in names)
        )
    )
    try:
        yield workers
    finally:
        for worker in workers:
            worker.kill()
            if worker.process.returncode is None:
                await worker.process.wait()


async def everyone(workers: list[Worker], cmd: str, **args: object) -> list[dict[str, Any]]:
    """Send one command to every worker at once and collect the replies."""
    return list(await asyncio.gather(*(worker.ask(cmd, **args) for worker in workers)))


async def send_from_all(workers: list[Worker], tag: str, count: int) -> None:
    replies = await everyone(workers, "send", tag=tag, count=count)
    assert [failure for reply in replies for failure in reply["failures"]] == []


async def all_switch_to(workers: list[Worker], key: str) -> None:
    """Every worker holds ``key`` without having sent a request since the rotation."""
    replies = await everyone(workers, "await_prefix", prefix=redact(key), timeout=5.0)
    assert [reply["prefix"] for reply in replies] == [redact(key)] * len(workers)


async def close_all(workers: list[Worker]) -> list[dict[str, Any]]:
    reports = list(await asyncio.gather(*(worker.close() for worker in workers)))
    for report in reports:
        assert report["pending_tasks"] == []
    return reports


async def test_the_other_workers_switch_to_a_rotated_key_without_a_single_401(
    notify_server: LocalNotifyServer, redis_server: RedisServer, admin: Redis
) -> None:
    await seed(redis_server, notify_server.api_key)
    async with fleet(["w0", "w1", "w2"], notify_server, redis_server) as workers:
        await send_from_all(workers, "before", 5)
        # Each worker in turn rotates; the others must hold the new key before they send.
        for rotator in workers:
            assert (await rotator.ask("rotate"))["error"] is None
            await all_switch_to(workers, notify_server.api_key)
            await send_from_all(workers, f"after-{rotator.name}", 5)
        reports = await close_all(workers)

    assert notify_server.auth_failures == 0
    assert len(notify_server.emails) == 3 * 5 * 4
    key, version, updated_at = await admin.hmget(REDIS_KEY, ["key", "version", "updated_at"])
    assert (key, version) == (notify_server.api_key, "4")  # the seed, then three rotations
    assert abs(int(str(updated_at)) / 1000 - time.time()) < 60  # Redis time, in milliseconds
    # The key was loaded once per worker, at start: every later key was pushed.
    assert [report["loads"] for report in reports] == [1, 1, 1]


async def test_two_rotators_racing_leave_the_fleet_on_the_key_the_server_accepts(
    notify_server: LocalNotifyServer, redis_server: RedisServer, admin: Redis
) -> None:
    await seed(redis_server, notify_server.api_key)
    async with fleet(["a", "b", "watcher"], notify_server, redis_server) as workers:
        a, b, _ = workers
        for round_number in range(3):
            # Both rotate at once: one regenerate wins, the other is rejected, picks up the
            # winner's key and regenerates again; their stores race in Redis.
            await asyncio.gather(a.write("rotate"), b.write("rotate"))
            results = await asyncio.gather(a.read(), b.read())
            assert [result["error"] for result in results] == [None, None]
            await all_switch_to(workers, notify_server.api_key)
            assert await admin.hget(REDIS_KEY, "key") == notify_server.api_key
            await send_from_all(workers, f"round-{round_number}", 5)
        reports = await close_all(workers)

    assert len(notify_server.emails) == 3 * 3 * 5
    assert notify_server.request_counts["POST /api_keys/regenerate"] >= 6
    assert not [line for report in reports for line in report["log"] if "ERROR" in line]


# -- one process ----------------------------------------------------------------------------


async def test_a_store_built_on_an_old_version_never_rolls_the_fleet_back(
    redis_server: RedisServer, admin: Redis
) -> None:
    await seed(redis_server, "nk_" + "0" * 32)
    late, quick = provider_for(redis_server), provider_for(redis_server)
    assert await late.load() == await quick.load() == "nk_" + "0" * 32
    await quick.store("nk_" + "2" * 32)

    # `late` still builds on version 1, which `quick` has overtaken.
    pushed: list[str] = []

    async def on_key(key: str) -> None:
        pushed.append(key)

    late._listeners.add(on_key)
    await late.store("nk_" + "1" * 32)

    assert await admin.hmget(REDIS_KEY, ["key", "version"]) == ["nk_" + "2" * 32, "2"]
    assert pushed == ["nk_" + "2" * 32]  # the late rotator's own clients switch to the winner
    assert await late.load() == "nk_" + "2" * 32
    # Having seen version 2, `late` may store again.
    await late.store("nk_" + "3" * 32)
    assert await admin.hmget(REDIS_KEY, ["key", "version"]) == ["nk_" + "3" * 32, "3"]


async def test_two_rotations_at_once_in_one_client_end_on_the_key_the_server_accepts(
    notify_server: LocalNotifyServer, redis_server: RedisServer, admin: Redis
) -> None:
    await seed(redis_server, notify_server.api_key)
    rotating = NotifyClient(credentials=provider_for(redis_server), base_url=notify_server.base_url)
    watching = NotifyClient(credentials=provider_for(redis_server), base_url=notify_server.base_url)
    async with rotating, watching:
        # The second regenerate is rejected, replayed with the first one's key, and its
        # store must land after the first one's in Redis, not before.
        await asyncio.gather(rotating.api_keys.rotate(), rotating.api_keys.rotate())
        current = redact(notify_server.api_key)
        await wait_until(lambda: rotating.key_prefix == watching.key_prefix == current)
        await watching.emails.send(to="a@example.com", subject="s", message="m")

    assert notify_server.request_counts["POST /api_keys/regenerate"] == 3
    assert await admin.hmget(REDIS_KEY, ["key", "version"]) == [notify_server.api_key, "3"]


async def test_a_late_announcement_never_undoes_this_clients_own_rotation(
    notify_server: LocalNotifyServer, redis_server: RedisServer
) -> None:
    await seed(redis_server, notify_server.api_key)
    provider = provider_for(redis_server)
    async with NotifyClient(credentials=provider, base_url=notify_server.base_url) as client:
        old_key = notify_server.api_key
        await wait_until(lambda: bool(provider._listeners))
        await client.api_keys.rotate()
        # An announcement of the old key, read just before the rotation landed, arrives late.
        for listener in list(provider._listeners):
            await listener(old_key)
        assert client.key_prefix == redact(notify_server.api_key)
        await client.emails.send(to="a@example.com", subject="s", message="m")

    assert notify_server.auth_failures == 0


async def test_the_subscription_survives_a_redis_restart_and_no_request_fails(
    notify_server: LocalNotifyServer, redis_server: RedisServer, admin: Redis
) -> None:
    await seed(redis_server, notify_server.api_key)
    clients = [
        NotifyClient(credentials=provider_for(redis_server), base_url=notify_server.base_url)
        for _ in range(3)
    ]
    failures: list[BaseException] = []
    stop_sending = asyncio.Event()

    async def keep_sending(client: NotifyClient) -> None:
        while not stop_sending.is_set():
            try:
                await client.emails.send(to="a@example.com", subject="s", message="m")
            except Exception as exc:  # any failure at all is what this test looks for
                failures.append(exc)
            await asyncio.sleep(0.01)

    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        await wait_for_subscribers(redis_server, 3)
        senders = [asyncio.create_task(keep_sending(client)) for client in clients]
        try:
            # Redis goes away; requests go on with the key in memory.
            await asyncio.to_thread(redis_server.stop)
            sent_before = len(notify_server.emails)
            await wait_until(lambda: len(notify_server.emails) >= sent_before + 10)
            # It comes back empty (no persistence), and every watch resubscribes.
            await asyncio.to_thread(redis_server.start)
            await wait_for_subscribers(redis_server, 3)
        finally:
            stop_sending.set()
            await asyncio.gather(*senders)

        # The resubscribed workers still get the next rotation pushed to them.
        await clients[0].api_keys.rotate()
        await wait_until(
            lambda: all(client.key_prefix == redact(notify_server.api_key) for client in clients)
        )
        for client in clients:
            await client.emails.send(to="a@example.com", subject="after", message="m")

    assert failures == []
    assert notify_server.auth_failures == 0
    # The version moved on from the one the workers knew, although Redis forgot it.
    assert await admin.hmget(REDIS_KEY, ["key", "version"]) == [notify_server.api_key, "2"]


async def test_an_unreachable_redis_keeps_the_key_in_memory_and_fails_a_reload_clearly(
    notify_server: LocalNotifyServer, redis_server: RedisServer
) -> None:
    await seed(redis_server, notify_server.api_key)
    async with NotifyClient(
        credentials=provider_for(redis_server), base_url=notify_server.base_url
    ) as client:
        redis_server.stop()
        await client.emails.send(to="a@example.com", subject="still fine", message="m")

        notify_server.rotate()  # rotated elsewhere, and Redis cannot tell us
        with pytest.raises(CredentialError) as caught:
            await client.emails.send(to="a@example.com", subject="needs a reload", message="m")

    assert "could not reach Redis at redis://127.0.0.1:" in str(caught.value)
    assert [email.subject for email in notify_server.emails] == ["still fine"]


async def test_closing_clients_leaves_no_task_and_no_connection(
    notify_server: LocalNotifyServer, redis_server: RedisServer
) -> None:
    await seed(redis_server, notify_server.api_key)
    # Closed while listening, closed at once (mid-subscribe), and closed while Redis is
    # down (waiting to resubscribe): each must cancel its watch and close its connections.
    listening = NotifyClient(
        credentials=provider_for(redis_server), base_url=notify_server.base_url
    )
    await listening.__aenter__()
    await wait_for_subscribers(redis_server, 1)
    await listening.close()

    async with NotifyClient(
        credentials=provider_for(redis_server), base_url=notify_server.base_url
    ):
        pass

    await wait_for_connections(redis_server, 0)
    async with NotifyClient(
        credentials=provider_for(redis_server), base_url=notify_server.base_url
    ) as client:
        await wait_for_subscribers(redis_server, 1)
        await asyncio.to_thread(redis_server.stop)
        await client.emails.send(to="a@example.com", subject="s", message="m")
        await asyncio.sleep(0.1)  # the watch is now backing off

    assert leftover_tasks() == []
    gc.collect()  # an unclosed connection would warn now, and warnings are errors here


async def test_load_names_redis_when_the_key_is_missing_or_not_a_hash(
    redis_server: RedisServer, admin: Redis
) -> None:
    provider = provider_for(redis_server)
    with pytest.raises(CredentialError, match="has no Notify API key in 'notify:api_key'"):
        await provider.load()
    await admin.set(REDIS_KEY, "nk_" + "x" * 32)
    with pytest.raises(CredentialError, match="must be a hash written by RedisKeyProvider"):
        await provider.load()


async def test_the_key_and_the_redis_password_never_show(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = RedisKeyProvider(
        "redis://default:hunter2@127.0.0.1:1/0", redis_key="svc:notify", timeout=0.5
    )
    assert repr(provider) == (
        "RedisKeyProvider(url='redis://default:***@127.0.0.1:1/0', redis_key='svc:notify')"
    )
    with caplog.at_level(logging.DEBUG, logger="notify_async"):
        with pytest.raises(CredentialError) as loading:
            await provider.load()
        with pytest.raises(CredentialError) as storing:
            await provider.store("nk_" + "s" * 32)
    for text in (str(loading.value), str(storing.value), caplog.text):
        assert "hunter2" not in text
        assert "nk_sss" not in text
    assert "redis://default:***@127.0.0.1:1/0" in str(loading.value)
    assert "could not store the rotated Notify API key in Redis" in str(storing.value)
    query = RedisKeyProvider("unix:///run/redis.sock?db=0&password=hunter2")
    assert "hunter2" not in repr(query)
