"""Rehydration: a rotated key never takes the application down.

Every test talks real HTTP to the local Notify server on 127.0.0.1. A rotation by an operator
(``server.rotate()``) or by this client (``api_keys.regenerate`` / ``rotate``) invalidates
the old key at once; the client must reload once, replay once, and lose or repeat nothing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support import CountingProvider, wait_until

from notify_async import (
    AuthenticationError,
    CallableKeyProvider,
    CredentialError,
    FileKeyProvider,
    KeyListener,
    KeyStoreError,
    NotifyClient,
    WatchingCredentialProvider,
)
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

SEND = "POST /send-email"
LIST = "GET /api_keys"
REGENERATE = "POST /api_keys/regenerate"
WATCH_TASK = "notify-async credential watch"


def prefix_of(key: str) -> str:
    """The prefix Notify lists for a key, and the only part of it the client may show."""
    return key[:8] + "..."


class PublishedLate:
    """A key file that another worker writes only after this client looked ``misses`` times.

    The write runs inside the next ``load()``, just before the file is read, so how many
    loads the client needs depends on nothing but its polling, not on how fast anything runs.
    """

    def __init__(self, path: Path, *, misses: int) -> None:
        self.file = FileKeyProvider(path)
        self.misses = misses
        self.publish: Callable[[], Awaitable[None]] | None = None
        self.reloads = -1  # the first load is the client's initial one, not a reload

    def __repr__(self) -> str:
        return f"PublishedLate({self.file!r})"

    async def load(self) -> str:
        self.reloads += 1
        if self.reloads == self.misses + 1:
            assert self.publish is not None, "the test sets what to publish after rotating"
            await self.publish()
        return await self.file.load()


class LoadOnlyProvider:
    """A read-only provider: only ``async def load``."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.loads = 0

    async def load(self) -> str:
        self.loads += 1
        return self.key


def client_for(
    server: LocalNotifyServer,
    provider: object,
    *,
    rotation_grace: float = 0,
    hook: list[str] | None = None,
) -> NotifyClient:
    """A client on ``provider``; no grace window unless the test is about it."""

    async def record(prefix: str) -> None:
        assert hook is not None
        hook.append(prefix)

    return NotifyClient(
        credentials=provider,  # type: ignore[arg-type]
        base_url=server.base_url,
        rotation_grace=rotation_grace,
        on_key_change=record if hook is not None else None,
    )


async def send(client: NotifyClient, subject: str) -> None:
    await client.emails.send(to="ada@example.com", subject=subject, message="Hello")


def accepted_subjects(server: LocalNotifyServer) -> collections.Counter[str | None]:
    return collections.Counter(email.subject for email in server.emails)


# -- an external rotation ----------------------------------------------------------------------


