"""No error and no log record shows a key the client has held, however the server echoes it.

One Hypothesis property (issue 12): a client holds two keys (it moved from the first to the
second after a 401), and a real server on 127.0.0.1 answers its call with any failure the
suite can provoke: any error status, or a 2xx that is not usable, with either key echoed in
the body (in a JSON field, plain text or HTML, after any amount of padding, so that every
cut the client makes falls anywhere in or around it) and in the headers, each character of
the key written literally or escaped (JSON ``\\u0061`` in either case, ``\\/``, URL ``%61``,
HTML ``&#97;``/``&#x61;``). Then nothing the error shows (``str``, ``repr``, ``args``, every
attribute, the whole ``__cause__``/``__context__`` chain) and no log record at DEBUG holds
more of either key than its redacted prefix, in any of those escapings.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import urllib.parse
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import error_texts

from notify_async import CallableKeyProvider, NotifyClient, NotifyError

T = TypeVar("T")

SHOWN = 8
"""How many leading characters of a key its redacted form shows."""

LOGGERS = ("", "notify_async", "aiohttp", "aiohttp.client", "asyncio")

# No "x": the padding is made of it. No ".": the mask ends with "...", and a key with a
# dot after its prefix would be "shown" by its own mask.
KEY_ALPHABET = "abcdefghijklmnopqrstuvwyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=~"


# -- the server and the client --------------------------------------------------------------


class EchoServer:
    """Answers 401 to a call's first request, then ``answer`` (status, headers, body)."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, str], bytes] = (200, {}, b"")
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        if self.requests == 1:
            return web.json_response({"success": False, "message": "Invalid API key"}, status=401)
        status, headers, body = self.answer
        return web.Response(status=status, headers=headers, body=body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/public/v1/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/api/public/v1"


class Records(logging.Handler):
    """Keeps every log record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Harness:
    """The echo server on a private event loop, and DEBUG logging captured, for the module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = EchoServer()
        self.run(self.server.start())
        self.log = Records()
        self.levels = {name: logging.getLogger(name).level for name in LOGGERS}
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self.log)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the harness loop."""
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Restore logging, stop the server, close the loop."""
        logging.getLogger().removeHandler(self.log)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        try:
            if self.server.runner is not None:
                self.run(self.server.runner.cleanup())
        finally:
            self.loop.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()


# -- escapings ----------------------------------------------------------------------------------

FORMS = ("literal", "json-lower", "json-upper", "json-slash", "url", "html-dec", "html-hex")


def escape(key: str, forms: list[str]) -> str:
    """``key`` with character i written in ``forms[i]`` (``json-slash`` only changes ``/``)."""
    out = []
    for char, form in zip(key, forms, strict=True):
        code = ord(char)
        if form == "json-lower":
            out.append(f"\\u{code:04x}")
        elif form == "json-upper":
            out.append(f"\\u{code:04X}")
        elif form == "json-slash" and char == "/":
            out.append("\\/")
        elif form == "url":
            out.append(f"%{code:02X}")
        elif form == "html-dec":
            out.append(f"&#{code};")
        elif form == "html-hex":
            out.append(f"&#x{code:x};")
        else:
            out.append(char)
    return "".join(out)


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\/")


def _json_unescape(text: str) -> str:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "/", text)


def readings(text: str) -> set[str]:
    """``text`` as a reader could decode it: as is, and with each escaping undone."""
    seen = {text, text.replace("\\\\", "\\")}
    for _ in range(2):  # escapings may be mixed within one key
        for variant in tuple(seen):
            seen.add(_json_unescape(variant))
            seen.add(urllib.parse.unquote(variant))
            seen.add(html.unescape(variant))
    return seen


def shows_key(text: str, key: str) -> bool:
    """Whether ``text``, in any reading, shows more of ``key`` than its first ``SHOWN`` chars."""
    window = SHOWN + 1
    pieces = {key[i : i + window] for i in range(len(key) - window + 1)}
    return any(piece in variant for variant in readings(text) for piece in pieces)


# -- the property -----------------------------------------------------------------------------

keys = st.text(KEY_ALPHABET, min_size=24, max_size=44).map(lambda tail: "nk_" + tail)

STATUSES = (200, 201, 302, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504)
PLACES = ("message", "error", "error.message", "detail", "extra", "createdAt", "text", "html")
HEADERS = ("Location", "X-Request-Id", "Set-Cookie", "X-Echo")
CALLS = ("list", "send", "template")


