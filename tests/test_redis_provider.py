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
import logging
import math
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from support import Worker, everyone, running, subprocess_env, wait_until

from notify_async import CredentialError, NotifyClient
from notify_async._credentials import LeasingCredentialProvider, redact
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


def fleet(
    names: list[str], notify_server: LocalNotifyServer, redis_server: RedisServer
) -> contextlib.AbstractAsyncContextManager[list[Worker]]:
    """Start worker processes (``tests/redis_server.py``) together; kill them on the way out."""
    script = str(WORKER_SCRIPT)
    return running(
        *(
            Worker.start(name, script, notify_server.base_url, redis_server.url, name)
            for name in names
        )
    )


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
    # Each worker loaded its key at start, and once more under the lease when it rotated
    # (to see whether another worker had rotated first): every other key was pushed.
    assert [report["loads"] for report in reports] == [2, 2, 2]


async def test_two_rotators_racing_leave_the_fleet_on_the_key_the_server_accepts(
    notify_server: LocalNotifyServer, redis_server: RedisServer, admin: Redis
) -> None:
    await seed(redis_server, notify_server.api_key)
    async with fleet(["a", "b", "watcher"], notify_server, redis_server) as workers:
        a, b, _ = workers
        for round_number in range(3):
            # Both rotate at once: one takes the lease and regenerates; the other, under the
            # lease after it, finds the key already rotated and adopts it.
            await asyncio.gather(a.write("rotate"), b.write("rotate"))
            results = await asyncio.gather(a.read(), b.read())
            assert [result["error"] for result in results] == [None, None]
            live = redact(notify_server.api_key)
            assert [result["prefix"] for result in results] == [live, live]
            await all_switch_to(workers, notify_server.api_key)
            assert await admin.hget(REDIS_KEY, "key") == notify_server.api_key
            await send_from_all(workers, f"round-{round_number}", 5)
        reports = await close_all(workers)

    assert len(notify_server.emails) == 3 * 3 * 5
    assert notify_server.request_counts["POST /api_keys/regenerate"] == 3  # one per round
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
        # Two rotate() calls at once in one client join one regenerate, and both return
        # the key that the server and Redis then hold.
        first, second = await asyncio.gather(rotating.api_keys.rotate(), rotating.api_keys.rotate())
        assert first.api_key == second.api_key == notify_server.api_key
        current = redact(notify_server.api_key)
        await wait_until(lambda: rotating.key_prefix == watching.key_prefix == current)
        await watching.emails.send(to="a@example.com", subject="s", message="m")

    assert notify_server.request_counts["POST /api_keys/regenerate"] == 1
    assert await admin.hmget(REDIS_KEY, ["key", "version"]) == [notify_server.api_key, "2"]


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
    # No grace window: polling a Redis that is down would only delay the same error.
    async with NotifyClient(
        credentials=provider_for(redis_server), base_url=notify_server.base_url, rotation_grace=0
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
    with pytest.raises(CredentialError, match="'notify:api_key': it is not a hash; delete it"):
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


# -- malformed data ---------------------------------------------------------------------------

SEEDED_KEY = "nk_" + "1" * 32
REPAIRED_KEY = "nk_" + "2" * 32
A_STRING_KEY = "nk_" + "s" * 32
NOT_UTF8 = b"nk_\xff\xfe" + b"9" * 30


async def corrupt(admin: Redis, how: str) -> None:
    """Write what a hand edit or another program might leave in the provider's hash."""
    if how == "version abc":
        await admin.hset(REDIS_KEY, "version", "abc")
    elif how == "version 3.0":
        await admin.hset(REDIS_KEY, "version", "3.0")
    elif how == "key not UTF-8":
        await admin.hset(REDIS_KEY, "key", NOT_UTF8)
    elif how == "key on two lines":
        await admin.hset(REDIS_KEY, "key", SEEDED_KEY + "\r\nX-Injected: 1")
    else:
        assert how == "a string, not a hash"
        await admin.delete(REDIS_KEY)
        await admin.set(REDIS_KEY, A_STRING_KEY)


CORRUPTIONS = [
    "version abc",
    "version 3.0",
    "key not UTF-8",
    "key on two lines",
    "a string, not a hash",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
async def test_load_names_the_redis_key_of_a_malformed_hash_and_never_its_value(
    redis_server: RedisServer, admin: Redis, how: str
) -> None:
    await seed(redis_server, SEEDED_KEY)
    await corrupt(admin, how)

    with pytest.raises(CredentialError) as caught:
        await provider_for(redis_server).load()

    message = str(caught.value)
    assert f"Redis at {redis_server.url} holds a malformed Notify API key hash in " in message
    assert "'notify:api_key'" in message
    assert caught.value.pending is False  # looking again cannot help; a store repairs it
    for value in (SEEDED_KEY, A_STRING_KEY, "nk_\ufffd", "abc", "3.0"):
        assert value not in message


@pytest.mark.parametrize("how", CORRUPTIONS)
async def test_a_malformed_hash_is_logged_and_skipped_and_the_watch_hands_on_the_next_key(
    redis_server: RedisServer, admin: Redis, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO, logger="notify_async")
    await seed(redis_server, SEEDED_KEY)
    handed: list[str] = []

    async def on_key(key: str) -> None:
        handed.append(key)

    watch = asyncio.create_task(provider_for(redis_server).watch(on_key))
    try:
        await wait_until(lambda: handed == [SEEDED_KEY])
        await corrupt(admin, how)
        await admin.publish(CHANNEL, "2")
        await wait_until(lambda: "ignoring the malformed Notify API key hash" in caplog.text)
        assert not watch.done()
        assert "lost the subscription" not in caplog.text  # not mistaken for an outage

        if how == "a string, not a hash":
            await admin.delete(REDIS_KEY)  # a store never overwrites another type: see below
        await provider_for(redis_server).store(REPAIRED_KEY)  # a rotation repairs the hash
        await wait_until(lambda: handed == [SEEDED_KEY, REPAIRED_KEY])
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "'notify:api_key'" in error.getMessage()
    assert re.fullmatch(r"[0-9]+", str(await admin.hget(REDIS_KEY, "version")))
    for value in (SEEDED_KEY, REPAIRED_KEY, A_STRING_KEY):
        assert value not in caplog.text


@pytest.mark.parametrize("bad_key", [NOT_UTF8, b"   "], ids=["not UTF-8", "blank"])
async def test_a_store_writes_over_a_newer_version_whose_key_is_malformed(
    redis_server: RedisServer, admin: Redis, bad_key: bytes
) -> None:
    await seed(redis_server, SEEDED_KEY)
    rotator = provider_for(redis_server)
    assert await rotator.load() == SEEDED_KEY  # it has seen version 1
    await admin.hset(REDIS_KEY, mapping={"key": bad_key, "version": "5"})

    await rotator.store(REPAIRED_KEY)

    assert await admin.hmget(REDIS_KEY, ["key", "version"]) == [REPAIRED_KEY, "6"]
    assert await provider_for(redis_server).load() == REPAIRED_KEY


async def test_a_store_over_a_value_of_another_type_fails_and_leaves_it_alone(
    redis_server: RedisServer, admin: Redis
) -> None:
    await admin.set(REDIS_KEY, "another application's data")
    with pytest.raises(CredentialError) as caught:
        await provider_for(redis_server).store(REPAIRED_KEY)
    assert "'notify:api_key' holds something other than a hash; delete it (DEL)" in str(
        caught.value
    )
    assert REPAIRED_KEY not in str(caught.value)
    assert await admin.get(REDIS_KEY) == "another application's data"


async def test_load_is_pending_only_when_redis_answered_without_a_key(
    redis_server: RedisServer, admin: Redis
) -> None:
    provider = provider_for(redis_server)
    # Not published yet: the client may look again within its rotation_grace.
    with pytest.raises(CredentialError) as empty:
        await provider.load()
    assert empty.value.pending is True
    await admin.hset(REDIS_KEY, "version", "1")
    with pytest.raises(CredentialError) as no_key_field:
        await provider.load()
    assert no_key_field.value.pending is True
    # A key that cannot travel in a header is not "late": it is wrong.
    await admin.hset(REDIS_KEY, "key", "  ")
    with pytest.raises(CredentialError) as blank:
        await provider.load()
    assert blank.value.pending is False
    assert "'notify:api_key': its key is blank" in str(blank.value)
    # Unreachable: not pending either.
    redis_server.stop()
    with pytest.raises(CredentialError) as down:
        await provider.load()
    assert down.value.pending is False
    assert "could not reach Redis at redis://127.0.0.1:" in str(down.value)


# -- Redis down: one attempt set --------------------------------------------------------------


@contextlib.asynccontextmanager
async def broken_redis(*, answers: bool) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP port that accepts connections and closes them, or keeps them silent.

    Yields its URL and a one-item list counting the connections it accepted.
    """
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        if answers:
            writer.close()
        else:
            await reader.read()  # silent until the client gives up and closes
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0", accepted
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("answers", [True, False], ids=["closes at once", "never answers"])
async def test_a_load_from_a_broken_redis_fails_after_one_attempt_set(*, answers: bool) -> None:
    async with broken_redis(answers=answers) as (url, accepted):
        provider = RedisKeyProvider(url, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(CredentialError) as caught:
            await provider.load()
        elapsed = time.monotonic() - started

    assert accepted == [3]  # three tries, not redis-py's nested retries, and no polling
    assert caught.value.pending is False
    assert f"could not reach Redis at {url} to load the Notify API key" in str(caught.value)
    assert elapsed < 3 * 0.3 + 2  # three timeouts at most, and short pauses


async def test_a_load_from_a_stopped_redis_fails_at_once(redis_server: RedisServer) -> None:
    await seed(redis_server, SEEDED_KEY)
    provider = provider_for(redis_server)
    assert await provider.load() == SEEDED_KEY
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(CredentialError) as caught:
        await provider.load()
    assert time.monotonic() - started < 2.0  # refused three times, with pauses of < 0.3 s
    assert caught.value.pending is False


# -- the rotation lease -----------------------------------------------------------------------

LEASE_KEY = "notify:api_key:rotation-lease"

# One process of a fleet taking turns: it takes the lease `rounds` times, and while it holds
# it, counts the holders in Redis (an overlap is a second holder) and pauses on the server.
LEASE_TAKER = """
import asyncio, sys
from redis.asyncio import Redis
from notify_async.contrib.redis import RedisKeyProvider

async def main(url, name, rounds):
    provider = RedisKeyProvider(url)
    async with Redis.from_url(url) as redis:
        await redis.incr("test:ready")
        await redis.blpop(["test:go"], timeout=0)  # start together
        for _ in range(rounds):
            async with provider.rotation_lease(timeout=30):
                if await redis.incr("test:holders") != 1:
                    await redis.incr("test:overlaps")
                await redis.rpush("test:turns", name)
                await redis.blpop(["test:nothing"], timeout=0.05)  # hold it a while
                await redis.decr("test:holders")

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

# Takes the lease, says so, and waits to be killed.
DYING_HOLDER = """
import asyncio, sys
from notify_async.contrib.redis import RedisKeyProvider

async def main(url):
    async with RedisKeyProvider(url, lease_ttl=0.3).rotation_lease(timeout=5):
        print("held", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def lease_script_calls(admin: Redis) -> int:
    """How many scripts Redis has run: each take or release of the lease is one."""
    stats = await admin.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


async def python(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-c",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )


def test_the_provider_offers_a_rotation_lease() -> None:
    provider = RedisKeyProvider()
    assert isinstance(provider, LeasingCredentialProvider)
    assert provider.lease_key == LEASE_KEY
    assert provider.lease_ttl == 60.0
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="lease_ttl"):
            RedisKeyProvider(lease_ttl=bad)


async def test_the_lease_is_exclusive_and_passes_on_when_released(
    redis_server: RedisServer, admin: Redis
) -> None:
    first, second = (
        RedisKeyProvider(redis_server.url, redis_options={"client_name": "lease-test"})
        for _ in range(2)
    )

    async def take_and_look() -> str:
        async with second.rotation_lease(timeout=30):
            return str(await admin.get(LEASE_KEY))

    async with first.rotation_lease(timeout=1):
        mine = str(await admin.get(LEASE_KEY))
        # Who holds it, and a random token; never a key.
        assert re.fullmatch(
            rf"{re.escape(socket.gethostname())}:{os.getpid()}:[0-9a-f]{{32}}", mine
        )
        assert 0 < await admin.pttl(LEASE_KEY) <= 60_000
        calls = await lease_script_calls(admin)
        waiting = asyncio.create_task(take_and_look())
        # The second provider asks, and is refused, while the first holds the lease.
        await wait_until(_more_than(admin, calls + 3))
        assert not waiting.done()
        assert await admin.get(LEASE_KEY) == mine
        assert len([c for c in await admin.client_list() if c["name"] == "lease-test"]) == 2

    theirs = await asyncio.wait_for(waiting, timeout=5)
    assert theirs not in ("None", mine)
    assert await admin.exists(LEASE_KEY) == 0  # released on the way out
    # Each lease closed its connection on the way out.
    assert [c for c in await admin.client_list() if c["name"] == "lease-test"] == []


def _more_than(admin: Redis, calls: int) -> Any:
    async def check() -> bool:
        return await lease_script_calls(admin) > calls

    return check


async def test_processes_take_turns_and_never_hold_the_lease_together(
    redis_server: RedisServer, admin: Redis
) -> None:
    names, rounds = ["p0", "p1", "p2"], 5
    processes = [await python(LEASE_TAKER, redis_server.url, name, str(rounds)) for name in names]
    try:
        await wait_until(lambda: _is(admin, "test:ready", len(names)), timeout=30)
        calls = await lease_script_calls(admin)
        await admin.rpush("test:go", *names)
        codes = await asyncio.wait_for(
            asyncio.gather(*(process.wait() for process in processes)), timeout=60
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert codes == [0, 0, 0]
    assert await admin.get("test:overlaps") is None  # never two holders at once
    turns = await admin.lrange("test:turns", 0, -1)
    assert sorted(turns) == sorted(names * rounds)
    # Each take and each release is one script; more calls than that were refused takes:
    # the processes did contend, and waited for each other.
    assert await lease_script_calls(admin) - calls > 2 * len(names) * rounds
    assert await admin.exists(LEASE_KEY) == 0


async def _is(admin: Redis, key: str, expected: int) -> bool:
    return int(await admin.get(key) or 0) == expected


async def test_a_lease_whose_holder_died_is_taken_after_lease_ttl(
    redis_server: RedisServer, admin: Redis
) -> None:
    holder = await python(DYING_HOLDER, redis_server.url)
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), timeout=30) == b"held\n"
        dead = await admin.get(LEASE_KEY)
        assert 0 < await admin.pttl(LEASE_KEY) <= 300  # it expires by itself
    finally:
        holder.kill()
        await holder.wait()

    started = time.monotonic()
    async with provider_for(redis_server).rotation_lease(timeout=10):
        assert await admin.get(LEASE_KEY) not in (None, dead)
    assert time.monotonic() - started < 5  # lease_ttl, 0.3 s, with room for a slow machine


async def test_releasing_an_expired_lease_leaves_the_next_holders_lease_alone(
    redis_server: RedisServer, admin: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    slow = RedisKeyProvider(redis_server.url, lease_ttl=0.3)
    async with contextlib.AsyncExitStack() as next_holder:
        async with slow.rotation_lease(timeout=1):
            # The rotation overruns lease_ttl; Redis expires the lease, another worker takes it.
            await wait_until(lambda: _gone(admin))
            await next_holder.enter_async_context(
                provider_for(redis_server).rotation_lease(timeout=1)
            )
            theirs = await admin.get(LEASE_KEY)
        assert theirs is not None
        assert await admin.get(LEASE_KEY) == theirs  # the slow holder did not delete it
        with pytest.raises(CredentialError):
            async with provider_for(redis_server).rotation_lease(timeout=0.1):
                pass
    assert await admin.exists(LEASE_KEY) == 0
    assert "expired before this rotation finished (lease_ttl is 0.3 s)" in caplog.text


async def _gone(admin: Redis) -> bool:
    return await admin.exists(LEASE_KEY) == 0


async def test_a_lease_that_does_not_come_in_time_is_a_credential_error(
    redis_server: RedisServer, admin: Redis
) -> None:
    async with provider_for(redis_server).rotation_lease(timeout=1):
        mine = str(await admin.get(LEASE_KEY))
        started = time.monotonic()
        with pytest.raises(CredentialError) as caught:
            async with provider_for(redis_server).rotation_lease(timeout=0.2):
                pytest.fail("two holders at once")
        elapsed = time.monotonic() - started
        assert await admin.get(LEASE_KEY) == mine  # the waiter left the lease alone

    message = str(caught.value)
    assert f"could not take the rotation lease {LEASE_KEY!r} in Redis at {redis_server.url}" in (
        message
    )
    assert f"({socket.gethostname()}:{os.getpid()})" in message  # who holds it
    assert mine.rpartition(":")[2] not in message  # but not its token
    assert caught.value.pending is False
    assert 0.2 <= elapsed < 3


async def test_the_lease_fails_at_once_when_redis_is_down(redis_server: RedisServer) -> None:
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(CredentialError) as caught:
        async with provider_for(redis_server).rotation_lease(timeout=30):
            pytest.fail("a lease from a stopped Redis")
    assert time.monotonic() - started < 3  # one attempt set, not the 30 s wait
    assert caught.value.pending is False
    assert f"could not reach Redis at {redis_server.url} to take the rotation lease" in str(
        caught.value
    )
    with pytest.raises(ValueError, match="timeout"):
        async with provider_for(redis_server).rotation_lease(timeout=-1):
            pass


async def test_a_waiter_cancelled_while_waiting_leaves_the_lease_to_its_holder(
    redis_server: RedisServer, admin: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="notify_async")

    async def wait_for_the_lease() -> None:
        async with provider_for(redis_server).rotation_lease(timeout=30):
            pytest.fail("two holders at once")

    async with provider_for(redis_server).rotation_lease(timeout=1):
        mine = await admin.get(LEASE_KEY)
        calls = await lease_script_calls(admin)
        waiter = asyncio.create_task(wait_for_the_lease())
        await wait_until(_more_than(admin, calls + 2))  # it is asking, and refused
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await admin.get(LEASE_KEY) == mine
    assert await admin.exists(LEASE_KEY) == 0
    assert "rotation lease" not in caplog.text  # nothing expired, nothing failed
