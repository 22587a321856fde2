"""A 2xx whose body is not what the API promises is an InvalidResponseError naming the field.

Every body here is served over real HTTP by the local server, with ``Fault.status(200, ...)``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
from support import LIST, REGENERATE, SEND, TEMPLATE, call, leaks

from notify_async import (
    InvalidResponseError,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
    SendEmailResult,
)
from notify_async import _emails as emails_module
from notify_async._models import Reader
from notify_async.testing import Fault, LocalNotifyServer


@pytest.fixture
async def client(notify_server: LocalNotifyServer) -> AsyncIterator[NotifyClient]:
    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, max_retries=0
    ) as client:
        yield client


def item(**changes: Any) -> dict[str, Any]:
    """One well-formed listed key, with ``changes`` applied (``None`` removes a field)."""
    listed: dict[str, Any] = {
        "id": "3f0b6a8e-0000-4000-8000-000000000001",
        "name": "Production",
        "createdAt": "2024-05-01T12:00:00.000Z",
        "updatedAt": "2024-05-02T08:30:00.250Z",
        "active": True,
        "prefix": "nk_a1b2c...",
    }
    listed.update(changes)
    return {k: v for k, v in listed.items() if v is not None}


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "data": list(items)}


async def list_with_body(
    client: NotifyClient, server: LocalNotifyServer, body: Any, **fault: Any
) -> Any:
    server.inject(LIST, Fault.status(200, body=body, **fault))
    return await client.api_keys.list()


# -- bodies that are not a JSON object at all ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (
            "<!DOCTYPE html><html><body>Sign in to continue</body></html>",
            {"Content-Type": "text/html"},
            "an HTML page",
        ),
        ("<html><head></head></html>", {"Content-Type": "text/html"}, "an HTML page"),
        ('{"success": true, "data": [', {"Content-Type": "application/json"}, "JSON body"),
        ("", {}, "an empty body"),
        ("   ", {}, "an empty body"),
        ("OK", {}, "'OK'"),
        (b"\xff\xfe\x00garbage", {}, "JSON body"),
    ],
)
async def test_a_body_that_is_not_json(
    client: NotifyClient,
    notify_server: LocalNotifyServer,
    body: str | bytes,
    headers: dict[str, str],
    expected: str,
) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        await list_with_body(client, notify_server, body, headers=headers)

    assert expected in str(caught.value)
    assert "check base_url" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [("[]", "got list"), ("null", "got null"), ('"ok"', "got str"), ("5", "got int")],
)
async def test_a_json_body_that_is_not_an_object(
    client: NotifyClient, notify_server: LocalNotifyServer, body: str, expected: str
) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        await list_with_body(
            client, notify_server, body, headers={"Content-Type": "application/json"}
        )

    assert "expected a JSON object" in str(caught.value)
    assert expected in str(caught.value)
    assert "GET /api_keys" in str(caught.value)


@pytest.mark.parametrize("route", [LIST, REGENERATE, SEND, TEMPLATE])
async def test_success_false_in_a_2xx_is_invalid(
    client: NotifyClient, notify_server: LocalNotifyServer, route: str
) -> None:
    notify_server.add_key("dev")
    await client.api_keys.list()  # so that a regenerate goes straight to its POST
    notify_server.inject(
        route, Fault.status(200, body={"success": False, "message": "Daily limit reached"})
    )

    with pytest.raises(InvalidResponseError) as caught:
        await call(client, route, notify_server)

    assert "success=False" in str(caught.value)
    assert "Daily limit reached" in str(caught.value)
    assert route in str(caught.value)
    assert notify_server.emails == []


@pytest.mark.parametrize("success", ["true", 1, None])
async def test_success_must_be_true_itself(
    client: NotifyClient, notify_server: LocalNotifyServer, success: object
) -> None:
    with pytest.raises(InvalidResponseError, match="success="):
        await list_with_body(client, notify_server, {"success": success, "data": []})


# -- the listing's shape ---------------------------------------------------------------------


async def test_a_well_formed_listing_with_unknown_fields_is_accepted(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    body = listing(item(scopes=["send"], lastUsedAt=None, extra={"nested": True}))
    body["pagination"] = {"next": None}
    body["requestId"] = "req_123"

    (key,) = await list_with_body(client, notify_server, body)

    assert key.id == "3f0b6a8e-0000-4000-8000-000000000001"
    assert key.name == "Production"
    assert key.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert key.updated_at == datetime(2024, 5, 2, 8, 30, 0, 250000, tzinfo=timezone.utc)
    assert key.active is True
    assert key.prefix == "nk_a1b2c..."


async def test_an_empty_listing_is_an_empty_list(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    assert await list_with_body(client, notify_server, listing()) == []


@pytest.mark.parametrize(
    ("body", "field_path", "problem"),
    [
        ({"success": True}, "data", ""),
        ({"success": True, "data": None}, "data", ""),
        ({"success": True, "data": {}}, "data", ""),
        ({"success": True, "data": "keys"}, "data", ""),
        ({"success": True, "data": {"id": "x"}}, "data", ""),
        ({"success": True, "data": [5]}, "data[0]", ""),
        ({"success": True, "data": ["nk_a1b2c..."]}, "data[0]", ""),
        ({"success": True, "data": [None]}, "data[0]", ""),
        (listing(item(createdAt=None)), "data[0].createdAt", "missing"),
        (listing(item(), item(id=None)), "data[1].id", "missing"),
        (listing(item(prefix=None)), "data[0].prefix", "missing"),
        (listing(item(active="yes")), "data[0].active", "expected bool"),
        (listing(item(active=1)), "data[0].active", "expected bool"),
        (listing(item(createdAt=5)), "data[0].createdAt", "ISO-8601"),
        (listing(item(updatedAt=1714560000)), "data[0].updatedAt", "ISO-8601"),
        (listing(item(name=1)), "data[0].name", "expected str"),
        (listing(item(id=42)), "data[0].id", "expected str"),
        (listing(item(name=["a"])), "data[0].name", "expected str"),
        (listing(item(), item(), item(prefix=False)), "data[2].prefix", "expected str"),
    ],
)
async def test_a_malformed_listing_names_the_field(
    client: NotifyClient,
    notify_server: LocalNotifyServer,
    body: dict[str, Any],
    field_path: str,
    problem: str,
) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        await list_with_body(client, notify_server, body)

    message = str(caught.value)
    assert f"@ {field_path}" in message
    assert problem in message
    # Never a bare Python error leaking through.
    assert caught.value.__cause__ is None
    assert "object is not" not in message
    assert "string indices" not in message


@pytest.mark.parametrize(
    "moment",
    [
        "yesterday",
        "",
        "2024-13-45T00:00:00Z",
        "2024-05-01 noon",
        "01/05/2024",
    ],
)
async def test_an_odd_datetime_names_the_field(
    client: NotifyClient, notify_server: LocalNotifyServer, moment: str
) -> None:
    with pytest.raises(InvalidResponseError, match=r"@ data\[0\]\.updatedAt"):
        await list_with_body(client, notify_server, listing(item(updatedAt=moment)))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Notify documents UTC; a time without a zone is read as UTC, never left naive.
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00.123456", datetime(2024, 5, 1, 12, 0, 0, 123456, timezone.utc)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
    ],
)
async def test_other_iso_datetimes_are_read_as_aware(
    client: NotifyClient, notify_server: LocalNotifyServer, moment: str, expected: datetime
) -> None:
    (key,) = await list_with_body(client, notify_server, listing(item(createdAt=moment)))

    # Aware datetimes compare as instants, whatever their offset.
    assert key.created_at == expected
    assert key.created_at.utcoffset() is not None


async def test_a_malformed_listing_message_names_at_most_three_problems(
    client: NotifyClient, notify_server: LocalNotifyServer
) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        await list_with_body(client, notify_server, listing(*[item(name=i) for i in range(50)]))

    assert str(caught.value).count("@ data[") == 3
    assert len(str(caught.value)) < 400


# -- the regenerate answer's shape -----------------------------------------------------------


@pytest.fixture
async def other_key_id(client: NotifyClient, notify_server: LocalNotifyServer) -> str:
    """A second key of the account; the client has listed, so it knows its own key's id."""
    notify_server.add_key("dev")
    await client.api_keys.list()
    return notify_server.keys[1].id


