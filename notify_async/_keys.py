"""The key a client holds in memory, and the one place it changes.

``KeyHolder`` is a small state machine over key *generations*:

* **in use**: ``current``, read by every request without awaiting anything. Each key the
  holder adopts gets the next generation number.
* **rejected**: a 401 marks the key that was sent as rejected (a small, bounded set).
  A rejected call replays as soon as the holder has a key that is not known to be
  rejected: one adopted meanwhile (a reload, a push, this client's own rotation), or one
  found by the single shared reload that the first rejection starts.
* **replaced**: every key the holder moved away from is remembered for a while, so that
  anything a server echoes is masked, and a late push of an old key never undoes a
  rotation.

Reloads are single flight: however many requests are rejected together, the provider's
``load()`` runs once at a time, bounded by ``load_timeout``. While the provider still
offers only rejected keys (a rotation not published yet), the reload polls it through
``rotation_grace``: after 20 ms, then backing off to at most one second between looks.

Rotations are single flight too, and compare-and-rotate across processes when the
provider offers a lease (see ``KeyHolder.rotate``). A key change is, in order: adopted in
memory; ``store()``d (shielded from the caller's cancellation); then announced to the
``on_key_change`` hook in the background, with a time limit, off every request's path.
"""

from __future__ import annotations

__all__ = ["KeyHolder", "StaleKeyError"]

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._credentials import (
    CredentialProvider,
    KeyChangeHook,
    KeyListener,
    LeasingCredentialProvider,
    can_store,
    check_key,
    redact,
)
from ._errors import Mask
from ._exceptions import AuthenticationError, CredentialError, KeyStoreError, NotifyError
from ._models import RegeneratedApiKey

logger = logging.getLogger("notify_async")

T = TypeVar("T")

# How often one call may replay after a 401: each replay uses a newer key than the last,
# so a handful covers rotations that overlap while the call is in flight.
MAX_KEY_REPLAYS = 5
# Grace polling starts fast (a rotator stores its key milliseconds after the regenerate)
# and backs off, but never waits longer than this between two looks.
_FIRST_POLL = 0.02
_MAX_POLL = 1.0
# Remembered rejected and replaced keys: enough for rotations that overlap, bounded.
_REMEMBERED = 32
# How long a lease may take to come when another process is rotating.
LEASE_WAIT = 60.0
# How long close() lets a rotation in flight finish (its store above all).
CLOSE_WAIT = 30.0
_ADOPTED = "Another holder of the key rotated it first; this is its new key."


class StaleKeyError(Exception):
    """Internal: the provider offered only rejected keys for the whole grace window."""


