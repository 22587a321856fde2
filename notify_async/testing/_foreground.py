"""Serve a ``LocalNotifyServer`` in the foreground until a signal says stop.

Shared by ``notify-async serve`` and ``python -m notify_async.testing``: both bind, announce
where they listen, and serve until SIGTERM (and, for the latter, SIGINT) ends the wait.
"""

from __future__ import annotations

__all__ = ["serve_until_stopped"]

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable

from notify_async.testing._server import LocalNotifyServer


async def serve_until_stopped(
    server: LocalNotifyServer,
    announce: Callable[[LocalNotifyServer], None],
    *,
    stop_on: Iterable[signal.Signals] = (signal.SIGTERM,),
) -> None:
    """Start ``server``, call ``announce(server)`` once it listens, and serve until a signal.

    Each signal in ``stop_on`` ends the wait and closes the server; any other signal keeps
    its usual meaning (SIGINT still raises KeyboardInterrupt, unless it is listed).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in stop_on:
        # Windows has no add_signal_handler (NotImplementedError), and a thread other than
        # the main one may not set signal handlers (RuntimeError): the CLI may run in-process.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    try:
        async with server:
            announce(server)
            await stop.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
