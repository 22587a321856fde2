"""Rotations that overlap: no request lost, none sent twice, one regenerate per rotation.

Every test talks real HTTP to the local Notify server on 127.0.0.1. Races are provoked on the
server's side (a delayed answer, a key switched while a request waits), never by sleeping in
the client; the test only waits for the server to reach a state, and asserts counts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support import CountingProvider

from notify_async import (
    CallableKeyProvider,
    ChainKeyProvider,
    CredentialError,
    EnvKeyProvider,
    FileKeyProvider,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
)
from notify_async.testing import Fault, LocalNotifyServer

SEND = "POST /send-email"
LIST = "GET /api_keys"
REGENERATE = "POST /api_keys/regenerate"


async def until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait (in the test, never in the client) until the server reaches a state."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the expected state never came"
        await asyncio.sleep(0.005)


def reached(server: LocalNotifyServer, route: str, count: int) -> bool:
    return server.request_counts[route] >= count


def subjects(server: LocalNotifyServer) -> list[str]:
    return sorted(email.subject or "" for email in server.emails)


async def send(client: NotifyClient, subject: str) -> None:
    await client.emails.send(to="ada@example.com", subject=subject, message="hi")


# -- overlapping rotations published at once ------------------------------------------------


async def storm(
    server: LocalNotifyServer,
    key_file: Path,
    call: Callable[[NotifyClient, int], Awaitable[object]],
    route: str,
    *,
    calls: int = 2000,
    rotations: int = 3,
) -> tuple[list[BaseException], NotifyClient]:
    """``calls`` concurrent calls while an operator rotates the key ``rotations`` times.

    Each rotation is published at once: the server switches and the file is rewritten in the
    same step of the event loop, after a quarter, half, ... of the calls have reached the
    server, so that many calls are in flight with the old key each time.
    """
    key_file.write_text(server.api_key)  # noqa: ASYNC240 - before any traffic
    client = NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=server.base_url, rotation_grace=0
    )
    async with client:

        async def operator() -> None:
            for number in range(1, rotations + 1):
                await until(functools.partial(reached, server, route, number * calls // 4))
                # No await between the switch and the write: published at once.
                key_file.write_text(server.rotate())  # noqa: ASYNC240

        results = await asyncio.gather(
            operator(),
            *(call(client, n) for n in range(calls)),
            return_exceptions=True,
        )
    assert results[0] is None, results[0]
    return [r for r in results[1:] if isinstance(r, BaseException)], client


async def test_2000_lists_survive_three_rotations_with_one_load_each(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    failures, client = await storm(
        notify_server, tmp_path / "key", lambda c, _: c.api_keys.list(), LIST
    )

    assert failures == []
    assert notify_server.auth_failures > 0  # the rotations really hit calls in flight
    assert client.key_loads <= 1 + 3


async def test_2000_sends_survive_three_rotations_each_email_exactly_once(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    failures, client = await storm(
        notify_server, tmp_path / "key", lambda c, n: send(c, f"storm-{n:04}"), SEND
    )

    assert failures == []
    assert notify_server.auth_failures > 0
    assert subjects(notify_server) == [f"storm-{n:04}" for n in range(2000)]
    assert client.key_loads <= 1 + 3


# -- the two minimal cases ----------------------------------------------------------------


async def test_a_401_that_arrives_after_two_rotations_replays_until_the_live_key(
    notify_server: LocalNotifyServer,
) -> None:
    # A request goes out with K1 and waits at the server; meanwhile the key moves K1 -> K2
    # (the client adopts K2) -> K3 (published). The 401 for K1 must end on K3, not on K2.
    k1 = notify_server.api_key
    provider = CountingProvider(k1)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        notify_server.inject(SEND, Fault.delay(2.0))
        slow = asyncio.create_task(send(client, "slow"))
        await until(lambda: notify_server.request_counts[SEND] == 1)

        provider.key = k2 = notify_server.rotate()
        await send(client, "adopts K2")
        assert client.key_prefix == k2[:8] + "..."
        provider.key = k3 = notify_server.rotate()

        await slow  # succeeds: K1 rejected, replayed with K2, rejected, reloaded K3

    assert subjects(notify_server) == ["adopts K2", "slow"]
    assert client.key_prefix == k3[:8] + "..."
    # slow: K1, K2, K3; "adopts K2": K1, K2.
    assert notify_server.request_counts[SEND] == 5
    assert provider.loads == 3  # the first, one for K2, one for K3


async def test_a_request_rejected_during_this_clients_own_regenerate_waits_for_its_key(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        first = await client.api_keys.rotate()
        # The second regenerate is handled at once (the first new key dies) but answered
        # only later: a send in that window is rejected with the key being rotated.
        notify_server.inject(REGENERATE, Fault.delay_after(1.0))
        rotating = asyncio.create_task(client.api_keys.rotate())
        await until(lambda: notify_server.api_key != first.api_key)
        loads_before = provider.loads

        await send(client, "during the regenerate")
        second = await rotating

    assert subjects(notify_server) == ["during the regenerate"]
    # Rejected with the first new key, replayed once with the second, nothing more.
    assert notify_server.request_counts[SEND] == 2
    # It waited for this client's own answer instead of reloading the provider.
    assert provider.loads == loads_before
    assert second.api_key == notify_server.api_key == provider.key
    assert notify_server.request_counts[REGENERATE] == 2


# -- rotate() is single flight --------------------------------------------------------------


async def test_two_rotates_at_once_with_50_sends_in_flight_make_one_regenerate(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        await client.api_keys.list()  # learn the key's id first
        notify_server.inject(REGENERATE, Fault.delay_after(0.3))
        results = await asyncio.gather(
            client.api_keys.rotate(),
            client.with_options(timeout=20).api_keys.rotate(),
            *(send(client, f"s{n:02}") for n in range(50)),
            return_exceptions=True,
        )

    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    first, second = results[:2]
    assert notify_server.request_counts[REGENERATE] == 1
    assert first == second
    assert provider.key == notify_server.api_key
    assert provider.stored == [notify_server.api_key]
    assert subjects(notify_server) == [f"s{n:02}" for n in range(50)]


# -- the hook never holds up the key ----------------------------------------------------------


@pytest.mark.parametrize("hook_seconds", [4.0, None], ids=["slow-hook", "stuck-hook"])
async def test_a_slow_or_stuck_hook_delays_neither_store_nor_requests(
    notify_server: LocalNotifyServer, hook_seconds: float | None
) -> None:
    provider = CountingProvider(notify_server.api_key)
    started = asyncio.Event()
    never = asyncio.Event()

    async def hook(prefix: str) -> None:
        started.set()
        if hook_seconds is None:
            await never.wait()
        else:
            await asyncio.sleep(hook_seconds)

    client = NotifyClient(
        credentials=provider,
        base_url=notify_server.base_url,
        rotation_grace=0,
        on_key_change=hook,
    )
    async with client:
        began = time.monotonic()
        result = await client.api_keys.rotate()
        # store() ran before rotate() returned, and the hook is still running.
        assert provider.stored == [result.api_key]
        await send(client, "after the rotation")
        took = time.monotonic() - began
        await asyncio.wait_for(started.wait(), 5)

    assert subjects(notify_server) == ["after the rotation"]
    assert took < 3.5  # generous: the hook alone would take 4 s, or for ever


# -- loads are bounded -----------------------------------------------------------------------


class StuckProvider:
    """A secret store that stops answering after its first ``answers`` loads."""

    def __init__(self, key: str, answers: int) -> None:
        self.key = key
        self.answers = answers
        self.loads = 0

    async def load(self) -> str:
        self.loads += 1
        if self.loads > self.answers:
            await asyncio.Event().wait()
        return self.key


async def test_a_load_that_never_returns_fails_within_load_timeout_at_first_use(
    notify_server: LocalNotifyServer,
) -> None:
    client = NotifyClient(
        credentials=StuckProvider(notify_server.api_key, answers=0),
        base_url=notify_server.base_url,
        load_timeout=0.2,
    )
    began = time.monotonic()
    results = await asyncio.gather(
        *(client.api_keys.list() for _ in range(5)), return_exceptions=True
    )
    await client.close()

    assert all(isinstance(r, CredentialError) for r in results), results
    assert all("load_timeout" in str(r) for r in results)
    assert client.key_loads == 1  # every waiter got the one load's error
    assert time.monotonic() - began < 5
    assert sum(notify_server.request_counts.values()) == 0


async def test_a_load_that_never_returns_fails_within_load_timeout_on_a_reload(
    notify_server: LocalNotifyServer,
) -> None:
    provider = StuckProvider(notify_server.api_key, answers=1)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, load_timeout=0.2
    ) as client:
        notify_server.rotate()
        began = time.monotonic()
        with pytest.raises(CredentialError, match="load_timeout"):
            await client.api_keys.list()

    assert time.monotonic() - began < 5
    assert provider.loads == 2


# -- cancellation never loses the new key -------------------------------------------------------


async def test_cancelling_rotate_during_store_still_stores_the_new_key(
    notify_server: LocalNotifyServer,
) -> None:
    storing = asyncio.Event()
    release = asyncio.Event()

    class SlowStore(CountingProvider):
        async def store(self, key: str) -> None:
            storing.set()
            await release.wait()
            await super().store(key)

    provider = SlowStore(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        rotation = asyncio.create_task(client.api_keys.rotate())
        await asyncio.wait_for(storing.wait(), 10)
        rotation.cancel()
        with pytest.raises(asyncio.CancelledError):
            await rotation
        release.set()
        await until(lambda: provider.stored != [])
        await send(client, "after")

    assert provider.stored == [notify_server.api_key]
    assert subjects(notify_server) == ["after"]


# -- a chain that falls back to a dead key while the file is rewritten in place --------------------


async def test_a_file_then_env_chain_survives_a_non_atomic_publish(
    notify_server: LocalNotifyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The env still holds the key of an earlier deployment, rotated away long ago.
    monkeypatch.setenv("NOTIFY_API_KEY", "nk_an_old_deployment_key_000000000000")
    key_file = tmp_path / "key"
    key_file.write_text(notify_server.api_key)
    provider = ChainKeyProvider(FileKeyProvider(key_file), EnvKeyProvider())
    async with NotifyClient(credentials=provider, base_url=notify_server.base_url) as client:
        await client.api_keys.list()
        key_file.write_text("")  # the operator truncates the file ...
        new_key = notify_server.rotate()  # ... rotates ...
        loads = client.key_loads
        sends = asyncio.gather(*(send(client, f"c{n:02}") for n in range(20)))
        # ... and writes the new key only after the client fell back to the env key, saw it
        # rejected, and looked at the provider again.
        await until(lambda: client.key_loads >= loads + 2)
        key_file.write_text(new_key)
        await sends

    assert subjects(notify_server) == [f"c{n:02}" for n in range(20)]
    assert client.key_prefix == new_key[:8] + "..."


# -- grace polling is capped at about a second ----------------------------------------------------


async def test_a_key_published_late_in_a_long_grace_window_is_picked_up_within_a_second(
    notify_server: LocalNotifyServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(notify_server.api_key)
    async with NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=notify_server.base_url, rotation_grace=60
    ) as client:
        new_key = notify_server.rotate()
        listing = asyncio.create_task(client.api_keys.list())
        # Publish once the client has polled for a while (its backoff would be far past a
        # second by now without the cap).
        await until(lambda: client.key_loads >= 6, within=30)
        published = time.monotonic()
        key_file.write_text(new_key)
        await listing
        picked_up = time.monotonic() - published

    assert picked_up < 2.0  # the interval is capped at 1 s; generous for a loaded machine


async def test_a_key_with_a_forbidden_character_is_a_credential_error_at_reload(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = CountingProvider(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        notify_server.rotate()
        provider.key = "nk_with_a_nul\x00_in_the_middle_000000"
        with caplog.at_level(logging.DEBUG), pytest.raises(CredentialError) as caught:
            await client.api_keys.list()

    assert "U+0000" in str(caught.value)
    assert "nk_with_a_nul" not in str(caught.value)
    assert "nk_with_a_nul" not in caplog.text


# -- the regenerate answer is checked before it is adopted ---------------------------------------


@pytest.mark.parametrize(
    "new_key",
    ["", "   ", "nk_two\nlines_00000000000000000000", "nk_with_esc\x1b_0000000000000000"],
    ids=["empty", "blank", "multi-line", "control-character"],
)
async def test_an_unusable_regenerated_key_is_never_adopted_or_stored(
    notify_server: LocalNotifyServer, new_key: str
) -> None:
    provider = CountingProvider(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        await client.api_keys.list()
        own_id = notify_server.primary_key_id
        answer = {"success": True, "message": "ok", "data": {"id": own_id, "api_key": new_key}}
        notify_server.inject(REGENERATE, Fault.status(200, body=answer))
        old_prefix = client.key_prefix
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.api_keys.rotate()

    assert "dashboard" in str(caught.value)
    assert provider.stored == []
    assert client.key_prefix == old_prefix


# -- misuse stays a NotifyError --------------------------------------------------------------


async def test_a_provider_raising_cancelled_error_cancels_no_caller(
    notify_server: LocalNotifyServer,
) -> None:
    class Cancelling:
        async def load(self) -> str:
            raise asyncio.CancelledError

    client = NotifyClient(credentials=Cancelling(), base_url=notify_server.base_url)
    results = await asyncio.gather(
        *(client.api_keys.list() for _ in range(3)), return_exceptions=True
    )
    await client.close()

    assert all(isinstance(r, CredentialError) for r in results), results
    assert all("CancelledError" in str(r) for r in results)
    # This task was not cancelled: it carries on (a pending cancellation would raise here).
    await asyncio.sleep(0)


def test_a_second_event_loop_during_the_first_load_is_a_notify_error() -> None:
    started = threading.Event()
    release = threading.Event()

    def load() -> str:
        started.set()
        release.wait(10)
        return "nk_loaded_in_the_first_loop_0000000000"

    client = NotifyClient(
        credentials=CallableKeyProvider(load), base_url="http://127.0.0.1:9/api/public/v1"
    )

    async def first_loop() -> None:
        async with client:  # loads the key, then closes; sends nothing
            pass

    async def second_loop() -> None:
        await client.api_keys.list()

    first = threading.Thread(target=asyncio.run, args=(first_loop(),))
    first.start()
    try:
        assert started.wait(10)
        with pytest.raises(NotifyError, match="one client per event loop"):
            asyncio.run(second_loop())
    finally:
        release.set()
        first.join(10)
    assert not first.is_alive()


# -- found by review: rotations that meet another holder's rotation --------------------------------


async def test_rotate_right_after_someone_else_rotated_adopts_their_key(
    notify_server: LocalNotifyServer,
) -> None:
    # The operator rotated and published; this client's regenerate, sent with the dead key,
    # gets a 401. It must take the published key, not wait on itself or rotate again.
    provider = CountingProvider(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=1, timeout=4
    ) as client:
        await client.api_keys.list()
        provider.key = published = notify_server.rotate()
        bystander = asyncio.create_task(send(client, "bystander"))
        began = time.monotonic()
        result = await client.api_keys.rotate()
        await bystander
        took = time.monotonic() - began

    assert result.api_key == published == notify_server.api_key
    assert result.id == notify_server.primary_key_id
    assert notify_server.request_counts[REGENERATE] == 1  # the one that met the 401
    assert subjects(notify_server) == ["bystander"]
    assert took < 3  # far from rotation_grace + timeout (5 s)


class SlowFileProvider(FileKeyProvider):
    """A key file read like a networked store: the value is read, then returned later."""

    async def load(self) -> str:
        key = await super().load()
        await asyncio.sleep(0.3)
        return key


async def test_compare_and_rotate_reads_the_store_afresh_under_the_lease(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(notify_server.api_key)
    k1 = notify_server.api_key
    options = {"base_url": notify_server.base_url, "rotation_grace": 3.0, "timeout": 5.0}
    async with (
        NotifyClient(credentials=SlowFileProvider(key_file), **options) as a,  # type: ignore[arg-type]
        NotifyClient(credentials=SlowFileProvider(key_file), **options) as b,  # type: ignore[arg-type]
    ):
        await a.api_keys.list()
        await b.api_keys.list()
        notify_server.inject(REGENERATE, Fault.delay_after(0.3))
        rotating_a = asyncio.create_task(a.api_keys.rotate())
        await until(lambda: notify_server.api_key != k1)  # K1 is dead; A has not stored yet
        # B's traffic meets the 401 and starts a reload that reads K1 ...
        sending_b = asyncio.create_task(send(b, "b-traffic"))
        await until(lambda: notify_server.auth_failures >= 1)
        # ... and B rotates in the same round: under the lease it must see A's key.
        results = await asyncio.gather(rotating_a, b.api_keys.rotate(), sending_b)

    assert notify_server.request_counts[REGENERATE] == 1
    assert results[0].api_key == results[1].api_key == notify_server.api_key
    assert key_file.read_text().strip() == notify_server.api_key
    assert subjects(notify_server) == ["b-traffic"]


@pytest.mark.parametrize("slow", ["store", "answer"])
async def test_close_lets_a_cancelled_rotation_finish_storing(
    notify_server: LocalNotifyServer, slow: str
) -> None:
    class SlowStore(CountingProvider):
        async def store(self, key: str) -> None:
            await asyncio.sleep(0.5 if slow == "store" else 0)
            await super().store(key)

    provider = SlowStore(notify_server.api_key)
    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        await client.api_keys.list()
        if slow == "answer":
            notify_server.inject(REGENERATE, Fault.delay_after(0.5))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.api_keys.rotate(), 0.2)
    # close() has returned: the rotation it let finish stored the live key.

    assert provider.stored == [notify_server.api_key]


async def test_two_rotates_before_the_first_load_make_one_regenerate(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    client = NotifyClient(credentials=provider, base_url=notify_server.base_url)
    try:
        first, second = await asyncio.gather(client.api_keys.rotate(), client.api_keys.rotate())
    finally:
        await client.close()

    assert notify_server.request_counts[REGENERATE] == 1
    assert first.api_key == second.api_key == notify_server.api_key == provider.key


async def test_the_hook_hears_of_a_rotated_key_only_after_it_is_stored(
    notify_server: LocalNotifyServer,
) -> None:
    stored_when_told: list[bool] = []
    provider = CountingProvider(notify_server.api_key)

    async def hook(prefix: str) -> None:
        stored_when_told.append(
            bool(provider.stored) and provider.stored[-1].startswith(prefix[:-3])
        )

    async def slow_store(key: str) -> None:
        await asyncio.sleep(0.2)
        await CountingProvider.store(provider, key)

    provider.store = slow_store  # type: ignore[method-assign]
    async with NotifyClient(
        credentials=provider,
        base_url=notify_server.base_url,
        rotation_grace=0,
        on_key_change=hook,
    ) as client:
        await client.api_keys.rotate()
        await until(lambda: stored_when_told != [])

    assert stored_when_told == [True]


async def test_a_store_failure_after_the_caller_was_cancelled_is_logged(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    class FailingStore(CountingProvider):
        async def store(self, key: str) -> None:
            await asyncio.sleep(0.3)
            raise OSError("the secret store is read-only")

    provider = FailingStore(notify_server.api_key)
    with caplog.at_level(logging.ERROR, logger="notify_async"):
        async with NotifyClient(
            credentials=provider, base_url=notify_server.base_url, rotation_grace=0
        ) as client:
            await client.api_keys.list()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.api_keys.rotate(), 0.1)

    failures = [r.getMessage() for r in caplog.records if "caller was cancelled" in r.getMessage()]
    assert len(failures) == 1
    assert "store() failed" in failures[0]
    assert notify_server.api_key not in caplog.text


async def test_a_providers_error_text_never_reaches_the_exception_chain(
    notify_server: LocalNotifyServer,
) -> None:
    secret = "nk_live_abcdefghijklmnopqrstuvwxyz012345"

    def load() -> str:
        raise ValueError(f"key {secret!r} does not belong to the 'prod' environment")

    client = NotifyClient(credentials=CallableKeyProvider(load), base_url=notify_server.base_url)
    with pytest.raises(CredentialError) as caught:
        await client.__aenter__()

    chain = "".join(traceback.format_exception(caught.value))
    assert "ValueError" in str(caught.value)
    assert secret not in chain
