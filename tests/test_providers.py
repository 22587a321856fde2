"""Credential providers: where the key comes from, and how a rotated key is persisted."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import pytest

from notify_async import (
    CallableKeyProvider,
    ChainKeyProvider,
    CredentialError,
    CredentialProvider,
    EnvKeyProvider,
    FileKeyProvider,
    NotifyClient,
    StaticKeyProvider,
    WatchingCredentialProvider,
    WritableCredentialProvider,
)
from notify_async.testing import LocalNotifyServer

KEY = "nk_0123456789abcdefghijklmnopqrstu"
VAR = "NOTIFY_TEST_PROVIDER_KEY"


@pytest.fixture
def unset_var(monkeypatch: pytest.MonkeyPatch) -> str:
    """A variable that is unset now and restored (unset) after the test, even if stored."""
    monkeypatch.delenv(VAR, raising=False)
    return VAR


def names_in(folder: Path) -> list[str]:
    """The names in a folder, to show that no temporary file was left behind."""
    return sorted(p.name for p in folder.iterdir())


# -- StaticKeyProvider -----------------------------------------------------------------------


async def test_static_provider_returns_its_key_and_store_replaces_it() -> None:
    provider = StaticKeyProvider(KEY)

    assert await provider.load() == KEY
    await provider.store("nk_new")
    assert await provider.load() == "nk_new"
    assert isinstance(provider, WritableCredentialProvider)


def test_static_provider_repr_shows_a_prefix_only() -> None:
    assert KEY not in repr(StaticKeyProvider(KEY))


# -- EnvKeyProvider --------------------------------------------------------------------------


async def test_env_provider_reads_the_variable_at_every_load(
    monkeypatch: pytest.MonkeyPatch, unset_var: str
) -> None:
    provider = EnvKeyProvider(unset_var)
    monkeypatch.setenv(unset_var, KEY)
    assert await provider.load() == KEY

    monkeypatch.setenv(unset_var, "nk_rotated")
    assert await provider.load() == "nk_rotated"


async def test_env_provider_store_sets_the_variable_in_this_process(unset_var: str) -> None:
    provider = EnvKeyProvider(unset_var)

    await provider.store(KEY)

    assert os.environ[unset_var] == KEY
    assert await provider.load() == KEY


async def test_env_provider_defaults_to_notify_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", KEY)

    assert EnvKeyProvider().var == "NOTIFY_API_KEY"
    assert await EnvKeyProvider().load() == KEY


async def test_env_provider_names_an_unset_variable(unset_var: str) -> None:
    with pytest.raises(CredentialError, match=unset_var):
        await EnvKeyProvider(unset_var).load()


# -- FileKeyProvider -------------------------------------------------------------------------


async def test_file_provider_strips_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(f"  {KEY}\n\n")

    assert await FileKeyProvider(path).load() == KEY


async def test_file_provider_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "absent"

    with pytest.raises(CredentialError, match="does not exist") as caught:
        await FileKeyProvider(path).load()

    assert str(path) in caught.value.message


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
async def test_file_provider_empty_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "key"
    path.write_text(content)

    with pytest.raises(CredentialError, match="empty API key") as caught:
        await FileKeyProvider(path).load()

    assert str(path) in caught.value.message


async def test_file_provider_store_writes_the_key_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("nk_old\n")
    path.chmod(0o644)
    provider = FileKeyProvider(path)

    await provider.store(KEY)

    assert await provider.load() == KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert names_in(tmp_path) == ["key"]


async def test_file_provider_store_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "key"

    await FileKeyProvider(path).store(KEY)

    assert path.read_text().strip() == KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_reader_racing_the_writer_never_sees_a_partial_or_empty_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "key"
    # Keys of very different lengths, so that a torn write would show as a foreign value.
    keys = [f"nk_{i:04d}_" + "x" * (10 + 977 * (i % 5)) for i in range(150)]
    path.write_text(keys[0])
    writer = FileKeyProvider(path)
    reader = FileKeyProvider(path)
    allowed = set(keys)
    seen: list[str] = []
    problems: list[str] = []
    done = threading.Event()

    def read_until_done() -> None:
        # A plain thread, so that it races the writer's worker thread for real.
        while not done.is_set():
            try:
                text = path.read_text()
            except OSError as exc:  # a rename is atomic: the path always exists
                problems.append(f"read failed: {exc!r}")
                continue
            if text.strip() not in allowed:
                problems.append(f"saw {len(text)} characters that are no whole key")
            seen.append(text.strip())

    thread = threading.Thread(target=read_until_done)
    thread.start()
    try:
        for key in keys[1:]:
            await writer.store(key)
            # The async reader races too: it must never raise for a half-written file.
            assert await reader.load() in allowed
    finally:
        done.set()
        thread.join()

    assert problems == []
    assert len(seen) > len(keys)  # the reader really ran during the writes
    assert await reader.load() == keys[-1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert names_in(tmp_path) == ["key"]  # no temporary file left behind


async def test_file_store_into_a_missing_folder_fails_and_leaves_nothing(tmp_path: Path) -> None:
    provider = FileKeyProvider(tmp_path / "absent" / "key")

    with pytest.raises(OSError, match="No such file"):
        await provider.store(KEY)

    assert names_in(tmp_path) == []


# -- CallableKeyProvider ---------------------------------------------------------------------


async def test_callable_provider_runs_a_sync_function_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    stored: list[str] = []

    def load() -> str:
        threads.append(threading.get_ident())
        return KEY

    def store(key: str) -> None:
        threads.append(threading.get_ident())
        stored.append(key)

    provider = CallableKeyProvider(load, store)

    assert await provider.load() == KEY
    await provider.store("nk_new")

    assert stored == ["nk_new"]
    assert len(threads) == 2
    assert loop_thread not in threads


async def test_callable_provider_awaits_async_functions_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    stored: list[str] = []

    async def load() -> str:
        threads.append(threading.get_ident())
        await asyncio.sleep(0)
        return KEY

    async def store(key: str) -> None:
        threads.append(threading.get_ident())
        stored.append(key)

    provider = CallableKeyProvider(load, store)

    assert await provider.load() == KEY
    await provider.store("nk_new")

    assert stored == ["nk_new"]
    assert threads == [loop_thread, loop_thread]


async def test_a_slow_sync_lookup_does_not_block_the_event_loop() -> None:
    release = threading.Event()

    def load() -> str:
        release.wait(timeout=5)
        return KEY

    loading = asyncio.ensure_future(CallableKeyProvider(load).load())
    # The loop keeps running while the lookup blocks its thread; only then is it released.
    await asyncio.sleep(0.01)
    assert not loading.done()
    release.set()

    assert await loading == KEY


async def test_callable_provider_without_store_says_so() -> None:
    provider = CallableKeyProvider(lambda: KEY)

    assert provider.can_store is False
    with pytest.raises(CredentialError, match="no store function"):
        await provider.store("nk_new")


# -- ChainKeyProvider ------------------------------------------------------------------------


async def test_chain_takes_the_first_provider_that_yields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unset_var: str
) -> None:
    path = tmp_path / "key"
    path.write_text(KEY)
    chain = ChainKeyProvider(EnvKeyProvider(unset_var), FileKeyProvider(path))

    assert await chain.load() == KEY  # the variable is unset: the file answers

    monkeypatch.setenv(unset_var, "nk_from_env")
    assert await chain.load() == "nk_from_env"  # the earlier provider wins once it yields


async def test_chain_with_no_key_anywhere_names_every_failure(
    tmp_path: Path, unset_var: str
) -> None:
    chain = ChainKeyProvider(EnvKeyProvider(unset_var), FileKeyProvider(tmp_path / "absent"))

    with pytest.raises(CredentialError, match="no provider in the chain") as caught:
        await chain.load()

    assert unset_var in caught.value.message
    assert "does not exist" in caught.value.message


async def test_chain_stores_with_the_first_provider_that_can(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("nk_old")
    read_only = CallableKeyProvider(lambda: "nk_old")
    file_provider = FileKeyProvider(path)
    last = StaticKeyProvider("nk_old")
    chain = ChainKeyProvider(read_only, file_provider, last)

    await chain.store(KEY)

    assert path.read_text().strip() == KEY
    assert await last.load() == "nk_old"  # only the first writable provider is written


async def test_chain_with_nothing_writable_cannot_store() -> None:
    chain = ChainKeyProvider(CallableKeyProvider(lambda: KEY))

    assert chain.can_store is False
    with pytest.raises(CredentialError, match="can store"):
        await chain.store("nk_new")


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one provider"):
        ChainKeyProvider()


# -- the protocol, and any user class ---------------------------------------------------------


class VaultLookup:
    """A user's own provider: nothing but ``async def load``."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.loads = 0

    async def load(self) -> str:
        self.loads += 1
        return self.key