@pytest.mark.parametrize(
    ("body", "field_path"),
    [
        ({"success": True, "message": "done"}, "data.id"),
        ({"success": True, "data": None}, "data.id"),
        ({"success": True, "data": []}, "data.id"),
        ({"success": True, "data": {"id": "k"}}, "data.api_key"),
        ({"success": True, "data": {"api_key": "nk_x"}}, "data.id"),
        ({"success": True, "data": {"id": 7, "api_key": "nk_x"}}, "data.id"),
        ({"success": True, "data": {"id": "k", "api_key": None}}, "data.api_key"),
    ],
)
async def test_a_malformed_regenerate_answer_names_the_field(
    client: NotifyClient,
    notify_server: LocalNotifyServer,
    other_key_id: str,
    body: dict[str, Any],
    field_path: str,
) -> None:
    notify_server.inject(REGENERATE, Fault.status(200, body=body))

    # The server answered 2xx, so the key may well be regenerated: outcome unknown.
    with pytest.raises(OutcomeUnknownError, match=f"@ {field_path}") as caught:
        await client.api_keys.regenerate(other_key_id)
    assert "dashboard" in str(caught.value)


async def test_a_regenerate_answer_with_unknown_fields_is_accepted(
    client: NotifyClient, notify_server: LocalNotifyServer, other_key_id: str
) -> None:
    body = {
        "success": True,
        "message": "Regenerated",
        "requestId": "req_1",
        "data": {"id": other_key_id, "api_key": "nk_new", "name": "dev", "expiresAt": None},
    }
    notify_server.inject(REGENERATE, Fault.status(200, body=body))

    result = await client.api_keys.regenerate(other_key_id)

    assert (result.id, result.api_key, result.message) == (other_key_id, "nk_new", "Regenerated")


