"""The ``notify-async`` command line (also ``python -m notify_async``).

Stdout carries data; stderr carries messages. Errors print one line and exit with a code
per error class (see ``EXIT_CODES``); ``--debug`` adds the traceback.
"""

from __future__ import annotations

__all__ = ["EXIT_CODES", "main"]

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ._client import NotifyClient
from ._credentials import CredentialProvider, EnvKeyProvider, FileKeyProvider, redact
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    CredentialError,
    InvalidResponseError,
    NotifyError,
    OutcomeUnknownError,
    RateLimitError,
)

EXIT_CODES: dict[type[BaseException], int] = {
    # Checked in order: the first class the error is an instance of gives the code.
    ValueError: 2,
    CredentialError: 3,
    AuthenticationError: 4,
    RateLimitError: 5,
    APIStatusError: 6,
    APIConnectionError: 7,
    OutcomeUnknownError: 8,
    InvalidResponseError: 9,
    NotifyError: 1,
}
"""Exit codes: 0 success, 1 other NotifyError, 2 bad arguments, 3 credentials, 4 key
rejected (401), 5 rate limited, 6 other HTTP error status, 7 connection or timeout,
8 outcome unknown (a send or rotation may have happened), 9 invalid response, 130
interrupted."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result: int = asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = next((c for kind, c in EXIT_CODES.items() if isinstance(exc, kind)), None)
        if code is None or args.debug:
            raise
        message = exc.message if isinstance(exc, NotifyError) else str(exc)
        print(f"notify-async: error: {message}", file=sys.stderr)
        return code
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notify-async",
        description="Talk to the Notify email API, or run a local Notify server.",
    )
    parser.add_argument("--debug", action="store_true", help="log requests; show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the client against a local Notify server")
    demo.add_argument("--workers", type=int, default=4, help="worker tasks sending (default 4)")
    demo.add_argument("--rotations", type=int, default=3, help="key rotations (default 3)")
    demo.set_defaults(run=_demo)

    keys = commands.add_parser("keys", help="list or rotate API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    listing = key_commands.add_parser("list", help="list the account's keys")
    _add_connection_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_keys_list)
    rotate = key_commands.add_parser(
        "rotate", help="rotate the key in use, store it in --key-file, and verify it"
    )
    _add_connection_options(rotate)
    rotate.set_defaults(run=_keys_rotate)

    send = commands.add_parser("send", help="send an email")
    _add_connection_options(send)
    send.add_argument("--to", required=True)
    send.add_argument("--subject", required=True)
    send.add_argument("--message", required=True)
    send.add_argument("--name")
    send.set_defaults(run=_send)

    serve = commands.add_parser("serve", help="run a local Notify server in the foreground")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8025)
    serve.add_argument("--key-file", type=Path, help="write the server's key here (mode 0600)")
    serve.set_defaults(run=_serve)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        type=Path,
        help="read the API key from this file (default: the NOTIFY_API_KEY variable)",
    )
    parser.add_argument("--base-url", help="the API root (default: NOTIFY_BASE_URL or Notify's)")


def _client(args: argparse.Namespace) -> NotifyClient:
    provider: CredentialProvider = (
        FileKeyProvider(args.key_file) if args.key_file else EnvKeyProvider()
    )
    if isinstance(provider, EnvKeyProvider):
        provider.load_now()  # fail before any traffic, with a message naming the variable
    return NotifyClient(credentials=provider, base_url=args.base_url)


async def _keys_list(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        keys = await client.api_keys.list()
    if args.json:
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "active": k.active,
                "created_at": k.created_at.isoformat(),
                "updated_at": k.updated_at.isoformat(),
            }
            for k in keys
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = [("ID", "NAME", "PREFIX", "ACTIVE", "CREATED", "UPDATED")]
    table += [
        (
            k.id,
            k.name,
            k.prefix,
            "yes" if k.active else "no",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.updated_at:%Y-%m-%d %H:%M}",
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


async def _keys_rotate(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        result = await client.api_keys.rotate()
    where = f" and stored in {args.key_file}" if args.key_file else ""
    print(f"rotated key {result.id}{where}; verified", file=sys.stderr)
    print(redact(result.api_key))
    return 0


async def _send(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        result = await client.emails.send(
            to=args.to, subject=args.subject, message=args.message, name=args.name
        )
    print(result.message or "sent")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from .testing import LocalNotifyServer  # noqa: PLC0415 - only this command needs aiohttp.web

    async with LocalNotifyServer(host=args.host, port=args.port, key_file=args.key_file) as server:
        print(f"NOTIFY_BASE_URL={server.base_url}")
        print(f"NOTIFY_API_KEY={server.api_key}")
        print("serving; press Ctrl+C to stop", file=sys.stderr)
        sys.stdout.flush()
        await asyncio.Event().wait()
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from .testing import LocalNotifyServer  # noqa: PLC0415 - only this command needs aiohttp.web

    if args.workers < 1 or args.rotations < 0:
        raise ValueError("--workers must be >= 1 and --rotations >= 0")
    async with LocalNotifyServer(keys=2) as server:
        print(f"Local Notify server at {server.base_url}")
        async with NotifyClient(server.api_key, base_url=server.base_url) as client:
            print(f"\n1. list  (this client's key: {client.key_prefix})")
            for key in await client.api_keys.list():
                state = "active" if key.active else "inactive"
                print(
                    f"   {key.name:<10} {key.prefix:<12} {state}, updated {key.updated_at:%H:%M:%S}"
                )
            result = await client.emails.send(
                to="ada@example.com", subject="Hello", message="Sent by the notify-async demo."
            )
            print(f"2. send  -> {result.message}")
            own = server.primary_key_id
            rotated = await client.api_keys.regenerate(own)
            print(f"3. regenerate own key -> new key {redact(rotated.api_key)}, adopted at once")
            keys = await client.api_keys.list()
            prefixes = ", ".join(f"{k.name} {k.prefix}" for k in keys)
            print(f"4. list with the new key -> {prefixes}")
        await _rotation_storm(server, workers=args.workers, rotations=args.rotations)
    return 0


async def _rotation_storm(server: object, *, workers: int, rotations: int) -> None:
    """Workers with their own clients share a key file; one of them keeps rotating it."""
    from .testing import LocalNotifyServer  # noqa: PLC0415

    assert isinstance(server, LocalNotifyServer)  # noqa: S101 - typed loosely for the import
    print(f"\n5. {workers} workers send while the shared key is rotated {rotations} times")
    with tempfile.TemporaryDirectory() as folder:
        key_file = Path(folder) / "notify.key"
        await FileKeyProvider(key_file).store(server.api_key)
        server.reset_counters()
        clients = [
            NotifyClient(credentials=FileKeyProvider(key_file), base_url=server.base_url)
            for _ in range(workers + 1)
        ]
        rotator, senders = clients[0], clients[1:]
        stop = asyncio.Event()
        sent = failed = 0

        async def worker(number: int, client: NotifyClient) -> None:
            nonlocal sent, failed
            while not stop.is_set():
                try:
                    await client.emails.send(
                        to=f"worker{number}@example.com", subject="tick", message=str(sent)
                    )
                    sent += 1
                except NotifyError as exc:
                    failed += 1
                    print(f"   send failed: {exc}", file=sys.stderr)
                await asyncio.sleep(0.005)

        started = time.perf_counter()
        try:
            tasks = [asyncio.create_task(worker(i, c)) for i, c in enumerate(senders)]
            for number in range(rotations):
                await asyncio.sleep(0.2)
                result = await rotator.api_keys.rotate()
                print(
                    f"   rotation {number + 1}: now {redact(result.api_key)} (stored in the file)"
                )
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            for client in clients:
                await client.close()
        elapsed = time.perf_counter() - started
        reloads = sum(c.key_loads for c in senders) - len(senders)  # minus each first load
        accepted = sum(1 for e in server.emails if e.subject == "tick")
        print(f"   sends accepted:   {accepted} (issued {sent}) in {elapsed:.1f}s")
        print(f"   sends failed:     {failed}")
        print(f"   key reloads:      {reloads}")
        print(f"   401s absorbed:    {server.auth_failures}")
        if failed or accepted != sent:
            raise NotifyError("the demo lost or duplicated sends; see above")
    print("\nDone: every send was accepted once, across every rotation.")