class KeyHolder:
    """The client's key in memory: loads, rejections, reloads, rotations, and masking.

    Shared by a client and its ``with_options`` views.

    Args:
        provider: where keys are loaded from (and stored to, when it can store).
        rotation_grace: seconds to keep polling a provider that offers only rejected keys.
        on_key_change: told the redacted prefix of each new key, in the background.
        load_timeout: seconds one ``load()`` may take before it fails.
        hook_timeout: seconds ``on_key_change`` may take before it is cancelled.
    """

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        rotation_grace: float,
        on_key_change: KeyChangeHook | None,
        load_timeout: float = 5.0,
        hook_timeout: float = 10.0,
    ) -> None:
        self.provider = provider
        self.rotation_grace = rotation_grace
        self.on_key_change = on_key_change
        self.load_timeout = load_timeout
        self.hook_timeout = hook_timeout
        self.current: str | None = None
        self.generation = 0
        self.loads = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rejected: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Keys this holder has moved away from: masked in server text, refused from a push.
        self._retired: collections.deque[str] = collections.deque(maxlen=_REMEMBERED)
        # (key, id) of the key this client uses, found by matching listed prefixes.
        self._own_key: tuple[str, str] | None = None
        self._load_flight: asyncio.Future[str] | None = None
        self._recovery: asyncio.Future[str] | None = None
        self._rotation: asyncio.Future[RegeneratedApiKey] | None = None
        # Set while this holder's own regenerate is on the wire: a request rejected
        # meanwhile waits for its answer instead of replaying with a key being invalidated.
        self._regeneration: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()
        # Own regenerates and their stores, which close() lets finish.
        self._background: set[asyncio.Future[RegeneratedApiKey]] = set()

    # -- the key in use -------------------------------------------------------------------

    async def get(self) -> str:
        """Return the key, loading it the first time (once, however many callers wait)."""
        if self.current is not None:
            return self.current
        key = await self._load_once()
        if self.current is None:
            self.adopt(key)
        return self.current or key

    def adopt(self, key: str) -> None:
        """Hold ``key`` from the start (a key given in code, or read at construction)."""
        self.current = key
        self.generation += 1

    # -- after a 401 ----------------------------------------------------------------------

    async def recover(self, rejected: str, *, deadline: float) -> str:
        """Mark ``rejected`` and return a key not known to be rejected, to replay with.

        Returns at once when a newer key is already in use. While this holder's own
        regenerate is on the wire, waits for its answer. Otherwise joins the one shared
        reload, which polls the provider through ``rotation_grace``.

        Raises:
            StaleKeyError: the provider offered only rejected keys for the whole grace
                window, or ``deadline`` (``time.monotonic()``) passed.
            CredentialError: the provider failed (unreachable, timed out, misconfigured).
        """
        self._reject(rejected)
        while True:
            regeneration = self._regeneration
            if regeneration is not None:
                await _until(asyncio.shield(regeneration), deadline)
                continue
            current = self.current
            if current is not None and current not in self._rejected:
                return current
            recovery = self._recovery
            if recovery is None:
                recovery = self._recovery = _start_shared(self._poll_for_fresh_key())
                recovery.add_done_callback(self._forget_recovery)
            await _until(asyncio.shield(recovery), deadline)

    def _reject(self, key: str) -> None:
        if key in self._rejected:
            return
        self._rejected[key] = None
        if len(self._rejected) > _REMEMBERED:
            self._rejected.popitem(last=False)
        logger.info(
            "Notify API key %s was rejected (401)%s",
            redact(key),
            "; looking for a newer one" if key == self.current else "",
            extra={"notify_event": "key_rejected_wait", "grace": self.rotation_grace},
        )

    def _forget_recovery(self, done: asyncio.Future[str]) -> None:
        # The next rejection (a later rotation) needs a fresh look.
        if self._recovery is done:
            self._recovery = None

    async def _poll_for_fresh_key(self) -> str:
        deadline = time.monotonic() + self.rotation_grace
        pause = _FIRST_POLL
        while True:
            try:
                key: str | None = await self._load_once()
            except CredentialError as exc:
                # A publisher that rewrites the file in place leaves it empty for a moment;
                # inside the grace window that is "not published yet", not a failure. An
                # unreachable source is a failure at once: polling it would only add delay.
                if not exc.pending or time.monotonic() >= deadline:
                    raise
                key = None
            if key is not None and key not in self._rejected and key not in self._retired:
                self._switch(key, reason="reloaded from the provider after a 401")
                return key
            current = self.current
            if current is not None and current not in self._rejected:
                return current  # pushed, or this client's own rotation landed, meanwhile
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StaleKeyError
            # Wake early if this holder adopts a key meanwhile (a push, its own rotation).
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(pause, remaining))
            pause = min(pause * 5, _MAX_POLL)

    # -- loading --------------------------------------------------------------------------

    async def _load_once(self) -> str:
        """Join the ``load()`` in flight, or start one; every waiter gets its outcome."""
        self._check_loop()
        flight = self._load_flight
        if flight is None:
            flight = self._load_flight = _start_shared(self._load())
            flight.add_done_callback(self._forget_load)
        return await asyncio.shield(flight)

    def _forget_load(self, done: asyncio.Future[str]) -> None:
        if self._load_flight is done:
            self._load_flight = None

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            # A future of another loop would fail with "attached to a different loop".
            raise NotifyError(
                "this NotifyClient was opened on another event loop; create one client per "
                "event loop (for example inside the coroutine you pass to asyncio.run)"
            )

    async def _load(self) -> str:
        self.loads += 1
        provider = self.provider
        # load() runs in a task of its own, so that a CancelledError it raises stays
        # with it, and so that it can be abandoned when it overruns load_timeout.
        loading = asyncio.ensure_future(provider.load())
        # An abandoned load may still fail while it is cancelled; nobody waits for it then.
        loading.add_done_callback(_consume_exception)
        try:
            done, _ = await asyncio.wait({loading}, timeout=self.load_timeout)
        finally:
            if not loading.done():
                loading.cancel()
        if not done:
            raise CredentialError(
                f"{provider!r}.load() did not answer within {self.load_timeout:g}s "
                "(load_timeout); check that the secret store is reachable, or raise "
                "load_timeout"
            )
        if loading.cancelled():
            raise CredentialError(
                f"{provider!r}.load() was cancelled from inside (it raised CancelledError); "
                "a provider should raise CredentialError when it has no key"
            )
        failure = loading.exception()
        if isinstance(failure, CredentialError):
            raise failure
        if isinstance(failure, Exception):
            # Named by type only, and not chained: a secret store's error may quote a key
            # this client has never held, which no mask could know to hide.
            raise CredentialError(
                f"{provider!r}.load() failed with {type(failure).__name__}; check the "
                "provider's configuration (call its load() yourself to see its message)"
            )
        if failure is not None:
            raise failure  # KeyboardInterrupt and such are not ours to translate
        return check_key(loading.result(), source=repr(provider))

    # -- rotation -------------------------------------------------------------------------

    async def rotate(
        self,
        own_key_id: Callable[[], Awaitable[str]],
        regenerate: Callable[[str], Awaitable[RegeneratedApiKey]],
    ) -> RegeneratedApiKey:
        """Rotate the key in use: one regenerate, however many callers ask at once.

        Concurrent calls (from this client and its views) join one rotation. With a
        ``LeasingCredentialProvider`` the rotation holds the provider's lease and reloads
        under it first: if the stored key is no longer the one this rotation was asked to
        replace, another holder has rotated, and its key is adopted and returned without
        a second regenerate. ``regenerate`` must go through ``regenerating()``.
        """
        rotation = self._rotation
        if rotation is None:
            # Registered before any await, so that every concurrent caller joins it.
            rotation = self._rotation = _start_shared(self._rotate(own_key_id, regenerate))
            rotation.add_done_callback(self._forget_rotation)
        try:
            return await asyncio.shield(rotation)
        except asyncio.CancelledError:
            # The rotation goes on; if it then fails (a store that fails), say so in the log.
            rotation.add_done_callback(_log_unobserved_failure)
            raise

    def _forget_rotation(self, done: asyncio.Future[RegeneratedApiKey]) -> None:
        if self._rotation is done:
            self._rotation = None

    async def _rotate(
        self,
        own_key_id: Callable[[], Awaitable[str]],
        regenerate: Callable[[str], Awaitable[RegeneratedApiKey]],
    ) -> RegeneratedApiKey:
        expected = await self.get()
        provider = self.provider
        if not isinstance(provider, LeasingCredentialProvider):
            return await regenerate(await own_key_id())
        async with provider.rotation_lease(timeout=LEASE_WAIT):
            rotated_by_another = await self._rotated_elsewhere(expected, own_key_id)
            if rotated_by_another is not None:
                return rotated_by_another
            # Still under the lease: the store inside regenerate() lands before release.
            return await regenerate(await own_key_id())

    async def _rotated_elsewhere(
        self, expected: str, own_key_id: Callable[[], Awaitable[str]]
    ) -> RegeneratedApiKey | None:
        try:
            # A load of its own, started under the lease: one already in flight may have
            # read the store before the previous holder of the lease published.
            stored = await self._load()
        except CredentialError as exc:
            if not exc.pending:
                raise
            return None
        current = self.current
        if current is not None and current != expected and current not in self._rejected:
            stored = current  # adopted meanwhile, e.g. reloaded after a 401
        if stored == expected or stored in self._rejected or stored in self._retired:
            return None  # nobody rotated (or the store lags behind this holder)
        key_id = self.own_key_id_for(expected)
        self._switch(stored, reason="rotated by another holder of the key")
        if key_id is None:
            key_id = await own_key_id()  # a listing with the new key tells its id
        return self._adopted(expected, stored, key_id)

    async def regenerating(
        self, key_id: str, send: Callable[[], Awaitable[RegeneratedApiKey]]
    ) -> RegeneratedApiKey:
        """Run this holder's own regenerate of ``key_id``, then adopt and store its key.

        While ``send`` is on the wire, rejected requests wait for its answer. The new key
        is adopted in memory first, then ``store()``d, then announced to the hook. It all
        runs in a task of its own: cancelling the caller never loses the new key. ``send``
        must not replay on a 401: a 401 means another holder rotated the key first, and
        its key is then reloaded, adopted and returned instead of a second regenerate.

        Raises:
            KeyStoreError: the new key is in use but could not be stored (it is attached).
        """
        task = asyncio.ensure_future(self._regenerate_and_store(key_id, send))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_consume_exception)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Nobody will read a store failure now: log it, with the key's prefix only.
            task.add_done_callback(_log_unobserved_failure)
            raise

    async def _regenerate_and_store(
        self, key_id: str, send: Callable[[], Awaitable[RegeneratedApiKey]]
    ) -> RegeneratedApiKey:
        rotating = await self.get()
        regeneration = asyncio.get_running_loop().create_future()
        self._regeneration = regeneration
        rejected: AuthenticationError | None = None
        try:
            result = await send()
        except AuthenticationError as exc:
            rejected = exc
        else:
            self._switch(result.api_key, reason="rotated by this client", announce=False)
            self.remember_own_key_id(result.api_key, key_id)
        finally:
            if self._regeneration is regeneration:
                self._regeneration = None
            regeneration.set_result(None)
        if rejected is not None:
            return await self._adopt_rotation_by_another(rotating, key_id, rejected)
        try:
            await self._store(result)
        finally:
            self._announce(result.api_key)
        return result

    async def _adopt_rotation_by_another(
        self, rotating: str, key_id: str, rejected: AuthenticationError
    ) -> RegeneratedApiKey:
        # The key being regenerated was dead already: another holder rotated it first.
        # Regenerating its fresh key would only kill that one too; take it instead.
        deadline = time.monotonic() + self.rotation_grace + self.load_timeout
        try:
            key = await self.recover(rotating, deadline=deadline)
        except StaleKeyError:
            raise rejected from None
        return self._adopted(rotating, key, key_id)

    def _adopted(self, old: str, new: str, key_id: str) -> RegeneratedApiKey:
        # What a rotation that found another holder's rotation returns: that holder's key.
        logger.info(
            "not regenerating: another holder already rotated %s to %s", redact(old), redact(new)
        )
        self.remember_own_key_id(new, key_id)
        return RegeneratedApiKey(id=key_id, api_key=new, message=_ADOPTED)

    async def _store(self, result: RegeneratedApiKey) -> None:
        provider = self.provider
        if not can_store(provider):
            logger.warning(
                "the rotated key %s is in use, but %r cannot store it; other holders of the "
                "old key will fail until you publish the new one",
                redact(result.api_key),
                provider,
            )
            return
        try:
            await provider.store(result.api_key)  # type: ignore[attr-defined]
        except Exception as exc:
            # The provider's own words, with every key this holder has held masked.
            reason = self.redact(str(exc))[:200]
            failure = KeyStoreError(
                f"the key was rotated and this client uses the new key "
                f"{redact(result.api_key)}, but {provider!r}.store() failed with "
                f"{type(exc).__name__} ({reason}); the new key is in this error's `result`: "
                "publish it yourself, or other holders of the old key will keep failing",
                result=result,
            )
        else:
            return
        raise failure

    # -- the own key's id -----------------------------------------------------------------

    def own_key_id(self) -> str | None:
        """The account id of the key in use, if a listing or a rotation has shown it."""
        return None if self.current is None else self.own_key_id_for(self.current)

    def own_key_id_for(self, key: str) -> str | None:
        """The account id of ``key``, if known."""
        own = self._own_key
        return own[1] if own is not None and own[0] == key else None

    def remember_own_key_id(self, key: str, key_id: str) -> None:
        """Record that ``key`` has the id ``key_id`` (learned from a listing or a rotation)."""
        self._own_key = (key, key_id)

    # -- pushes from a watching provider --------------------------------------------------

    def start_watching(self) -> None:
        """Run the provider's ``watch()`` in the background, if it has one."""
        watch = getattr(self.provider, "watch", None)
        if callable(watch) and self._watch_task is None:
            self._watch_task = asyncio.create_task(
                self._watch(watch), name="notify-async credential watch"
            )

    async def close(self) -> None:
        """Let a rotation in flight finish, then stop every background task and wait.

        A rotation's store is what every other holder of the old key waits for, so it is
        given up to ``CLOSE_WAIT`` seconds; reloads, hooks and the watch are cancelled.
        """
        rotating = {f for f in (self._rotation, *self._background) if f and not f.done()}
        if rotating:
            _, unfinished = await asyncio.wait(rotating, timeout=CLOSE_WAIT)
            if unfinished:
                logger.error(
                    "closing while a key rotation is still running after %gs; the new key "
                    "may not be stored with %r",
                    CLOSE_WAIT,
                    self.provider,
                )
        tasks = [t for t in (self._recovery, *self._hooks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        watch, self._watch_task = self._watch_task, None
        # Cancel until it ends: a library may swallow one cancellation (asyncio.wait_for
        # before Python 3.12 does, when the call it waits for completes at that moment).
        while watch is not None and not watch.done():
            watch.cancel()
            await asyncio.wait({watch}, timeout=0.1)
        if watch is not None and not watch.cancelled():
            watch.result()  # _watch logs exceptions; re-raise only a KeyboardInterrupt and such

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
        if key in self._retired or key in self._rejected:
            # Keys only move forward: a late push of an old key must not undo a rotation.
            return
        self._switch(key, reason="pushed by the provider")

    # -- masking --------------------------------------------------------------------------

    def known_keys(self) -> list[str]:
        """The key in use and the ones it replaced or saw rejected: what to mask."""
        keys = [] if self.current is None else [self.current]
        return keys + list(self._retired) + [k for k in self._rejected if k != self.current]

    def redact(self, text: str) -> str:
        """Mask every key this holder has held, in any escaping (see ``_errors.Mask``)."""
        # Old keys too: a request sent before a rotation may come back quoting its key.
        return Mask(self.known_keys()).text(text)

    # -- the one place the key changes ----------------------------------------------------

    def _switch(self, key: str, *, reason: str, announce: bool = True) -> None:
        if key == self.current:
            return
        if self.current is not None:
            self._retired.append(self.current)
        self.current = key
        self.generation += 1
        # Wake reloads that are polling for a key other than the one just replaced.
        self._changed.set()
        self._changed = asyncio.Event()
        prefix = redact(key)
        logger.info(
            "Notify API key changed (%s); now using %s (generation %d)",
            reason,
            prefix,
            self.generation,
        )
        if announce:
            self._announce(key)

    def _announce(self, key: str) -> None:
        if self.on_key_change is not None:
            hook = asyncio.ensure_future(self._run_hook(self.on_key_change, redact(key)))
            self._hooks.add(hook)
            hook.add_done_callback(self._hooks.discard)

    async def _run_hook(self, hook: KeyChangeHook, prefix: str) -> None:
        # Off every request's path: a slow or stuck audit hook must not hold up the key.
        try:
            await asyncio.wait_for(hook(prefix), self.hook_timeout)
        except asyncio.TimeoutError:
            logger.error(  # noqa: TRY400 - the timeout's traceback says nothing useful
                "on_key_change hook did not finish within %gs; it was cancelled",
                self.hook_timeout,
            )
        except Exception:
            logger.exception("on_key_change hook failed")


async def _until(waiting: Awaitable[T], deadline: float) -> T:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise StaleKeyError
    try:
        return await asyncio.wait_for(waiting, remaining)
    except asyncio.TimeoutError:
        raise StaleKeyError from None


def _start_shared(coro: Awaitable[T]) -> asyncio.Future[T]:
    future = asyncio.ensure_future(coro)
    # Every waiter may have been cancelled; retrieving here keeps asyncio from warning about
    # an exception nobody read, while each waiter still gets it through shield().
    future.add_done_callback(_consume_exception)
    return future


def _consume_exception(future: asyncio.Future[T]) -> None:
    if not future.cancelled():
        future.exception()


def _log_unobserved_failure(future: asyncio.Future[T]) -> None:
    failure = None if future.cancelled() else future.exception()
    if isinstance(failure, NotifyError):
        # Messages never hold a key: a KeyStoreError names the new key by prefix only.
        logger.error("a rotation whose caller was cancelled failed: %s", failure.message)
