"""No API key, old or new, shows anywhere a user or an operator can see it.

Every path runs with DEBUG logging captured for every logger (aiohttp and asyncio
included): success, each error, retries, a 401 reload, this client's own rotation, a
rotation made elsewhere, and the command line. Afterwards nothing may show more of any
key than its redacted prefix (the first 8 characters and ``...``):

* the log records, and what the command line printed;
* the ``str`` and ``repr`` of every object the user can get: results, models, clients,
  resources, providers, errors;
* every exception in each error's chain (``__cause__`` and ``__context__``, recursively,
  aiohttp's own exceptions included), with their ``args`` and attributes;
* ``traceback.format_exception`` of every raised error.

Every key any local server creates is recorded (``_new_secret`` is wrapped), so a key the
test never handled itself is still looked for.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from support import closed_port_url, error_texts, leaks
from yarl import URL

import notify_async.testing._server as server_module
from notify_async import (
    APIConnectionError,
    CallableKeyProvider,
    ChainKeyProvider,
    CredentialError,
    CredentialProvider,
    EnvKeyProvider,
    FileKeyProvider,
    KeyListener,
    KeyStoreError,
    NotifyClient,
    NotifyError,
    StaticKeyProvider,
)
from notify_async._cli import main
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

SHOWN = 8
"""How many leading characters of a key its redacted form shows."""

LOGGERS = ("", "notify_async", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio")

LIST = "GET /api_keys"
REGENERATE = "POST /api_keys/regenerate"
SEND = "POST /send-email"
TEMPLATE = "POST /send-email-from-template"


class Audit:
    """Collects what a test produced and checks that no key shows in any of it."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.objects: list[object] = []
        self.errors: list[BaseException] = []

    def see(self, *objects: object) -> None:
        """Add objects whose str and repr the user can look at."""
        for obj in objects:
            self.objects.append(obj)
            if isinstance(obj, list):
                self.objects.extend(obj)

    def see_client(self, client: NotifyClient) -> None:
        """Add a client and everything reachable from it by public attributes."""
        self.see(
            client,
            client.with_options(max_retries=0),
            client.api_keys,
            client.emails,
            client.credentials,
            client.key_prefix,
            client.base_url,
        )

    async def run(self, call: Awaitable[Any]) -> Any:
        """Await ``call``; keep its result or its error for the final check."""
        try:
            result = await call
        except Exception as error:  # every error is audited, whatever its class
            self.errors.append(error)
            return error
        self.see(result)
        return result

    def texts(self) -> Iterator[tuple[str, str]]:
        """Every text the collected objects and errors show."""
        for obj in self.objects:
            yield f"str({type(obj).__name__})", str(obj)
            yield f"repr({type(obj).__name__})", repr(obj)
        for error in self.errors:
            yield from error_texts(error)
            yield (
                f"traceback of {type(error).__name__}",
                "".join(traceback.format_exception(error)),
            )

    def check(self, caplog: pytest.LogCaptureFixture, *printed: str) -> None:
        """Fail listing every place where a key shows."""
        assert self.keys, "the audit knows no key: it would pass vacuously"
        sources = list(self.texts())
        sources.append(("the log", caplog.text))
        for record in caplog.records:
            sources.append((f"log record from {record.name}", record.getMessage()))
            if record.exc_info and record.exc_info[1] is not None:
                sources.extend(error_texts(record.exc_info[1]))
        sources.extend(("printed output", text) for text in printed)
        shown = [
            f"{where}: shows {key[: SHOWN + 1]}..."
            for where, text in sources
            for key in self.keys
            if leaks(text, key, shown=SHOWN)
        ]
        assert not shown, "\n".join(shown)


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Audit:
    audit = Audit()
    new_secret = server_module._new_secret

    def recorded_secret() -> str:
        secret = new_secret()
        audit.keys.add(secret)
        return secret

    monkeypatch.setattr(server_module, "_new_secret", recorded_secret)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return audit


@pytest.fixture
async def server(audit: Audit) -> AsyncIterator[LocalNotifyServer]:
    # Created after the audit fixture, so its keys are recorded.
    async with LocalNotifyServer(keys=2) as server:
        yield server


def client_for(server: LocalNotifyServer, **options: Any) -> NotifyClient:
    return NotifyClient(server.api_key, base_url=server.base_url, **options)


async def every_call(audit: Audit, client: NotifyClient, other_key_id: str) -> None:
    await audit.run(client.api_keys.list())
    await audit.run(client.emails.send(to="ada@example.com", subject="Hi", message="Hello"))
    await audit.run(client.emails.send_template(template_id="welcome", to="ada@example.com"))
    await audit.run(client.api_keys.regenerate(other_key_id))


# -- success ----------------------------------------------------------------------------------


