"""Where the API key comes from, and how the client keeps it current.

A ``CredentialProvider`` is anything with ``async def load(self) -> str``; one that can
also persist a key has ``async def store(self, key: str) -> None``. The client never
holds the provider's key for longer than it works: ``KeyHolder`` keeps the key in memory,
and when the server rejects it, reloads it once for every request that was rejected at the
same time (single flight), polling through a short grace window while another worker
finishes publishing a rotation.
"""

from __future__ import annotations

__all__ = [
    "CallableKeyProvider",
    "ChainKeyProvider",
    "CredentialProvider",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyChangeHook",
    "KeyListener",
    "LeasingCredentialProvider",
    "StaticKeyProvider",
    "WatchingCredentialProvider",
    "WritableCredentialProvider",
]

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from ._exceptions import CredentialError
from ._files import write_atomically

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("notify_async")

KeyChangeHook = Callable[[str], Awaitable[None]]
"""An async callable told the redacted prefix of the new key after every key change."""


@runtime_checkable
class CredentialProvider(Protocol):
    """Anything that can load the current Notify API key.

    ``load()`` is called once when the client first needs a key, again when the server
    rejects the key it holds, and, with a ``LeasingCredentialProvider``, under the lease
    at the start of each ``rotate()``; it should return the freshest key it can see.
    """

    async def load(self) -> str:
        """Return the current API key."""
        ...


@runtime_checkable
class WritableCredentialProvider(CredentialProvider, Protocol):
    """A provider that can also persist a new key, so a rotation reaches other holders."""

    async def store(self, key: str) -> None:
        """Persist ``key`` where ``load()`` (here and in other processes) will find it."""
        ...


@runtime_checkable
class LeasingCredentialProvider(WritableCredentialProvider, Protocol):
    """A writable provider that makes rotations across processes take turns.

    ``rotate()`` holds the lease while it reloads, regenerates and stores. Under the lease
    it reloads first: when the stored key is no longer the one it was asked to rotate,
    another holder has rotated, and it adopts that key instead of regenerating a second
    time. So a fleet sharing a leasing provider makes exactly one regenerate per round.
    """

    def rotation_lease(self, *, timeout: float) -> AbstractAsyncContextManager[None]:
        """Hold an exclusive, fleet-wide lease while the context is open.

        Wait up to ``timeout`` seconds for it; raise ``CredentialError`` when it does not
        come. A lease must expire or be released if its holder dies.
        """
        ...


KeyListener = Callable[[str], Awaitable[None]]
"""Called by a watching provider with each new key it learns of."""


@runtime_checkable
class WatchingCredentialProvider(CredentialProvider, Protocol):
    """A provider that can push new keys to the client before the old one is rejected.

    While a client is open it runs ``watch(on_key)`` as a background task and cancels it on
    ``close()``. ``watch`` should run until cancelled, calling ``on_key(key)`` whenever the
    key changes, and reconnect to its source by itself (with backoff) when it drops.
    If ``watch`` raises, the client logs it and falls back to reloading on a 401.
    """

    async def watch(self, on_key: KeyListener) -> None:
        """Call ``on_key`` with every new key until cancelled."""
        ...


