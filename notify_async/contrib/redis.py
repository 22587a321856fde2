"""A key provider backed by Redis that pushes a rotated key to every worker at once.

Install it with ``pip install 'notify-async[redis]'`` (redis-py's ``redis.asyncio``)::

    from notify_async import NotifyClient
    from notify_async.contrib.redis import RedisKeyProvider

    client = NotifyClient(credentials=RedisKeyProvider("redis://redis.internal:6379/0"))

The key lives in one Redis hash, next to a version that only grows and the Redis time of the
change; each change is announced on a channel with the new version (never the key)::

    HSET notify:api_key key <api key> version <n> updated_at <ms since the epoch>
    PUBLISH notify:api_key:changed <n>

While a client is open it runs ``watch()``: a subscription to that channel which, on each
announcement, reads the hash and hands the key to the client, so that the workers switch
before they send a request with the old key.

``rotation_lease()`` makes rotations across the fleet take turns: a ``SET NX PX`` lease on
``<redis_key>:rotation-lease`` with a random token, released by a compare-and-delete script
so that only its holder can release it. See ``docs/redis.md``.
"""

from __future__ import annotations

__all__ = ["RedisKeyProvider"]

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from yarl import URL

from notify_async._credentials import KeyListener, check_key, redact
from notify_async._exceptions import CredentialError

try:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import AuthenticationError, AuthorizationError, RedisError, ResponseError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "notify_async.contrib.redis needs redis-py >= 5.0.1; "
        "install it with: pip install 'notify-async[redis]'"
    ) from exc

logger = logging.getLogger("notify_async")

_T = TypeVar("_T")
# Connection errors that trying again cannot cure.
_REFUSED = (AuthenticationError, AuthorizationError)

# Compare-and-set in one script, so that nothing runs between the check and the write.
# A rotator passes the version it last saw. If Redis has moved past it, another rotator
# stored a key since, and that key is the newer one: Notify only lets a key be regenerated
# with the key's current value, so a rotation that started from an older version was
# overtaken. The write is then refused and the stored key returned instead.
# The version never goes back, even when Redis lost its data (max with what the rotator saw),
# so that workers ordering by version never mistake a new key for an old one.
# A version that is not a whole number (a hash edited by hand: "abc", "3.0") counts as 0,
# the same rule as _parse(), so that the next store repairs the hash.
_STORE_SCRIPT = """
local stored = redis.call('HMGET', KEYS[1], 'key', 'version')
local valid = stored[2] and #stored[2] <= 15 and string.match(stored[2], '^%d+$') ~= nil
local version = valid and tonumber(stored[2]) or 0
if stored[1] == ARGV[1] and valid then
  return {1, version, ''}
end
local seen = tonumber(ARGV[2])
if stored[1] and seen and version > seen then
  return {0, version, stored[1]}
end
version = math.max(version, seen or 0) + 1
local now = redis.call('TIME')
local updated_at = now[1] .. string.format('%03d', math.floor(now[2] / 1000))
redis.call('HSET', KEYS[1], 'key', ARGV[1], 'version', version, 'updated_at', updated_at)
redis.call('PUBLISH', ARGV[3], version)
return {2, version, ''}
"""
_OVERTAKEN, _ALREADY_STORED = 0, 1
# The same rule as the script: ASCII digits, few enough to stay exact in Lua's doubles.
_VERSION = re.compile(rb"[0-9]{1,15}")

