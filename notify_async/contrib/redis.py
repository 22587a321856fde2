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
before they send a request with the old key. See ``docs/redis.md``.
"""

from __future__ import annotations

__all__ = ["RedisKeyProvider"]

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

from yarl import URL

from notify_async._credentials import KeyListener, check_key, redact
from notify_async._exceptions import CredentialError

try:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff, NoBackoff
    from redis.exceptions import RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "notify_async.contrib.redis needs redis-py >= 5.0.1; "
        "install it with: pip install 'notify-async[redis]'"
    ) from exc

logger = logging.getLogger("notify_async")

# Compare-and-set in one script, so that nothing runs between the check and the write.
# A rotator passes the version it last saw. If Redis has moved past it, another rotator
# stored a key since, and that key is the newer one: Notify only lets a key be regenerated
# with the key's current value, so a rotation that started from an older version was
# overtaken. The write is then refused and the stored key returned instead.
# The version never goes back, even when Redis lost its data (max with what the rotator saw),
# so that workers ordering by version never mistake a new key for an old one.
_STORE_SCRIPT = """
local stored = redis.call('HMGET', KEYS[1], 'key', 'version')
local version = tonumber(stored[2]) or 0
if stored[1] == ARGV[1] then
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

# Retries of one load() or store(): short and few, because a reload after a 401 waits on
# it, and Redis being down must become a clear error quickly, not after redis-py's default
# ten retries. The script makes a repeated store harmless.
_COMMAND_RETRIES = 2


class RedisKeyProvider:
    """Loads, stores and watches the Notify API key in Redis, for a fleet of workers.

    ``load()`` reads the key from the hash ``redis_key``. ``store(key)`` writes it with the
    next version and announces it on ``channel``, atomically and only if no other rotator
    got there first (a late or overtaken rotation never rolls the fleet back to an older
    key). ``watch()``, run by the client while it is open, hands every new key to the
    client as soon as it is announced, reconnecting with backoff when Redis goes away.

    If Redis is unreachable, requests keep using the key the client holds; a key rejected
    meanwhile cannot be reloaded, and the request fails with a ``CredentialError`` that
    names Redis.

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
        redis_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not redis_key:
            raise ValueError("redis_key must be a non-empty Redis key name")
        if not timeout > 0 or not poll_interval > 0:
            raise ValueError("timeout and poll_interval must be > 0 seconds")
        if not 0 < reconnect_delay <= max_reconnect_delay:
            raise ValueError("reconnect_delay must be > 0 and at most max_reconnect_delay")
        self._url = url
        self._secrets = _url_secrets(url)
        self.redis_key = redis_key
        self.channel = channel if channel is not None else f"{redis_key}:changed"
        self.timeout = timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.poll_interval = poll_interval
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

        Raises:
            CredentialError: Redis is unreachable, or holds no key, or holds no valid key.
        """
        async with self._lock:
            try:
                async with self._connect(_COMMAND_RETRIES) as redis:
                    key, version = await self._read(redis)
            except ResponseError as exc:
                raise CredentialError(
                    f"Redis at {self.url} could not read the Notify API key from "
                    f"{self.redis_key!r} ({self._describe(exc)}); it must be a hash written "
                    "by RedisKeyProvider.store()"
                ) from None
            except (RedisError, OSError) as exc:
                raise CredentialError(
                    f"could not reach Redis at {self.url} to load the Notify API key "
                    f"({self._describe(exc)}); check that Redis is up and the URL is right"
                ) from None
            if key is None:
                raise CredentialError(
                    f"Redis at {self.url} has no Notify API key in {self.redis_key!r}; "
                    "publish one with `await RedisKeyProvider(...).store(key)`"
                )
            self._seen_version = version
        return check_key(key, source=f"the Redis hash {self.redis_key!r} at {self.url}")

    async def store(self, key: str) -> None:
        """Write ``key`` with the next version and announce it, unless it was overtaken.

        If another rotator stored a key after the version this provider last saw, that key
        is newer and stays; this provider then hands it to the clients watching through it, and
        logs a warning instead of raising.

        Raises:
            CredentialError: Redis is unreachable or refused the write.
        """
        key = check_key(key, source="RedisKeyProvider.store()")
        async with self._lock:
            seen = self._seen_version
            try:
                async with self._connect(_COMMAND_RETRIES) as redis:
                    script = redis.register_script(_STORE_SCRIPT)
                    outcome, version, stored = await script(
                        keys=[self.redis_key],
                        args=[key, "" if seen is None else seen, self.channel],
                    )
            except (RedisError, OSError) as exc:
                raise CredentialError(
                    f"could not store the rotated Notify API key in Redis at {self.url} "
                    f"({self._describe(exc, key)})"
                ) from None
            self._seen_version = int(version)
        if outcome != _OVERTAKEN:
            if outcome != _ALREADY_STORED:
                logger.info(
                    "stored the Notify API key %s in Redis as version %s", redact(key), version
                )
            return
        newer = _text(stored)
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

    async def watch(self, on_key: KeyListener) -> None:
        """Hand every newly announced key to ``on_key``, until cancelled.

        Subscribes to ``channel``, then reads the key once (a change announced while not
        subscribed is not missed), then again on each announcement and every
        ``poll_interval`` seconds. When Redis goes away it resubscribes with exponential
        backoff; the client keeps its key meanwhile. Cancelling closes every connection.
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
                    self._connect(0) as redis,
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
            key, version = await self._read(redis)
            if key is None:
                # Redis lost its data (a restart without persistence): keep the key we have.
                return handed
            self._seen_version = version
        if key != handed:
            try:
                key = check_key(key, source=f"the Redis hash {self.redis_key!r} at {self.url}")
            except CredentialError as exc:
                logger.error("ignoring the key announced in Redis: %s", exc.message)  # noqa: TRY400
                return handed
            await on_key(key)
        return key

    async def _read(self, redis: Redis) -> tuple[str | None, int]:
        key, version = await redis.hmget(self.redis_key, ["key", "version"])
        return (None if key is None else _text(key)), int(version or 0)

    @contextlib.asynccontextmanager
    async def _connect(self, retries: int) -> AsyncIterator[Redis]:
        # A client per operation, closed when it ends: a provider has no close() of its
        # own, and nothing may stay open once the client that used it is closed.
        options: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "health_check_interval": self.poll_interval,
            "retry": Retry(ExponentialBackoff(cap=0.25, base=0.05), retries)
            if retries
            else Retry(NoBackoff(), 0),
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