def test_a_user_class_with_only_async_load_is_a_credential_provider() -> None:
    lookup = VaultLookup(KEY)

    assert isinstance(lookup, CredentialProvider)
    assert not isinstance(lookup, WritableCredentialProvider)
    assert not isinstance(lookup, WatchingCredentialProvider)


def test_every_bundled_provider_is_a_credential_provider(tmp_path: Path) -> None:
    providers: list[object] = [
        StaticKeyProvider(KEY),
        EnvKeyProvider(),
        FileKeyProvider(tmp_path / "key"),
        CallableKeyProvider(lambda: KEY),
        ChainKeyProvider(StaticKeyProvider(KEY)),
    ]

    for provider in providers:
        assert isinstance(provider, CredentialProvider), provider
        assert isinstance(provider, WritableCredentialProvider), provider


async def test_a_user_class_works_with_the_client(notify_server: LocalNotifyServer) -> None:
    lookup = VaultLookup(notify_server.api_key)

    async with NotifyClient(credentials=lookup, base_url=notify_server.base_url) as client:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert client.credentials is lookup
    assert lookup.loads == 1
    assert len(notify_server.emails) == 1
    assert notify_server.auth_failures == 0


class KeyWithoutLoad:
    """Holds a key, but has no ``load``: not a provider, however key-like it looks."""

    key = KEY


