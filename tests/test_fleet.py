"""A fleet of real worker processes shares one key file while one of them rotates the key.

The server runs in its own process (``python -m notify_async.testing --key-file PATH``), so
every worker, the rotator included, is an ordinary client of it. Each worker sends emails
with unique subjects from a few concurrent lanes, without pause, until it is closed; one
worker also calls ``api_keys.rotate()`` when told, which stores each new key in the shared
file. The test starts the next rotation only once every worker has settled on the current
key, so the outcome does not depend on timing. The server must end up with every email
that the workers issued, each exactly once, and every worker must have adopted every key.
"""

from __future__ import annotations

import asyncio
import collections
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import Worker, everyone, running, subprocess_env

from notify_async.testing import ServerProcess

SEND = "POST /send-email"
REGENERATE = "POST /api_keys/regenerate"
WORKERS = 4
ROTATIONS = 6

# One worker process, driven over stdin (see support.Worker): "start" its sending lanes,
# "rotate" the key, "settle" on a key, and "close", which answers with what it did.
WORKER = """
import asyncio, json, sys
from notify_async import FileKeyProvider, NotifyClient, NotifyError

base_url, key_file, name = sys.argv[1:4]
LANES = 3

def reply(**fields):
    print(json.dumps(fields), flush=True)

async def main():
    sent, failures, changes = [], [], []
    begun, finished = [0] * LANES, [0] * LANES
    closing = asyncio.Event()

    async def on_key_change(prefix):
        changes.append(prefix)

    client = NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=base_url, on_key_change=on_key_change
    )

    async def lane(number):
        while not closing.is_set():
            subject = f"{name}/{number}/{begun[number]}"
            begun[number] += 1
            sent.append(subject)
            try:
                await client.emails.send(to="fleet@example.com", subject=subject, message="hi")
            except NotifyError as exc:
                failures.append(f"{subject}: {type(exc).__name__}: {exc}")
            finished[number] += 1
            await asyncio.sleep(0.02)

    async def settle(prefix):
        # The key is in use, and every lane finished a send begun after that: no send begun
        # with an older key (whose one auth replay is spent) is still in flight. Bounded, so
        # that a worker that never gets there answers with its failures instead of hanging.
        deadline = asyncio.get_running_loop().time() + 10
        while client.key_prefix != prefix:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.005)
        marks = list(begun)
        while any(done <= mark for done, mark in zip(finished, marks)):
            await asyncio.sleep(0.005)

    async with client:
        lanes = []
        reply(ready=client.key_prefix)
        while True:
            command = json.loads(await asyncio.to_thread(sys.stdin.readline))
            if command["cmd"] == "start":
                lanes = [asyncio.create_task(lane(number)) for number in range(LANES)]
                reply(lanes=LANES)
            elif command["cmd"] == "rotate":
                try:
                    await client.api_keys.rotate()
                except NotifyError as exc:
                    failures.append(f"rotate: {type(exc).__name__}: {exc}")
                reply(prefix=client.key_prefix)
            elif command["cmd"] == "settle":
                await settle(command["prefix"])
                reply(prefix=client.key_prefix, failures=failures)
            elif command["cmd"] == "close":
                closing.set()
                await asyncio.gather(*lanes)
                break
    reply(sent=sent, failures=failures, changes=changes, loads=client.key_loads)

asyncio.run(main())
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


async def test_a_fleet_sharing_a_key_file_sends_every_email_exactly_once_across_rotations(
    server: tuple[ServerProcess, Path],
) -> None:
    notify, key_file = server
    starting = (
        Worker.start(name, "-c", WORKER, notify.base_url, str(key_file), name)
        for name in (f"w{i}" for i in range(WORKERS))
    )
    async with running(*starting) as workers:
        rotator = workers[0]
        await everyone(workers, "start")
        rotated: list[str] = []
        for _ in range(ROTATIONS):
            rotated.append((await rotator.ask("rotate"))["prefix"])
            # Rotate again only once the whole fleet settled on this key: a send whose one
            # auth replay met yet another rotation would rightly fail.
            settled = await everyone(workers, "settle", prefix=rotated[-1])
            assert [s["prefix"] for s in settled] == [rotated[-1]] * WORKERS, settled
        reports = list(await asyncio.gather(*(worker.close() for worker in workers)))

    state = await notify.control.state()

    issued = [subject for report in reports for subject in report["sent"]]
    accepted = collections.Counter(email["subject"] for email in state["emails"])
    assert [f for report in reports for f in report["failures"]] == []
    # Exactly once: every issued send was accepted, and none twice.
    assert len(issued) == len(set(issued))
    assert accepted == collections.Counter(issued)

    assert len(set(rotated)) == ROTATIONS
    assert state["request_counts"][REGENERATE] == ROTATIONS
    # Every worker adopted every key, once and in order: the fleet was busy throughout.
    for report in reports:
        assert report["changes"] == rotated
    # The others learned of each rotation from a rejected send, which was reloaded and
    # replayed: one more request per rejection, nothing else.
    rejected = state["auth_failures_by_route"][SEND]
    assert rejected >= (WORKERS - 1) * ROTATIONS
    assert state["request_counts"][SEND] == len(issued) + rejected
    for report in reports[1:]:
        # One initial load, then a handful per rotation at most: no reload storms.
        assert report["loads"] <= 1 + 5 * ROTATIONS, report["loads"]

    # The shared file holds the live key, privately, and nothing else is left in its folder.
    assert key_file.read_text().strip() == state["api_key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # No temporary file left behind: the key, and the rotation lock beside it.
    assert sorted(os.listdir(key_file.parent)) == [key_file.name, f"{key_file.name}.lock"]