# Take the lease: SET NX PX, except that a lease already holding our own token is ours
# (our SET landed but its reply was lost, and the attempt was retried).
_TAKE_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return 1
end
return 0
"""
# Release only our own lease: once it has expired, another worker may hold the key.
_RELEASE_LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# How often a worker waiting for the lease asks again; jittered, so waiters do not align.
_LEASE_POLL = (0.02, 0.05)

# Attempts of one Redis command in load(), store() and the lease: few and short, because a
# reload after a 401 waits on them, and Redis being down must become a clear error at
# once. Each attempt is bounded by `timeout`. Every command retried is idempotent: a
# read, or a script that recognises its own earlier write.
_ATTEMPTS = 3


class RedisKeyProvider:
    """Loads, stores and watches the Notify API key in Redis, for a fleet of workers.

    ``load()`` reads the key from the hash ``redis_key``. ``store(key)`` writes it with the
    next version and announces it on ``channel``, atomically and only if no other rotator
    got there first (a late or overtaken rotation never rolls the fleet back to an older
    key). ``watch()``, run by the client while it is open, hands every new key to the
    client as soon as it is announced, reconnecting with backoff when Redis goes away.

    ``rotation_lease()`` lets one worker of the fleet rotate at a time (see
    ``LeasingCredentialProvider``), so that a fleet makes one regenerate per rotation round.

    If Redis is unreachable, requests keep using the key the client holds; a key rejected
    meanwhile cannot be reloaded, and the request fails with a ``CredentialError`` that
    names Redis. A hash that is not what ``store()`` writes (a version that is not a whole
    number, a key that is not UTF-8 text, a string instead of a hash) makes ``load()`` raise
    a ``CredentialError`` naming the Redis key; ``watch()`` logs it and keeps running.

    Args:
        url: a redis-py URL: ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://`` for TLS, or ``unix:///path/to/socket``. The password never
            appears in ``repr()`` or in error messages.
        redis_key: the hash that holds the key, its version and its time of change.
        channel: the channel that announces each change; ``"<redis_key>:changed"``.
        timeout: seconds to connect to Redis and for each command.
        reconnect_delay: the first wait before resubscribing after the connection drops;
            it doubles (with jitter) on each failure, up to ``max_reconnect_delay``.
        max_reconnect_delay: the longest wait between resubscription attempts.
        poll_interval: while the subscription is quiet, re-read the key this often, in
            case an announcement was lost (pub/sub delivers at most once), and check the
            connection.
        lease_ttl: seconds after which a rotation lease expires if its holder has not
            released it (a worker that died mid-rotation blocks the others this long).
        redis_options: more keyword arguments for ``redis.asyncio.Redis.from_url``, such
            as ``ssl_ca_certs``.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        redis_key: str = "notify:api_key",
        channel: str | None = None,
        timeout: float = 2.0,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        poll_interval: float = 30.0,
        lease_ttl: float = 60.0,
        redis_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not redis_key:
            raise ValueError("redis_key must be a non-empty Redis key name")
        if not timeout > 0 or not poll_interval > 0:
            raise ValueError("timeout and poll_interval must be > 0 seconds")
        if not 0 < reconnect_delay <= max_reconnect_delay:
            raise ValueError("reconnect_delay must be > 0 and at most max_reconnect_delay")
        if not 0 < lease_ttl < math.inf:
            raise ValueError("lease_ttl must be a finite number of seconds > 0")
        self._url = url
        self._secrets = _url_secrets(url)
        self.redis_key = redis_key
        self.channel = channel if channel is not None else f"{redis_key}:changed"
        self.timeout = timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.lease_key = f"{redis_key}:rotation-lease"
        self._redis_options = dict(redis_options or {})
        # The version of the key this provider last read or wrote: what a store() builds on.
        self._seen_version: int | None = None
        # Reads and writes take turns, so that the version seen never goes back and a
        # store() always builds on the stores this provider made before it.
        self._lock = asyncio.Lock()
        self._listeners: set[KeyListener] = set()

    @property
    def url(self) -> str:
        """The Redis URL with any password replaced by ``***``."""
        return _redact_url(self._url) if self._secrets else self._url

    def __repr__(self) -> str:
        return f"RedisKeyProvider(url={self.url!r}, redis_key={self.redis_key!r})"

    async def load(self) -> str:
        """Return the key stored in Redis.

        Makes up to three attempts when the connection fails, each bounded by ``timeout``.

        Raises:
            CredentialError: Redis is unreachable or refused the read (``pending`` False);
                the hash holds no key yet (``pending`` True: the client looks again within
                its ``rotation_grace``); or the hash is malformed or holds an unusable key
                (``pending`` False). The message names the Redis key, never its value.
        """
        async with self._lock:
            try:
                async with self._connect() as redis:
                    fields = await self._retrying(lambda: self._read(redis))
                key, version = _parse(fields)
            except _MalformedHashError as exc:
                raise CredentialError(
                    f"Redis at {self.url} holds a malformed Notify API key hash in "
                    f"{self.redis_key!r}: {exc}; {exc.remedy}"
                ) from None
            except ResponseError as exc:
                raise CredentialError(
                    f"Redis at {self.url} refused to read the Notify API key from "
                    f"{self.redis_key!r} ({self._describe(exc)}); check the ACL of the Redis "
                    "user in the URL"
                ) from None
            except (RedisError, OSError) as exc:
                raise self._unreachable("load the Notify API key", exc) from None
            if key is None:
                raise CredentialError(
                    f"Redis at {self.url} has no Notify API key in {self.redis_key!r}; "
                    "publish one with `await RedisKeyProvider(...).store(key)`",
                    pending=True,
                )
            key = check_key(key, source=self._source)
            self._seen_version = version
        return key

    async def store(self, key: str) -> None:
        """Write ``key`` with the next version and announce it, unless it was overtaken.

        If another rotator stored a key after the version this provider last saw, that key
        is newer and stays; this provider then hands it to the clients watching through it, and
        logs a warning instead of raising. A store repairs a malformed hash: it counts a
        version that is not a whole number as 0, and writes over a key that is not usable.

        Raises:
            CredentialError: Redis is unreachable or refused the write, or ``redis_key``
                holds something other than a hash.
        """
        key = check_key(key, source="RedisKeyProvider.store()")
        async with self._lock:
            seen = self._seen_version
            outcome, version, stored = await self._run_store(key, seen)
            newer = _usable_key(stored) if outcome == _OVERTAKEN else None
            if outcome == _OVERTAKEN and newer is None:
                # A newer version, but nobody can use its key: build on it and write ours.
                logger.warning(
                    "Redis holds version %s of the Notify API key in %r, but its key is "
                    "malformed; storing the rotated key over it",
                    version,
                    self.redis_key,
                )
                outcome, version, stored = await self._run_store(key, int(version))
                newer = _usable_key(stored) if outcome == _OVERTAKEN else None
                if outcome == _OVERTAKEN and newer is None:
                    raise CredentialError(
                        f"did not store the rotated Notify API key in Redis at {self.url}: "
                        f"{self.redis_key!r} keeps changing to a malformed key; find what "
                        "writes it"
                    )
            self._seen_version = int(version)
        if newer is None:
            if outcome != _ALREADY_STORED:
                logger.info(
                    "stored the Notify API key %s in Redis as version %s", redact(key), version
                )
            return
        logger.warning(
            "did not store the rotated key %s in Redis: another rotator stored %s (version %s) "
            "after the version this worker built on (%s), so %s is the newer key; switching to it",
            redact(key),
            redact(newer),
            version,
            seen,
            redact(newer),
        )
        for listener in list(self._listeners):
            await listener(newer)

    async def _run_store(self, key: str, seen: int | None) -> tuple[int, int, bytes | str]:
        try:
            async with self._connect() as redis:
                script = redis.register_script(_STORE_SCRIPT)
                outcome, version, stored = await self._retrying(
                    lambda: script(
                        keys=[self.redis_key],
                        args=[key, "" if seen is None else seen, self.channel],
                    )
                )
        except ResponseError as exc:
            if _is_wrong_type(exc):
                raise CredentialError(
                    f"could not store the rotated Notify API key in Redis at {self.url}: "
                    f"{self.redis_key!r} holds something other than a hash; delete it "
                    "(DEL) or give RedisKeyProvider another redis_key"
                ) from None
            raise CredentialError(
                f"Redis at {self.url} refused to store the rotated Notify API key in "
                f"{self.redis_key!r} ({self._describe(exc, key)})"
            ) from None
        except (RedisError, OSError) as exc:
            raise CredentialError(
                f"could not store the rotated Notify API key in Redis at {self.url} "
                f"({self._describe(exc, key)})"
            ) from None
        return int(outcome), int(version), stored

    @contextlib.asynccontextmanager
    async def rotation_lease(self, *, timeout: float) -> AsyncIterator[None]:
        """Hold the fleet-wide rotation lease while the context is open.

        Asks Redis every 20 to 50 ms (``SET lease_key <token> NX PX lease_ttl``) until the
        lease is free, for up to ``timeout`` seconds. On exit it deletes the lease only if it
        still holds this context's token: a lease that expired meanwhile (the rotation took
        longer than ``lease_ttl``) may belong to another worker by then, and stays. A holder
        that dies without releasing blocks the others for at most ``lease_ttl`` seconds.

        Raises:
            CredentialError: the lease did not come within ``timeout`` seconds, or Redis is
                unreachable (after up to three attempts) or refused the command.
            ValueError: ``timeout`` is negative.
        """
        if not timeout >= 0:
            raise ValueError("timeout must be >= 0 seconds")
        # Host and pid tell an operator who holds it; the random part makes it ours alone.
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(16)}"
        async with self._connect() as redis:
            await self._take_lease(redis, token, timeout)
            try:
                yield
            finally:
                await self._release_lease(redis, token)

    async def _take_lease(self, redis: Redis, token: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        take = redis.register_script(_TAKE_LEASE_SCRIPT)
        ttl_ms = max(1, round(self.lease_ttl * 1000))
        try:
            while not await self._retrying(
                lambda: take(keys=[self.lease_key], args=[token, ttl_ms])
            ):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    holder = await redis.get(self.lease_key)
                    raise CredentialError(
                        f"could not take the rotation lease {self.lease_key!r} in Redis at "
                        f"{self.url} within {timeout:g} s: another worker is rotating"
                        f"{_describe_holder(holder)}; try again later (a lease whose holder "
                        f"died expires after lease_ttl, {self.lease_ttl:g} s)"
                    )
                pause = random.uniform(*_LEASE_POLL)  # noqa: S311  # nosec B311
                await asyncio.sleep(min(pause, remaining))
        except asyncio.CancelledError:
            # A take in flight when cancelled may have landed: do not leave it to expire.
            with contextlib.suppress(RedisError, OSError):
                await self._drop_lease(redis, token)
            raise
        except (RedisError, OSError) as exc:
            raise self._unreachable(f"take the rotation lease {self.lease_key!r}", exc) from None

    async def _drop_lease(self, redis: Redis, token: str) -> bool:
        """Delete the lease if it still holds ``token``; whether it did."""
        release = redis.register_script(_RELEASE_LEASE_SCRIPT)
        return bool(await self._retrying(lambda: release(keys=[self.lease_key], args=[token])))

    async def _release_lease(self, redis: Redis, token: str) -> None:
        try:
            released = await self._drop_lease(redis, token)
        except (RedisError, OSError) as exc:
            logger.warning(
                "could not release the rotation lease %r in Redis at %s (%s); it expires by "
                "itself within lease_ttl (%g s)",
                self.lease_key,
                self.url,
                self._describe(exc),
                self.lease_ttl,
            )
            return
        if not released:
            logger.warning(
                "the rotation lease %r in Redis at %s expired before this rotation finished "
                "(lease_ttl is %g s), so another worker may have rotated at the same time; "
                "give RedisKeyProvider a lease_ttl longer than a rotation takes",
                self.lease_key,
                self.url,
                self.lease_ttl,
            )

    async def watch(self, on_key: KeyListener) -> None:
        """Hand every newly announced key to ``on_key``, until cancelled.

        Subscribes to ``channel``, then reads the key once (a change announced while not
        subscribed is not missed), then again on each announcement and every
        ``poll_interval`` seconds. When Redis goes away it resubscribes with exponential
        backoff; the client keeps its key meanwhile. A malformed hash is logged as an error
        and skipped: the client keeps its key, and the watch hands on the next valid one.
        Cancelling closes every connection.
        """
        self._listeners.add(on_key)
        try:
            await self._watch(on_key)
        finally:
            self._listeners.discard(on_key)

    async def _watch(self, on_key: KeyListener) -> None:
        loop = asyncio.get_running_loop()
        delay = self.reconnect_delay
        handed: str | None = None  # the key this watch last gave the client
        outage = False
        while True:
            try:
                # No retries inside redis-py: a reconnection must go through the catch-up
                # read below, or a change announced meanwhile would be missed.
                async with (
                    self._connect() as redis,
                    redis.pubsub() as pubsub,
                ):
                    await self._subscribe(pubsub)
                    handed = await self._refresh(redis, on_key, handed)
                    _raise_if_cancelled()
                    if outage:
                        logger.info(
                            "resubscribed to Redis channel %r at %s", self.channel, self.url
                        )
                        outage = False
                    delay = self.reconnect_delay
                    next_poll = loop.time() + self.poll_interval
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=self.poll_interval
                        )
                        if message is not None or loop.time() >= next_poll:
                            handed = await self._refresh(redis, on_key, handed)
                            next_poll = loop.time() + self.poll_interval
                        _raise_if_cancelled()
            except (RedisError, OSError) as exc:
                if not outage:
                    logger.warning(
                        "lost the subscription to Redis channel %r at %s (%s); the client "
                        "keeps its key and resubscribes with backoff",
                        self.channel,
                        self.url,
                        self._describe(exc),
                    )
                outage = True
                # Jitter, so that a fleet does not reconnect to a restarted Redis in lockstep.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311  # nosec B311
                delay = min(delay * 2, self.max_reconnect_delay)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self.channel)
        # Wait for Redis to confirm, so that the read which follows cannot miss a change.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while (remaining := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            if message is not None and _text(message["type"]) == "subscribe":
                return
        raise RedisTimeoutError(f"Redis did not confirm SUBSCRIBE {self.channel!r} in time")

    async def _refresh(self, redis: Redis, on_key: KeyListener, handed: str | None) -> str | None:
        async with self._lock:
            try:
                key, version = _parse(await self._read(redis))
                if key is None:
                    # Redis lost its data (a restart without persistence): keep our key.
                    return handed
                key = check_key(key, source=self._source)
            # One bad write must not stop the fleet's watches: skip it, keep the client's
            # key, and hand on the next valid one. No traceback: the reason is the message.
            except _MalformedHashError as exc:
                logger.error(  # noqa: TRY400
                    "ignoring the malformed Notify API key hash %r in Redis at %s: %s; the "
                    "client keeps its key (to repair it, %s)",
                    self.redis_key,
                    self.url,
                    exc,
                    exc.remedy,
                )
                return handed
            except CredentialError as exc:
                logger.error("ignoring the Notify API key in Redis: %s", exc.message)  # noqa: TRY400
                return handed
            self._seen_version = version
        if key != handed:
            await on_key(key)
        return key

    async def _read(self, redis: Redis) -> tuple[bytes | str | None, bytes | str | None]:
        try:
            key, version = await redis.hmget(self.redis_key, ["key", "version"])
        except ResponseError as exc:
            if _is_wrong_type(exc):
                raise _MalformedHashError("it is not a hash", wrong_type=True) from None
            raise
        return key, version

    async def _retrying(self, command: Callable[[], Awaitable[_T]]) -> _T:
        # One attempt set: the first try and two more when the connection fails, with a
        # short jittered pause. redis-py's own retries are off (see _connect), because they
        # nest: a connect retried inside a command retried made nine tries of `timeout` each.
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await command()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # A wrong password is refused the same way every time.
                if attempt == _ATTEMPTS or isinstance(exc, _REFUSED):
                    raise
            await asyncio.sleep(0.05 * 2**attempt * random.uniform(0.5, 1.0))  # noqa: S311  # nosec B311
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @property
    def _source(self) -> str:
        return f"the Redis hash {self.redis_key!r} at {self.url}"

    def _unreachable(self, action: str, exc: BaseException) -> CredentialError:
        return CredentialError(
            f"could not reach Redis at {self.url} to {action} ({self._describe(exc)}); "
            "check that Redis is up and the URL is right"
        )

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Redis]:
        # A client per operation, closed when it ends: a provider has no close() of its
        # own, and nothing may stay open once the client that used it is closed.
        options: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "health_check_interval": self.poll_interval,
            "retry": Retry(NoBackoff(), 0),
            **self._redis_options,
        }
        redis = Redis.from_url(self._url, **options)
        try:
            yield redis
        finally:
            await redis.aclose()

    def _describe(self, exc: BaseException, *secrets: str) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in (*self._secrets, *secrets):
            text = text.replace(secret, "***")
        return text


