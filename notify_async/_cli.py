"""The ``notify-async`` command line (also ``python -m notify_async``).

Stdout carries data (a table, JSON, a key prefix); stderr carries messages. An error prints
one line and exits with the code of its class (see ``EXIT_CODES``); ``--debug`` adds the
traceback and DEBUG logging. The key is read through the same providers as the library:
``--key-file PATH``, or the ``NOTIFY_API_KEY`` variable by default.
"""

from __future__ import annotations

__all__ = ["EXIT_CODES", "main"]

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ._client import NotifyClient
from ._credentials import CredentialProvider, EnvKeyProvider, FileKeyProvider, redact
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    CredentialError,
    InvalidResponseError,
    KeyStoreError,
    NotifyError,
    OutcomeUnknownError,
    RateLimitError,
)

if TYPE_CHECKING:
    from .testing import LocalNotifyServer

EXIT_CODES: dict[type[BaseException], int] = {
    # Checked in order: the first class the error is an instance of gives the code, so a
    # subclass comes before its base (KeyStoreError before CredentialError), and
    # OutcomeUnknownError before the classes its instances also belong to.
    ValueError: 2,
    KeyStoreError: 10,
    CredentialError: 3,
    OutcomeUnknownError: 8,
    AuthenticationError: 4,
    RateLimitError: 5,
    APIStatusError: 6,
    APIConnectionError: 7,
    InvalidResponseError: 9,
    NotifyError: 1,
}
"""The exit code of each error class; the first class in order that matches wins.

0 success, 1 any other error, 2 bad arguments, 3 no usable key (credentials), 4 key
rejected (401, even after a reload), 5 rate limited, 6 another HTTP error status,
7 connection failure or timeout, 8 outcome unknown (a send or a rotation may have taken
effect), 9 invalid response, 10 the key was rotated but could not be stored, 130
interrupted."""

EXIT_OTHER_ERROR = 1
EXIT_INTERRUPTED = 130

_KEY_VAR = "NOTIFY_API_KEY"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse has printed the usage error (or the help); hand back its status.
        return exit_.code if isinstance(exit_.code, int) else 2
    logger = logging.getLogger("notify_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("notify-async: %(levelname)s: %(message)s"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    try:
        result: int = asyncio.run(args.run(args))
    except KeyboardInterrupt:
        print("notify-async: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _report(exc, debug=args.debug)
    finally:
        # main() also runs in-process (tests, other tools): leave logging as it was.
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    return result


def _exit_code(error: BaseException) -> int:
    return next(
        (code for kind, code in EXIT_CODES.items() if isinstance(error, kind)), EXIT_OTHER_ERROR
    )


def _report(error: Exception, *, debug: bool) -> int:
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    if isinstance(error, NotifyError):
        message = error.message
    elif isinstance(error, (ValueError, OSError)):
        message = str(error) or type(error).__name__
    else:
        message = f"unexpected {type(error).__name__}: {error}"
        if not debug:
            message += " (run with --debug for the traceback)"
    # One line, whatever the server put in its message.
    print(f"notify-async: error: {' '.join(message.split())}", file=sys.stderr)
    return _exit_code(error)


# -- the parser ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    # --debug is accepted before or after the command; SUPPRESS keeps a subcommand's
    # default from overwriting a --debug given before it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log at DEBUG level and show tracebacks",
    )
    parser = argparse.ArgumentParser(
        prog="notify-async",
        description="Talk to the Notify email API, or run a local Notify server.",
        epilog="Exit codes: see the EXIT CODES section of the docs (docs/cli.md).",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level; tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="list or rotate API keys", parents=[debug])
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    listing = key_commands.add_parser(
        "list", help="list the account's keys (prefixes only)", parents=[debug]
    )
    _add_connection_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_keys_list)

    rotate = key_commands.add_parser(
        "rotate",
        help="rotate the key in use, store it in --key-file, verify it, print its prefix",
        description=(
            "Regenerate the key in --key-file, write the new key to that file atomically "
            "(mode 0600), verify it with one call, and print its prefix (never the key). "
            "The old key stops working at once; processes reading the same file pick up "
            "the new one on their next 401."
        ),
        parents=[debug],
    )
    rotate.add_argument(
        "--key-file",
        type=Path,
        required=True,
        help=(
            "the file holding the key to rotate, where the new key is written (required: "
            "a new key that is stored nowhere would be lost)"
        ),
    )
    _add_base_url_option(rotate)
    rotate.set_defaults(run=_keys_rotate)

    send = commands.add_parser("send", help="send an email", parents=[debug])
    _add_connection_options(send)
    send.add_argument("--to", required=True, help="the recipient's address")
    send.add_argument("--subject", required=True, help="the subject line")
    send.add_argument("--message", required=True, help="the body; - reads it from stdin")
    send.add_argument("--name", help="the sender's display name")
    send.set_defaults(run=_send)

    serve = commands.add_parser(
        "serve",
        help="run a local Notify server in the foreground, for development",
        description=(
            "Run the local Notify server (notify_async.testing) until Ctrl+C or SIGTERM. "
            "It prints NOTIFY_BASE_URL=... and NOTIFY_API_KEY=... on stdout once it listens."
        ),
        parents=[debug],
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8025, help="port to bind; 0 picks one (8025)")
    serve.add_argument("--keys", type=int, default=1, help="API keys of the account (1)")
    serve.add_argument("--key-file", type=Path, help="write the primary key here (mode 0600)")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="run the client against a local Notify server", parents=[debug]
    )
    demo.add_argument("--workers", type=int, default=4, help="worker tasks sending (4)")
    demo.add_argument("--rotations", type=int, default=3, help="key rotations (3)")
    demo.set_defaults(run=_demo)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        type=Path,
        help=f"read the API key from this file (default: the {_KEY_VAR} variable)",
    )
    _add_base_url_option(parser)


