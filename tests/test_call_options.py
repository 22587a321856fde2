"""Per-call ``timeout=`` and ``extra_headers=``, and the client's ``default_headers=``.

Headers are checked where they arrive, at the local server over real HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from notify_async import APITimeoutError, NotifyClient, OutcomeUnknownError
from notify_async.testing import Fault, LocalNotifyServer

SEND = "POST /send-email"
LIST = "GET /api_keys"

Call = Callable[[NotifyClient, dict[str, Any]], Awaitable[object]]

CALLS: dict[str, Call] = {
    "list": lambda c, o: c.api_keys.list(**o),
    "send": lambda c, o: c.emails.send(to="ada@example.com", subject="Hi", message="Hello", **o),
    "send_template": lambda c, o: c.emails.send_template(
        template_id="welcome", to="ada@example.com", **o
    ),
    "rotate": lambda c, o: c.api_keys.rotate(**o),
}


class Seen:
    """The headers of every request the server received, in order."""

    def __init__(self, server: LocalNotifyServer) -> None:
        self.server = server

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter([headers for _, headers in self.server.received_headers])

    def __getitem__(self, index: int) -> dict[str, str]:
        return self.server.received_headers[index][1]


@pytest.fixture
def seen(notify_server: LocalNotifyServer) -> Seen:
    return Seen(notify_server)


@pytest.mark.parametrize("name", CALLS)
async def test_extra_headers_reach_the_server_with_every_call(
    notify_server: LocalNotifyServer, seen: Seen, name: str
) -> None:
    async with NotifyClient(
        notify_server.api_key,
        base_url=notify_server.base_url,
        default_headers={"X-Team": "growth", "X-Trace-Id": "default"},
    ) as client:
        await CALLS[name](client, {"extra_headers": {"X-Trace-Id": "abc123"}})
        await client.api_keys.list()

    *per_call, after = list(seen)
    assert per_call
    assert all(h["X-Trace-Id"] == "abc123" and h["X-Team"] == "growth" for h in per_call)
    assert after["X-Trace-Id"] == "default"  # only that call
    assert all(h["User-Agent"].startswith("notify-async/") for h in seen)


@pytest.mark.parametrize("header", ["x-api-key", "X-API-Key", "User-Agent", "user-agent"])
async def test_headers_the_client_owns_are_refused(
    notify_server: LocalNotifyServer, header: str
) -> None:
    with pytest.raises(ValueError, match="the client sets it"):
        NotifyClient(notify_server.api_key, default_headers={header: "x"})

    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with pytest.raises(ValueError, match="the client sets it"):
            await client.api_keys.list(extra_headers={header: "x"})
        with pytest.raises(ValueError, match="the client sets it"):
            client.with_options(default_headers={header: "x"})

    assert sum(notify_server.request_counts.values()) == 0


async def test_a_header_with_a_line_break_is_refused(notify_server: LocalNotifyServer) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with pytest.raises(ValueError, match="line break"):
            await client.api_keys.list(extra_headers={"X-Trace": "a\r\nx-api-key: b"})

    assert sum(notify_server.request_counts.values()) == 0


async def test_with_options_default_headers_replace_the_clients(
    notify_server: LocalNotifyServer, seen: Seen
) -> None:
    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, default_headers={"X-A": "1"}
    ) as client:
        await client.with_options(default_headers={"X-B": "2"}).api_keys.list()
        await client.api_keys.list()

    assert ("X-A" not in seen[0], seen[0].get("X-B")) == (True, "2")
    assert (seen[1].get("X-A"), "X-B" not in seen[1]) == ("1", True)


async def test_a_per_call_timeout_bounds_that_call_only(notify_server: LocalNotifyServer) -> None:
    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, max_retries=0, timeout=30
    ) as client:
        notify_server.inject(LIST, Fault.delay(2.0))
        with pytest.raises(APITimeoutError):
            await client.api_keys.list(timeout=0.2)
        notify_server.inject(SEND, Fault.delay(0.5))
        # The same delay is fine for a call under the client's own 30 s.
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
        notify_server.inject(SEND, Fault.delay(2.0))
        with pytest.raises(OutcomeUnknownError):
            await client.emails.send(to="ada@example.com", subject="Hi", message="x", timeout=0.2)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "5", True])
async def test_a_bad_per_call_timeout_is_a_value_error(
    notify_server: LocalNotifyServer, bad: object
) -> None:
    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with pytest.raises(ValueError, match="timeout must be"):
            await client.api_keys.list(timeout=bad)  # type: ignore[arg-type]

    assert sum(notify_server.request_counts.values()) == 0
