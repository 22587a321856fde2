"""The exact shape of each request: method, URL, headers and JSON body.

aioresponses intercepts ``ClientSession._request`` and records what the client asked for
(the conftest shim makes it work with aiohttp 3.14). Headers that aiohttp itself adds while
writing the request, such as ``Content-Type``, are checked on the wire instead, against the
local server.
"""

from __future__ import annotations

import json
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict
from yarl import URL

from notify_async import NotifyClient, RetryPolicy, __version__
from notify_async.testing import LocalNotifyServer

# Nothing listens on port 1 of the loopback: a request that escaped the mock would fail,
# and could never reach anything but this machine.
BASE = "http://127.0.0.1:1/api/public/v1"
KEY = "nk_RequestShapeKey0123456789abcdef"
KEY_ID = "11111111-1111-4111-8111-111111111111"
OTHER_ID = "22222222-2222-4222-8222-222222222222"
SENT = {"success": True, "message": "Email sent successfully"}


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[NotifyClient]:
    async with NotifyClient(KEY, base_url=BASE, max_retries=0) as client:
        yield client


def only_request(mock: aioresponses, method: str, path: str) -> dict[str, Any]:
    """The keyword arguments of the one request sent to ``method path``."""
    calls = mock.requests[(method, URL(BASE + path))]
    assert len(calls) == 1
    kwargs: dict[str, Any] = calls[0].kwargs
    return kwargs


def listed_key(key_id: str, prefix: str) -> dict[str, Any]:
    return {
        "id": key_id,
        "name": "Production",
        "createdAt": "2024-05-01T12:00:00.000Z",
        "updatedAt": "2024-05-01T12:00:00.000Z",
        "active": True,
        "prefix": prefix,
    }


def assert_sent_with_the_key(kwargs: dict[str, Any]) -> None:
    headers = CIMultiDict(kwargs["headers"])
    assert headers.getall("x-api-key") == [KEY]
    assert headers["User-Agent"] == f"notify-async/{__version__}"
    # Any redirect would carry the key to wherever it points.
    assert kwargs["allow_redirects"] is False


def sent_json(kwargs: dict[str, Any]) -> Any:
    """The JSON body of a recorded request: a bytes payload that carries its content type."""
    assert kwargs.get("json") is None
    body = kwargs["data"]
    assert isinstance(body, aiohttp.BytesPayload)
    assert body.content_type == "application/json"
    # Not a header of ours as well: two Content-Type headers would reach the server.
    assert "Content-Type" not in CIMultiDict(kwargs["headers"])
    return json.loads(body.decode())


# -- method, URL, headers and body, per call -------------------------------------------------


async def test_list_is_a_get_without_body(mocked: aioresponses, client: NotifyClient) -> None:
    mocked.get(BASE + "/api_keys", payload={"success": True, "data": []})

    await client.api_keys.list()

    assert list(mocked.requests) == [("GET", URL(BASE + "/api_keys"))]
    kwargs = only_request(mocked, "GET", "/api_keys")
    assert_sent_with_the_key(kwargs)
    assert kwargs.get("json") is None
    assert kwargs.get("data") is None
    assert "Content-Type" not in CIMultiDict(kwargs["headers"])


async def test_send_posts_to_subject_and_message(
    mocked: aioresponses, client: NotifyClient
) -> None:
    mocked.post(BASE + "/send-email", payload=SENT)

    await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert list(mocked.requests) == [("POST", URL(BASE + "/send-email"))]
    kwargs = only_request(mocked, "POST", "/send-email")
    assert_sent_with_the_key(kwargs)
    assert sent_json(kwargs) == {"to": "ada@example.com", "subject": "Hi", "message": "Hello"}


async def test_send_with_name_adds_name(mocked: aioresponses, client: NotifyClient) -> None:
    mocked.post(BASE + "/send-email", payload=SENT)

    await client.emails.send(to="ada@example.com", subject="Hi", message="Hello", name="Ada")

    kwargs = only_request(mocked, "POST", "/send-email")
    assert sent_json(kwargs) == {
        "to": "ada@example.com",
        "subject": "Hi",
        "message": "Hello",
        "name": "Ada",
    }


async def test_send_template_posts_template_id_and_to(
    mocked: aioresponses, client: NotifyClient
) -> None:
    mocked.post(BASE + "/send-email-from-template", payload=SENT)

    await client.emails.send_template(template_id="welcome", to="ada@example.com")

    assert list(mocked.requests) == [("POST", URL(BASE + "/send-email-from-template"))]
    kwargs = only_request(mocked, "POST", "/send-email-from-template")
    assert_sent_with_the_key(kwargs)
    assert sent_json(kwargs) == {"templateId": "welcome", "to": "ada@example.com"}


async def test_send_template_with_from_and_variables(
    mocked: aioresponses, client: NotifyClient
) -> None:
    mocked.post(BASE + "/send-email-from-template", payload=SENT)
    variables = {"first_name": "Ada", "plan": "Pro"}

    await client.emails.send_template(
        template_id="welcome", to="ada@example.com", variables=variables, from_="hi@example.com"
    )

    kwargs = only_request(mocked, "POST", "/send-email-from-template")
    assert sent_json(kwargs) == {
        "templateId": "welcome",
        "to": "ada@example.com",
        "from": "hi@example.com",
        "variables": {"first_name": "Ada", "plan": "Pro"},
    }


