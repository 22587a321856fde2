"""Worker processes that call ``rotate()`` at the same instant, with traffic on every worker.

Each worker is a real process with its own ``NotifyClient`` on a shared provider (a key
file, or Redis), sending emails with unique subjects from a few lanes the whole time. For
three rounds, every worker is told to rotate at once. The provider's rotation lease must
make exactly one regenerate per round; every ``rotate()`` must return the live key; and
no send may fail, on any worker: the server's record equals the sends issued.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import REGENERATE, Worker, everyone, running

from notify_async.contrib.redis import RedisKeyProvider
from notify_async.testing import LocalNotifyServer, RedisServer

ROUNDS = 3

WORKER = """
import asyncio, json, sys
from notify_async import FileKeyProvider, NotifyClient, NotifyError

base_url, kind, where, name = sys.argv[1:5]
if kind == "file":
    provider = FileKeyProvider(where)
else:
    from notify_async.contrib.redis import RedisKeyProvider
    provider = RedisKeyProvider(where)

async def main() -> None:
    loop = asyncio.get_running_loop()
    sent, failures = [], []
    sending = asyncio.Event()

    async def lane(number: int) -> None:
        count = 0
        while sending.is_set():
            subject = f"{name}/{number}/{count}"
            count += 1
            sent.append(subject)
            try:
                await client.emails.send(to="fleet@example.com", subject=subject, message="hi")
            except NotifyError as exc:
                failures.append(f"{subject}: {type(exc).__name__}: {exc}")

    async with NotifyClient(credentials=provider, base_url=base_url, rotation_grace=5) as client:
        await client.api_keys.list()  # learn the key's id before the first round
        lanes = []
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            cmd = json.loads(line)["cmd"]
            if cmd == "traffic":
                sending.set()
                lanes = [asyncio.create_task(lane(n)) for n in range(3)]
                reply = {"started": True}
            elif cmd == "rotate":
                try:
                    result = await client.api_keys.rotate()
                except NotifyError as exc:
                    reply = {"key": None, "error": f"{type(exc).__name__}: {exc}"}
                else:
                    reply = {"key": result.api_key, "error": None}
            elif cmd == "close":
                sending.clear()
                await asyncio.gather(*lanes)
                reply = {"sent": sent, "failures": failures, "loads": client.key_loads}
            print(json.dumps(reply), flush=True)
            if cmd == "close":
                return

asyncio.run(main())
"""


def publish(key_file: Path, key: str) -> None:
    """Write the fleet's first key, as an operator does once."""
    key_file.write_text(key)


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_workers_rotating_at_the_same_instant_make_one_regenerate_per_round(
    notify_server: LocalNotifyServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    kind: str,
    workers: int,
) -> None:
    if kind == "file":
        where = str(tmp_path / "notify.key")
        publish(Path(where), notify_server.api_key)
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        where = redis_server.url
        await RedisKeyProvider(where).store(notify_server.api_key)

    names = [f"w{n}" for n in range(workers)]
    async with running(
        *(
            Worker.start(name, "-c", WORKER, notify_server.base_url, kind, where, name)
            for name in names
        )
    ) as fleet:
        await everyone(fleet, "traffic")
        for round_number in range(1, ROUNDS + 1):
            # The same instant: every worker gets the command before any answers.
            await asyncio.gather(*(worker.write("rotate") for worker in fleet))
            results = await asyncio.gather(*(worker.read() for worker in fleet))

            assert [r["error"] for r in results] == [None] * workers
            assert notify_server.request_counts[REGENERATE] == round_number
            # Every rotate() returned the key that is live now, not one that died after.
            assert [r["key"] for r in results] == [notify_server.api_key] * workers
        reports = await everyone(fleet, "close")

    failures = [failure for report in reports for failure in report["failures"]]
    assert failures == []
    issued = sorted(subject for report in reports for subject in report["sent"])
    assert sorted(email.subject or "" for email in notify_server.emails) == issued
    assert len(issued) > 0
    # The rotations met traffic in flight: some sends were rejected and replayed.
    assert notify_server.auth_failures > 0