def _add_base_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="the API root (default: NOTIFY_BASE_URL or Notify's)")


def _provider(args: argparse.Namespace) -> CredentialProvider:
    if args.key_file is not None:
        return FileKeyProvider(args.key_file)
    if _KEY_VAR not in os.environ:
        # The library's message speaks to code (api_key=...); this one speaks to a shell.
        raise CredentialError(f"no API key: set {_KEY_VAR}, or pass --key-file PATH")
    return EnvKeyProvider(_KEY_VAR)


def _client(args: argparse.Namespace) -> NotifyClient:
    provider = _provider(args)
    if isinstance(provider, EnvKeyProvider):
        # This process's environment cannot change under it: waiting for a rotation to be
        # published there would only delay the error. A key file keeps the grace window.
        return NotifyClient(credentials=provider, base_url=args.base_url, rotation_grace=0)
    return NotifyClient(credentials=provider, base_url=args.base_url)


# -- commands -------------------------------------------------------------------------------


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
    table = [("ID", "NAME", "PREFIX", "ACTIVE", "CREATED (UTC)", "UPDATED (UTC)")]
    table += [
        (
            k.id,
            k.name,
            k.prefix,
            "yes" if k.active else "no",
            _utc(k.created_at),
            _utc(k.updated_at),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M}"


async def _keys_rotate(args: argparse.Namespace) -> int:
    path: Path = args.key_file
    provider = FileKeyProvider(path)
    before = await provider.load()
    # Check before rotating: a new key that cannot be written anywhere is lost, and the
    # old one is already dead by then.
    _check_writable(path)
    try:
        async with NotifyClient(credentials=provider, base_url=args.base_url) as client:
            try:
                result = await client.api_keys.rotate()
            except KeyStoreError as exc:
                # The library's advice ("publish the key in `result`") needs code; here the
                # key dies with this process, so point at where it can still be found.
                raise KeyStoreError(
                    f"the key was rotated to {redact(exc.result.api_key)}, but writing it to "
                    f"{str(path)!r} failed: the old key no longer works; copy the new key "
                    "from the Notify dashboard into that file",
                    result=exc.result,
                ) from exc
        # What the other processes will read: it must be the key that was just verified.
        if await provider.load() != result.api_key:
            raise CredentialError(
                f"the key was rotated, but {str(path)!r} no longer holds the new key "
                f"{redact(result.api_key)}; another process may have written it meanwhile"
            )
    except NotifyError:
        with contextlib.suppress(CredentialError):
            after = await provider.load()
            if after != before:
                print(
                    f"notify-async: note: {str(path)!r} now holds a new key ({redact(after)}); "
                    "the old one no longer works",
                    file=sys.stderr,
                )
        raise
    print(
        f"notify-async: rotated key {result.id}; the new key is stored in {str(path)!r} "
        "and verified",
        file=sys.stderr,
    )
    print(redact(result.api_key))
    return 0


def _check_writable(path: Path) -> None:
    """Prove that a file can be created beside ``path``, as ``FileKeyProvider.store`` will."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise CredentialError(
            f"cannot write in {str(path.parent)!r} ({exc.strerror}), so a new key could not "
            "be stored; nothing was rotated"
        ) from None
    os.close(fd)
    os.unlink(probe)


async def _send(args: argparse.Namespace) -> int:
    message = sys.stdin.read() if args.message == "-" else args.message
    async with _client(args) as client:
        result = await client.emails.send(
            to=args.to, subject=args.subject, message=message, name=args.name
        )
    print(result.message or "sent")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from .testing import LocalNotifyServer  # noqa: PLC0415 - only this command needs aiohttp.web

    if args.keys < 1:
        raise ValueError("--keys must be at least 1: the account always has a primary key")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM (a process manager, `kill`) stops cleanly with 0; Ctrl+C is an interrupt (130).
    # Windows has no add_signal_handler (NotImplementedError), and a thread other than the
    # main one may not set signal handlers (RuntimeError): main() may run in-process.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with LocalNotifyServer(
        keys=args.keys, host=args.host, port=args.port, key_file=args.key_file
    ) as server:
        print(f"NOTIFY_BASE_URL={server.base_url}")
        print(f"NOTIFY_API_KEY={server.api_key}")
        sys.stdout.flush()
        print(
            f"notify-async: serving a local Notify server at {server.base_url}; "
            "press Ctrl+C to stop",
            file=sys.stderr,
        )
        await stop.wait()
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


async def _rotation_storm(server: LocalNotifyServer, *, workers: int, rotations: int) -> None:
    """Workers with their own clients share a key file; one of them keeps rotating it."""
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