def redact(key: str) -> str:
    """Show a key the way Notify's own listing does, as a short prefix and ``...``.

    Short keys show less, so that the prefix never gives most of a key away.
    """
    return key[: min(8, len(key) // 3)] + "..."


def check_key(key: object, *, source: str) -> str:
    """Return ``key`` ready for an ``x-api-key`` header, else raise ``CredentialError``.

    A UTF-8 byte-order mark and surrounding whitespace are stripped (an editor or
    ``echo`` adds them). What remains must be visible ASCII, the only characters a
    header value carries safely: a CR or LF would split the header, and aiohttp refuses
    NUL, DEL or ESC with an error that quotes the header, key included. The message names
    the offending character by position and code point, never the key.
    """
    if not isinstance(key, str):
        raise CredentialError(
            f"{source} returned {type(key).__name__}, not a str; a provider's load() must "
            "return the API key as a string"
        )
    key = key.strip().removeprefix("\ufeff").strip()
    if not key:
        raise CredentialError(
            f"{source} gave an empty API key; set it to your Notify API key", pending=True
        )
    if not (key.isascii() and key.isprintable()) or " " in key:
        position, char = next((i, c) for i, c in enumerate(key) if not ("!" <= c <= "~"))
        what = "spans several lines" if char in "\r\n" else "holds a character"
        raise CredentialError(
            f"{source} gave an API key that {what} an HTTP header cannot carry "
            f"(U+{ord(char):04X} at position {position + 1}); a Notify API key is one line "
            "of visible ASCII: check for a stray newline, a pasted file, or a wrong encoding"
        )
    return key


class StaticKeyProvider:
    """A key given in code. ``store()`` replaces it in memory, so a rotation sticks."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __repr__(self) -> str:
        return f"StaticKeyProvider(key={redact(self._key)!r})"

    async def load(self) -> str:
        """Return the key."""
        return self._key

    async def store(self, key: str) -> None:
        """Replace the key held in memory."""
        self._key = key


class EnvKeyProvider:
    """Reads the key from an environment variable, ``NOTIFY_API_KEY`` by default.

    ``store()`` sets the variable in this process only: other processes keep their own
    environment, so a fleet should share a ``FileKeyProvider`` or a shared store instead.
    """

    def __init__(self, var: str = "NOTIFY_API_KEY") -> None:
        self.var = var

    def __repr__(self) -> str:
        return f"EnvKeyProvider(var={self.var!r})"

    def load_now(self) -> str:
        """Read the variable synchronously; raise ``CredentialError`` naming it when unset."""
        key = os.environ.get(self.var)
        if key is None:
            raise CredentialError(
                f"the environment variable {self.var} is not set; export your Notify API key "
                f"({self.var}=...) or pass api_key=... or credentials=... to NotifyClient"
            )
        return check_key(key, source=f"the environment variable {self.var}")

    async def load(self) -> str:
        """Return the variable's current value."""
        return self.load_now()

    async def store(self, key: str) -> None:
        """Set the variable in this process."""
        os.environ[self.var] = key


class FileKeyProvider:
    """Reads the key from a file: a secret mount, or a file the workers on one host share.

    ``load()`` strips surrounding whitespace. ``store()`` writes atomically (a temporary
    file in the same folder, fsync, ``os.replace``) with mode 0600, so a reader racing the
    writer sees the old key or the new one, never half of one.

    It offers a rotation lease (``LeasingCredentialProvider``): an ``fcntl.flock`` on the
    file ``<name>.lock`` beside the key, so that workers on one host sharing the file make
    one regenerate per rotation. The kernel releases the lock when its holder dies. Where
    ``fcntl`` does not exist (Windows) there is no lease, and concurrent rotations behave
    as with any provider without one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileKeyProvider(path={str(self.path)!r})"

    async def load(self) -> str:
        """Read and return the key in the file."""
        # A small local read: cheaper inline than a thread hop, and it only runs on a reload.
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialError(
                f"the key file {str(self.path)!r} does not exist; write your Notify API key "
                "into it, or point FileKeyProvider at the right path",
                pending=True,
            ) from None
        except OSError as exc:
            raise CredentialError(
                f"the key file {str(self.path)!r} could not be read ({exc.strerror})"
            ) from None
        return check_key(text, source=f"the key file {str(self.path)!r}")

    async def store(self, key: str) -> None:
        """Atomically replace the file's content with ``key`` (mode 0600)."""
        await asyncio.to_thread(write_atomically, self.path, key + "\n")

    @contextlib.asynccontextmanager
    async def rotation_lease(self, *, timeout: float) -> AsyncIterator[None]:
        """Hold an exclusive ``flock`` on ``<name>.lock`` beside the key file.

        Waits up to ``timeout`` seconds, polling without blocking the event loop; raises
        ``CredentialError`` when the lock does not come.
        """
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CredentialError(
                f"could not open the rotation lock {str(lock_path)!r} ({exc.strerror}); "
                "the folder of the key file must be writable"
            ) from None
        try:
            await _lock_within(fd, timeout, lock_path)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


async def _lock_within(fd: int, timeout: float, lock_path: Path) -> None:
    assert fcntl is not None  # noqa: S101  # nosec B101 - only called where it exists
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if loop.time() >= deadline:
                raise CredentialError(
                    f"another process held the rotation lock {str(lock_path)!r} for more "
                    f"than {timeout:g}s; it may be stuck in a rotation"
                ) from None
        else:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)


class CallableKeyProvider:
    """Wraps your own functions: a Vault, AWS Secrets Manager or database lookup.

    ``load`` and the optional ``store`` may be sync or async. A sync function runs in a
    worker thread so that a slow secret store never blocks the event loop.
    """

    def __init__(
        self,
        load: Callable[[], str | Awaitable[str]],
        store: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> None:
        self._load = load
        self._store = store

    def __repr__(self) -> str:
        name = getattr(self._load, "__qualname__", type(self._load).__name__)
        return f"CallableKeyProvider(load={name})"

    async def load(self) -> str:
        """Call the load function and return its key."""
        # The client checks the type (and content) of every loaded key.
        return cast(str, await _call(self._load))

    async def store(self, key: str) -> None:
        """Call the store function, or raise ``CredentialError`` when none was given."""
        if self._store is None:
            raise CredentialError("this CallableKeyProvider was given no store function")
        await _call(self._store, key)

    @property
    def can_store(self) -> bool:
        """Whether a store function was given."""
        return self._store is not None


async def _call(fn: Callable[..., object], *args: object) -> object:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


class ChainKeyProvider:
    """Tries providers in order; the first one that yields a key wins.

    A provider "yields nothing" by raising ``CredentialError`` (an unset variable, a
    missing file). ``store()`` goes to the first provider in the chain that can store.
    """

    def __init__(self, *providers: CredentialProvider) -> None:
        if not providers:
            raise ValueError("ChainKeyProvider needs at least one provider")
        self.providers = providers

    def __repr__(self) -> str:
        return f"ChainKeyProvider{self.providers!r}"

    async def load(self) -> str:
        """Return the key of the first provider that has one."""
        failures = []
        pending = False
        for provider in self.providers:
            try:
                return await provider.load()
            except CredentialError as exc:
                failures.append(exc.message)
                pending = pending or exc.pending
        raise CredentialError(
            "no provider in the chain had a key: " + "; ".join(failures), pending=pending
        )

    async def store(self, key: str) -> None:
        """Store ``key`` with the first provider that can store."""
        for provider in self.providers:
            if can_store(provider):
                await provider.store(key)  # type: ignore[attr-defined]
                return
        raise CredentialError("no provider in the chain can store a key")

    @property
    def can_store(self) -> bool:
        """Whether any provider in the chain can store."""
        return any(can_store(p) for p in self.providers)


def can_store(provider: CredentialProvider) -> bool:
    """Whether ``provider`` can persist a key (has ``store``, and does not say it cannot)."""
    return callable(getattr(provider, "store", None)) and getattr(provider, "can_store", True)
