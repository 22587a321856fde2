"""A fleet of real worker processes shares one key file while one of them rotates the key.

The server runs in its own process (``python -m notify_async.testing --key-file PATH``), so
every worker, the rotator included, is an ordinary client of it. Each worker sends emails
with unique subjects; one worker also calls ``api_keys.rotate()`` several times, which
stores each new key in the shared file. The server must end up with every email that the
workers issued, each exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import start_python, stop, subprocess_env

from notify_async.testing import ServerProcess

SEND = "POST /send-email"
REGENERATE = "POST /api_keys/regenerate"
WORKERS = 4
ROTATIONS = 6
# Spaced so that each rotation reaches the whole fleet before the next one; a worker whose
# replay meets yet another rotation would rightly fail (one auth replay per call).
ROTATION_INTERVAL = 0.35
SEND_SECONDS = 3.0

# One worker process: wait for "go", send for a while from a few concurrent lanes (and, if
# asked, rotate the key meanwhile), then print one JSON line with what it did.
WORKER = """
import asyncio, json, sys, time
from notify_async import FileKeyProvider, NotifyClient, NotifyError

base_url, key_file, name = sys.argv[1:4]
seconds, rotations, interval = float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])

async def main() -> dict:
    sent, failures, rotated, changes = [], [], [], []

    async def on_key_change(prefix):
        changes.append(prefix)

    client = NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=base_url, on_key_change=on_key_change
    )
    async with client:
        deadline = time.monotonic() + seconds

        async def lane(number):
            count = 0
            while time.monotonic() < deadline:
                subject = f"{name}/{number}/{count}"
                count += 1
                sent.append(subject)
                try:
                    await client.emails.send(to="fleet@example.com", subject=subject, message="hi")
                except NotifyError as exc:
                    failures.append(f"{subject}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.02)

        async def rotate():
            for _ in range(rotations):
                await asyncio.sleep(interval)
                try:
                    result = await client.api_keys.rotate()
                except NotifyError as exc:
                    failures.append(f"rotate: {type(exc).__name__}: {exc}")
                else:
                    rotated.append(result.api_key[:8])

        await asyncio.gather(*(lane(n) for n in range(3)), rotate())
    return {
        "sent": sent,
        "failures": failures,
        "rotated": rotated,
        "changes": changes,
        "loads": client.key_loads,
    }

print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(asyncio.run(main())), flush=True)
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, Path]]:
    """A local Notify server in its own process, publishing its key to a file."""
    key_file = tmp_path / "secrets" / "notify_api_key"
    key_file.parent.mkdir()
    process = ServerProcess(
        key_file=key_file, python_args=("-W", "error"), env=subprocess_env(), capture_stderr=True
    )
    async with process:
        yield process, key_file
    assert process.returncode == 0, process.stderr.decode()


async def start_worker(
    name: str, base_url: str, key_file: Path, *, rotations: int
) -> asyncio.subprocess.Process:
    process = await start_python(
        "-c",
        WORKER,
        base_url,
        str(key_file),
        name,
        str(SEND_SECONDS),
        str(rotations),
        str(ROTATION_INTERVAL),
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line == b"ready\n", line
    return process


async def test_a_fleet_sharing_a_key_file_sends_every_email_exactly_once_across_rotations(
    server: tuple[ServerProcess, Path],
) -> None:
    notify, key_file = server
    base_url = notify.base_url
    # Every worker is ready (imports done) before any starts, so that they overlap.
    workers = [
        await start_worker(f"w{i}", base_url, key_file, rotations=ROTATIONS if i == 0 else 0)
        for i in range(WORKERS)
    ]
    try:
        for process in workers:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = [await asyncio.wait_for(process.communicate(), timeout=60) for process in workers]
    finally:
        for process in workers:
            await stop(process)

    reports: list[dict[str, Any]] = []
    for process, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert stderr == b"", stderr.decode()
        reports.append(json.loads(stdout))

    state = await notify.control.state()

    issued = [subject for report in reports for subject in report["sent"]]
    accepted = collections.Counter(email["subject"] for email in state["emails"])
    assert [f for report in reports for f in report["failures"]] == []
    # Exactly once: every issued send was accepted, and none twice.
    assert len(issued) == len(set(issued))
    assert accepted == collections.Counter(issued)
    assert len(issued) > 100  # the fleet really was busy during the rotations

    rotator, others = reports[0], reports[1:]
    assert len(rotator["rotated"]) == ROTATIONS
    assert state["request_counts"][REGENERATE] == ROTATIONS
    # The other workers felt the rotations: they were rejected, reloaded and replayed.
    rejected = state["auth_failures_by_route"][SEND]
    assert rejected > 0
    assert all(report["changes"] for report in others)
    assert state["request_counts"][SEND] == len(issued) + rejected
    for report in others:
        # One initial load, then a handful per rotation at most: no reload storms.
        assert report["loads"] <= 1 + 5 * ROTATIONS, report["loads"]

    # The shared file holds the live key, privately, and nothing else is left in its folder.
    assert key_file.read_text().strip() == state["api_key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert os.listdir(key_file.parent) == [key_file.name]