async def test_a_regenerate_answer_without_a_message_is_accepted(
    client: NotifyClient, notify_server: LocalNotifyServer, other_key_id: str
) -> None:
    body = {"success": True, "data": {"id": other_key_id, "api_key": "nk_new"}}
    notify_server.inject(REGENERATE, Fault.status(200, body=body))

    result = await client.api_keys.regenerate(other_key_id)

    assert result.message == ""


async def test_a_mistyped_regenerate_message_names_the_field(
    client: NotifyClient, notify_server: LocalNotifyServer, other_key_id: str
) -> None:
    body = {"success": True, "message": 5, "data": {"id": other_key_id, "api_key": "nk_new"}}
    notify_server.inject(REGENERATE, Fault.status(200, body=body))

    with pytest.raises(OutcomeUnknownError, match="message") as caught:
        await client.api_keys.regenerate(other_key_id)

    assert "expected str" in str(caught.value)


# -- the send answer's shape -----------------------------------------------------------------


@pytest.mark.parametrize("route", [SEND, TEMPLATE])
async def test_a_send_answer_with_unknown_fields_and_no_message_is_accepted(
    client: NotifyClient, notify_server: LocalNotifyServer, route: str
) -> None:
    notify_server.inject(route, Fault.status(200, body={"success": True, "id": "em_1"}))

    result = await call(client, route, notify_server)

    assert result == SendEmailResult(success=True, message="")


@pytest.mark.parametrize(
    ("body", "field_path"),
    [
        ({"success": True, "message": 5}, "$.message"),
        ({"success": True, "message": None}, "$.message"),
        ({"success": True, "message": ["sent"]}, "$.message"),
    ],
)
async def test_a_malformed_send_answer_names_the_field(
    client: NotifyClient, notify_server: LocalNotifyServer, body: dict[str, Any], field_path: str
) -> None:
    notify_server.inject(SEND, Fault.status(200, body=body))

    with pytest.raises(InvalidResponseError) as caught:
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert f"@ {field_path}" in str(caught.value)


# -- the key never appears in an InvalidResponseError ----------------------------------------


@pytest.mark.parametrize(
    ("make_body", "headers"),
    [
        (lambda key: {"success": False, "message": f"key {key} is suspended"}, {}),
        (lambda key: {"success": False, "error": f"bad key {key}"}, {}),
        (lambda key: {"success": False, "message": "m" * 180 + key}, {}),
        (lambda key: f"echo x-api-key: {key}", {}),
        (lambda key: "a" * 60 + key, {}),
        (lambda key: f"<html><body>{key}</body></html>", {"Content-Type": "text/html"}),
    ],
)
async def test_an_echoed_key_is_redacted_from_invalid_responses(
    client: NotifyClient,
    notify_server: LocalNotifyServer,
    make_body: Any,
    headers: dict[str, str],
) -> None:
    key = notify_server.api_key

    with pytest.raises(InvalidResponseError) as caught:
        await list_with_body(client, notify_server, make_body(key), headers=headers)

    assert not leaks(str(caught.value), key)


async def test_msgspec_failing_to_load_fails_a_send_before_it_is_sent(
    notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer's decoder is planned before the first request goes out: an install without
    # msgspec must not leave an email sent behind an error the caller would retry.
    monkeypatch.setitem(sys.modules, "msgspec", None)
    monkeypatch.setattr(emails_module, "_read_result", Reader(SendEmailResult, field=None))
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with pytest.raises(NotifyError, match="could not load msgspec") as caught:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert not isinstance(caught.value, OutcomeUnknownError)
    assert notify_server.request_counts[SEND] == 0


async def test_an_answer_the_fast_way_declines_is_decoded_by_it_once(
    client: NotifyClient, notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[bytes] = []

    class CountingReader(Reader[SendEmailResult]):
        def fast(self, raw: bytes) -> SendEmailResult | None:
            reads.append(raw)
            return super().fast(raw)

    monkeypatch.setattr(emails_module, "_read_result", CountingReader(SendEmailResult, field=None))
    notify_server.inject(SEND, Fault.status(200, body={"success": True, "message": 5}))
    with pytest.raises(OutcomeUnknownError, match="message"):
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    assert len(reads) == 1