async def test_many_concurrent_requests_after_an_external_rotation_share_one_reload(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    subjects = [f"concurrent {i}" for i in range(250)]

    async with client_for(notify_server, provider) as client:
        assert provider.loads == 1  # the initial load
        # An operator rotates and publishes the new key; the client still holds the old one.
        provider.key = notify_server.rotate()

        await asyncio.gather(*(send(client, subject) for subject in subjects))

        assert provider.loads == 2  # exactly one reload for all of them
        assert client.key_loads == 2
        assert client.key_prefix == prefix_of(provider.key)

    assert accepted_subjects(notify_server) == collections.Counter(subjects)
    rejected = notify_server.auth_failures
    assert rejected > 0
    # Every rejected send was replayed exactly once; nothing else was sent.
    assert notify_server.request_counts[SEND] == len(subjects) + rejected


async def test_env_var_provider_recovers_after_an_external_rotation(
    notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", notify_server.api_key)

    async with NotifyClient(base_url=notify_server.base_url) as client:
        await send(client, "before")
        monkeypatch.setenv("NOTIFY_API_KEY", notify_server.rotate())
        await send(client, "after")

    assert accepted_subjects(notify_server) == {"before": 1, "after": 1}
    assert notify_server.auth_failures == 1
    assert notify_server.request_counts[SEND] == 3


async def test_file_provider_recovers_after_an_external_rotation(tmp_path: Path) -> None:
    key_file = tmp_path / "notify_api_key"
    # The server itself publishes each operator rotation into the file, like a secret mount.
    async with LocalNotifyServer(key_file=key_file) as server:
        async with client_for(server, FileKeyProvider(key_file)) as client:
            await send(client, "before")
            new_key = server.rotate()
            assert key_file.read_text().strip() == new_key
            await send(client, "after")

            assert client.key_prefix == prefix_of(new_key)
            assert client.key_loads == 2

        assert accepted_subjects(server) == {"before": 1, "after": 1}
        assert server.auth_failures == 1


async def test_the_grace_window_bridges_a_key_file_written_after_the_rotation(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "notify_api_key"
    key_file.write_text(notify_server.api_key + "\n")
    # Another worker rotated, but writes the file only after this client looked twice.
    provider = PublishedLate(key_file, misses=2)

    async with client_for(notify_server, provider, rotation_grace=3.0) as client:
        new_key = notify_server.rotate()

        async def publish() -> None:
            await FileKeyProvider(key_file).store(new_key)

        provider.publish = publish
        await send(client, "bridged")

        assert client.key_prefix == prefix_of(new_key)

    # Two looks found the rejected key; the third, after the write, the new one.
    assert provider.reloads == 3
    assert client.key_loads == 1 + 3
    assert accepted_subjects(notify_server) == {"bridged": 1}
    assert notify_server.request_counts[SEND] == 2


async def test_the_grace_window_bridges_a_key_file_rewritten_in_place(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "notify_api_key"
    key_file.write_text(notify_server.api_key + "\n")

    provider = PublishedLate(key_file, misses=2)

    async with client_for(notify_server, provider, rotation_grace=3.0) as client:
        new_key = notify_server.rotate()
        # A publisher that is not atomic (`echo KEY > file`): the file is empty for a while,
        # here for the client's first two looks.
        key_file.write_text("")

        async def finish_writing() -> None:
            key_file.write_text(new_key + "\n")

        provider.publish = finish_writing
        await send(client, "bridged")
        assert client.key_prefix == prefix_of(new_key)

    # An empty file inside the window is "not published yet", not a failure.
    assert provider.reloads == 3
    assert accepted_subjects(notify_server) == {"bridged": 1}
    assert notify_server.request_counts[SEND] == 2


async def test_a_provider_that_keeps_failing_on_reload_fails_after_the_grace_window(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "notify_api_key"
    key_file.write_text(notify_server.api_key + "\n")

    grace = 0.4

    async with client_for(notify_server, FileKeyProvider(key_file), rotation_grace=grace) as client:
        notify_server.rotate()
        key_file.unlink()
        started = time.monotonic()
        with pytest.raises(CredentialError, match="does not exist") as caught:
            await send(client, "lost")
        elapsed = time.monotonic() - started
        reloads = client.key_loads - 1

    assert caught.value.attempts == 1
    assert notify_server.emails == []
    # It kept looking through the window (with rotation_grace=0 it looks once), with
    # backoff: a few looks, never a loop.
    assert 1 < reloads <= 5
    assert elapsed < grace + 2.0  # the docs' "plus about a second", with room for a busy machine


async def test_a_watching_provider_pushes_the_new_key_without_any_401(
    notify_server: LocalNotifyServer,
) -> None:
    class PushingProvider:
        """A provider fed by a change stream (a Vault watch, a config service)."""

        def __init__(self, key: str) -> None:
            self.key = key
            self.loads = 0
            self.pushes: asyncio.Queue[str] = asyncio.Queue()
            self.watching = asyncio.Event()
            self.cancelled = False

        async def load(self) -> str:
            self.loads += 1
            return self.key

        async def watch(self, on_key: KeyListener) -> None:
            self.watching.set()
            try:
                while True:
                    self.key = await self.pushes.get()
                    await on_key(self.key)
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    provider = PushingProvider(notify_server.api_key)
    assert isinstance(provider, WatchingCredentialProvider)
    changes: list[str] = []

    async with client_for(notify_server, provider, hook=changes) as client:
        await asyncio.wait_for(provider.watching.wait(), timeout=5)
        new_key = notify_server.rotate()
        provider.pushes.put_nowait(new_key)
        await wait_until(lambda: bool(changes))

        await asyncio.gather(*(send(client, f"pushed {i}") for i in range(20)))

        assert changes == [prefix_of(new_key)]
        assert provider.loads == 1  # the push replaced the reload

    assert notify_server.auth_failures == 0
    assert len(notify_server.emails) == 20
    # close() cancelled the watch and waited for it: no task outlives the client.
    assert provider.cancelled
    assert [t for t in asyncio.all_tasks() if t.get_name() == WATCH_TASK] == []


async def test_a_failing_watch_falls_back_to_reloading_on_a_401(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenWatch(CountingProvider):
        async def watch(self, on_key: KeyListener) -> None:
            raise RuntimeError("the change stream is down")

    provider = BrokenWatch(notify_server.api_key)

    async with client_for(notify_server, provider) as client:
        await wait_until(lambda: "stopped" in caplog.text)
        provider.key = notify_server.rotate()
        await send(client, "after")

    assert accepted_subjects(notify_server) == {"after": 1}
    assert provider.loads == 2


# -- a dead key fails in bounded time, with bounded requests and loads -----------------------


async def test_a_dead_key_is_an_authentication_error_after_two_requests_at_most(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    grace = 0.5

    async with client_for(notify_server, provider, rotation_grace=grace) as client:
        notify_server.rotate()  # nobody publishes the new key
        started = time.monotonic()
        with pytest.raises(AuthenticationError) as caught:
            await send(client, "lost")
        elapsed = time.monotonic() - started

    error = caught.value
    assert error.status_code == 401
    assert notify_server.request_counts[SEND] <= 2
    assert error.attempts == notify_server.request_counts[SEND]
    assert 1 < provider.loads - 1 <= 5  # polled a few times, then gave up
    assert elapsed < grace + 2.0  # the docs' "plus about a second", with room for a busy machine
    assert notify_server.emails == []
    assert provider.key not in str(error)


async def test_a_dead_key_with_the_default_grace_fails_within_the_grace_window(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    grace = 3.0  # the documented default

    # No rotation_grace: this is the one test that waits out the default window.
    async with NotifyClient(credentials=provider, base_url=notify_server.base_url) as client:
        notify_server.rotate()
        started = time.monotonic()
        with pytest.raises(AuthenticationError) as caught:
            await send(client, "lost")
        elapsed = time.monotonic() - started

    assert caught.value.status_code == 401
    assert f"{grace:g}s" in str(caught.value)  # the message says how long it waited
    assert notify_server.request_counts[SEND] <= 2
    # Polls at 0, 0.02, 0.12, 0.62, then at most 1 s apart up to 3 s: a handful, never a loop.
    assert 1 < provider.loads - 1 <= 8
    assert elapsed < grace + 2.0  # the docs' "plus about a second", with room for a busy machine


async def test_no_grace_window_means_a_single_load(notify_server: LocalNotifyServer) -> None:
    provider = CountingProvider(notify_server.api_key)

    async with client_for(notify_server, provider, rotation_grace=0) as client:
        notify_server.rotate()
        with pytest.raises(AuthenticationError) as caught:
            await send(client, "lost")

    assert caught.value.status_code == 401
    assert provider.loads - 1 == 1
    assert notify_server.request_counts[SEND] == 1


async def test_a_reloaded_key_that_is_also_rejected_is_never_replayed_twice(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)

    async with client_for(notify_server, provider, rotation_grace=0) as client:
        notify_server.rotate()
        provider.key = "nk_published_but_wrong_0000000000000"
        with pytest.raises(AuthenticationError) as caught:
            await send(client, "lost")

    assert caught.value.status_code == 401
    assert caught.value.attempts == 2
    assert notify_server.request_counts[SEND] == 2  # the rejected reload is not sent again
    # One reload found the wrong key; after its 401 one more look found only it again.
    assert provider.loads - 1 == 2
    assert "nk_published_but_wrong" not in str(caught.value)


async def test_concurrent_calls_on_a_dead_key_share_the_bounded_reload(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)

    async with client_for(notify_server, provider, rotation_grace=0.3) as client:
        notify_server.rotate()
        results = await asyncio.gather(
            *(send(client, f"lost {i}") for i in range(30)), return_exceptions=True
        )

        assert all(isinstance(r, AuthenticationError) for r in results)
        # One shared reload, not one per call.
        assert provider.loads - 1 <= 5
        # Another call on the still dead key is bounded in the same way: it never loops.
        before = provider.loads
        with pytest.raises(AuthenticationError):
            await send(client, "lost again")
        assert provider.loads - before <= 5

    assert notify_server.request_counts[SEND] <= 2 * 31
    assert notify_server.emails == []


async def test_the_auth_replay_does_not_use_up_the_retry_budget(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)

    async with client_for(notify_server, provider) as client:
        provider.key = notify_server.rotate()
        # 401 (old key) -> reload and replay -> 503 -> retry -> accepted.
        notify_server.inject(SEND, Fault.status(401), Fault.status(503))
        with instant_retries():
            await send(client, "replayed then retried")

    assert accepted_subjects(notify_server) == {"replayed then retried": 1}
    assert notify_server.request_counts[SEND] == 3


async def test_a_retry_after_a_503_still_gets_its_auth_replay(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)

    async with client_for(notify_server, provider) as client:
        provider.key = notify_server.rotate()
        # 503 -> retry with the old key -> 401 -> reload and replay -> accepted.
        notify_server.inject(SEND, Fault.status(503, headers={"Retry-After": "0"}))
        with instant_retries():
            await send(client, "retried then replayed")

    assert accepted_subjects(notify_server) == {"retried then replayed": 1}
    assert notify_server.request_counts[SEND] == 3
    assert provider.loads == 2


# -- own rotations -----------------------------------------------------------------------------


async def test_in_flight_requests_survive_the_clients_own_regenerate(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)
    delayed = [f"in flight {i}" for i in range(10)]
    later = [f"after {i}" for i in range(10)]

    async with client_for(notify_server, provider) as client:
        await client.api_keys.list()  # learn our key's id, so regenerate sends no list
        # The server holds these sends before checking their (then old) key.
        notify_server.inject(SEND, *[Fault.delay(0.5)] * len(delayed))
        in_flight = [asyncio.create_task(send(client, s)) for s in delayed]
        await wait_until(lambda: notify_server.request_counts[SEND] == len(delayed))

        result = await client.api_keys.regenerate(notify_server.primary_key_id)
        assert all(not task.done() for task in in_flight)

        await asyncio.gather(*in_flight, *(send(client, s) for s in later))

    assert result.api_key == notify_server.api_key
    assert accepted_subjects(notify_server) == collections.Counter(delayed + later)
    # Each in-flight send was rejected once and replayed with the adopted key; no reload.
    assert notify_server.auth_failures == len(delayed)
    assert notify_server.request_counts[SEND] == 2 * len(delayed) + len(later)
    assert provider.loads == 1
    assert provider.stored == [result.api_key]


async def test_own_regenerate_adopts_the_key_at_once_and_stores_it_before_returning(
    notify_server: LocalNotifyServer,
) -> None:
    events: list[str] = []

    class RecordingProvider(CountingProvider):
        async def store(self, key: str) -> None:
            # By the time the key is stored, the client already uses it.
            events.append(f"store {prefix_of(key)} while using {client.key_prefix}")
            await super().store(key)

    provider = RecordingProvider(notify_server.api_key)
    client = client_for(notify_server, provider)
    async with client:
        result = await client.api_keys.regenerate(notify_server.primary_key_id)
        events.append("returned")
        new = prefix_of(result.api_key)

        assert client.key_prefix == new
        await send(client, "with the new key")

    assert events == [f"store {new} while using {new}", "returned"]
    assert provider.stored == [result.api_key] == [notify_server.api_key]
    assert notify_server.auth_failures == 0
    assert provider.loads == 1


async def test_own_regenerate_with_a_read_only_provider_adopts_and_warns(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = LoadOnlyProvider(notify_server.api_key)

    async with client_for(notify_server, provider) as client:
        result = await client.api_keys.regenerate(notify_server.primary_key_id)
        await send(client, "with the new key")

    assert notify_server.auth_failures == 0
    assert "cannot store" in caplog.text
    assert prefix_of(result.api_key) in caplog.text
    assert result.api_key not in caplog.text


async def test_regenerating_another_key_changes_nothing_in_the_client() -> None:
    async with LocalNotifyServer(keys=2) as server:
        provider = CountingProvider(server.api_key)
        changes: list[str] = []
        other_id = server.keys[1].id

        async with client_for(server, provider, hook=changes) as client:
            before = client.key_prefix
            result = await client.api_keys.regenerate(other_id)

            assert result.id == other_id
            assert result.api_key == server.keys[1].secret
            assert client.key_prefix == before == prefix_of(server.api_key)
            await send(client, "still with our key")

        assert provider.stored == []
        assert changes == []
        assert provider.loads == 1
        assert server.auth_failures == 0


async def test_rotate_regenerates_stores_and_verifies_with_one_list_call(
    notify_server: LocalNotifyServer,
) -> None:
    provider = CountingProvider(notify_server.api_key)

    async with client_for(notify_server, provider) as client:
        await client.api_keys.list()  # our key's id is now known
        notify_server.reset_counters()

        result = await client.api_keys.rotate()

        assert notify_server.request_counts[REGENERATE] == 1
        assert notify_server.request_counts[LIST] == 1  # the check that the new key works
        assert notify_server.auth_failures == 0
        assert client.key_prefix == prefix_of(result.api_key)

    assert result.id == notify_server.primary_key_id
    assert result.api_key == notify_server.api_key
    assert provider.stored == [result.api_key]


async def test_rotate_on_a_fresh_client_finds_its_own_key_first(tmp_path: Path) -> None:
    key_file = tmp_path / "notify_api_key"
    async with LocalNotifyServer(keys=3, key_file=key_file) as server:
        async with client_for(server, FileKeyProvider(key_file)) as client:
            first = await client.api_keys.rotate()
            second = await client.api_keys.rotate()

        assert first.api_key != second.api_key == server.api_key
        assert key_file.read_text().strip() == second.api_key
        # One list to find the key's id, then one check per rotation; the id is cached.
        assert server.request_counts[LIST] == 3
        assert server.request_counts[REGENERATE] == 2
        assert server.auth_failures == 0


async def test_a_failed_store_raises_key_store_error_carrying_the_new_key(
    notify_server: LocalNotifyServer,
) -> None:
    old_key = notify_server.api_key

    def store(key: str) -> None:
        raise PermissionError(f"read-only secret store, cannot write {key}")

    provider = CallableKeyProvider(lambda: old_key, store)

    async with client_for(notify_server, provider) as client:
        with pytest.raises(KeyStoreError) as caught:
            await client.api_keys.rotate()

        new_key = caught.value.result.api_key
        assert new_key == notify_server.api_key
        assert caught.value.result.id == notify_server.primary_key_id
        # The client already uses the new key: nothing is lost, and no 401 follows.
        assert client.key_prefix == prefix_of(new_key)
        await send(client, "with the new key")

    assert notify_server.auth_failures == 0
    assert new_key not in str(caught.value)
    assert prefix_of(new_key) in str(caught.value)


# -- telling the application -------------------------------------------------------------------


async def test_key_changes_reach_the_hook_and_the_log_as_a_prefix_only(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="notify_async")
    provider = CountingProvider(notify_server.api_key)
    old_key = notify_server.api_key
    changes: list[str] = []

    async with client_for(notify_server, provider, hook=changes) as client:
        provider.key = external = notify_server.rotate()
        await send(client, "after an external rotation")
        own = await client.api_keys.rotate()

    assert changes == [prefix_of(external), prefix_of(own.api_key)]
    key_logs = [r for r in caplog.records if "key changed" in r.getMessage()]
    assert [r.levelno for r in key_logs] == [logging.INFO, logging.INFO]
    assert prefix_of(external) in key_logs[0].getMessage()
    assert prefix_of(own.api_key) in key_logs[1].getMessage()
    for key in (old_key, external, own.api_key):
        assert key not in caplog.text
        assert all(key not in prefix for prefix in changes)


async def test_a_failing_hook_does_not_fail_the_request(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = CountingProvider(notify_server.api_key)

    async def broken_hook(prefix: str) -> None:
        raise RuntimeError("audit log is down")

    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, on_key_change=broken_hook
    ) as client:
        provider.key = notify_server.rotate()
        await send(client, "despite the hook")

    assert accepted_subjects(notify_server) == {"despite the hook": 1}
    assert "on_key_change hook failed" in caplog.text
