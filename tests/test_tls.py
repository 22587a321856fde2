"""TLS: certificates are verified by default, a private CA is trusted through ``ssl=``, and
turning verification off takes a switch whose name says it is insecure, and logs a warning.

The server is a small HTTPS ``aiohttp.web`` app on 127.0.0.1 whose certificate comes from a
``trustme`` CA that no system trusts.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import trustme
from aiohttp import web

from notify_async import APIConnectionError, NotifyClient
from notify_async.testing import instant_retries

KEY = "nk_tls-test-key-0123456789abcdefghij"
API = "/api/public/v1"


class HttpsNotify:
    """A Notify stand-in over HTTPS that lists one key and counts what reached it."""

    def __init__(self, certificate: trustme.LeafCert) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(self.context)
        self.requests = 0
        self.keys_seen: list[str] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _list_keys(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.keys_seen.append(request.headers.get("x-api-key", ""))
        now = datetime.now(timezone.utc).isoformat()
        listed = {
            "id": "key-1",
            "name": "Production",
            "createdAt": now,
            "updatedAt": now,
            "active": True,
            "prefix": KEY[:8] + "...",
        }
        return web.json_response({"success": True, "data": [listed]})

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.keys_seen.append(request.headers.get("x-api-key", ""))
        return web.json_response({"success": True, "message": "Email sent successfully"})

    async def __aenter__(self) -> HttpsNotify:
        app = web.Application()
        app.router.add_route("GET", API + "/api_keys", self._list_keys)
        app.router.add_route("POST", API + "/send-email", self._send)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"https://127.0.0.1:{port}{API}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="notify-async test CA")


@pytest.fixture
def trusting_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test CA (and verifies, as the default context does)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def https_server(ca: trustme.CA) -> AsyncIterator[HttpsNotify]:
    async with HttpsNotify(ca.issue_cert("127.0.0.1", "localhost")) as server:
        yield server


# -- verified by default ---------------------------------------------------------------------


async def test_a_certificate_no_trusted_ca_signed_is_refused_with_a_clear_error(
    https_server: HttpsNotify,
) -> None:
    async with NotifyClient(KEY, base_url=https_server.base_url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.api_keys.list()

    error = caught.value
    assert "TLS certificate could not be verified" in error.message
    assert "ssl.create_default_context(cafile=" in error.message  # says what to do
    assert error.request_sent is False
    # The handshake failed before any HTTP was sent: the key never reached the server.
    assert https_server.requests == 0


async def test_a_send_to_an_untrusted_server_is_refused_before_the_key_leaves(
    https_server: HttpsNotify,
) -> None:
    async with NotifyClient(KEY, base_url=https_server.base_url) as client:
        with instant_retries(), pytest.raises(APIConnectionError) as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    # Not OutcomeUnknownError: a failed handshake proves nothing was sent.
    assert caught.value.request_sent is False
    assert https_server.keys_seen == []
    # A certificate that failed verification fails the same way again: not retried.
    assert caught.value.attempts == 1


async def test_a_certificate_for_another_host_is_refused_even_from_a_trusted_ca(
    ca: trustme.CA, trusting_context: ssl.SSLContext
) -> None:
    async with HttpsNotify(ca.issue_cert("notify.example")) as server:
        async with NotifyClient(
            KEY, base_url=server.base_url, ssl=trusting_context, max_retries=0
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.api_keys.list()

        assert "TLS certificate could not be verified" in caught.value.message
        assert server.requests == 0


# -- a private CA -------------------------------------------------------------------------------


async def test_an_ssl_context_that_trusts_a_private_ca_is_used(
    https_server: HttpsNotify, trusting_context: ssl.SSLContext
) -> None:
    async with NotifyClient(KEY, base_url=https_server.base_url, ssl=trusting_context) as client:
        keys = await client.api_keys.list()
        sent = await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert [key.name for key in keys] == ["Production"]
    assert sent.success is True
    assert https_server.keys_seen == [KEY, KEY]


async def test_a_context_built_from_a_ca_file_works_as_the_error_message_advises(
    https_server: HttpsNotify, ca: trustme.CA
) -> None:
    with ca.cert_pem.tempfile() as ca_file:
        context = ssl.create_default_context(cafile=ca_file)
    async with NotifyClient(KEY, base_url=https_server.base_url, ssl=context) as client:
        assert len(await client.api_keys.list()) == 1


# -- the insecure switch --------------------------------------------------------------------------


async def test_insecure_skip_tls_verify_connects_and_logs_a_warning(
    https_server: HttpsNotify, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="notify_async")
    client = NotifyClient(KEY, base_url=https_server.base_url, insecure_skip_tls_verify=True)
    async with client:
        assert len(await client.api_keys.list()) == 1

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "TLS certificate verification is OFF" in warnings[0].getMessage()
    assert "insecure_skip_tls_verify=True" in warnings[0].getMessage()


async def test_a_default_client_logs_no_tls_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="notify_async")
    async with NotifyClient(KEY, base_url="https://notify.example/api/public/v1"):
        pass
    assert "verification" not in caplog.text


def test_the_insecure_switch_and_an_ssl_context_together_are_refused(
    trusting_context: ssl.SSLContext,
) -> None:
    with pytest.raises(ValueError, match="either ssl or insecure_skip_tls_verify"):
        NotifyClient(KEY, ssl=trusting_context, insecure_skip_tls_verify=True)


@pytest.mark.parametrize("value", [False, True, "/etc/ssl/certs/ca.pem"])
def test_ssl_takes_only_a_context_so_ssl_false_cannot_turn_verification_off(
    value: object,
) -> None:
    # aiohttp's own idiom, ssl=False, must not quietly mean "verify" (or "do not verify").
    with pytest.raises(ValueError, match="insecure_skip_tls_verify"):
        NotifyClient(KEY, ssl=value)  # type: ignore[arg-type]


def test_there_is_no_verify_switch_to_reach_by_accident() -> None:
    with pytest.raises(TypeError):
        NotifyClient(KEY, verify=False)  # type: ignore[call-arg]


def test_plain_http_to_a_remote_host_is_refused_so_the_key_never_travels_in_clear() -> None:
    with pytest.raises(ValueError, match="clear text"):
        NotifyClient(KEY, base_url="http://notify.example/api/public/v1")
