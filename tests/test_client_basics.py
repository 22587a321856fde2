"""Building a NotifyClient: base URL, where the key comes from, bad input, repr, with_options.

Closing and session ownership are in ``test_closing.py``; credential providers, the user's
own classes included, in ``test_providers.py``.
"""

from __future__ import annotations

import pytest
from support import leaks

from notify_async import (
    DEFAULT_BASE_URL,
    CallableKeyProvider,
    CredentialError,
    EnvKeyProvider,
    NotifyClient,
    StaticKeyProvider,
)
from notify_async.testing import LocalNotifyServer

# A key that is easy to spot in a message, in whole or in part.
SECRET = "nk_SeCrEtVaLuE0123456789abcdefghij"


# -- base URL --------------------------------------------------------------------------------


def test_default_base_url_is_notify() -> None:
    client = NotifyClient(SECRET)

    assert client.base_url == DEFAULT_BASE_URL == "https://notify.cx/api/public/v1"


def test_env_base_url_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_BASE_URL", "https://eu.notify.example/api/public/v1")

    assert NotifyClient(SECRET).base_url == "https://eu.notify.example/api/public/v1"


def test_explicit_base_url_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_BASE_URL", "https://eu.notify.example/api/public/v1")

    client = NotifyClient(SECRET, base_url="https://notify.example/v1")

    assert client.base_url == "https://notify.example/v1"


def test_trailing_slash_of_base_url_is_dropped() -> None:
    assert NotifyClient(SECRET, base_url="https://notify.example/v1/").base_url == (
        "https://notify.example/v1"
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/api/public/v1",
        "http://127.0.0.2:8080/api",
        "http://localhost:8080/api",
        "http://[::1]:8080/api",
    ],
)
def test_plain_http_is_allowed_to_loopback(base_url: str) -> None:
    assert NotifyClient(SECRET, base_url=base_url).base_url == base_url


@pytest.mark.parametrize(
    "base_url", ["http://notify.cx/api/public/v1", "http://10.0.0.5/api", "http://127.example/"]
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="https://") as caught:
        NotifyClient(SECRET, base_url=base_url)

    assert "clear text" in str(caught.value)
    assert not leaks(str(caught.value), SECRET)


def test_plain_http_from_env_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_BASE_URL", "http://notify.cx/api/public/v1")

    with pytest.raises(ValueError, match="https://"):
        NotifyClient(SECRET)


@pytest.mark.parametrize(
    "base_url",
    ["notify.cx/api/public/v1", "ftp://notify.cx/api", "https://", "https://notify.cx/v1?x=1"],
)
def test_malformed_base_url_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        NotifyClient(SECRET, base_url=base_url)


# -- where the key comes from ----------------------------------------------------------------


