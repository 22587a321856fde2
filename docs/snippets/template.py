"""Send an email from a template stored in Notify."""

import asyncio

from notify_async import NotifyClient


async def main() -> None:
    # --8<-- [start:template]
    async with NotifyClient() as client:
        await client.emails.send_template(
            template_id="welcome",
            to="ada@example.com",
            variables={"first_name": "Ada"},  # strings only
        )
    # --8<-- [end:template]


if __name__ == "__main__":
    asyncio.run(main())
