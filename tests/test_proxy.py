"""Proxies: ``HTTP_PROXY``/``HTTPS_PROXY`` are honoured and ``NO_PROXY`` bypasses them, as in
httpx- and requests-based SDKs. The client reads them once, when its session opens.

The proxy is a small forward proxy on 127.0.0.1: it relays absolute-form ``http://``
requests and tunnels ``CONNECT`` (what an ``https://`` base URL uses), and records what it
saw. It only ever connects to 127.0.0.1.

On Linux, ``urllib`` (which the client asks) does not exempt loopback hosts on its own, so
a loopback server is proxied unless ``NO_PROXY`` names it; each test sets the variables it
needs and clears the rest.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import traceback
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web
from support import free_port
from yarl import URL

from notify_async import APIConnectionError, NotifyClient
from notify_async.testing import LocalNotifyServer

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    # urllib ignores HTTP_PROXY when this is set (the CGI "httpoxy" guard).
    "REQUEST_METHOD",
)

# A request line in absolute form, as a client sends it to a forward proxy.
ABSOLUTE_FORM = re.compile(rb"(GET|POST) (http://127\.0\.0\.1:\d+/\S*) HTTP/1\.1\r\n")


class LoopbackProxy:
    """A forward proxy for tests: plain HTTP relaying and CONNECT tunnels to 127.0.0.1 only."""

    def __init__(self) -> None:
        #: The first line of each connection: "GET http://..." or "CONNECT host:port".
        self.connections: list[str] = []
        #: Every byte relayed from clients towards servers.
        self.upstream_bytes = bytearray()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    @property
    def relayed_requests(self) -> list[str]:
        """The absolute-form requests relayed in clear ("GET http://127.0.0.1:..."), in order."""
        return [
            f"{method.decode()} {url.decode()}"
            for method, url in ABSOLUTE_FORM.findall(bytes(self.upstream_bytes))
        ]

    async def __aenter__(self) -> LoopbackProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.connections.append(line)
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
            else:
                url = URL(target)
                host, port = url.host or "", str(url.port)
            if host != "127.0.0.1":
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            upstream_reader, upstream = await asyncio.open_connection(host, int(port))
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                # Origin servers accept the absolute form too (RFC 9112, 3.2.2).
                self.upstream_bytes += head
                upstream.write(head)
            await asyncio.gather(
                self._pipe(reader, upstream, record=True), self._pipe(upstream_reader, writer)
            )
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    end.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool = False
    ) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    self.upstream_bytes += data
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()  # one side ended: end the other, so the peer pipe ends too


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NOTIFY_BASE_URL", raising=False)


@pytest.fixture
async def proxy() -> AsyncIterator[LoopbackProxy]:
    async with LoopbackProxy() as proxy:
        yield proxy


async def list_and_send(server: LocalNotifyServer) -> None:
    async with NotifyClient(server.api_key, base_url=server.base_url, max_retries=0) as client:
        await client.api_keys.list()
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")


# -- HTTP_PROXY --------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
async def test_http_proxy_carries_every_request(
    variable: str,
    proxy: LoopbackProxy,
    notify_server: LocalNotifyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, proxy.url)

    await list_and_send(notify_server)

    api = notify_server.base_url
    assert proxy.relayed_requests == [f"GET {api}/api_keys", f"POST {api}/send-email"]
    assert [email.to for email in notify_server.emails] == ["ada@example.com"]


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "localhost,127.0.0.1", " example.com , 127.0.0.1 ", "*"]
)
async def test_no_proxy_naming_the_host_bypasses_the_proxy(
    no_proxy: str,
    proxy: LoopbackProxy,
    notify_server: LocalNotifyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)

    await list_and_send(notify_server)

    assert proxy.connections == []
    assert notify_server.request_counts["GET /api_keys"] == 1
    assert len(notify_server.emails) == 1


async def test_no_proxy_naming_another_host_leaves_the_proxy_in_use(
    proxy: LoopbackProxy, notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("no_proxy", "notify.example,10.0.0.1")

    await list_and_send(notify_server)

    assert len(proxy.relayed_requests) == 2


async def test_https_proxy_is_not_used_for_an_http_base_url(
    proxy: LoopbackProxy, notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)

    await list_and_send(notify_server)

    assert proxy.connections == []


# -- HTTPS_PROXY: a CONNECT tunnel, TLS end to end ------------------------------------------------


async def test_https_proxy_tunnels_and_never_sees_the_key(
    proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    keys_seen: list[str] = []

    async def list_keys(request: web.Request) -> web.Response:
        keys_seen.append(request.headers["x-api-key"])
        return web.json_response({"success": True, "data": []})

    app = web.Application()
    app.router.add_route("GET", "/api/public/v1/api_keys", list_keys)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
        port = runner.addresses[0][1]
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        key = "nk_proxy-test-key-abcdefghijklmnopqrs"

        async with NotifyClient(
            key, base_url=f"https://127.0.0.1:{port}/api/public/v1", ssl=client_context
        ) as client:
            assert await client.api_keys.list() == []
    finally:
        await runner.cleanup()

    assert proxy.connections == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]
    assert keys_seen == [key]
    # TLS runs inside the tunnel: the proxy relayed only ciphertext.
    assert key.encode() not in proxy.upstream_bytes
    assert b"/api_keys" not in proxy.upstream_bytes


# -- read once, when the session opens -------------------------------------------------------------


async def test_proxy_variables_are_read_once_when_the_client_opens(
    proxy: LoopbackProxy, notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        await client.api_keys.list()
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        await client.api_keys.list()  # still direct: the client read the variables already
    assert proxy.connections == []

    # A new client reads the new value.
    await list_and_send(notify_server)
    assert len(proxy.relayed_requests) == 2


async def test_credentials_in_the_proxy_url_are_sent_to_the_proxy(
    proxy: LoopbackProxy, notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://alice:pa55word@"))

    await list_and_send(notify_server)

    # Basic auth of "alice:pa55word".
    assert proxy.upstream_bytes.count(b"Proxy-Authorization: Basic YWxpY2U6cGE1NXdvcmQ=") == 2


async def test_an_unreachable_proxy_is_a_connection_error_that_hides_its_password(
    notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://alice:pa55word@127.0.0.1:{closed}")

    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert caught.value.request_sent is False
    assert "could not connect to the proxy" in caught.value.message  # not "to Notify"
    assert notify_server.request_counts["POST /send-email"] == 0
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value.__cause__)
    assert "pa55word" not in shown
