"""What a resource needs from the client: one way to send a call through the pipeline.

Resources depend on this protocol, not on ``NotifyClient``, so that the import graph has
no cycle (the client imports the resources, the resources import only this).
"""

from __future__ import annotations

__all__ = ["Requester"]

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, overload

from ._models import Reader
from ._retry import RetryPolicy

T = TypeVar("T")


class Requester(Protocol):
    """Anything with ``NotifyClient.request``'s signature."""

    @overload
    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
        outcome_advice: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        replay_on_401: bool = True,
        reader: None = None,
    ) -> dict[str, Any]: ...

    @overload
    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
        outcome_advice: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        replay_on_401: bool = True,
        reader: Reader[T],
    ) -> T: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy,
        json: Mapping[str, object] | None = None,
        outcome_advice: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        replay_on_401: bool = True,
        reader: Reader[T] | None = None,
    ) -> dict[str, Any] | T:
        """Send one call through the pipeline: the checked JSON envelope, or the model."""
        ...
