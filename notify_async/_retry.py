"""Which failures may be retried for which call, and how long to wait in between.

Two policies cover the API:

* ``IDEMPOTENT`` (``GET /api_keys``): any transient failure, connection errors and timeouts
  included, and 408, 429, 500, 502, 503, 504.
* ``UNSENT_ONLY`` (regenerate, send): only failures that prove the request took no effect:
  a connection error or timeout before any byte of the request was written (no
  connection, no free slot in the pool, a connect that hung), a 429, a 503. Anything
  else that leaves the outcome open becomes ``OutcomeUnknownError`` and is never
  retried, because a second regenerate invalidates the first new key and a second send
  delivers a second email.

The client makes the first attempt itself and builds a tenacity ``AsyncRetrying`` (fresh per
call, never shared between tasks) only after a retryable failure, so a call that succeeds
pays nothing for retries.
"""

from __future__ import annotations

__all__ = ["instant_retries"]

import asyncio
import contextlib
import contextvars
import enum
import math
import random
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import attrs

from ._exceptions import APIConnectionError, APIStatusError


class RetryPolicy(enum.Enum):
    """How safe it is to send a call twice."""

    IDEMPOTENT = "idempotent"
    UNSENT_ONLY = "unsent-only"


_IDEMPOTENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# 429 and 503 are refusals: the server turned the request away before acting on it.
_REFUSAL_STATUSES = frozenset({429, 503})
# Statuses after which a non-idempotent call may or may not have taken effect.
AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


def is_retryable(policy: RetryPolicy, error: BaseException) -> bool:
    """Whether ``error`` may be retried under ``policy``."""
    if isinstance(error, APIStatusError):
        allowed = _IDEMPOTENT_STATUSES if policy is RetryPolicy.IDEMPOTENT else _REFUSAL_STATUSES
        return error.status_code in allowed
    if isinstance(error, APIConnectionError):
        # A certificate that failed verification fails the same way next time.
        if not error.transient:
            return False
        return policy is RetryPolicy.IDEMPOTENT or not error.request_sent
    return False


def should_retry(policy: RetryPolicy, backoff: Backoff, error: BaseException) -> bool:
    """Whether to retry ``error``: the policy allows it, and no ``Retry-After`` is too long."""
    return is_retryable(policy, error) and not backoff.too_long(error)


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    # NaN would sleep forever ("Retrying ... in nans"); a negative wait makes no sense.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"Backoff.{attribute.name} must be a finite number of seconds >= 0, got {value!r}"
        )


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter, overridden by the server's ``Retry-After``.

    Every value is a finite number of seconds, 0 or more; anything else raises
    ``ValueError`` here, at construction.

    Attributes:
        initial: the cap of the first wait, in seconds.
        maximum: the cap of any computed wait.
        max_retry_after: a ``Retry-After`` longer than this is not slept through; the
            client raises the status's error (``RateLimitError`` for a 429,
            ``InternalServerError`` for a 503) with ``retry_after`` set, and you decide.
    """

    initial: float = attrs.field(default=0.5, validator=_seconds)
    maximum: float = attrs.field(default=8.0, validator=_seconds)
    max_retry_after: float = attrs.field(default=60.0, validator=_seconds)

    def wait(self, retry_number: int, error: BaseException | None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based) after ``error``."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        ceiling = min(self.maximum, self.initial * 2 ** (retry_number - 1))
        # Full jitter spreads a fleet's retries instead of synchronising them.
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography  # nosec B311

    def too_long(self, error: BaseException | None) -> bool:
        """Whether the server asked us to wait longer than we are willing to sleep."""
        retry_after = getattr(error, "retry_after", None)
        return retry_after is not None and retry_after > self.max_retry_after


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delta-seconds or an HTTP date) into seconds."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN  # noqa: PLR0124
        return None
    return max(0.0, seconds)


# Tests (ours and users') set this to record waits instead of sleeping them.
_sleep_recorder: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "notify_async_sleep_recorder", default=None
)


async def retry_sleep(seconds: float) -> None:
    """Sleep between retries, unless ``instant_retries()`` is active."""
    recorded = _sleep_recorder.get()
    if recorded is None:
        await asyncio.sleep(seconds)
    else:
        recorded.append(seconds)


@contextlib.contextmanager
def instant_retries() -> Iterator[list[float]]:
    """Make retry backoffs wait zero seconds, and record the waits asked for.

    For tests: the retry policy runs as it would in production, but without sleeping::

        with instant_retries() as waits:
            await client.api_keys.list()
        assert waits == [2.0]  # the server's Retry-After was honoured

    It applies to the current task and the tasks it starts.
    """
    waits: list[float] = []
    token = _sleep_recorder.set(waits)
    try:
        yield waits
    finally:
        _sleep_recorder.reset(token)
