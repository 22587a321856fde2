"""What the library logs: ``NOTIFY_LOG`` on stderr, and no key in any record.

The ``NOTIFY_LOG`` cases run a real child process, because the variable is read when
``notify_async`` is imported.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
from support import subprocess_env

from notify_async import NotifyClient
from notify_async.testing import LocalNotifyServer

SCRIPT = """
import asyncio, sys
from notify_async import NotifyClient
from notify_async.testing import LocalNotifyServer

async def main() -> None:
    async with LocalNotifyServer() as server:
        async with NotifyClient(
            server.api_key, base_url=server.base_url, rotation_grace=0
        ) as client:
            await client.api_keys.list()
            server.rotate()  # the client's key dies; StaticKeyProvider cannot reload it
            try:
                await client.api_keys.list()
            except Exception:
                pass
            print(server.api_key, file=sys.stdout)

asyncio.run(main())
"""


async def run(notify_log: str | None) -> tuple[str, str]:
    env = subprocess_env()
    env.pop("NOTIFY_LOG", None)
    if notify_log is not None:
        env["NOTIFY_LOG"] = notify_log
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().strip(), err.decode()


async def test_without_notify_log_the_library_prints_nothing() -> None:
    _, err = await run(None)

    assert err == ""


@pytest.mark.parametrize("value", ["info", "INFO", " debug "])
async def test_notify_log_turns_on_a_stderr_handler(value: str) -> None:
    key, err = await run(value)

    assert "INFO notify_async" in err
    assert "was rejected (401)" in err
    assert ("DEBUG notify_async" in err) == (value.strip().lower() == "debug")
    assert key[8:20] not in err  # the live key; the rejected one is masked the same way


async def test_an_unknown_notify_log_value_says_so_and_changes_nothing() -> None:
    _, err = await run("verbose")

    assert err.strip() == "notify_async: ignoring NOTIFY_LOG='verbose'; use 'debug' or 'info'"


async def test_every_attempt_is_logged_at_debug_with_the_key_prefix_only(
    notify_server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with NotifyClient(
        notify_server.api_key, base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        with caplog.at_level(logging.DEBUG, logger="notify_async"):
            await client.api_keys.list()
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    attempts = [r for r in caplog.records if getattr(r, "notify_event", None) == "attempt"]
    assert [(r.method, r.path, r.status, r.attempt) for r in attempts] == [  # type: ignore[attr-defined]
        ("GET", "/api_keys", 200, 1),
        ("POST", "/send-email", 200, 1),
    ]
    for record in attempts:
        message = record.getMessage()
        assert "ms" in message
        assert notify_server.api_key[:8] in message
        assert notify_server.api_key[9:] not in message
        assert record.generation == 1  # type: ignore[attr-defined]
