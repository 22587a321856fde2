"""Every call against the local Notify server, and every error the server can answer with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import pytest
from support import LIST, REGENERATE, SEND, TEMPLATE, call, leaks

from notify_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CallableKeyProvider,
    InternalServerError,
    NotFoundError,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    RegeneratedApiKey,
    SendEmailResult,
)
from notify_async.testing import AcceptedEmail, Fault, LocalNotifyServer, instant_retries


@pytest.fixture
async def client(notify_server: LocalNotifyServer) -> AsyncIterator[NotifyClient]:
    """A client of the fixture server that does not retry, so each error shows as it came."""
    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, max_retries=0, rotation_grace=0
    ) as client:
        yield client


# -- api_keys.list ---------------------------------------------------------------------------


async def test_list_returns_every_key_of_the_account() -> None:
    async with LocalNotifyServer(keys=3) as server:
        server.deactivate(server.keys[2].id)
        async with NotifyClient(server.api_key, base_url=server.base_url) as client:
            keys = await client.api_keys.list()

    assert [k.id for k in keys] == [k.id for k in server.keys]
    for listed, stored in zip(keys, server.keys, strict=True):
        assert listed.name == stored.name
        assert listed.prefix == stored.secret[:8] + "..."
        assert listed.created_at == stored.created_at
        assert listed.updated_at == stored.updated_at
        assert listed.active is stored.active
    assert [k.active for k in keys] == [True, True, False]


async def test_listed_datetimes_are_timezone_aware_utc(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.add_key("CI")

    keys = await client.api_keys.list()

    assert len(keys) == 2
    for key in keys:
        for moment in (key.created_at, key.updated_at):
            assert moment.tzinfo is not None
            assert moment.utcoffset() == timedelta(0)


async def test_listed_keys_are_frozen(client: NotifyClient) -> None:
    (key,) = await client.api_keys.list()

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        key.active = False  # type: ignore[misc]


# -- api_keys.regenerate ---------------------------------------------------------------------


async def test_regenerate_another_key_returns_it_and_leaves_the_clients_key_alone() -> None:
    async with LocalNotifyServer(keys=2) as server:
        dev = server.keys[1]
        async with NotifyClient(server.api_key, base_url=server.base_url) as client:
            prefix_before = client.key_prefix

            result = await client.api_keys.regenerate(dev.id)

            assert isinstance(result, RegeneratedApiKey)
            assert result.id == dev.id
            assert result.api_key == server.keys[1].secret != dev.secret
            assert "regenerated" in result.message
            # The client keeps its own key, which still works.
            assert client.key_prefix == prefix_before
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

        assert server.auth_failures == 0
        assert server.request_counts[REGENERATE] == 1
        assert [e.key_id for e in server.emails] == [server.primary_key_id]


async def test_regenerate_result_hides_the_new_key_from_repr(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    other = notify_server.add_key("dev")
    result = await client.api_keys.regenerate(notify_server.key_id_of(other))

    assert result.api_key not in repr(result)
    assert result.api_key not in str(result)
    assert result.id in repr(result)


async def test_regenerate_own_key_is_adopted(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    old_key = notify_server.api_key

    result = await client.api_keys.regenerate(notify_server.primary_key_id)
    await client.api_keys.list()

    assert result.api_key == notify_server.api_key != old_key
    assert client.key_prefix == result.api_key[:8] + "..."
    assert notify_server.auth_failures == 0


async def test_regenerate_an_unknown_key_is_not_found(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.api_keys.regenerate("no-such-key")

    error = caught.value
    assert (error.status_code, error.method, error.path) == (404, "POST", "/api_keys/regenerate")
    assert error.server_message == "API key no-such-key not found"
    assert notify_server.keys[0].secret == notify_server.api_key


@pytest.mark.parametrize("key_id", ["", "   "])
async def test_regenerate_needs_a_key_id(
    client: NotifyClient, notify_server: LocalNotifyServer, key_id: str
) -> None:
    with pytest.raises(ValueError, match="key_id"):
        await client.api_keys.regenerate(key_id)

    assert notify_server.request_counts[REGENERATE] == 0


# -- emails.send -----------------------------------------------------------------------------


async def test_send_without_name(client: NotifyClient, notify_server: LocalNotifyServer) -> None:
    result = await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert result == SendEmailResult(success=True, message="Email sent successfully")
    assert notify_server.emails == [
        AcceptedEmail(
            to="ada@example.com",
            subject="Hi",
            message="Hello",
            name=None,
            key_id=notify_server.primary_key_id,
        )
    ]


async def test_send_with_name(client: NotifyClient, notify_server: LocalNotifyServer) -> None:
    result = await client.emails.send(
        to="ada@example.com", subject="Hi", message="Hello\nAgain", name="Ada's app"
    )

    assert result.success is True
    (email,) = notify_server.emails
    assert (email.to, email.subject, email.message, email.name) == (
        "ada@example.com",
        "Hi",
        "Hello\nAgain",
        "Ada's app",
    )


async def test_text_outside_ascii_arrives_as_it_was_written(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    # The body is written by orjson (UTF-8, no \u escapes): every character must survive.
    subject = "Grüße, “quotes” and \\ ✓ 🎉"
    message = "line\nnext\ttab \u2028 \x00 end"

    await client.emails.send(to="ada@example.com", subject=subject, message=message)

    (email,) = notify_server.emails
    assert (email.subject, email.message) == (subject, message)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"to": "", "subject": "Hi", "message": "Hello"}, "to"),
        ({"to": "ada@example.com", "subject": " ", "message": "Hello"}, "subject"),
        ({"to": "ada@example.com", "subject": "Hi", "message": 5}, "message"),
        ({"to": "ada@example.com", "subject": "Hi", "message": "Hello", "name": ""}, "name"),
    ],
)
async def test_send_refuses_bad_arguments_before_sending(
    client: NotifyClient, notify_server: LocalNotifyServer, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        await client.emails.send(**fields)  # type: ignore[arg-type]

    assert notify_server.request_counts[SEND] == 0


async def test_send_refuses_a_blank_message_as_the_server_would(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    # The client and the local server apply one rule to blank fields (tests/test_recipient.py).
    with pytest.raises(ValueError, match="message must not be empty"):
        await client.emails.send(to="ada@example.com", subject="Hi", message="")

    assert notify_server.request_counts[SEND] == 0


# -- emails.send_template --------------------------------------------------------------------


async def test_send_template_minimal(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    result = await client.emails.send_template(template_id="welcome", to="ada@example.com")

    assert result == SendEmailResult(success=True, message="Email sent successfully")
    (email,) = notify_server.emails
    assert (email.template_id, email.to, email.variables, email.from_) == (
        "welcome",
        "ada@example.com",
        None,
        None,
    )
    assert (email.subject, email.message) == (None, None)


async def test_send_template_with_variables_and_from(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    await client.emails.send_template(
        template_id="welcome",
        to="ada@example.com",
        variables={"first_name": "Ada", "plan": "Pro"},
        from_="hello@example.com",
    )

    (email,) = notify_server.emails
    assert email.variables == {"first_name": "Ada", "plan": "Pro"}
    assert email.from_ == "hello@example.com"
    assert email.key_id == notify_server.primary_key_id


async def test_send_template_refuses_non_string_variables(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    with pytest.raises(ValueError, match="variables"):
        await client.emails.send_template(
            template_id="welcome",
            to="ada@example.com",
            variables={"count": 3},  # type: ignore[dict-item]
        )

    assert notify_server.request_counts[TEMPLATE] == 0


# -- every error class, from the server ------------------------------------------------------


@pytest.mark.parametrize("route", [LIST, REGENERATE, SEND, TEMPLATE])
@pytest.mark.parametrize(
    ("status", "error_class", "phrase"),
    [
        (400, BadRequestError, "Bad Request"),
        (403, PermissionDeniedError, "Forbidden"),
        (404, NotFoundError, "Not Found"),
        (409, APIStatusError, "Conflict"),
        (418, APIStatusError, "I'm a Teapot"),
        (429, RateLimitError, "Too Many Requests"),
        (503, InternalServerError, "Service Unavailable"),
    ],
)
async def test_status_becomes_its_error_class(
    client: NotifyClient,
    notify_server: LocalNotifyServer,
    route: str,
    status: int,
    error_class: type[APIStatusError],
    phrase: str,
) -> None:
    notify_server.inject(route, Fault.status(status))

    with pytest.raises(APIStatusError) as caught:
        await call(client, route, notify_server)

    error = caught.value
    assert type(error) is error_class
    method, path = route.split(" ", 1)
    assert (error.status_code, error.method, error.path) == (status, method, path)
    assert error.server_message == phrase
    assert f"{method} {path}" in str(error)
    assert str(status) in str(error)
    assert phrase in str(error)
    assert error.attempts == 1
    assert notify_server.request_counts[route] == 1
    assert notify_server.emails == []


@pytest.mark.parametrize("status", [500, 502, 504, 599])
async def test_5xx_on_list_is_an_internal_server_error(
    client: NotifyClient, notify_server: LocalNotifyServer, status: int
) -> None:
    notify_server.inject(LIST, Fault.status(status, body={"message": "upstream broke"}))

    with pytest.raises(InternalServerError) as caught:
        await client.api_keys.list()

    assert caught.value.status_code == status
    assert caught.value.server_message == "upstream broke"
    assert "Notify or a proxy" in str(caught.value)


@pytest.mark.parametrize("route", [REGENERATE, SEND, TEMPLATE])
async def test_500_on_a_non_idempotent_call_leaves_the_outcome_unknown(
    client: NotifyClient, notify_server: LocalNotifyServer, route: str
) -> None:
    notify_server.inject(route, Fault.status(500))

    with pytest.raises(OutcomeUnknownError) as caught:
        await call(client, route, notify_server)

    method, path = route.split(" ", 1)
    assert (caught.value.method, caught.value.path) == (method, path)
    assert caught.value.status_code == 500
    assert isinstance(caught.value.__cause__, InternalServerError)
    assert notify_server.request_counts[route] == 1


async def test_rate_limit_carries_retry_after(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(SEND, Fault.status(429, headers={"Retry-After": "7"}))

    with pytest.raises(RateLimitError) as caught:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert caught.value.retry_after == 7.0
    assert "retry after 7s" in str(caught.value)


async def test_rate_limit_without_retry_after(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(LIST, Fault.status(429))

    with pytest.raises(RateLimitError) as caught:
        await client.api_keys.list()

    assert caught.value.retry_after is None


async def test_a_long_retry_after_is_not_slept_through(notify_server: LocalNotifyServer) -> None:
    notify_server.inject(LIST, Fault.status(429, headers={"Retry-After": "3600"}))

    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with instant_retries() as waits, pytest.raises(RateLimitError) as caught:
            await client.api_keys.list()

    assert caught.value.retry_after == 3600.0
    assert waits == []
    assert notify_server.request_counts[LIST] == 1


async def test_a_retried_status_that_clears_is_not_an_error(
    notify_server: LocalNotifyServer,
) -> None:
    notify_server.inject(LIST, Fault.status(503, headers={"Retry-After": "1"}))

    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with instant_retries() as waits:
            keys = await client.api_keys.list()

    assert [k.id for k in keys] == [notify_server.primary_key_id]
    assert waits == [1.0]
    assert notify_server.request_counts[LIST] == 2


async def test_a_redirect_is_not_followed(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(
        LIST, Fault.status(302, headers={"Location": "https://elsewhere.example/"})
    )

    with pytest.raises(APIStatusError) as caught:
        await client.api_keys.list()

    assert caught.value.status_code == 302
    assert "elsewhere.example" in str(caught.value)


# -- 401: reload once, replay once, then AuthenticationError ---------------------------------


@pytest.mark.parametrize("route", [LIST, REGENERATE, SEND, TEMPLATE])
async def test_401_after_a_reload_that_finds_no_new_key(
    client: NotifyClient, notify_server: LocalNotifyServer, route: str
) -> None:
    notify_server.add_key("dev")
    await client.api_keys.list()  # the client learns its own key's id while the key works
    old_key = notify_server.api_key
    notify_server.rotate()  # an operator rotated the key; the client's provider never learns

    with pytest.raises(AuthenticationError) as caught:
        await call(client, route, notify_server)

    error = caught.value
    method, path = route.split(" ", 1)
    assert (error.status_code, error.method, error.path) == (401, method, path)
    assert "Invalid API key" in error.server_message
    assert "offered only rejected keys" in str(error)
    assert not leaks(str(error), old_key)
    assert not leaks(str(error), notify_server.api_key)
    assert notify_server.emails == []


async def test_401_after_a_reload_whose_new_key_is_rejected_too(
    notify_server: LocalNotifyServer,
) -> None:
    wrong_keys = ["nk_wrongWrongWrongWrongWrongWrong01", "nk_wrongWrongWrongWrongWrongWrong02"]
    loads: list[str] = []

    def load() -> str:
        # The first wrong key, then the second one for ever: the provider never has a good one.
        loads.append(wrong_keys[min(len(loads), 1)])
        return loads[-1]

    provider = CallableKeyProvider(load)

    async with NotifyClient(
        credentials=provider, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert caught.value.status_code == 401
    assert "offered only rejected keys" in str(caught.value)
    assert not leaks(str(caught.value), wrong_keys[0])
    assert not leaks(str(caught.value), wrong_keys[1])
    # Sent with the first key, replayed once with the second; the second, rejected too,
    # is never sent again however often the provider offers it.
    assert notify_server.request_counts[SEND] == 2
    assert client.key_loads == 3
    assert notify_server.emails == []


async def test_an_injected_401_with_a_reload_that_finds_no_new_key(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(LIST, Fault.status(401, body={"error": "token expired"}))

    with pytest.raises(AuthenticationError) as caught:
        await client.api_keys.list()

    assert caught.value.server_message == "token expired"
    assert notify_server.request_counts[LIST] == 1


# -- what an error says: the server's message, or a short description of the body -----------


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"success": False, "message": "Daily quota used up"}, {}, "Daily quota used up"),
        ({"error": "Template not found"}, {}, "Template not found"),
        ({"error": {"code": "x", "message": "Nested reason"}}, {}, "Nested reason"),
        ({"message": "  padded  "}, {}, "padded"),
        (
            "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
            {"Content-Type": "text/html"},
            "an HTML page (likely from a proxy or load balancer)",
        ),
        ("<html><body>Forbidden</body></html>", {"Content-Type": "text/html"}, "an HTML page"),
        ("", {}, "an empty body"),
        ("upstream connect error", {}, "'upstream connect error'"),
        ("  line one\n\n line two  ", {}, "'line one line two'"),
        ({"success": False}, {}, "'{\"success\": false}'"),
        ([1, 2], {}, "'[1, 2]'"),
    ],
)
async def test_error_message_comes_from_the_body(
    client: NotifyClient,
    notify_server: LocalNotifyServer,
    body: str | dict[str, object] | list[int],
    headers: dict[str, str],
    expected: str,
) -> None:
    notify_server.inject(SEND, Fault.status(400, body=body, headers=headers))

    with pytest.raises(BadRequestError) as caught:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert caught.value.server_message.startswith(expected)
    assert expected in str(caught.value)


async def test_a_long_text_body_is_cut_to_a_snippet(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(LIST, Fault.status(400, body="word " * 2000))

    with pytest.raises(BadRequestError) as caught:
        await client.api_keys.list()

    assert len(caught.value.server_message) < 100
    assert len(str(caught.value)) < 300


async def test_a_long_json_message_is_cut(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(LIST, Fault.status(400, body={"message": "x" * 5000}))

    with pytest.raises(BadRequestError) as caught:
        await client.api_keys.list()

    assert len(caught.value.server_message) <= 300


# -- the key never appears in an error, even when the server echoes it -----------------------


@pytest.mark.parametrize(
    "make_body",
    [
        lambda key: {"message": f"key {key} is not allowed here"},
        lambda key: {"error": f"bad key: {key}"},
        lambda key: f"<html><body>x-api-key: {key}</body></html>",
        lambda key: f"echo: x-api-key={key}",
        # The key straddles the end of the snippet, so cutting first would show part of it.
        lambda key: "a" * 60 + key,
        lambda key: {"message": "b" * 280 + key},
    ],
)
async def test_an_echoed_key_is_redacted_from_status_errors(
    client: NotifyClient, notify_server: LocalNotifyServer, make_body: object
) -> None:
    key = notify_server.api_key
    body = make_body(key)  # type: ignore[operator]
    notify_server.inject(LIST, Fault.status(400, body=body))

    with pytest.raises(BadRequestError) as caught:
        await client.api_keys.list()

    assert not leaks(str(caught.value), key)
    assert not leaks(caught.value.server_message, key)


# -- connection errors -----------------------------------------------------------------------


async def test_nothing_listening_is_a_connection_error() -> None:
    async with LocalNotifyServer() as server:
        base_url, key = server.base_url, server.api_key
    # The server is closed now: its port refuses connections.

    async with NotifyClient(key, base_url=base_url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert type(caught.value) is APIConnectionError
    assert caught.value.request_sent is False
    assert "could not connect" in str(caught.value)
    assert not leaks(str(caught.value), key)


async def test_a_dropped_connection_is_a_connection_error(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    notify_server.inject(LIST, Fault.drop_before())

    with pytest.raises(APIConnectionError) as caught:
        await client.api_keys.list()

    assert caught.value.request_sent is True
    assert notify_server.request_counts[LIST] == 1


async def test_a_slow_answer_is_a_timeout(notify_server: LocalNotifyServer) -> None:
    notify_server.inject(LIST, Fault.delay(2.0))

    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, max_retries=0, timeout=0.2
    ) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.api_keys.list()

    assert isinstance(caught.value, APIConnectionError)
    assert "timed out" in str(caught.value)


def test_every_error_is_a_notify_error() -> None:
    for error_class in (
        APIStatusError,
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        RateLimitError,
        InternalServerError,
        APIConnectionError,
        APITimeoutError,
        OutcomeUnknownError,
    ):
        assert issubclass(error_class, NotifyError)
    assert issubclass(APITimeoutError, APIConnectionError)
