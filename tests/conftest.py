"""Shared fixtures: the local Notify server, and an aioresponses fix for aiohttp 3.14."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core
import pytest

from notify_async.testing import RedisServer

pytest_plugins = ["notify_async.testing.pytest_plugin"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server on a free port, stopped after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument that
# aiohttp 3.14 made required (upstream issue pnuckowski/aioresponses#289), so every mocked
# call fails with a TypeError. Until a fixed release exists, hand it a response class that
# supplies a stand-in writer. This is test-only: the library itself does not cap aiohttp.
class _ClientResponseWithStreamWriter(aiohttp.ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
        super().__init__(method, url, **kwargs)


if "stream_writer" in aiohttp.ClientResponse.__init__.__code__.co_varnames:
    # setattr: aioresponses.core only imports the name, so mypy sees no attribute to assign.
    setattr(aioresponses.core, "ClientResponse", _ClientResponseWithStreamWriter)  # noqa: B010


# What the developer's own shell exports must not decide what the tests see: a key or base
# URL would change which provider a client picks, and a proxy would capture loopback traffic.
_SHELL_VARIABLES = (
    "NOTIFY_API_KEY",
    "NOTIFY_BASE_URL",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def _isolate_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SHELL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers per core for ``-n auto`` (pyproject's addopts), at most 8.

    Much of the suite waits rather than computes: on server-side delays, grace windows,
    and child processes starting. On 2 cores, 4 workers ran it in 42 s, 3 in 45 s and 2 in
    60 s.
    """
    return min(2 * (os.cpu_count() or 1), 8)
