"""The key a client holds in memory, and the one place it changes.

``KeyHolder`` owns the current key, its reloads from the provider, the keys it has moved
away from (to mask them in anything a server echoes), and the id of the key this client
uses, learned from listing the account's keys.
"""

from __future__ import annotations

__all__ = ["KeyHolder", "StaleKeyError"]

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from ._credentials import CredentialProvider, KeyChangeHook, KeyListener, check_key, redact
from ._exceptions import CredentialError

logger = logging.getLogger("notify_async")


class KeyHolder:
    """The client's key in memory, and the one place it changes.

    ``current`` is read on every request without awaiting anything. ``recover(rejected)``
    is called after a 401: if the key already moved on (someone reloaded, or this client
    rotated it), it returns the new key at once; otherwise every caller joins one reload.
    """

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        rotation_grace: float,
        on_key_change: KeyChangeHook | None,
    ) -> None:
        self.provider = provider
        self.rotation_grace = rotation_grace
        self.on_key_change = on_key_change
        self.current: str | None = None
        self.loads = 0
        self._initial_load: asyncio.Future[str] | None = None
        self._reload: asyncio.Future[str] | None = None
        self._reload_for: str | None = None
        self._changed = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        # Keys this client has moved away from; a push may lag behind its own rotation.
        self._retired: collections.deque[str] = collections.deque(maxlen=16)
        # (key, id) of the key this client uses, found by matching listed prefixes.
        self._own_key: tuple[str, str] | None = None

    async def get(self) -> str:
        """Return the key, loading it the first time (once, however many callers wait)."""
        if self.current is not None:
            return self.current
        if self._initial_load is None:
            self._initial_load = _start_shared(self._load())
        try:
            key = await asyncio.shield(self._initial_load)
        except BaseException:
            # Let a later call try again: the file may appear, the variable may be set.
            if self._initial_load is not None and self._initial_load.done():
                self._initial_load = None
            raise
        if self.current is None:
            self.current = key
        return self.current

    async def recover(self, rejected: str) -> str:
        """Return a key other than ``rejected``, reloading it once for all callers.

        Raises ``CredentialError`` when the provider fails, and ``StaleKeyError`` when it
        still returns the rejected key after ``rotation_grace`` seconds.
        """
        if self.current != rejected and self.current is not None:
            return self.current
        # Single flight: the first rejected request starts the reload, later ones join it.
        if self._reload is None or self._reload_for != rejected:
            self._reload_for = rejected
            self._reload = _start_shared(self._reload_until_changed(rejected))
            self._reload.add_done_callback(self._forget_reload)
        return await asyncio.shield(self._reload)

    def _forget_reload(self, done: asyncio.Future[str]) -> None:
        # The next rejection of the same key (a later, unpublished rotation) needs a fresh look.
        if self._reload is done:
            self._reload = None
            self._reload_for = None

    async def _reload_until_changed(self, rejected: str) -> str:
        deadline = time.monotonic() + self.rotation_grace
        # A worker that rotated stores the new key a few ms after the server switched, so
        # look again soon, then back off: 0.02, 0.1, 0.5, 2.5 s, five loads in a 3 s window.
        pause = 0.02
        while True:
            try:
                key: str | None = await self._load()
            except CredentialError:
                # A publisher that rewrites the file in place leaves it empty for a moment;
                # inside the grace window that is "not published yet", not a failure.
                if time.monotonic() >= deadline:
                    raise
                key = None
            # The key may have moved on while we loaded: our own regenerate landed.
            if self.current != rejected and self.current is not None:
                return self.current
            if key is not None and key != rejected:
                await self.replace(key, reason="reloaded from the provider after a 401")
                return key
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StaleKeyError
            # The rotation may not be published yet (a worker still writing the key file).
            # Wake early if this client adopts a key meanwhile (its own regenerate landing).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(pause, remaining))
            pause *= 5

    async def _load(self) -> str:
        self.loads += 1
        try:
            key = await self.provider.load()
        except CredentialError:
            raise
        except Exception as exc:
            raise CredentialError(
                f"{self.provider!r}.load() failed with {type(exc).__name__}; "
                "check the provider's configuration"
            ) from exc
        return check_key(key, source=repr(self.provider))

    def start_watching(self) -> None:
        """Run the provider's ``watch()`` in the background, if it has one."""
        watch = getattr(self.provider, "watch", None)
        if callable(watch) and self._watch_task is None:
            self._watch_task = asyncio.create_task(
                self._watch(watch), name="notify-async credential watch"
            )

    async def stop_watching(self) -> None:
        """Cancel the watch task and wait for it, so that none outlives the client."""
        task, self._watch_task = self._watch_task, None
        # Cancel until it ends: a library may swallow one cancellation (asyncio.wait_for
        # before Python 3.12 does, when the call it waits for completes at that moment).
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None and not task.cancelled():
            task.result()  # _watch logs exceptions; re-raise only a KeyboardInterrupt and such

    async def _watch(self, watch: Callable[[KeyListener], Awaitable[None]]) -> None:
        try:
            await watch(self._on_pushed_key)
        except Exception:
            logger.exception(
                "%r.watch() stopped; the client now picks up new keys on a 401 only",
                self.provider,
            )

    async def _on_pushed_key(self, key: str) -> None:
        key = check_key(key, source=f"{self.provider!r}.watch()")
        if key in self._retired:
            # Keys only move forward: a late push of an old key must not undo a rotation.
            return
        await self.replace(key, reason="pushed by the provider")

    def known_keys(self) -> list[str]:
        """The key in use and the recent ones it replaced: what to mask in server text."""
        keys = [] if self.current is None else [self.current]
        return keys + list(self._retired)

    def redact(self, text: str) -> str:
        """Replace every key this holder has held with its redacted prefix."""
        # Old keys too: a request sent before a rotation may come back quoting its key.
        for key in self.known_keys():
            if key in text:
                text = text.replace(key, redact(key))
        return text

    def redact_bytes(self, raw: bytes) -> bytes:
        """``redact`` for a raw body, before any snippet of it is cut (mid-key cuts escape)."""
        for key in self.known_keys():
            raw = raw.replace(key.encode(), redact(key).encode())
        return raw

    def adopt(self, key: str) -> None:
        """Hold ``key`` from the start (a key given in code, or read at construction)."""
        self.current = key

    def own_key_id(self) -> str | None:
        """The account id of the key in use, if a listing has shown it."""
        own = self._own_key
        if own is not None and own[0] == self.current:
            return own[1]
        return None

    def remember_own_key_id(self, key: str, key_id: str) -> None:
        """Record that ``key`` has the id ``key_id`` (learned from a listing or a rotation)."""
        self._own_key = (key, key_id)

    async def replace(self, key: str, *, reason: str) -> None:
        """Adopt ``key`` in memory at once, log it by prefix, and run the hook."""
        if key == self.current:
            return
        if self.current is not None:
            self._retired.append(self.current)
        self.current = key
        # Wake reloads that are polling for a key other than the one just replaced.
        self._changed.set()
        self._changed = asyncio.Event()
        prefix = redact(key)
        logger.info("Notify API key changed (%s); now using %s", reason, prefix)
        if self.on_key_change is not None:
            try:
                await self.on_key_change(prefix)
            except Exception:
                # A broken audit hook must not fail the request that carried the new key.
                logger.exception("on_key_change hook failed")


class StaleKeyError(Exception):
    """Internal: the provider kept returning the rejected key through the grace window."""


def _start_shared(coro: Awaitable[str]) -> asyncio.Future[str]:
    future = asyncio.ensure_future(coro)
    # Every waiter may have been cancelled; retrieving here keeps asyncio from warning about
    # an exception nobody read, while each waiter still gets it through shield().
    future.add_done_callback(_consume_exception)
    return future


def _consume_exception(future: asyncio.Future[str]) -> None:
    if not future.cancelled():
        future.exception()