async def test_send_template_with_empty_variables_sends_them(
    mocked: aioresponses, client: NotifyClient
) -> None:
    mocked.post(BASE + "/send-email-from-template", payload=SENT)

    await client.emails.send_template(template_id="welcome", to="ada@example.com", variables={})

    kwargs = only_request(mocked, "POST", "/send-email-from-template")
    assert sent_json(kwargs) == {"templateId": "welcome", "to": "ada@example.com", "variables": {}}


async def test_regenerate_posts_the_key_id(mocked: aioresponses, client: NotifyClient) -> None:
    mocked.get(
        BASE + "/api_keys",
        payload={
            "success": True,
            "data": [listed_key(KEY_ID, KEY[:8] + "..."), listed_key(OTHER_ID, "nk_other...")],
        },
    )
    mocked.post(
        BASE + "/api_keys/regenerate",
        payload={"success": True, "message": "ok", "data": {"id": OTHER_ID, "api_key": "nk_n"}},
    )

    result = await client.api_keys.regenerate(OTHER_ID)

    assert result.id == OTHER_ID
    kwargs = only_request(mocked, "POST", "/api_keys/regenerate")
    assert_sent_with_the_key(kwargs)
    assert sent_json(kwargs) == {"keyId": OTHER_ID}
    # The client listed first, once, to learn whether OTHER_ID is its own key.
    assert len(mocked.requests[("GET", URL(BASE + "/api_keys"))]) == 1


async def test_regenerate_own_key_sends_the_next_call_with_the_new_key(
    mocked: aioresponses, client: NotifyClient
) -> None:
    mocked.get(
        BASE + "/api_keys",
        payload={"success": True, "data": [listed_key(KEY_ID, KEY[:8] + "...")]},
    )
    new_key = "nk_BrandNewKey0123456789abcdefghijk"
    mocked.post(
        BASE + "/api_keys/regenerate",
        payload={"success": True, "message": "ok", "data": {"id": KEY_ID, "api_key": new_key}},
    )
    mocked.post(BASE + "/send-email", payload=SENT)

    await client.api_keys.regenerate(KEY_ID)
    await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    regenerate = only_request(mocked, "POST", "/api_keys/regenerate")
    assert sent_json(regenerate) == {"keyId": KEY_ID}
    assert CIMultiDict(regenerate["headers"])["x-api-key"] == KEY
    send = only_request(mocked, "POST", "/send-email")
    assert CIMultiDict(send["headers"])["x-api-key"] == new_key


async def test_the_base_url_path_is_kept(mocked: aioresponses) -> None:
    base = "http://127.0.0.1:1/proxy/notify/api/public/v1"
    mocked.get(base + "/api_keys", payload={"success": True, "data": []})

    async with NotifyClient(KEY, base_url=base + "/", max_retries=0) as client:
        await client.api_keys.list()

    assert list(mocked.requests) == [("GET", URL(base + "/api_keys"))]


# -- on the wire: what aiohttp adds while writing the request --------------------------------


async def test_on_the_wire_json_bodies_carry_a_json_content_type() -> None:
    seen: list[tuple[str, str, CIMultiDict[str]]] = []

    async def on_headers_sent(
        _: aiohttp.ClientSession,
        __: types.SimpleNamespace,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        seen.append((params.method, params.url.path, CIMultiDict(params.headers)))

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    async with LocalNotifyServer(keys=2) as server:
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            async with NotifyClient(
                server.api_key, base_url=server.base_url, session=session
            ) as client:
                await client.api_keys.list()
                await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
                await client.emails.send_template(template_id="welcome", to="ada@example.com")
                await client.api_keys.regenerate(server.keys[1].id)

        assert server.auth_failures == 0
        api_key = server.api_key

    prefix = "/api/public/v1"
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", prefix + "/api_keys"),
        ("POST", prefix + "/send-email"),
        ("POST", prefix + "/send-email-from-template"),
        ("POST", prefix + "/api_keys/regenerate"),
    ]
    for method, _, headers in seen:
        assert headers.getall("x-api-key") == [api_key]
        if method == "POST":
            assert headers["Content-Type"] == "application/json"
        else:
            assert "Content-Type" not in headers


async def test_a_content_type_in_extra_headers_is_sent_once_instead_of_ours() -> None:
    # As with httpx's json=: a header the caller names wins over the body's own.
    seen: list[CIMultiDict[str]] = []

    async def on_headers_sent(
        _: aiohttp.ClientSession,
        __: types.SimpleNamespace,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        seen.append(CIMultiDict(params.headers))

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    async with LocalNotifyServer() as server:
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            async with NotifyClient(
                server.api_key, base_url=server.base_url, session=session
            ) as client:
                result = await client.emails.send(
                    to="ada@example.com",
                    subject="Hi",
                    message="Hello",
                    extra_headers={"Content-Type": "application/json; charset=utf-8"},
                )

    assert result.success is True
    (headers,) = seen
    assert headers.getall("Content-Type") == ["application/json; charset=utf-8"]


async def test_a_body_json_cannot_hold_is_a_value_error_and_nothing_is_sent(
    mocked: aioresponses, client: NotifyClient
) -> None:
    with pytest.raises(ValueError, match="json must be a JSON object of JSON values") as caught:
        await client.request(
            "POST", "/send-email", policy=RetryPolicy.UNSENT_ONLY, json={"when": object()}
        )

    assert caught.value.__cause__ is None
    assert list(mocked.requests) == []
