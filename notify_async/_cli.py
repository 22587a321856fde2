"""The ``notify-async`` command line (also ``python -m notify_async``).

Stdout carries data (a table, JSON, a key prefix); stderr carries messages. An error prints
one line, in the command line's own words (``check --key-file``, not a library class), and
exits with the code of its class (see ``EXIT_CODES``); ``--debug`` adds the traceback and
DEBUG logging. At a terminal, a call that makes you wait says what it is waiting for. The
key is read through the same providers as the library: ``--key-file PATH``, or the
``NOTIFY_API_KEY`` variable by default (``keys rotate`` also takes ``--redis-url``).
"""

from __future__ import annotations

__all__ = ["EXIT_CODES", "main"]

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import ssl
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import aiohttp

from ._client import DEFAULT_BASE_URL, NotifyClient
from ._credentials import CredentialProvider, EnvKeyProvider, FileKeyProvider, redact
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    CredentialError,
    InvalidResponseError,
    KeyStoreError,
    NotFoundError,
    NotifyError,
    OutcomeUnknownError,
    RateLimitError,
)
from ._version import __version__

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
_API_ROOT = "/api/public/v1"

# The exit-code table of --help: the wheel carries no docs, so the help must say it all.
_EXIT_MEANINGS = (
    (0, "success"),
    (1, "any other error (a port in use for serve, a failed demo, something unexpected)"),
    (2, "bad arguments: a usage error, a recipient that is not one address"),
    (3, "no usable key: NOTIFY_API_KEY unset, the key file missing or empty"),
    (4, "the key was rejected (401), even after a reload"),
    (5, "rate limited for longer than the client waits by itself"),
    (6, "another error status (400, 403, 404, a 5xx on a list)"),
    (7, "Notify unreachable, or a timeout, after the retries"),
    (8, "outcome unknown: a send or a rotation may have taken effect; check first"),
    (9, "an answer that is not what the API promises (a proxy's HTML page)"),
    (10, "keys rotate: rotated, but the new key could not be stored"),
    (130, "interrupted (Ctrl+C)"),
)
_EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in _EXIT_MEANINGS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        args = _parse(parser, sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:
        # argparse has printed the usage error (or the help); hand back its status.
        return exit_.code if isinstance(exit_.code, int) else 2
    debug = getattr(args, "debug", False)
    progress = _Progress(
        sys.stderr,
        # Only the commands that call Notify wait for it; serve and demo do not.
        enabled=sys.stderr.isatty() and hasattr(args, "timeout"),
        max_attempts=getattr(args, "max_retries", 2) + 1,
        timeout=getattr(args, "timeout", 30.0),
    )
    logger = logging.getLogger("notify_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("notify-async: %(levelname)s: %(message)s"))
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    if progress.enabled and not debug:
        # At a terminal the progress lines say it in the command line's words.
        handler.addFilter(lambda record: not hasattr(record, "notify_event"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.addHandler(progress)
    # INFO reaches the progress lines whatever level the client tags its events with; the
    # stream handler above still prints only warnings, unless --debug.
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        result: int = asyncio.run(_run(args, progress))
    except KeyboardInterrupt:
        print("notify-async: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _report(exc, args)
    finally:
        # main() also runs in-process (tests, other tools): leave logging as it was.
        logger.removeHandler(handler)
        logger.removeHandler(progress)
        logger.setLevel(previous_level)
    return result


async def _run(args: argparse.Namespace, progress: _Progress) -> int:
    progress.start()
    try:
        result: int = await args.run(args)
    finally:
        progress.stop()
    return result


def _exit_code(error: BaseException) -> int:
    return next(
        (code for kind, code in EXIT_CODES.items() if isinstance(error, kind)), EXIT_OTHER_ERROR
    )


def _report(error: Exception, args: argparse.Namespace) -> int:
    debug = getattr(args, "debug", False)
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    if isinstance(error, NotifyError):
        message = _cli_message(error, args)
    elif isinstance(error, (ValueError, OSError)):
        message = str(error) or type(error).__name__
    else:
        message = f"unexpected {type(error).__name__}: {error}"
        if not debug:
            message += " (run with --debug for the traceback)"
    # One line, whatever the server put in its message.
    print(f"notify-async: error: {' '.join(message.split())}", file=sys.stderr)
    return _exit_code(error)


# -- the command line's own words --------------------------------------------------------


def _cli_message(error: NotifyError, args: argparse.Namespace) -> str:
    """The error's message, with the advice a shell user can act on instead of the library's."""
    if isinstance(error, AuthenticationError):
        message = (
            f"{error.method} {error.path} failed with HTTP 401: {error.server_message} "
            f"(the key in {_key_source(args)} was rejected; {_key_advice(args)})"
        )
    elif isinstance(error, NotFoundError):
        message = (
            f"{error.method} {error.path} failed with HTTP 404: {error.server_message} "
            f"(check --base-url (it should end in {_API_ROOT}); it was {_base_url(args)!r})"
        )
    elif isinstance(error, APIConnectionError) and isinstance(
        error.__cause__, aiohttp.ClientConnectorCertificateError
    ):
        where = error.message.split(": ", 1)[0]
        message = (
            f"{where}: could not verify the server's TLS certificate "
            f"({error.__cause__.certificate_error}); if a private CA signed it, pass "
            "--cacert FILE with that CA's certificate"
        )
    else:
        message = error.message
    if _waited(error) and error.attempts:
        attempts = f"{error.attempts} attempt{'s' if error.attempts != 1 else ''}"
        message += (
            f" ({attempts}, each allowed {getattr(args, 'timeout', 30.0):g} s; "
            "see --timeout and --max-retries)"
        )
    return message


def _waited(error: NotifyError) -> bool:
    """Whether the error came from waiting on the network, where time and attempts matter."""
    cause = error.__cause__ if isinstance(error, OutcomeUnknownError) else error
    return isinstance(cause, APIConnectionError)


def _key_source(args: argparse.Namespace) -> str:
    if getattr(args, "redis_url", None) is not None:
        return f"Redis ({args.redis_key} at {_redis_display(args)})"
    if getattr(args, "key_file", None) is not None:
        return repr(str(args.key_file))
    return _KEY_VAR


def _key_advice(args: argparse.Namespace) -> str:
    if getattr(args, "redis_url", None) is not None:
        return "store the current key there, or check --redis-url and --redis-key"
    if getattr(args, "key_file", None) is not None:
        return "put the current key in that file, or check --key-file"
    return f"export the current key in {_KEY_VAR}, or pass --key-file PATH"


def _redis_display(args: argparse.Namespace) -> str:
    from .contrib.redis import RedisKeyProvider  # noqa: PLC0415 - redis is optional

    # The provider's url hides a password.
    return RedisKeyProvider(args.redis_url).url


def _base_url(args: argparse.Namespace) -> str:
    return getattr(args, "base_url", None) or os.environ.get("NOTIFY_BASE_URL") or DEFAULT_BASE_URL


# -- feedback while waiting ----------------------------------------------------------------


class _Progress(logging.Handler):
    """Tells a person at a terminal what a slow call is waiting for, on stderr.

    The client tags its log records with ``notify_event`` (``retry``: ``attempt``,
    ``max_attempts``, ``delay``; ``key_rejected_wait``: ``grace``). After about a second
    with no answer and no such event, it says which attempt is waiting and how long that
    attempt may take. Off unless stderr is a terminal, so logs and pipes stay as they were.
    """

    #: Seconds without news before saying that we are waiting.
    patience = 1.0

    def __init__(self, stream: TextIO, *, enabled: bool, max_attempts: int, timeout: float) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.enabled = enabled
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.attempt = 1
        self._told_attempt = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the clock, on the running loop."""
        if self.enabled:
            self._loop = asyncio.get_running_loop()
            self._wait_again(self.patience)

    def stop(self) -> None:
        """Stop the clock: the command is done."""
        if self._timer is not None:
            self._timer.cancel()
        self._loop = self._timer = None

    def emit(self, record: logging.LogRecord) -> None:
        """Turn a tagged record of the client into a line for the person waiting."""
        event = getattr(record, "notify_event", None)
        if not self.enabled or event is None:
            return
        if event == "retry":
            self.attempt = int(getattr(record, "attempt", self.attempt)) + 1
            self.max_attempts = int(getattr(record, "max_attempts", self.max_attempts))
            delay = float(getattr(record, "delay", 0.0))
            self._say(f"retrying in {delay:.1f} s…")
            self._wait_again(delay + self.patience)
        elif event == "key_rejected_wait":
            grace = float(getattr(record, "grace", 0.0))
            self._say(f"key rejected; waiting up to {grace:g} s for a rotated key…")
            self._wait_again(grace + self.patience)

    def _wait_again(self, seconds: float) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            on_the_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_the_loop = False
        if not on_the_loop:
            # A record logged from a worker thread: timers belong to the loop's thread.
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(self._wait_again, seconds)
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(seconds, self._waiting)

    def _waiting(self) -> None:
        self._timer = None
        if self._told_attempt == self.attempt:
            return
        self._told_attempt = self.attempt
        self._say(
            f"waiting for Notify (attempt {self.attempt} of {self.max_attempts}, "
            f"{self.timeout:g} s timeout)…"
        )

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"notify-async: {text}", file=self.stream, flush=True)


# -- the parser ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help keeps the epilog's table as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse would report a subcommand's unknown flag with the top-level usage; the
        # subcommand's own usage is the one that helps.
        command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _parser() -> argparse.ArgumentParser:
    # --debug is accepted before or after the command; SUPPRESS keeps a subcommand's
    # default from overwriting a --debug given before it.
    debug = _Parser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log at DEBUG level and show tracebacks",
    )
    parser = _Parser(
        prog="notify-async",
        description="Talk to the Notify email API, or run a local Notify server.",
        epilog=_EPILOG,
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level; tracebacks")
    parser.add_argument("--version", action="version", version=f"notify-async {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    see_exit_codes = "exit codes: see notify-async --help"

    def command(
        group: argparse._SubParsersAction[_Parser], name: str, summary: str, *, details: str = ""
    ) -> _Parser:
        sub = group.add_parser(
            name,
            help=summary,
            # The raw formatter keeps the epilog's table; the description is wrapped here.
            description=textwrap.fill(
                f"{summary[0].upper()}{summary[1:]}." + (f" {details}" if details else ""), 78
            ),
            epilog=see_exit_codes,
            parents=[debug],
        )
        sub.set_defaults(command_parser=sub)
        return sub

    keys = command(commands, "keys", "list or rotate the account's API keys")
    key_commands = keys.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    listing = command(key_commands, "list", "list the account's keys (prefixes only)")
    _add_key_file_option(listing)
    _add_connection_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_keys_list)

    rotate = command(
        key_commands,
        "rotate",
        "rotate the key in use, store it, verify it, print its prefix",
        details=(
            "Regenerate the key held in --key-file (or in Redis), store the new key there "
            "(a file is written atomically, mode 0600), verify it with one call, and print "
            "its prefix (never the key). The old key stops working at once; processes "
            "reading the same file pick up the new one on their next 401, and clients of "
            "the same Redis key get it pushed."
        ),
    )
    where = rotate.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help=(
            "the file holding the key to rotate, where the new key is written (a new key "
            "stored nowhere would be lost, so --key-file or --redis-url is required)"
        ),
    )
    where.add_argument(
        "--redis-url",
        metavar="URL",
        help="rotate the key a fleet shares in Redis (RedisKeyProvider), e.g. redis://host/0",
    )
    rotate.add_argument(
        "--redis-key",
        default="notify:api_key",
        metavar="NAME",
        help="the Redis hash holding the key, with --redis-url (notify:api_key)",
    )
    _add_connection_options(rotate)
    rotate.set_defaults(run=_keys_rotate)

    send = command(commands, "send", "send an email to one recipient")
    _add_key_file_option(send)
    _add_connection_options(send)
    send.add_argument("--to", required=True, help="the recipient: one address, name@example.com")
    send.add_argument("--subject", required=True, help="the subject line")
    send.add_argument("--message", required=True, help="the body; - reads it from stdin")
    send.add_argument("--name", help="the sender's display name")
    send.set_defaults(run=_send)

    serve = command(
        commands,
        "serve",
        "run a local Notify server in the foreground, for development",
        details=(
            "It serves until Ctrl+C or SIGTERM, and prints NOTIFY_BASE_URL=... and "
            "NOTIFY_API_KEY=... on stdout once it listens."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8025, help="port to bind, 0 to 65535; 0 picks one (8025)"
    )
    serve.add_argument("--keys", type=_at_least_one, default=1, help="API keys of the account (1)")
    serve.add_argument(
        "--key-file", type=Path, metavar="PATH", help="write the primary key here (mode 0600)"
    )
    serve.set_defaults(run=_serve)

    demo = command(
        commands,
        "demo",
        "show two workers rotating a shared key at once while they send",
        details="Against a local Notify server; it exits 1 if any send failed.",
    )
    demo.set_defaults(run=_demo)
    return parser


def _add_key_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help=f"read the API key from this file (default: the {_KEY_VAR} variable)",
    )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API root, ending in {_API_ROOT} (default: NOTIFY_BASE_URL or Notify's)",
    )
    parser.add_argument(
        "--cacert",
        type=Path,
        metavar="FILE",
        help="trust the CA certificates in this PEM file (a private CA), besides the system's",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long one attempt may take (30)",
    )
    parser.add_argument(
        "--max-retries",
        type=_retries,
        default=2,
        metavar="N",
        help="retries after the first attempt, where retrying is safe (2; 0 disables them)",
    )


def _port(text: str) -> int:
    port = _integer(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def _at_least_one(text: str) -> int:
    number = _integer(text)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1: the account always has a key")
    return number


def _retries(text: str) -> int:
    number = _integer(text)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return seconds


# -- building the client -------------------------------------------------------------------


def _provider(args: argparse.Namespace) -> CredentialProvider:
    if getattr(args, "redis_url", None) is not None:
        try:
            from .contrib.redis import RedisKeyProvider  # noqa: PLC0415 - redis is optional
        except ImportError:
            raise ValueError(
                "--redis-url needs redis-py: pip install 'notify-async[redis]'"
            ) from None
        return RedisKeyProvider(args.redis_url, redis_key=args.redis_key)
    if args.key_file is not None:
        path: Path = args.key_file
        # Said here in the command line's words, before the provider says it in its own.
        if not path.exists():
            raise CredentialError(f"the key file {str(path)!r} does not exist; check --key-file")
        if path.is_dir():
            raise CredentialError(f"{str(path)!r} is a folder, not a key file; check --key-file")
        return FileKeyProvider(path)
    if _KEY_VAR not in os.environ:
        # The library's message speaks to code (api_key=...); this one speaks to a shell.
        raise CredentialError(f"no API key: set {_KEY_VAR}, or pass --key-file PATH")
    return EnvKeyProvider(_KEY_VAR)


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.cacert is None:
        return None
    # The system's trust store as usual, and this CA besides (create_default_context with
    # cafile= would trust this file alone).
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(args.cacert))
    except FileNotFoundError:
        raise ValueError(f"--cacert: {str(args.cacert)!r} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"--cacert: {str(args.cacert)!r} holds no usable PEM certificate ({exc})"
        ) from None
    return context


def _client(args: argparse.Namespace, provider: CredentialProvider) -> NotifyClient:
    client = functools.partial(
        NotifyClient,
        credentials=provider,
        base_url=args.base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
        ssl=_tls(args),
    )
    if isinstance(provider, EnvKeyProvider):
        # This process's environment cannot change under it: waiting for a rotation to be
        # published there would only delay the error. A file or Redis keeps the grace window.
        return client(rotation_grace=0)
    return client()


# -- commands -------------------------------------------------------------------------------


async def _keys_list(args: argparse.Namespace) -> int:
    async with _client(args, _provider(args)) as client:
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
    provider = _provider(args)
    where = _key_source(args)
    before = await provider.load()
    if args.key_file is not None:
        # Check before rotating: a new key that cannot be written anywhere is lost, and
        # the old one is already dead by then.
        _check_writable(args.key_file)
    try:
        async with _client(args, provider) as client:
            try:
                result = await client.api_keys.rotate()
            except KeyStoreError as exc:
                # The library's advice ("publish the key in `result`") needs code; here the
                # key dies with this process, so point at where it can still be found.
                raise KeyStoreError(
                    f"the key was rotated to {redact(exc.result.api_key)}, but storing it in "
                    f"{where} failed: the old key no longer works; copy the new key from the "
                    "Notify dashboard there",
                    result=exc.result,
                ) from exc
        # What the other processes will read: it must be the key that was just verified.
        if await provider.load() != result.api_key:
            raise CredentialError(
                f"the key was rotated, but {where} no longer holds the new key "
                f"{redact(result.api_key)}; another process may have written it meanwhile"
            )
    except NotifyError:
        with contextlib.suppress(CredentialError):
            after = await provider.load()
            if after != before:
                print(
                    f"notify-async: note: {where} now holds a new key ({redact(after)}); "
                    "the old one no longer works",
                    file=sys.stderr,
                )
        raise
    print(
        f"notify-async: rotated key {result.id}; the new key is stored in {where} and verified",
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
    async with _client(args, _provider(args)) as client:
        result = await client.emails.send(
            to=args.to, subject=args.subject, message=message, name=args.name
        )
    print(result.message or "sent")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    # Only this command needs aiohttp.web.
    from .testing import LocalNotifyServer  # noqa: PLC0415
    from .testing._foreground import serve_until_stopped  # noqa: PLC0415

    def announce(server: LocalNotifyServer) -> None:
        print(f"NOTIFY_BASE_URL={server.base_url}")
        print(f"NOTIFY_API_KEY={server.api_key}")
        sys.stdout.flush()
        print(
            f"notify-async: serving a local Notify server at {server.base_url}; "
            "press Ctrl+C to stop",
            file=sys.stderr,
        )

    # SIGTERM (a process manager, `kill`) stops cleanly with 0; Ctrl+C is an interrupt (130).
    server = LocalNotifyServer(
        keys=args.keys, host=args.host, port=args.port, key_file=args.key_file
    )
    await serve_until_stopped(server, announce)
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from .testing import LocalNotifyServer  # noqa: PLC0415 - only this command needs aiohttp.web

    async with LocalNotifyServer() as server:
        print(f"A local Notify server at {server.base_url}.")
        with tempfile.TemporaryDirectory() as folder:
            key_file = Path(folder) / "notify.key"
            await FileKeyProvider(key_file).store(server.api_key)
            print(
                "Two workers, each with its own NotifyClient, read the key from one file.\n"
                "Both call client.api_keys.rotate() at the same instant while they send."
            )
            report = await _rotate_together(server, key_file)
    print(report.summary())
    if report.failures:
        raise NotifyError(f"the demo saw {len(report.failures)} failure(s); see above")
    print("Done: no send failed, and the workers agree on the key in the file.")
    return 0


class _DemoReport:
    def __init__(self) -> None:
        self.issued = 0
        self.accepted = 0
        # Failed sends and rotations, and a key file left behind the server's key.
        self.failures: list[str] = []
        self.rotations: list[str] = []
        self.regenerates = 0
        self.answered_401s = 0
        self.seconds = 0.0

    @property
    def failed_sends(self) -> int:
        return sum(1 for failure in self.failures if failure.startswith("send: "))

    def summary(self) -> str:
        lines = [f"  rotate() in worker {n}: {outcome}" for n, outcome in enumerate(self.rotations)]
        lines += [
            f"  sends accepted:   {self.accepted} (issued {self.issued}) in {self.seconds:.1f} s",
            f"  sends failed:     {self.failed_sends}",
            f"  regenerates seen by the server: {self.regenerates}",
            f"  401s the server answered: {self.answered_401s}",
        ]
        lines += [f"  failed: {failure}" for failure in self.failures[:5]]
        return "\n".join(lines)


async def _rotate_together(server: LocalNotifyServer, key_file: Path) -> _DemoReport:
    report = _DemoReport()
    clients = [
        NotifyClient(credentials=FileKeyProvider(key_file), base_url=server.base_url)
        for _ in range(2)
    ]
    go, stop = asyncio.Event(), asyncio.Event()

    async def send_until_stopped(number: int, client: NotifyClient) -> None:
        while not stop.is_set():
            report.issued += 1
            try:
                await client.emails.send(
                    to=f"user{report.issued}@example.com",
                    subject="tick",
                    message=f"worker {number}",
                )
            except NotifyError as exc:
                report.failures.append(f"send: {exc.message}")

    async def rotate(client: NotifyClient) -> str:
        await go.wait()  # both workers leave this line in the same turn of the loop
        try:
            result = await client.api_keys.rotate()
        except NotifyError as exc:
            report.failures.append(f"rotate(): {exc.message}")
            return f"failed: {exc.message}"
        return f"now {redact(result.api_key)}"

    started = time.perf_counter()
    try:
        senders = [asyncio.create_task(send_until_stopped(n, c)) for n, c in enumerate(clients)]
        rotations = asyncio.gather(*(rotate(client) for client in clients))
        await asyncio.sleep(0.2)  # both workers are sending
        go.set()
        report.rotations = await rotations
        await asyncio.sleep(0.2)  # and they keep sending with the new key
        stop.set()
        await asyncio.gather(*senders)
    finally:
        for client in clients:
            await client.close()
    report.seconds = time.perf_counter() - started
    report.accepted = len(server.emails)
    report.regenerates = server.request_counts["POST /api_keys/regenerate"]
    report.answered_401s = server.auth_failures
    if (await FileKeyProvider(key_file).load()) != server.api_key:
        report.failures.append("the key file does not hold the server's current key")
    return report