async def test_key_comes_from_notify_api_key_by_default(
    notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", notify_server.api_key)

    async with NotifyClient(base_url=notify_server.base_url) as client:
        keys = await client.api_keys.list()

    assert isinstance(client.credentials, EnvKeyProvider)
    assert client.credentials.var == "NOTIFY_API_KEY"
    assert [k.id for k in keys] == [notify_server.primary_key_id]
    assert notify_server.auth_failures == 0


async def test_given_api_key_is_used(notify_server: LocalNotifyServer) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        await client.api_keys.list()

    assert isinstance(client.credentials, StaticKeyProvider)
    assert notify_server.request_counts["GET /api_keys"] == 1
    assert notify_server.auth_failures == 0


def test_api_key_and_credentials_together_are_refused() -> None:
    with pytest.raises(ValueError, match="either api_key or credentials") as caught:
        NotifyClient(SECRET, credentials=StaticKeyProvider(SECRET))

    assert not leaks(str(caught.value), SECRET)


# -- bad keys: refused at construction, with a message that says what to do -------------------


@pytest.mark.parametrize(
    ("key", "advice"),
    [
        ("", "empty API key"),
        ("   ", "empty API key"),
        ("\t\n", "empty API key"),
        ("nk_SeCrEt\rVaLuE0123456789abcdefghij", "several lines"),
        ("nk_SeCrEtVaLuE01234\n56789abcdefghij", "several lines"),
        ("nk_SeCrEtVaLuE01234\x0056789abcdefghij", "cannot carry"),
        ("nk_SeCrEtVaLuE01234\x7f56789abcdefghij", "cannot carry"),
        ("nk_SeCrEtVaLuE01234\x1b56789abcdefghij", "cannot carry"),
        ("nk_SeCrEtVaLuE01234 56789abcdefghij", "cannot carry"),
    ],
)
def test_a_bad_api_key_is_refused_before_anything_is_sent(key: str, advice: str) -> None:
    with pytest.raises(ValueError, match=advice) as caught:
        NotifyClient(key)

    message = str(caught.value)
    assert "api_key" in message
    for part in key.split():
        assert not leaks(message, part, shown=4)


async def test_a_bad_key_sends_nothing(notify_server: LocalNotifyServer) -> None:
    with pytest.raises(ValueError, match="several lines"):
        NotifyClient(notify_server.api_key + "\nX", base_url=notify_server.base_url)

    assert sum(notify_server.request_counts.values()) == 0


@pytest.mark.parametrize("wrapped", ["{}\n", "\ufeff{}", "  {}\r\n", "\t{} "])
async def test_a_bom_and_surrounding_whitespace_are_stripped(
    notify_server: LocalNotifyServer, wrapped: str
) -> None:
    async with NotifyClient(
        wrapped.format(notify_server.api_key), base_url=notify_server.base_url
    ) as client:
        await client.api_keys.list()
        rotated = await client.api_keys.rotate()

    assert rotated.api_key == notify_server.api_key


async def test_a_custom_providers_key_is_stripped_too(notify_server: LocalNotifyServer) -> None:
    async def load() -> str:
        return " " + notify_server.api_key + "\n"

    async with NotifyClient(
        credentials=CallableKeyProvider(load, lambda key: None), base_url=notify_server.base_url
    ) as client:
        await client.api_keys.rotate()  # finds its own key id from the stripped key

    assert notify_server.request_counts["POST /api_keys/regenerate"] == 1


def test_unset_notify_api_key_is_refused_naming_the_variable() -> None:
    with pytest.raises(CredentialError) as caught:
        NotifyClient()

    message = str(caught.value)
    assert "NOTIFY_API_KEY" in message
    assert "not set" in message
    # ...and says how to fix it.
    assert "export" in message
    assert "api_key=" in message


@pytest.mark.parametrize(
    ("value", "advice"),
    [
        ("", "empty API key"),
        ("  ", "empty API key"),
        (SECRET[:9] + "\n" + SECRET[9:], "several lines"),
        # A byte that is not UTF-8 reaches Python as a surrogate escape.
        (SECRET[:9] + "\udcff" + SECRET[9:], "cannot carry"),
    ],
)
def test_a_bad_notify_api_key_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, advice: str
) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", value)

    with pytest.raises(CredentialError, match=advice) as caught:
        NotifyClient()

    assert "NOTIFY_API_KEY" in str(caught.value)
    assert not leaks(str(caught.value), SECRET)


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1},
        {"max_retries": True},
        {"max_retries": 1.5},
        {"timeout": 0},
        {"timeout": -1.0},
        {"connect_timeout": 0},
        {"rotation_grace": -1},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r">=? 0"):
        NotifyClient(SECRET, **options)  # type: ignore[arg-type]


# -- repr never shows the key ----------------------------------------------------------------


def test_repr_shows_at_most_the_start_of_the_key() -> None:
    client = NotifyClient(SECRET)

    for text in (repr(client), str(client), repr(client.credentials)):
        assert SECRET[:4] in text
        assert not leaks(text, SECRET)
    assert client.key_prefix is not None
    assert SECRET.startswith(client.key_prefix.removesuffix("..."))


def test_repr_of_a_short_key_shows_less() -> None:
    client = NotifyClient("abcdefghi")

    assert not leaks(repr(client), "abcdefghi", shown=3)


def test_repr_from_env_shows_at_most_the_start_of_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", SECRET)

    assert not leaks(repr(NotifyClient()), SECRET)


async def test_repr_after_a_provider_load_shows_at_most_the_start_of_the_key(
    notify_server: LocalNotifyServer,
) -> None:
    class Provider:
        async def load(self) -> str:
            return notify_server.api_key

    async with NotifyClient(credentials=Provider(), base_url=notify_server.base_url) as client:
        await client.api_keys.list()
        text = repr(client)

    assert not leaks(text, notify_server.api_key)


# -- with_options ----------------------------------------------------------------------------


async def test_with_options_returns_a_view_with_its_own_options(
    notify_server: LocalNotifyServer,
) -> None:
    # That the view shares the client's session, and that closing it closes nothing:
    # test_closing.py.
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        view = client.with_options(max_retries=0, timeout=5.0)
        await view.api_keys.list()
        await client.api_keys.list()

        assert (view.max_retries, view.timeout) == (0, 5.0)
        assert (client.max_retries, client.timeout) == (2, 30.0)
        assert view.base_url == client.base_url
    assert notify_server.request_counts["GET /api_keys"] == 2


async def test_with_options_view_follows_the_clients_key(
    notify_server: LocalNotifyServer,
) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        view = client.with_options(max_retries=0)
        await client.api_keys.regenerate(notify_server.primary_key_id)

        await view.emails.send(to="ada@example.com", subject="Hi", message="Hello")

        assert view.key_prefix == client.key_prefix
    assert notify_server.auth_failures == 0
    assert [e.key_id for e in notify_server.emails] == [notify_server.primary_key_id]


def test_with_options_checks_its_options() -> None:
    client = NotifyClient(SECRET)

    with pytest.raises(ValueError, match="max_retries"):
        client.with_options(max_retries=-1)
