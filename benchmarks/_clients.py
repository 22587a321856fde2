"""The clients the overhead benchmark compares, each behind the same two calls.

* ``notify-async``: ``NotifyClient``, as a user calls it.
* ``raw aiohttp``: the floor. The same GET/POST on one ``ClientSession`` with a prebuilt URL,
  ``json.loads(await response.read())`` on the answer (cheaper than ``response.json()``),
  and nothing else: no models, no retries, no error mapping.
* ``naive wrapper``: what a team writes by hand: aiohttp, a tenacity ``AsyncRetrying`` built
  for every call, ``raise_for_status()``, and cattrs structuring into attrs models.
* ``naive, no tenacity``: the same wrapper without tenacity, which is most of its cost on
  calls that succeed.
* ``httpx``: ``httpx.AsyncClient`` with ``json()``, for context.

Every variant keeps one long-lived session (one connection pool) for the whole run, as an
application does.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from yarl import URL

from notify_async import NotifyClient

EMAIL = {"to": "ada@example.com", "subject": "Benchmark", "message": "Hello from the benchmark"}


class BenchClient(Protocol):
    """One client variant: list the keys, send one email, close."""

    name: str

    async def list_keys(self) -> object: ...

    async def send(self) -> object: ...

    async def aclose(self) -> None: ...


class NotifyVariant:
    """``NotifyClient`` exactly as documented."""

    name = "notify-async"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.client = NotifyClient(api_key=api_key, base_url=base_url)

    async def open(self) -> NotifyVariant:
        await self.client.__aenter__()
        return self

    async def list_keys(self) -> object:
        return await self.client.api_keys.list()

    async def send(self) -> object:
        return await self.client.emails.send(**EMAIL)

    async def aclose(self) -> None:
        await self.client.close()


class RawAiohttp:
    """The floor: the same requests with nothing on top of aiohttp."""

    name = "raw aiohttp"

    def __init__(self, base_url: str, api_key: str) -> None:
        self._session = aiohttp.ClientSession()
        self._list_url = URL(base_url + "/api_keys")
        self._send_url = URL(base_url + "/send-email")
        self._headers = {"x-api-key": api_key}

    async def list_keys(self) -> object:
        async with self._session.get(self._list_url, headers=self._headers) as response:
            return await _checked_json(response)

    async def send(self) -> object:
        async with self._session.post(self._send_url, json=EMAIL, headers=self._headers) as r:
            return await _checked_json(r)

    async def aclose(self) -> None:
        await self._session.close()


async def _checked_json(response: aiohttp.ClientResponse) -> Any:
    # One integer comparison, so a broken run cannot pass for a fast one.
    if response.status != 200:
        raise RuntimeError(f"unexpected HTTP {response.status}")
    return json.loads(await response.read())


@attrs.frozen
class NaiveApiKey:
    """The hand-written wrapper's model of a listed key."""

    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    active: bool
    prefix: str


@attrs.frozen
class NaiveSendResult:
    """The hand-written wrapper's model of a send result."""

    success: bool
    message: str


def _naive_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(
        datetime, lambda value, _: datetime.fromisoformat(value.replace("Z", "+00:00"))
    )
    converter.register_structure_hook(
        NaiveApiKey,
        make_dict_structure_fn(
            NaiveApiKey,
            converter,
            created_at=override(rename="createdAt"),
            updated_at=override(rename="updatedAt"),
        ),
    )
    return converter


class NaiveWrapper:
    """aiohttp + tenacity per call + cattrs: the wrapper a team writes in an afternoon."""

    name = "naive wrapper"

    def __init__(self, base_url: str, api_key: str) -> None:
        self._session = aiohttp.ClientSession()
        self._base_url = base_url
        self._api_key = api_key
        self._converter = _naive_converter()

    async def _request(self, method: str, path: str, json: object) -> Any:
        async with self._session.request(
            method, f"{self._base_url}{path}", json=json, headers={"x-api-key": self._api_key}
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def _call(self, method: str, path: str, json: object = None) -> Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception_type((aiohttp.ClientError, asyncio.TimeoutError)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._request(method, path, json)
        raise AssertionError("unreachable: tenacity returns or re-raises")

    async def list_keys(self) -> object:
        body = await self._call("GET", "/api_keys")
        return self._converter.structure(body["data"], list[NaiveApiKey])

    async def send(self) -> object:
        body = await self._call("POST", "/send-email", EMAIL)
        return self._converter.structure(body, NaiveSendResult)

    async def aclose(self) -> None:
        await self._session.close()


class NaiveWithoutTenacity(NaiveWrapper):
    """The naive wrapper, one attempt per call: what tenacity costs it on a success."""

    name = "naive, no tenacity"

    async def _call(self, method: str, path: str, json: object = None) -> Any:
        return await self._request(method, path, json)


class HttpxVariant:
    """``httpx.AsyncClient`` with ``json()``, for context."""

    name = "httpx"

    def __init__(self, base_url: str, api_key: str) -> None:
        # Imported here: it is a sixth of this module's import time, which every callgrind
        # child of benchmarks.instructions pays under valgrind.
        import httpx  # noqa: PLC0415

        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"x-api-key": api_key},
            # httpx keeps only 20 idle connections by default; at a concurrency of 50 it
            # would reconnect for most requests. aiohttp keeps its whole pool of 100.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def list_keys(self) -> object:
        response = await self._client.get("/api_keys")
        response.raise_for_status()
        return response.json()

    async def send(self) -> object:
        response = await self._client.post("/send-email", json=EMAIL)
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self._client.aclose()


async def open_all(base_url: str, api_key: str, *, httpx_too: bool = True) -> list[BenchClient]:
    """Create the variants, in the order the tables list them."""
    notify = await NotifyVariant(base_url, api_key).open()
    clients: list[BenchClient] = [
        notify,
        RawAiohttp(base_url, api_key),
        NaiveWrapper(base_url, api_key),
        NaiveWithoutTenacity(base_url, api_key),
    ]
    if httpx_too:
        clients.append(HttpxVariant(base_url, api_key))
    return clients
