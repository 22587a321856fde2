"""A credential provider for a secret manager (AWS Secrets Manager, HashiCorp Vault, ...).

``CallableKeyProvider`` wraps a ``load`` function and an optional ``store`` function, sync
or async; a sync one (boto3, hvac) runs in a worker thread, so a slow secret manager never
blocks the event loop. The client calls ``load`` when it first needs the key and again
only after a 401, so the secret manager sees a few reads per rotation, not one per
request: no cache is needed in front of it.

``SecretManager`` below is an in-memory stand-in so that this file runs anywhere; the
comments show the real calls. It starts its own local Notify server, so nothing else needs
to run. Run it from the repository root to watch two services share one secret::

    python examples/secret_manager_provider.py
"""

from __future__ import annotations

import asyncio

from notify_async import CallableKeyProvider, NotifyClient
from notify_async.testing import LocalNotifyServer


class SecretManager:
    """Stands in for your secret manager's client; replace it with the real one."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._secrets = dict(secrets)
        self.reads = 0
        self.writes = 0

    def get_secret_value(self, secret_id: str) -> str:
        self.reads += 1
        return self._secrets[secret_id]

    def put_secret_value(self, secret_id: str, value: str) -> None:
        self.writes += 1
        self._secrets[secret_id] = value


def notify_key_provider(secrets: SecretManager, secret_id: str) -> CallableKeyProvider:
    """The Notify API key kept in a secret manager under ``secret_id``."""

    def load() -> str:
        # AWS:   boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        # Vault: hvac.Client(url=..., token=...).secrets.kv.v2.read_secret_version(
        #            path=secret_id)["data"]["data"]["api_key"]
        return secrets.get_secret_value(secret_id)

    def store(key: str) -> None:
        # Called after this process rotates the key (client.api_keys.rotate()), so that
        # every other service finds the new key on its next 401.
        # AWS:   boto3.client("secretsmanager").put_secret_value(
        #            SecretId=secret_id, SecretString=key)
        # Vault: hvac.Client(...).secrets.kv.v2.create_or_update_secret(
        #            path=secret_id, secret={"api_key": key})
        secrets.put_secret_value(secret_id, key)

    return CallableKeyProvider(load, store)


async def main() -> None:
    async with LocalNotifyServer() as server:
        secrets = SecretManager({"prod/notify": server.api_key})
        billing = NotifyClient(
            credentials=notify_key_provider(secrets, "prod/notify"), base_url=server.base_url
        )
        signup = NotifyClient(
            credentials=notify_key_provider(secrets, "prod/notify"), base_url=server.base_url
        )
        async with billing, signup:
            await signup.emails.send(to="ada@example.com", subject="Welcome", message="Hi!")
            rotated = await billing.api_keys.rotate()  # regenerate, store, verify
            print(f"billing rotated the key to {billing.key_prefix}; the secret holds it now")
            print(f"signup still holds {signup.key_prefix}, which no longer works")
            # Its next call gets a 401, reloads the secret once, and is replayed.
            await signup.emails.send(to="ada@example.com", subject="Receipt", message="Paid.")
            print(f"signup sent its next email with {signup.key_prefix}")
        print(
            f"rotated key {rotated.id}: {len(server.emails)} emails sent, "
            f"{secrets.reads} secret reads, {secrets.writes} secret write"
        )


if __name__ == "__main__":
    asyncio.run(main())
