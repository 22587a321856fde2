r"""A background worker: tasks take email jobs from a queue and send them, across rotations.

Every sending task shares one NotifyClient, so a key rotation costs one reload for all of
them: when another process (or an operator) rotates the key and publishes it to the key
file, the requests in flight get a 401, the client reloads the file once, replays them
with the new key, and no job is lost or sent twice.

It reads JSON jobs from stdin, one per line, and prints a summary when stdin closes. Run
it against the local Notify server, from the repository root. In one shell::

    notify-async serve --port 8025 --key-file notify.key

In another one::

    printf '%s\n' '{"to": "ada@example.com", "subject": "Hi", "message": "Hello"}' \
        '{"to": "grace@example.com", "subject": "Hi", "message": "Hello"}' \
        | python examples/worker.py --key-file notify.key \
            --base-url http://127.0.0.1:8025/api/public/v1

It prints ``{"sent": 2, "unknown": 0, "failed": 0}``. Against Notify itself, leave out
``--base-url`` and point ``--key-file`` at the file your deployment keeps the key in.

With arq or Celery the shape is the same: open one client per worker process (arq's
``on_startup``/``on_shutdown``; for Celery, one event loop per worker process, not one
``asyncio.run`` per task) and call ``client.emails.send`` in the task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from notify_async import (
    CredentialProvider,
    EnvKeyProvider,
    FileKeyProvider,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
)


@dataclass(frozen=True)
class EmailJob:
    to: str
    subject: str
    message: str


@dataclass
class Tally:
    """What the worker did with the jobs it took."""

    sent: int = 0
    # Maybe sent, maybe not (a lost reply): never resend these blindly; someone checks.
    unknown: list[EmailJob] = field(default_factory=list)
    failed: list[tuple[EmailJob, str]] = field(default_factory=list)


def parse_job(line: str) -> EmailJob:
    """One job from a JSON line; ValueError that quotes the line if it is not one."""
    try:
        fields = json.loads(line)
        return EmailJob(to=fields["to"], subject=fields["subject"], message=fields["message"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            f"not a job ({type(exc).__name__}): {line.strip()[:80]!r}; expected "
            '{"to": ..., "subject": ..., "message": ...}'
        ) from None


async def send_jobs(
    client: NotifyClient, jobs: asyncio.Queue[EmailJob | None], tally: Tally
) -> None:
    """Send jobs from the queue until it yields ``None``."""
    while (job := await jobs.get()) is not None:
        try:
            await client.emails.send(to=job.to, subject=job.subject, message=job.message)
        except OutcomeUnknownError:
            tally.unknown.append(job)
        except NotifyError as exc:
            # Already retried where that was safe (connection refused, 429, 503).
            tally.failed.append((job, exc.message))
        else:
            tally.sent += 1


async def run_workers(
    client: NotifyClient, jobs: asyncio.Queue[EmailJob | None], *, concurrency: int
) -> Tally:
    """Run ``concurrency`` senders until each has taken a ``None`` from the queue."""
    tally = Tally()
    await asyncio.gather(*(send_jobs(client, jobs, tally) for _ in range(concurrency)))
    return tally


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send JSON email jobs read from stdin.")
    parser.add_argument("--key-file", help="the shared key file (default: NOTIFY_API_KEY)")
    parser.add_argument("--base-url", help="the API root (default: NOTIFY_BASE_URL or Notify's)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    credentials: CredentialProvider = (
        FileKeyProvider(args.key_file) if args.key_file else EnvKeyProvider()
    )
    jobs: asyncio.Queue[EmailJob | None] = asyncio.Queue(maxsize=100)
    try:
        client = NotifyClient(credentials=credentials, base_url=args.base_url)
        async with client:  # loads the key now: a missing key file stops us here
            senders = asyncio.create_task(run_workers(client, jobs, concurrency=args.concurrency))
            while line := await asyncio.to_thread(sys.stdin.readline):
                if line.strip():
                    await jobs.put(parse_job(line))
            for _ in range(args.concurrency):
                await jobs.put(None)
            tally = await senders
    except (NotifyError, ValueError) as exc:
        # A missing key file, a bad --base-url, a job that is not JSON: one line, no traceback.
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps({"sent": tally.sent, "unknown": len(tally.unknown), "failed": len(tally.failed)})
    )
    return 0 if not tally.failed and not tally.unknown else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