def _raise_if_cancelled() -> None:
    # redis-py sends each command through asyncio.wait_for, which before Python 3.12 can
    # swallow a cancellation that lands as the send completes. A watch that carried on
    # would keep close() waiting; Task.cancelling() (3.11+) still shows the request.
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError


class _MalformedHashError(Exception):
    """The hash is not what store() writes; the text says how, never with its values."""

    def __init__(self, reason: str, *, wrong_type: bool = False) -> None:
        super().__init__(reason)
        # A store overwrites a bad field, but never a value of another type: that may be
        # another application's data under a colliding name.
        self.remedy = (
            "delete it (DEL) and publish the key with `await RedisKeyProvider(...).store(key)`"
            if wrong_type
            else "store the key again with `await RedisKeyProvider(...).store(key)`, which "
            "repairs the hash"
        )


def _parse(fields: tuple[bytes | str | None, bytes | str | None]) -> tuple[str | None, int]:
    """The key (None if not written yet) and the version (0 if absent) of a hash read."""
    raw_key, raw_version = fields
    if isinstance(raw_version, str):  # redis_options may ask for decode_responses
        raw_version = raw_version.encode()
    if raw_version is None:
        version = 0
    elif _VERSION.fullmatch(raw_version):
        version = int(raw_version)
    else:
        raise _MalformedHashError("its version is not a whole number")
    return (None if raw_key is None else _decode_key(raw_key)), version


