"""Rotate the key this process uses, and record every key change."""

import asyncio
import logging

from notify_async import FileKeyProvider, NotifyClient

audit = logging.getLogger("audit")


# --8<-- [start:rotate]
async def record_rotation(prefix: str) -> None:
    # Told the new key's prefix ("nk_a1b2c..."), never the key itself.
    audit.info("Notify API key is now %s", prefix)


async def rotate(key_file: str) -> str:
    client = NotifyClient(
        credentials=FileKeyProvider(key_file),  # where the fleet reads the key from
        on_key_change=record_rotation,
    )
    async with client:
        # Regenerate the key in use, adopt it at once, store it in the file, then
        # check with one call that it works.
        result = await client.api_keys.rotate()
    return result.id


# --8<-- [end:rotate]


if __name__ == "__main__":
    asyncio.run(rotate("notify.key"))
