"""A recipient is one address, and the client and the local server agree on what that is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_async import NotifyClient
from notify_async.testing import LocalNotifyServer

SEND = "POST /send-email"
TEMPLATE = "POST /send-email-from-template"

NOT_ONE_ADDRESS = {
    "no-at": ("not-an-email", "has no @"),
    "two-addresses-comma": ("a@example.com,b@example.com", "has a comma"),
    "two-addresses-comma-space": ("a@example.com, b@example.com", "has a comma"),
    "two-addresses-semicolon": ("a@example.com;b@example.com", "has a semicolon"),
    "display-name": ("Ada Lovelace <ada@example.com>", "a display name"),
    "angle-brackets": ("<ada@example.com>", "a display name"),
    "inner-space": ("ada lovelace@example.com", "has a space"),
    "two-ats": ("ada@b@example.com", "more than one @"),
    "nothing-before": ("@example.com", "nothing before the @"),
    "nothing-after": ("ada@", "nothing after the @"),
    "blank": ("  ", "must not be empty"),
}


@pytest.fixture
async def client(notify_server: LocalNotifyServer) -> AsyncIterator[NotifyClient]:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        yield client


@pytest.mark.parametrize(("to", "words"), NOT_ONE_ADDRESS.values(), ids=NOT_ONE_ADDRESS)
async def test_the_client_refuses_what_is_not_one_address_before_sending(
    client: NotifyClient, notify_server: LocalNotifyServer, to: str, words: str
) -> None:
    with pytest.raises(ValueError, match="must") as caught:
        await client.emails.send(to=to, subject="Hi", message="Hello")
    # The message says what is wrong with the value and shows it, not a pattern.
    assert words in str(caught.value)
    if to.strip():
        assert repr(to) in str(caught.value)
        assert "name@example.com" in str(caught.value)

    with pytest.raises(ValueError, match=words):
        await client.emails.send_template(template_id="welcome", to=to)

    assert notify_server.request_counts[SEND] == notify_server.request_counts[TEMPLATE] == 0


@pytest.mark.parametrize(
    "to", ["ada@example.com", "a.b+tag@mail.example.co.uk", "ops@localhost", "a@b.c"]
)
async def test_the_client_accepts_one_plain_address(
    client: NotifyClient, notify_server: LocalNotifyServer, to: str
) -> None:
    await client.emails.send(to=to, subject="Hi", message="Hello")

    assert [email.to for email in notify_server.emails] == [to]


async def raw_send(server: LocalNotifyServer, route: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Post straight to the server, past the client's checks, as another SDK would."""
    path = route.split(" ", 1)[1]
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.base_url + path, json=body, headers={"x-api-key": server.api_key}) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(("to", "words"), NOT_ONE_ADDRESS.values(), ids=NOT_ONE_ADDRESS)
async def test_the_local_server_refuses_the_same_recipients_with_400(
    notify_server: LocalNotifyServer, to: str, words: str
) -> None:
    for route, body in (
        (SEND, {"to": to, "subject": "Hi", "message": "Hello"}),
        (TEMPLATE, {"to": to, "templateId": "welcome"}),
    ):
        status, answer = await raw_send(notify_server, route, body)

        assert status == 400
        assert answer["success"] is False
        if to.strip():
            assert words in answer["message"]
        else:
            assert answer["message"] == "Missing required fields: to"
    assert notify_server.emails == []


@pytest.mark.parametrize("field", ["subject", "message"])
@pytest.mark.parametrize("blank", ["", " ", "\n\t"])
async def test_blank_fields_are_refused_alike_by_the_client_and_the_server(
    client: NotifyClient, notify_server: LocalNotifyServer, field: str, blank: str
) -> None:
    fields = {"to": "ada@example.com", "subject": "Hi", "message": "Hello", field: blank}

    with pytest.raises(ValueError, match=f"{field} must not be empty"):
        await client.emails.send(
            to=fields["to"], subject=fields["subject"], message=fields["message"]
        )
    status, answer = await raw_send(notify_server, SEND, fields)

    assert (status, answer["message"]) == (400, f"Missing required fields: {field}")
    assert notify_server.emails == []


@pytest.mark.parametrize("field", ["subject", "message"])
@pytest.mark.parametrize(
    ("value", "words"),
    [
        (5, "must be a str, got int"),
        (None, "must be a str, got NoneType"),
        ("\u00a0\u2003", "must not be empty or blank"),
    ],
    ids=["int", "none", "unicode-spaces"],
)
async def test_a_subject_or_message_that_is_not_text_is_refused_before_sending(
    client: NotifyClient, notify_server: LocalNotifyServer, field: str, value: object, words: str
) -> None:
    fields: dict[str, Any] = {"to": "ada@example.com", "subject": "Hi", "message": "Hello"}
    fields[field] = value

    with pytest.raises(ValueError, match=f"{field} {words}"):
        await client.emails.send(**fields)
    assert notify_server.emails == []


async def test_a_str_subclass_is_sent_as_its_text(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    class Text(str):
        pass

    await client.emails.send(to=Text("ada@example.com"), subject=Text("Hi"), message=Text("Hello"))

    [email] = notify_server.emails
    assert (email.to, email.subject, email.message) == ("ada@example.com", "Hi", "Hello")


async def test_a_blank_name_or_from_is_refused_alike(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        await client.emails.send(to="a@example.com", subject="s", message="m", name=" ")
    with pytest.raises(ValueError, match="from_ must not be empty"):
        await client.emails.send_template(template_id="t", to="a@example.com", from_=" ")

    name = {"to": "a@example.com", "subject": "s", "message": "m", "name": " "}
    assert await raw_send(notify_server, SEND, name) == (
        400,
        {"success": False, "message": "Invalid field: name must not be blank"},
    )
    sender = {"to": "a@example.com", "templateId": "t", "from": " "}
    assert await raw_send(notify_server, TEMPLATE, sender) == (
        400,
        {"success": False, "message": "Invalid field: from must not be blank"},
    )
    assert notify_server.emails == []


recipients = st.one_of(
    st.text(max_size=30),
    st.emails().map(str),
    st.builds(
        lambda a, sep, b: f"{a}{sep}{b}",
        st.emails(),
        st.sampled_from([",", ";", " ", ", ", "@", " <"]),
        st.emails(),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(to=recipients)
async def test_the_client_accepts_exactly_what_the_local_server_accepts(
    notify_server: LocalNotifyServer, to: str
) -> None:
    notify_server.emails.clear()
    try:
        async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
            await client.emails.send(to=to, subject="Hi", message="Hello")
    except ValueError:
        client_accepts = False
    else:
        client_accepts = True
    status, _ = await raw_send(notify_server, SEND, {"to": to, "subject": "Hi", "message": "Hi"})

    assert client_accepts is (status == 200)
