"""Quickstart: list the account's keys, then send a first email.

Run it with NOTIFY_API_KEY set (and NOTIFY_BASE_URL, to try it on `notify-async serve`).
"""

import asyncio

from notify_async import NotifyClient


async def main() -> None:
    # --8<-- [start:first-calls]
    async with NotifyClient() as client:  # the key comes from NOTIFY_API_KEY
        for key in await client.api_keys.list():
            print(f"{key.name:<12} {key.prefix:<14} active={key.active}")

        result = await client.emails.send(
            to="ada@example.com",
            subject="Hello from notify-async",
            message="It works.",
            name="Ada's app",  # the sender's display name; optional
        )
        print(result.message)  # "Email sent successfully"
    # --8<-- [end:first-calls]


if __name__ == "__main__":
    asyncio.run(main())
