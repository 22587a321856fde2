"""Helpers shared by several test modules (imported as ``support``; tests/ is on sys.path)."""

from __future__ import annotations

from notify_async import NotifyClient
from notify_async.testing import LocalNotifyServer

LIST = "GET /api_keys"
REGENERATE = "POST /api_keys/regenerate"
SEND = "POST /send-email"
TEMPLATE = "POST /send-email-from-template"


def leaks(text: str, key: str, *, shown: int = 8) -> bool:
    """Whether ``text`` shows more of ``key`` than its first ``shown`` characters."""
    window = shown + 1
    return any(key[i : i + window] in text for i in range(len(key) - window + 1))


async def call(client: NotifyClient, route: str, server: LocalNotifyServer) -> object:
    """Make the client call that goes to ``route``."""
    if route == LIST:
        return await client.api_keys.list()
    if route == REGENERATE:
        return await client.api_keys.regenerate(server.keys[-1].id)
    if route == SEND:
        return await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
    return await client.emails.send_template(template_id="welcome", to="ada@example.com")
