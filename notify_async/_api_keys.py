"""``client.api_keys``: list the account's keys, regenerate one, rotate the client's own."""

from __future__ import annotations

__all__ = ["ApiKeys"]

import logging
from collections.abc import Mapping
from typing import NamedTuple

from ._credentials import check_key, redact
from ._errors import outcome_unknown
from ._exceptions import CredentialError, InvalidResponseError, NotifyError
from ._keys import KeyHolder
from ._models import ApiKey, Parser, Reader, RegeneratedApiKey
from ._requester import Requester
from ._retry import RetryPolicy

logger = logging.getLogger("notify_async")

_read_keys = Reader(list[ApiKey], field="data")
_parse_regenerated = Parser(RegeneratedApiKey, path="data")

_REGENERATE_UNUSABLE = (
    "the server answered without a usable new key. The old key is most likely invalid "
    "already; take the new key from the Notify dashboard and publish it where your "
    "credential provider loads from"
)

_REGENERATE_OUTCOME = (
    "the key may or may not have been regenerated. It was not retried, because a second "
    "regenerate would invalidate the first new key. If it was regenerated, the old key "
    "is already invalid and the new one is in the Notify dashboard: publish it where "
    "your credential provider loads from, and the client picks it up on its next 401"
)


class ApiKeys:
    """The API-key endpoints. Reached as ``client.api_keys``."""

    def __init__(self, client: Requester, keys: KeyHolder) -> None:
        self._client = client
        self._keys = keys

    async def list(
        self, *, timeout: float | None = None, extra_headers: Mapping[str, str] | None = None
    ) -> list[ApiKey]:
        """Return every key of the account (``GET /api_keys``), each with a prefix only.

        Retried on connection errors, timeouts and 408/429/5xx, since listing changes nothing.
        ``timeout`` (seconds per attempt) and ``extra_headers`` apply to this call only.
        """
        keys = await self._client.request(
            "GET",
            "/api_keys",
            policy=RetryPolicy.IDEMPOTENT,
            timeout=timeout,
            extra_headers=extra_headers,
            reader=_read_keys,
        )
        current = self._keys.current
        # Listing is the only way to learn which id our key has; remember it for free.
        if current is not None and self._keys.own_key_id_for(current) is None:
            own_id = _match_prefix(keys, current)
            if own_id is not None:
                self._keys.remember_own_key_id(current, own_id)
        return keys

    async def regenerate(
        self,
        key_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> RegeneratedApiKey:
        """Regenerate the key ``key_id`` (``POST /api_keys/regenerate``); the old one dies at once.

        If ``key_id`` is the key this client uses, requests rejected while the regenerate is
        on the wire wait for its answer; the client adopts the new key in memory as soon as
        it arrives (they replay with it), then ``store()``s it on a provider that can store,
        before returning; the whole of it runs even if the caller is cancelled. If the
        server answers 401 because another holder rotated the key first, the client
        reloads that holder's key and returns it instead of regenerating again.
        Regenerating another key (a Pro account's dev key) changes nothing in the client.

        Never retried after a lost reply: a second regenerate would invalidate the first
        new key. Such a failure, and an answer without a usable key, raise
        ``OutcomeUnknownError``. ``timeout`` and ``extra_headers`` apply to this call only.

        Raises:
            KeyStoreError: the new key is in use but could not be stored; it is attached.
        """
        if not isinstance(key_id, str) or not key_id.strip():
            raise ValueError("key_id must be a non-empty string, e.g. an id from api_keys.list()")
        options = _Options(timeout, extra_headers)
        if key_id == await self._own_key_id(options):
            return await self._keys.regenerating(
                key_id, lambda: self._send_regenerate(key_id, options, own=True)
            )
        return await self._send_regenerate(key_id, options, own=False)

    async def rotate(
        self, *, timeout: float | None = None, extra_headers: Mapping[str, str] | None = None
    ) -> RegeneratedApiKey:
        """Regenerate the key this client uses, store it, and check that it works.

        Notify advises testing the application after a rotation; this does the rotation
        and that test in one call: regenerate, adopt in memory, ``store()`` on a writable
        provider, then one ``list()`` with the new key. If that check fails, the rotation
        is not undone (the new key is in use and stored): a WARNING says what the check
        found, and the result is returned, so that a caller never rotates twice.

        Concurrent calls (from this client and its ``with_options`` views) join one
        regenerate. With a provider that offers a rotation lease (``FileKeyProvider``,
        ``RedisKeyProvider``), rotations across processes take turns, and a worker that
        finds the key already rotated by another adopts that key instead of regenerating
        again: one regenerate per round across the fleet, and ``rotate()`` returns the live
        key. Once started, a rotation completes even if the caller is cancelled.
        ``timeout`` and ``extra_headers`` apply to each call the rotation makes.
        """
        options = _Options(timeout, extra_headers)

        async def own_key_id() -> str:
            return await self._own_key_id_or_raise(options)

        async def regenerate_own(key_id: str) -> RegeneratedApiKey:
            return await self._keys.regenerating(
                key_id, lambda: self._send_regenerate(key_id, options, own=True)
            )

        result = await self._keys.rotate(own_key_id, regenerate_own)
        try:
            await self.list(timeout=timeout, extra_headers=extra_headers)
        except NotifyError as exc:
            # The rotation happened and its key is stored: raising now would make a caller
            # rotate again. Say what the check found instead.
            logger.warning(
                "rotated to %s, but the check with the new key failed: %s",
                redact(result.api_key),
                exc.message,
            )
        return result

    async def _send_regenerate(
        self, key_id: str, options: _Options, *, own: bool
    ) -> RegeneratedApiKey:
        try:
            body = await self._client.request(
                "POST",
                "/api_keys/regenerate",
                policy=RetryPolicy.UNSENT_ONLY,
                json={"keyId": key_id},
                outcome_advice=_REGENERATE_OUTCOME,
                timeout=options.timeout,
                extra_headers=options.extra_headers,
                # Regenerating our own key: a 401 means someone rotated it first (see
                # KeyHolder.regenerating); replaying would rotate their new key too.
                replay_on_401=not own,
            )
            result = _parse_regenerated.parse(
                {
                    "id": _field(body.get("data"), "id"),
                    "api_key": _field(body.get("data"), "api_key"),
                    "message": body.get("message", ""),
                }
            )
            check_key(result.api_key, source="the regenerate answer")
        except InvalidResponseError as exc:
            unusable: InvalidResponseError = exc
        except CredentialError as exc:
            unusable = InvalidResponseError(f"POST /api_keys/regenerate: {exc.message}")
        else:
            return result
        # The server answered 2xx, so the old key is most likely dead already. (Neither
        # message quotes the body's values: they name fields and shapes.)
        raise outcome_unknown(unusable, "POST", "/api_keys/regenerate", advice=_REGENERATE_UNUSABLE)

    async def _own_key_id_or_raise(self, options: _Options) -> str:
        key_id = await self._own_key_id(options)
        if key_id is None:
            raise CredentialError(
                "none of the account's keys has the prefix of the key in use "
                f"({redact(await self._keys.get())}), so this client cannot tell which key to "
                "rotate; use api_keys.regenerate(key_id) with an id from api_keys.list()"
            )
        return key_id

    async def _own_key_id(self, options: _Options) -> str | None:
        keys = self._keys
        current = await keys.get()
        if keys.own_key_id() is None:
            await self.list(timeout=options.timeout, extra_headers=options.extra_headers)
            if keys.current != current:
                # The key changed while listing (pushed, or reloaded after a 401), so the
                # listing may show the old key's prefix: list again with the key in use.
                await self.list(timeout=options.timeout, extra_headers=options.extra_headers)
        return keys.own_key_id()


def _field(data: object, name: str) -> object:
    return data.get(name) if isinstance(data, dict) else None


class _Options(NamedTuple):
    """The per-call options of one public method, passed to every request it makes."""

    timeout: float | None
    extra_headers: Mapping[str, str] | None


def _match_prefix(keys: list[ApiKey], current: str) -> str | None:
    matches = [
        k.id for k in keys if (stem := k.prefix.removesuffix("...")) and current.startswith(stem)
    ]
    # Two keys sharing a prefix cannot be told apart; refuse to guess.
    return matches[0] if len(matches) == 1 else None