def _decode_key(raw: bytes | str) -> str:
    try:
        key = _text(raw)
    except UnicodeDecodeError:
        raise _MalformedHashError("its key is not UTF-8 text") from None
    # What check_key refuses, said here so that every bad hash reads the same way.
    if not key.strip():
        raise _MalformedHashError("its key is blank")
    if "\r" in key or "\n" in key:
        raise _MalformedHashError("its key spans several lines")
    return key


def _usable_key(raw: bytes | str) -> str | None:
    """The key if a client could send it, else None (a hash written by hand)."""
    try:
        return check_key(_decode_key(raw), source="Redis")
    except (_MalformedHashError, CredentialError):
        return None


def _is_wrong_type(exc: ResponseError) -> bool:
    return str(exc).startswith("WRONGTYPE")


def _describe_holder(holder: bytes | str | None) -> str:
    # The lease value is "host:pid:token"; show who, not the token.
    if holder is None:
        return ""
    if isinstance(holder, bytes):
        holder = holder.decode("utf-8", "replace")
    who = holder.rpartition(":")[0]
    return f" ({who})" if who else ""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _url_secrets(url: str) -> tuple[str, ...]:
    parsed = URL(url)
    found = [parsed.password, *parsed.query.getall("password", [])]
    return tuple(secret for secret in found if secret)


def _redact_url(url: str) -> str:
    parsed = URL(url)
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    if "password" in parsed.query:
        # "***" is the mask shown in place of the password, not a password (bandit B105).
        parsed = parsed.update_query({"password": "***"})  # nosec B105
    return str(parsed)