@st.composite
def echoed_keys(draw: st.DrawFn) -> tuple[str, str, str]:
    """Two keys, and one of them escaped character by character."""
    first = draw(keys)
    second = draw(keys.filter(lambda k: k != first))
    echoed = draw(st.sampled_from((first, second)))
    forms = draw(st.lists(st.sampled_from(FORMS), min_size=len(echoed), max_size=len(echoed)))
    return first, second, escape(echoed, forms)


def body_for(place: str, text: str) -> tuple[bytes, str]:
    """A body quoting ``text`` at ``place``, and its content type."""
    if place == "text":
        return text.encode(), "text/plain"
    if place == "html":
        return f"<!doctype html><html><body>{text}</body></html>".encode(), "text/html"
    # The text is already escaped as it should appear: build the JSON by hand around it.
    quoted = '"' + text.replace('"', '\\"') + '"'
    if place == "error.message":
        raw = f'{{"success": false, "error": {{"message": {quoted}}}}}'
    elif place == "extra":
        raw = f'{{"success": true, "message": null, "echo": {quoted}}}'
    elif place == "createdAt":
        raw = f'{{"success": true, "data": [{{"createdAt": {quoted}}}]}}'
    else:
        raw = f'{{"success": false, "{place}": {quoted}}}'
    return raw.encode(), "application/json"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    held=echoed_keys(),
    status=st.sampled_from(STATUSES),
    place=st.sampled_from(PLACES),
    padding=st.integers(min_value=0, max_value=420),
    header=st.none() | st.sampled_from(HEADERS),
    call=st.sampled_from(CALLS),
)
def test_no_failure_shows_a_held_key_in_any_escaping(
    harness: Harness,
    held: tuple[str, str, str],
    status: int,
    place: str,
    padding: int,
    header: str | None,
    call: str,
) -> None:
    first, second, echoed = held
    body, content_type = body_for(place, "x" * padding + echoed + " tail")
    headers = {"Content-Type": content_type}
    if header is not None:
        headers[header] = ("https://example.com/?key=" if header == "Location" else "") + echoed
    harness.server.answer = (status, headers, body)
    harness.server.requests = 0
    harness.log.records.clear()

    error = harness.run(_call(harness, first, second, call))

    if error is None:  # a 2xx the client could use: nothing failed, nothing to show
        assert 200 <= status < 300
        return
    assert isinstance(error, NotifyError)
    sources = list(error_texts(error))
    for record in harness.log.records:
        sources.append((f"log record from {record.name}", record.getMessage()))
        sources.append((f"log args from {record.name}", repr(record.args)))
    leaks = [
        f"{where}: shows {key[: SHOWN + 1]}..."
        for where, text in sources
        for key in (first, second)
        if shows_key(text, key)
    ]
    assert not leaks, "\n".join(leaks)


async def _call(harness: Harness, first: str, second: str, call: str) -> BaseException | None:
    loaded = iter((first, second, second, second))
    provider = CallableKeyProvider(lambda: next(loaded))
    client = NotifyClient(
        credentials=provider, base_url=harness.server.base_url, max_retries=0, rotation_grace=0
    )
    try:
        async with client:
            if call == "list":
                await client.api_keys.list()
            elif call == "send":
                await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
            else:
                await client.emails.send_template(template_id="welcome", to="ada@example.com")
    except Exception as error:  # every failure is audited, whatever its class
        assert client.key_prefix == second[:SHOWN] + "...", "the client never held both keys"
        return error
    return None


# -- the audit itself, and the case the issue measured -------------------------------------------


def test_the_audit_reads_every_escaping() -> None:
    key = "nk_" + "AbC/dEf+GhI=jKl-MnO_pQr~StU"
    for form in FORMS:
        assert shows_key(escape(key, [form] * len(key)), key), form
    assert shows_key(repr(escape(key, ["json-lower"] * len(key)).encode()), key)
    assert not shows_key(key[:SHOWN] + "...", key)


async def test_a_json_escaped_key_cut_at_300_characters_is_masked() -> None:
    # Measured before the fix: 35 of 40 key characters shown.
    key = "nk_" + "k" * 20 + "L" * 17
    escaped = escape(key, ["json-lower"] * len(key))
    server = EchoServer()
    server.requests = 1  # no 401 first
    server.answer = (
        400,
        {"Content-Type": "application/json"},
        f'{{"message": "{"y" * 265}{escaped}"}}'.encode(),
    )
    await server.start()
    try:
        async with NotifyClient(key, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(NotifyError) as caught:
                await client.api_keys.list()
    finally:
        assert server.runner is not None
        await server.runner.cleanup()

    texts = dict(error_texts(caught.value))
    assert not [where for where, text in texts.items() if shows_key(text, key)]
    assert json.loads(caught.value.body)["message"].endswith(key[:SHOWN] + "...")