async def test_success_paths_show_no_key(
    audit: Audit, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    other = server.keys[1].id
    async with client_for(server) as client:
        await every_call(audit, client, other)
        await audit.run(client.with_options(timeout=5).api_keys.list())
        audit.see_client(client)
    audit.see(server.keys, server.emails, client)

    assert not audit.errors
    audit.check(caplog)


# -- each error ---------------------------------------------------------------------------------


def _echo(key: str) -> list[tuple[str, Fault]]:
    """Answers that quote the key back, each in a different place."""
    return [
        (LIST, Fault.status(400, body={"success": False, "message": f"bad key {key}"})),
        (SEND, Fault.status(401, body={"error": {"message": f"Invalid API key: {key}"}})),
        # A snippet is cut at 80 characters: cut through the middle of the key.
        (LIST, Fault.status(500, body="x" * 60 + key, headers={"Content-Type": "text/plain"})),
        (
            SEND,
            Fault.status(502, body=f"<html>{key}</html>", headers={"Content-Type": "text/html"}),
        ),
        (REGENERATE, Fault.status(403, body={"message": "denied " * 40 + key})),
        (LIST, Fault.status(200, body={"success": False, "message": f"key {key} is suspended"})),
        (LIST, Fault.status(200, body="y" * 70 + key)),
        (SEND, Fault.status(200, body={"success": True, "message": 5, "key": key})),
        (LIST, Fault.status(200, body={"success": True, "data": [{"createdAt": key}]})),
        (LIST, Fault.status(302, headers={"Location": f"https://login.example/?key={key}"})),
        (LIST, Fault.status(429, body={"message": key}, headers={"Retry-After": "3600"})),
    ]


ERROR_FAULTS: list[tuple[str, Fault]] = [
    *[
        (route, Fault.status(code))
        for route in (LIST, SEND, REGENERATE)
        for code in (400, 401, 403, 404, 409, 429, 500, 502, 503, 504)
    ],
    *[(route, Fault.drop_before()) for route in (LIST, SEND, REGENERATE)],
    *[(route, Fault.drop_after()) for route in (LIST, SEND, REGENERATE)],
    (LIST, Fault.status(200, body="<!doctype html><p>proxy login</p>")),
    (SEND, Fault.status(200, body={"success": "yes"})),
    (REGENERATE, Fault.status(200, body={"success": True, "data": {"id": 7}})),
    (TEMPLATE, Fault.status(500)),
]


async def _call_route(client: NotifyClient, route: str, other_key_id: str) -> object:
    if route == LIST:
        return await client.api_keys.list()
    if route == SEND:
        return await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
    if route == TEMPLATE:
        return await client.emails.send_template(template_id="welcome", to="ada@example.com")
    return await client.api_keys.regenerate(other_key_id)


async def test_every_error_path_shows_no_key(
    audit: Audit, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    other = server.keys[1].id
    async with client_for(server, max_retries=0, rotation_grace=0) as client:
        for route, fault in [*ERROR_FAULTS, *_echo(server.api_key)]:
            server.inject(route, fault)
            await audit.run(_call_route(client, route, other))
        audit.see_client(client)

    # Timeouts (the request sent, then no answer), and a port that refuses connections.
    async with client_for(server, max_retries=0, timeout=0.2) as client:
        server.inject(SEND, Fault.delay(1))
        await audit.run(client.emails.send(to="ada@example.com", subject="Hi", message="Hi"))
        server.inject(LIST, Fault.delay(1))
        await audit.run(client.api_keys.list())
    refused = closed_port_url()
    async with NotifyClient(server.api_key, base_url=refused, max_retries=0) as client:
        await audit.run(client.api_keys.list())
        await audit.run(client.emails.send(to="ada@example.com", subject="Hi", message="Hi"))

    # Every call above failed, in its own way.
    assert len(audit.errors) == len(ERROR_FAULTS) + len(_echo("k")) + 4
    assert all(isinstance(error, NotifyError) for error in audit.errors)
    assert any(isinstance(e.__cause__, aiohttp.ClientError) for e in audit.errors)
    audit.check(caplog)


async def test_credential_errors_show_no_key(
    audit: Audit,
    server: LocalNotifyServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = server.api_key
    broken: list[CredentialProvider] = [
        CallableKeyProvider(lambda: key + "\n" + key),  # spans lines
        CallableKeyProvider(key.encode),  # type: ignore[arg-type]  # not a str
        CallableKeyProvider(lambda: "  "),
        FileKeyProvider(tmp_path / "missing.key"),
        ChainKeyProvider(FileKeyProvider(tmp_path / "missing.key"), EnvKeyProvider("NO_SUCH")),
    ]
    for provider in broken:
        client = NotifyClient(credentials=provider, base_url=server.base_url)
        await audit.run(client.__aenter__())
        audit.see(client, provider)
        await client.close()
    monkeypatch.setenv("NOTIFY_API_KEY", key[:9] + "\x1b" + key[9:])
    try:
        NotifyClient(base_url=server.base_url)
    except CredentialError as error:
        audit.errors.append(error)

    assert len(audit.errors) == len(broken) + 1
    assert all(isinstance(error, CredentialError) for error in audit.errors)
    audit.check(caplog)


# -- retries ------------------------------------------------------------------------------------


async def test_retried_calls_show_no_key(
    audit: Audit, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(server, max_retries=3) as client:
        with instant_retries() as waits:
            server.inject(LIST, Fault.status(503), Fault.drop_before(), Fault.status(500))
            await audit.run(client.api_keys.list())
            server.inject(SEND, Fault.status(429, headers={"Retry-After": "2"}), Fault.status(503))
            await audit.run(client.emails.send(to="ada@example.com", subject="Hi", message="Hi"))
            # Exhausted: four 502s.
            server.inject(LIST, *[Fault.status(502, body=server.api_key)] * 4)
            await audit.run(client.api_keys.list())
        audit.see_client(client)

    assert 2.0 in waits
    assert "Retrying GET /api_keys" in caplog.text  # the retries were logged, and audited
    assert len(audit.errors) == 1
    audit.check(caplog)


# -- rotations ------------------------------------------------------------------------------------


async def test_a_rotation_elsewhere_and_the_401_reload_show_no_key(
    audit: Audit, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    key_file = tmp_path / "notify.key"
    async with LocalNotifyServer(key_file=key_file) as server:
        old = server.api_key
        provider = FileKeyProvider(key_file)
        async with NotifyClient(credentials=provider, base_url=server.base_url) as client:
            await audit.run(client.api_keys.list())
            server.rotate()  # an operator rotates and deploys the file
            sends = [
                client.emails.send(to=f"user{n}@example.com", subject="Hi", message="Hi")
                for n in range(5)
            ]
            for send in sends:
                await audit.run(send)
            # Rotated again, this time without publishing: the reload finds the stale key.
            client_stale = NotifyClient(
                credentials=CallableKeyProvider(lambda: old),
                base_url=server.base_url,
                rotation_grace=0.05,
            )
            async with client_stale:
                await audit.run(client_stale.api_keys.list())
                audit.see_client(client_stale)
            audit.see_client(client)

    assert server.auth_failures >= 1
    assert client.key_prefix is not None
    assert client.key_prefix != old[:SHOWN] + "..."
    assert "reloaded from the provider after a 401" in caplog.text
    assert len(audit.errors) == 1  # only the stale client failed
    audit.check(caplog)


class PushingProvider:
    """A provider that pushes new keys through ``watch``, like a secrets-manager subscription."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.listener: KeyListener | None = None
        self.ready = asyncio.Event()

    def __repr__(self) -> str:
        return "PushingProvider()"

    async def load(self) -> str:
        return self.key

    async def watch(self, on_key: KeyListener) -> None:
        self.listener = on_key
        self.ready.set()
        await asyncio.Event().wait()


async def test_a_pushed_key_shows_no_key(
    audit: Audit, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = PushingProvider(server.api_key)
    async with NotifyClient(credentials=provider, base_url=server.base_url) as client:
        await provider.ready.wait()
        provider.key = server.rotate()
        assert provider.listener is not None
        await provider.listener(provider.key)
        await audit.run(client.api_keys.list())
        audit.see_client(client)

    assert "pushed by the provider" in caplog.text
    assert not audit.errors
    audit.check(caplog)


async def _rotate_with(
    audit: Audit, server: LocalNotifyServer, provider: Any, **options: Any
) -> NotifyClient:
    async with NotifyClient(credentials=provider, base_url=server.base_url, **options) as client:
        await audit.run(client.api_keys.rotate())
        await audit.run(client.api_keys.list())
        audit.see_client(client)
        audit.see(provider)
    return client


async def test_this_clients_own_rotations_show_no_key(
    audit: Audit,
    server: LocalNotifyServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In memory, in a file, in the environment.
    await _rotate_with(audit, server, StaticKeyProvider(server.api_key))
    key_file = tmp_path / "notify.key"
    key_file.write_text(server.api_key)
    await _rotate_with(audit, server, FileKeyProvider(key_file))
    monkeypatch.setenv("NOTIFY_API_KEY", server.api_key)
    await _rotate_with(audit, server, EnvKeyProvider())
    # A provider that cannot store: the new key is used, and a warning says to publish it.
    current = server.api_key
    await _rotate_with(audit, server, CallableKeyProvider(lambda: current))
    # A provider whose store fails: KeyStoreError, which carries the new key in `result`.
    current = server.api_key

    def failing_store(key: str) -> None:
        raise OSError(28, "No space left on device")

    await _rotate_with(audit, server, CallableKeyProvider(lambda: current, failing_store))
    # A lost reply: the server regenerated, the client cannot know.
    async with client_for(server, max_retries=0) as client:
        server.inject(REGENERATE, Fault.drop_after())
        await audit.run(client.api_keys.rotate())
        audit.see_client(client)

    store_errors = [e for e in audit.errors if isinstance(e, KeyStoreError)]
    assert len(store_errors) == 1
    assert store_errors[0].result.api_key in audit.keys  # the key is there, for the user
    audit.see(store_errors[0].result)
    assert "cannot store it" in caplog.text
    assert len(audit.errors) == 2
    audit.check(caplog)


async def test_a_key_echoed_after_this_client_rotated_it_shows_nowhere(
    audit: Audit, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(server, max_retries=0) as client:
        old = server.api_key
        await audit.run(client.api_keys.rotate())
        # A request still in flight with the old key when the new one was adopted may
        # come back quoting it.
        server.inject(LIST, Fault.status(400, body={"message": f"unknown key {old}"}))
        await audit.run(client.api_keys.list())
        server.inject(SEND, Fault.status(200, body={"success": False, "message": old}))
        await audit.run(client.emails.send(to="ada@example.com", subject="Hi", message="Hi"))
        audit.see_client(client)

    assert len(audit.errors) == 2
    audit.check(caplog)


# -- the command line ------------------------------------------------------------------------


async def cli(*argv: str) -> int:
    """Run the command line in-process, off the loop that serves the local server."""
    return await asyncio.to_thread(main, list(argv))


async def test_the_command_line_shows_no_key(
    audit: Audit,
    server: LocalNotifyServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ("--base-url", server.base_url)
    key_file = tmp_path / "notify.key"
    key_file.write_text(server.api_key + "\n")
    monkeypatch.setenv("NOTIFY_API_KEY", server.api_key)
    send = ("send", "--to", "ada@example.com", "--subject", "Hi", "--message", "Hello", *base)
    codes = []
    for debug in ((), ("--debug",)):
        codes += [
            await cli(*debug, "keys", "list", *base),
            await cli(*debug, "keys", "list", "--json", *base),
            await cli(*debug, *send),
            await cli(*debug, "keys", "rotate", "--key-file", str(key_file), *base),
        ]
        monkeypatch.setenv("NOTIFY_API_KEY", key_file.read_text().strip())
        # Failures: the server quotes the key back, a lost reply, a rejected key, no server.
        server.inject(LIST, Fault.status(400, body={"message": f"bad key {server.api_key}"}))
        codes.append(await cli(*debug, "keys", "list", *base))
        server.inject(SEND, Fault.drop_after())
        codes.append(await cli(*debug, *send))
        server.inject(REGENERATE, Fault.status(500, body=server.api_key))
        codes.append(await cli(*debug, "keys", "rotate", "--key-file", str(key_file), *base))
        with monkeypatch.context() as patch:
            patch.setenv("NOTIFY_API_KEY", "nk_" + "w" * 32)
            audit.keys.add("nk_" + "w" * 32)
            codes.append(await cli(*debug, "keys", "list", *base))
        codes.append(await cli(*debug, "keys", "list", "--base-url", closed_port_url()))
    codes.append(await cli("demo"))
    printed = capsys.readouterr()

    assert codes[:4] == [0, 0, 0, 0]
    assert codes[4:9] == [6, 8, 8, 4, 7]
    assert codes[9:13] == [0, 0, 0, 0]
    assert codes[-1] == 0  # the demo's two simultaneous rotations lose no send
    assert "notify-async: error:" in printed.err
    assert "Traceback" in printed.err  # --debug printed tracebacks, and they were audited
    audit.check(caplog, printed.out, printed.err)


# -- the audit itself ------------------------------------------------------------------------


def test_the_audit_finds_a_key_wherever_it_hides(caplog: pytest.LogCaptureFixture) -> None:
    key = "nk_" + "s" * 32
    audit = Audit()
    audit.keys.add(key)

    def deep() -> None:
        try:
            headers = CIMultiDictProxy(CIMultiDict({"x-api-key": key}))
            request = aiohttp.RequestInfo(URL("http://127.0.0.1/"), "GET", headers)
            raise aiohttp.ClientResponseError(request, ())
        except aiohttp.ClientError:
            raise APIConnectionError("failed", request_sent=True) from None

    try:
        deep()
    except APIConnectionError as error:
        audit.errors.append(error)  # the key is only in __context__'s request_info

    with pytest.raises(AssertionError, match=r"request_info: shows"):
        audit.check(caplog)
    assert leaks("x" + key[5:20], key, shown=SHOWN)
    assert not leaks(key[:SHOWN] + "...", key, shown=SHOWN)
