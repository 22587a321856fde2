"""Run a ``LocalNotifyServer`` in the foreground until SIGTERM or SIGINT.

``python -m notify_async.testing [--host H] [--port P] [--keys N] [--key-file PATH]``

Once it listens, it prints one JSON line to stdout and flushes it, so a parent process can
wait for exactly that line::

    {"base_url": "http://127.0.0.1:PORT/api/public/v1", "api_key": "nk_...",
     "control_url": "http://127.0.0.1:PORT/_control"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from notify_async.testing._foreground import serve_until_stopped
from notify_async.testing._server import LocalNotifyServer


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m notify_async.testing",
        description="Run a local Notify API server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free one)")
    parser.add_argument("--keys", type=int, default=1, help="API keys of the account (1)")
    parser.add_argument(
        "--key-file",
        help="write the primary key here (mode 0600), again after each operator rotation",
    )
    args = parser.parse_args(argv)
    if args.keys < 1:
        parser.error("--keys must be at least 1: the account always has a primary key")
    return args


async def _serve(args: argparse.Namespace) -> None:
    def announce(server: LocalNotifyServer) -> None:
        ready = {
            "base_url": server.base_url,
            "api_key": server.api_key,
            "control_url": server.control_url,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()

    server = LocalNotifyServer(
        keys=args.keys, host=args.host, port=args.port, key_file=args.key_file
    )
    # Either signal is a normal stop here: a parent process ends its server with one.
    await serve_until_stopped(server, announce, stop_on=(signal.SIGTERM, signal.SIGINT))


def main(argv: list[str] | None = None) -> int:
    """Serve until told to stop; return the exit status (0 on a signal)."""
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