@pytest.mark.parametrize(
    "candidate",
    [pytest.param(object(), id="object"), pytest.param(KeyWithoutLoad(), id="key-without-load")],
)
def test_an_object_without_load_is_refused_saying_what_a_provider_is(candidate: object) -> None:
    assert not isinstance(candidate, CredentialProvider)
    with pytest.raises(ValueError, match="CredentialProvider: an object with async def load"):
        NotifyClient(credentials=candidate)  # type: ignore[arg-type]


# -- bad keys from a provider never leak into messages ----------------------------------------


SECRET = "nk_TOPSECRET_value_1234567890"


def _raise_with_secret() -> str:
    raise RuntimeError(f"vault said no for {SECRET}")


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        pytest.param(lambda: f"{SECRET}\nsecond line", "several lines", id="multi-line"),
        pytest.param(lambda: f"{SECRET}\rinjected", "several lines", id="carriage-return"),
        pytest.param(lambda: f"{SECRET}\x00", "cannot carry", id="nul"),
        pytest.param(lambda: f"{SECRET[:9]}\x7f{SECRET[9:]}", "cannot carry", id="del"),
        pytest.param(lambda: f"\x1b{SECRET}", "cannot carry", id="esc"),
        pytest.param(lambda: f"{SECRET[:5]}\u00e9{SECRET[5:]}", "cannot carry", id="non-ascii"),
        pytest.param(lambda: "", "empty API key", id="empty"),
        pytest.param(lambda: "   ", "empty API key", id="blank"),
        pytest.param(lambda: 12345, "not a str", id="not-a-str"),
        pytest.param(_raise_with_secret, "RuntimeError", id="raises"),
    ],
)
async def test_a_bad_key_from_a_provider_is_a_credential_error_without_the_key(
    notify_server: LocalNotifyServer, load: object, expected: str
) -> None:
    provider = CallableKeyProvider(load)  # type: ignore[arg-type]
    client = NotifyClient(credentials=provider, base_url=notify_server.base_url)

    with pytest.raises(CredentialError, match=expected) as caught:
        async with client:
            pass

    assert SECRET not in str(caught.value)
    assert "TOPSECRET" not in caught.value.message
    assert sum(notify_server.request_counts.values()) == 0  # failed before any traffic


async def test_a_bad_key_on_reload_is_a_credential_error_without_the_key(
    notify_server: LocalNotifyServer,
) -> None:
    keys = [notify_server.api_key, f"{SECRET}\nsecond line"]

    async def load() -> str:
        return keys.pop(0) if len(keys) > 1 else keys[0]

    # No grace window: polling a provider that keeps giving a bad key only delays the error.
    async with NotifyClient(
        credentials=CallableKeyProvider(load), base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        notify_server.rotate()
        with pytest.raises(CredentialError, match="several lines") as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert "TOPSECRET" not in str(caught.value)
    assert notify_server.request_counts["POST /send-email"] == 1
    assert notify_server.emails == []
