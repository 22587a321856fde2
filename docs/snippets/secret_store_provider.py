"""A credential provider for a secret store, written as a class.

Any object with ``async def load(self) -> str`` is a provider; ``store`` lets the client
publish its own rotations, and ``watch`` lets the store push new keys to the client.
"""

import asyncio
import os

from notify_async import CredentialError, CredentialProvider, KeyListener, NotifyClient


class SecretStore:
    """An in-memory store with change notifications, standing in for yours."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._changed = asyncio.Condition()

    async def get(self, name: str) -> str | None:
        return self._values.get(name)

    async def put(self, name: str, value: str) -> None:
        async with self._changed:
            self._values[name] = value
            self._changed.notify_all()

    async def wait_for_change(self, name: str, seen: str | None) -> str:
        async with self._changed:
            await self._changed.wait_for(lambda: self._values.get(name) not in (None, seen))
            return self._values[name]


# --8<-- [start:provider]
class SecretStoreKeyProvider:
    """The Notify API key kept under ``name`` in a secret store."""

    def __init__(self, secrets: SecretStore, name: str) -> None:
        self._secrets = secrets
        self._name = name

    def __repr__(self) -> str:
        # Shown in error messages and logs: name the secret, never the key.
        return f"SecretStoreKeyProvider(name={self._name!r})"

    async def load(self) -> str:
        # Read through to the store every time. The client calls this only on first use
        # and after a 401, and a cached value would hide the very rotation it looks for.
        key = await self._secrets.get(self._name)
        if key is None:
            # CredentialError means "no key here": a ChainKeyProvider tries the next one.
            raise CredentialError(f"the secret {self._name!r} does not exist")
        return key

    async def store(self, key: str) -> None:
        # Called when this client rotated its own key, before regenerate() returns.
        await self._secrets.put(self._name, key)

    async def watch(self, on_key: KeyListener) -> None:
        # Optional. Runs while the client is open and pushes each new key, so that the
        # client switches before its old key is rejected. A real one reconnects (with
        # backoff) when its subscription drops; if it raises, the client logs it and
        # falls back to reloading on a 401.
        seen = await self._secrets.get(self._name)
        while True:
            seen = await self._secrets.wait_for_change(self._name, seen)
            await on_key(seen)


# --8<-- [end:provider]


async def main() -> None:
    secrets = SecretStore()
    await secrets.put("notify/prod", os.environ["NOTIFY_API_KEY"])
    # --8<-- [start:use]
    provider = SecretStoreKeyProvider(secrets, "notify/prod")
    assert isinstance(provider, CredentialProvider)  # the Protocol checks for load()

    async with (
        NotifyClient(credentials=provider) as rotator,
        NotifyClient(credentials=SecretStoreKeyProvider(secrets, "notify/prod")) as other,
    ):
        await rotator.api_keys.rotate()  # stores the new key in the secret store...
        await other.emails.send(to="ada@example.com", subject="Hi", message="Hello")
        assert other.key_prefix == rotator.key_prefix  # ...and `other` was told at once
    # --8<-- [end:use]


if __name__ == "__main__":
    asyncio.run(main())
